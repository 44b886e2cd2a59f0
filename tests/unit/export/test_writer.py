"""Export: which trial is exported, the --out check, the ratios of the report, and what bortnas.json says of reloading."""

from __future__ import annotations

import json
import re
from pathlib import Path

import optuna
import pytest
import torch
from conftest import FAKE_BEST, make_scored_study
from transformers import AutoModelForSequenceClassification

import bortnas
from bortnas.core.errors import ExportError, UserInputError
from bortnas.core.settings import RunSettings
from bortnas.core.space import ArchSpec, parse_search_space
from bortnas.export import writer
from bortnas.export.out_dir import prepare_out_dir
from bortnas.export.writer import ExportReport
from bortnas.quant import pack
from bortnas.search import create_or_resume
from bortnas.search.selection import choose_trial
from bortnas.search.storage import open_storage
from bortnas.trial.context import build_context
from bortnas.trial.metrics import ModelMetrics

FINISHED = "[0, 1, 3, 5, 6, 7]"  # FAKE_SCORES' trials; 2 failed and 4 was pruned


@pytest.fixture()
def study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    make_scored_study(url)
    return optuna.load_study(study_name="fake", storage=url)


def empty_study(tmp_path: Path, name: str = "empty") -> optuna.Study:
    space = parse_search_space({"name": name, "layers": [1], "hidden": [16], "heads": [2], "ffn": [32]}, "test_writer")
    return create_or_resume(
        open_storage(f"sqlite:///{tmp_path / 'e.db'}"), name, space, RunSettings(), optuna.samplers.RandomSampler(seed=0)
    )


def test_the_default_is_the_argmax_w_trial(study: optuna.Study) -> None:
    trial = choose_trial(study)
    assert trial.number == FAKE_BEST
    assert trial.value == max(t.value for t in study.trials if t.value is not None)
    assert ArchSpec.from_dict(trial.user_attrs["candidate"]).key == "L1-H16-A2-I32-fp32"


def test_an_explicit_finished_trial_is_chosen(study: optuna.Study) -> None:
    trial = choose_trial(study, 6)
    assert trial.number == 6 and trial.user_attrs["candidate"]["quant"] == "bitnet158"
    assert choose_trial(study, 0).number == 0


@pytest.mark.parametrize("number", [2, 4, 99], ids=["failed", "pruned", "unknown"])
def test_a_trial_that_is_not_a_finished_candidate_is_refused(study: optuna.Study, number: int) -> None:
    with pytest.raises(
        ExportError, match=rf"trial {number} of study 'fake' is not a finished candidate \(finished: {re.escape(FINISHED)}\)"
    ):
        choose_trial(study, number)


def test_an_empty_study_has_nothing_to_export(tmp_path: Path) -> None:
    study = empty_study(tmp_path)
    with pytest.raises(ExportError, match=r"study 'empty' has no finished trial to export: run `bortnas search` first"):
        choose_trial(study)
    with pytest.raises(ExportError, match=r"trial 0 of study 'empty' is not a finished candidate \(finished: \[\]\)"):
        choose_trial(study, 0)


def test_a_study_with_only_unscored_trials_has_nothing_to_export(tmp_path: Path) -> None:
    study = empty_study(tmp_path, "unscored")
    trial = study.ask()
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    study.add_trial(optuna.trial.create_trial(value=1.0))  # COMPLETE but not a bortnas candidate (no "w", no "candidate")
    with pytest.raises(ExportError, match="has no finished trial to export"):
        choose_trial(study)
    with pytest.raises(ExportError, match=r"trial 1 of study 'unscored' is not a finished candidate \(finished: \[\]\)"):
        choose_trial(study, 1)


def test_out_dir_checks(tmp_path: Path) -> None:
    prepare_out_dir(tmp_path / "new", overwrite=False)  # does not exist yet: fine, and not created here
    assert not (tmp_path / "new").exists()
    empty = tmp_path / "empty"
    empty.mkdir()
    prepare_out_dir(empty, overwrite=False)
    full = tmp_path / "full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    with pytest.raises(UserInputError, match=rf"--out {full} exists and is not empty: choose another directory or pass --overwrite"):
        prepare_out_dir(full, overwrite=False)
    prepare_out_dir(full, overwrite=True)
    assert (full / "config.json").read_text() == "{}"  # only checked: the old export is replaced after training, not here
    a_file = tmp_path / "model.bin"
    a_file.write_text("x")
    with pytest.raises(UserInputError, match="exists and is not empty"):
        prepare_out_dir(a_file, overwrite=False)
    with pytest.raises(UserInputError, match=rf"--out {tmp_path / 'no' / 'out'}: parent directory {tmp_path / 'no'} does not exist"):
        prepare_out_dir(tmp_path / "no" / "out", overwrite=True)


