"""Every supported family through the real CLI: a tiny random teacher of the family is searched
(one shape in fp32, bitnet158 and bibert), the fp32 and bibert trials exported, and each directory
reloaded in a fresh process, by stock transformers for full precision and by `bortnas.load` for
bibert, with the dev accuracy the export recorded."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
from conftest import FAMILIES, bortnas, make_teacher, reload_exported, search_args

pytestmark = pytest.mark.integration

CLASSES = {
    "bert": "BertForSequenceClassification",
    "roberta": "RobertaForSequenceClassification",
    "xlm-roberta": "XLMRobertaForSequenceClassification",
    "electra": "ElectraForSequenceClassification",
    "distilbert": "DistilBertForSequenceClassification",
    "mpnet": "MPNetForSequenceClassification",
    "deberta-v2": "DebertaV2ForSequenceClassification",
    "modernbert": "ModernBertForSequenceClassification",
}

# BERT takes this path in test_cli.py and test_quant_cli.py. The other families differ from it in their
# adapters, which tests/unit/model/test_families.py checks family by family (extraction, quantization,
# and a saved cut reloaded by stock transformers and by `bortnas.load`), so the default suite runs one
# of them through the CLI, DeBERTa-v2 (the layout furthest from BERT's), and the slow set the rest
DEFAULT_SUITE = ("deberta-v2",)


@pytest.mark.parametrize("family", [f if f in DEFAULT_SUITE else pytest.param(f, marks=pytest.mark.slow) for f in FAMILIES if f != "bert"])
def test_search_export_and_reload(tmp_path: Path, tiny_task: Path, family: str) -> None:
    teacher = make_teacher(tmp_path / "teacher", family)
    space = tmp_path / "space.yaml"
    space.write_text("name: fam\nlayers: [1]\nhidden: [16]\nheads: [2]\nffn: [32]\nquant: [fp32, bitnet158, bibert]\n")
    bortnas(*search_args(teacher, tiny_task, space, "--strategy", "grid", "--n-trials", "3"), cwd=tmp_path)
    study = optuna.load_study(study_name="fam", storage=f"sqlite:///{tmp_path / 'bortnas.db'}")
    trials = {t.user_attrs["candidate"]["quant"]: t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))}
    assert set(trials) == {"fp32", "bitnet158", "bibert"}

    for mode in ("fp32", "bibert"):
        trial = trials[mode]
        out = tmp_path / mode
        bortnas("export", "--study", "fam", "--trial", str(trial.number), "--out", str(out), "--steps", "5", "-q", cwd=tmp_path)
        config = json.loads((out / "config.json").read_text())
        assert config["architectures"] == [CLASSES[family]]
        assert (config["num_hidden_layers"] if family != "distilbert" else config["n_layers"]) == 1
        meta = json.loads((out / "bortnas.json").read_text())
        reloaded = reload_exported(out, tiny_task, stock=mode == "fp32")
        assert reloaded["type"] == CLASSES[family]
        assert reloaded["acc"] == pytest.approx(meta["metrics"]["dev_score"])
