"""The real CLI in subprocesses on a tiny random teacher: search -> trials -> export -> reload."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import optuna
import pytest
from conftest import bortnas, completed, one_line_error, reload_exported, search_args

pytestmark = pytest.mark.integration


def test_search_trials_export_reload(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    args = search_args(tiny_bert, tiny_task, tiny_space, "--strategy", "tpe", "--n-trials", "4", "--format", "json")
    out = json.loads(bortnas(*args, cwd=tmp_path).stdout)
    trials = completed(tmp_path / "bortnas.db", "tiny")
    assert len(trials) == 4 and len({t.user_attrs["arch_id"] for t in trials}) == 4
    attrs = trials[0].user_attrs
    for key in (
        "candidate",
        "params_total",
        "params_non_embedding",
        "flops",
        "latency_ms",
        "error",
        "w",
        "steps",
        "seed",
        "teacher_hash",
        "data_hash",
        "version",
    ):
        assert key in attrs, key
    assert attrs["steps"] == 8 and 0.0 <= attrs["error"] <= 1.0
    best = max(trials, key=lambda t: t.value)
    assert out["best_trial"] == best.number and out["W"] == pytest.approx(best.value)

    # running the same command again resumes and evaluates nothing new
    bortnas(*args, cwd=tmp_path)
    again = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'bortnas.db'}").get_trials()
    assert len([t for t in again if t.state == optuna.trial.TrialState.COMPLETE]) == 4
    assert len(again) == len(optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'bortnas.db'}").get_trials())

    table = bortnas("trials", "--study", "tiny", cwd=tmp_path).stdout
    best_line = next(line for line in table.splitlines() if line.split()[:1] == [str(best.number)])
    assert "*" in best_line.split()[-1]
    rows = json.loads(bortnas("trials", "--study", "tiny", "--format", "json", cwd=tmp_path).stdout)
    assert [r["trial"] for r in rows if r["best"]] == [best.number]
    assert any(r["pareto"] for r in rows)

    export = json.loads(
        bortnas(
            "export", "--study", "tiny", "--out", "model", "--steps", "30", "--accept-drop", "none", "--format", "json", "-q", cwd=tmp_path
        ).stdout
    )
    assert export["trial"] == best.number  # W's pick, written as trained: no check on dev, no climb
    model_dir = tmp_path / "model"
    meta = json.loads((model_dir / "bortnas.json").read_text())
    assert meta["candidate"] == best.user_attrs["candidate"]
    assert meta["provenance"]["teacher_hash"] == best.user_attrs["teacher_hash"]

    # a fresh process without bortnas loads the directory with stock transformers and gets the recorded accuracy
    reloaded = reload_exported(model_dir, tiny_task, stock=True)
    assert reloaded["type"] == "BertForSequenceClassification"
    assert reloaded["acc"] == pytest.approx(meta["metrics"]["dev_score"])
    assert reloaded["id2label"] == {"0": "neg", "1": "pos"}


@pytest.mark.parametrize("strategy", ["grid", "random", "nsga2"])
def test_every_strategy_finishes_the_requested_count(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path, strategy: str
) -> None:
    bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--strategy", strategy, "--n-trials", "3", "--study", strategy), cwd=tmp_path)
    trials = completed(tmp_path / "bortnas.db", strategy)
    assert len(trials) == 3 and len({t.user_attrs["arch_id"] for t in trials}) == 3
    assert {t.user_attrs["strategy"] for t in trials} == {strategy}


def test_bad_inputs_exit_2_and_write_nothing(tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    bad_space = tmp_path / "bad.yaml"
    bad_space.write_text("layers: [1]\nhidden: [32]\nheads: [4]\nffn: [64]\nwidth: [3]\n")
    one_line_error(bortnas(*search_args(tiny_bert, tiny_task, bad_space), cwd=tmp_path, check=False), 2, "unknown key 'width'")
    big_space = tmp_path / "big.yaml"
    big_space.write_text("layers: [1, 5]\nhidden: [32]\nheads: [4]\nffn: [64]\n")
    one_line_error(
        bortnas(*search_args(tiny_bert, tiny_task, big_space), cwd=tmp_path, check=False), 2, "larger than the teacher's layers=2"
    )
    good_space = tmp_path / "good.yaml"
    good_space.write_text("layers: [1]\nhidden: [32]\nheads: [4]\nffn: [64]\n")
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2", "architectures": ["GPT2Model"]}))
    one_line_error(bortnas(*search_args(gpt, tiny_task, good_space), cwd=tmp_path, check=False), 2, "unsupported architecture GPT2Model")
    albert = tmp_path / "albert"  # shared layers: nothing to cut per layer
    albert.mkdir()
    (albert / "config.json").write_text(json.dumps({"model_type": "albert", "architectures": ["AlbertModel"]}))
    one_line_error(
        bortnas(*search_args(albert, tiny_task, good_space), cwd=tmp_path, check=False),
        2,
        "supported families: bert, roberta, xlm-roberta, electra, distilbert, mpnet, deberta-v2, modernbert",
    )
    deeper = tmp_path / "deeper"  # a config of 3 layers beside weights of 2
    shutil.copytree(tiny_bert, deeper)
    (deeper / "config.json").write_text(json.dumps({**json.loads((tiny_bert / "config.json").read_text()), "num_hidden_layers": 3}))
    one_line_error(
        bortnas(*search_args(deeper, tiny_task, good_space), cwd=tmp_path, check=False),
        2,
        "config.json and the weights disagree: 16 weights missing",
    )
    one_line_error(bortnas(*search_args(tiny_bert, tmp_path / "none.csv", good_space), cwd=tmp_path, check=False), 2, "does not exist")
    wrong_column = search_args(tiny_bert, tiny_task, good_space) + ["--label-column", "stars"]
    one_line_error(bortnas(*wrong_column, cwd=tmp_path, check=False), 2, "--label-column='stars' is not a column of")
    one_line_error(
        bortnas(*search_args(tiny_bert, tiny_task, good_space, "--storage", "nosuch://x"), cwd=tmp_path, check=False), 2, "--storage"
    )
    assert not (tmp_path / "bortnas.db").exists()
    assert not (tmp_path / "cache").exists()


def test_export_errors(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    one_line_error(bortnas("export", "--study", "none", "--out", "m", cwd=tmp_path, check=False), 2, "does not exist")
    assert not (tmp_path / "bortnas.db").exists()
    storage = f"sqlite:///{tmp_path / 'bortnas.db'}"
    optuna.create_study(study_name="empty", storage=storage)
    one_line_error(bortnas("export", "--study", "nothing", "--out", "m", cwd=tmp_path, check=False), 2, "study 'nothing' does not exist")
    one_line_error(bortnas("export", "--study", "empty", "--out", "m", cwd=tmp_path, check=False), 2, "not created by bortnas")
    assert not (tmp_path / "m").exists()


def test_resuming_with_other_settings_is_refused(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--n-trials", "1"), cwd=tmp_path)
    proc = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--n-trials", "1", "--seed", "7"), cwd=tmp_path, check=False)
    one_line_error(proc, 2, "seed: 0 -> 7")
    assert len(completed(tmp_path / "bortnas.db", "tiny")) == 1