def metrics(**figures: float) -> ModelMetrics:
    return ModelMetrics(latency_device="cpu", **figures)  # type: ignore[arg-type]


def test_report_ratios_are_teacher_over_model(tmp_path: Path) -> None:
    teacher = metrics(
        dev_score=0.93,
        test_score=0.90,
        params_total=1_000_000,
        params_non_embedding=600_000,
        size_bits_non_embedding=19_200_000.0,
        size_mib=3.8,
        flops=8.0e9,
        latency_ms=12.0,
    )
    model = metrics(
        dev_score=0.89,
        test_score=0.8725,
        params_total=250_000,
        params_non_embedding=50_000,
        size_bits_non_embedding=1_600_000.0,
        size_mib=0.95,
        flops=1.0e9,
        latency_ms=1.5,
    )
    report = ExportReport(out=tmp_path / "out", trial=3, spec=ArchSpec(1, 16, 2, 32), model=model, teacher=teacher, seq_len=64)
    ratios = report.ratios()
    assert set(ratios) == {"params", "params_non_embedding", "size_mib", "flops", "latency", "test_points"}
    assert ratios["params"] == pytest.approx(4.0)
    assert ratios["params_non_embedding"] == pytest.approx(12.0)
    assert ratios["size_mib"] == pytest.approx(4.0)
    assert ratios["flops"] == pytest.approx(8.0)
    assert ratios["latency"] == pytest.approx(8.0)
    assert ratios["test_points"] == pytest.approx(-2.75)  # test accuracy, not dev: 100 * (0.8725 - 0.90)


RELOAD_ATOL = 1e-5  # the writer's own bound: the same weights and arithmetic, read back


@pytest.mark.parametrize(("number", "loadable"), [(0, True), (6, False)], ids=["fp32", "bitnet158"])
def test_bortnas_json_says_whether_stock_transformers_loads_the_export(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, study: optuna.Study, monkeypatch: pytest.MonkeyPatch, number: int, loadable: bool
) -> None:
    settings = RunSettings(
        teacher=str(tiny_bert),
        data=str(tiny_task),
        text_column="sentence",
        label_column="sentiment",
        teacher_steps=5,
        max_length=16,
        batch_size=16,
    )
    ctx = build_context(settings, cache_dir=tmp_path / "cache")
    batch = ctx.dev.batch(list(range(8)))
    batch.pop("labels")
    trained: dict[str, torch.Tensor] = {}

    def save_and_remember(model: torch.nn.Module, directory: Path) -> None:
        with torch.no_grad():
            trained["logits"] = model(**batch).logits
        pack.save(model, directory)  # type: ignore[arg-type]

    monkeypatch.setattr(writer, "save", save_and_remember)
    out = tmp_path / "out"
    writer.export_trial(ctx, study, study.trials[number], out, steps=2)
    meta = json.loads((out / "bortnas.json").read_text())
    quant = study.trials[number].user_attrs["candidate"]["quant"]
    assert meta["quant"] == meta["candidate"]["quant"] == quant and meta["trial"] == number and "metrics" in meta
    assert meta["transformers_loadable"] is loadable
    stock = AutoModelForSequenceClassification.from_pretrained(out, local_files_only=True).eval()
    with torch.no_grad():
        stock_diff = (stock(**batch).logits - trained["logits"]).abs().max().item()
        assert (bortnas.load(str(out))(**batch).logits - trained["logits"]).abs().max().item() <= RELOAD_ATOL
    if loadable:
        assert meta["auto_class"] == "AutoModelForSequenceClassification" and stock_diff <= RELOAD_ATOL
    else:
        # the packed weights are not read by stock transformers: its layers stay random
        assert meta["auto_class"] is None and meta["load_with"] == "bortnas.load" and stock_diff > 1e-2
