"""The general objective through the real CLI in subprocesses on tiny random teachers: a search on a
corpus of unlabelled text, its pinned settings and trials, the export of a general encoder that stock
transformers (and sentence-transformers, for an embedding teacher) loads, and the refusals of flags
that do not go together."""

from __future__ import annotations

import json
import math
import random
import shutil
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, bortnas, one_line_error

pytestmark = pytest.mark.integration

SPACE = "name: tiny\nlayers: [1]\nhidden: [16, 32]\nheads: [2]\nffn: [32]\n"


def write_corpus(path: Path, documents: int = 90, seed: int = 0) -> Path:
    rng = random.Random(seed)
    words = FILLER + POSITIVE + NEGATIVE
    path.write_text("\n".join(" ".join(rng.choices(words, k=rng.randint(5, 40))) for _ in range(documents)) + "\n")
    return path


def general_search(teacher: Path, corpus: Path, tmp_path: Path, *extra: str) -> list[str]:
    (tmp_path / "space.yaml").write_text(SPACE)
    return [
        "search",
        *("--space", str(tmp_path / "space.yaml"), "--teacher", str(teacher), "--objective", "general", "--corpus", str(corpus)),
        *("--storage", f"sqlite:///{tmp_path / 's.db'}", "--strategy", "grid", "--trial-steps", "10"),
        *("--lr", "3e-3", "--batch-size", "16", "--max-length", "16", "-q"),
        *extra,
    ]


def export_argv(tmp_path: Path, out: Path, steps: int, length: str = "--steps") -> list[str]:
    return ["export", "--storage", f"sqlite:///{tmp_path / 's.db'}", "--study", "tiny", "--out", str(out), length, str(steps), "-q"]


RELOAD = r"""
import json, sys, torch
sys.modules['bortnas'] = None
import transformers
args = json.loads(sys.argv[1])
model = transformers.AutoModel.from_pretrained(args['dir']).eval()
tok = transformers.AutoTokenizer.from_pretrained(args['dir'])
with torch.no_grad():
    out = model(**tok(args['texts'], padding=True, return_tensors='pt'))
print(json.dumps({'type': type(model).__name__, 'shape': list(out.last_hidden_state.shape)}))
"""


def test_general_search_and_export_of_a_general_encoder(tmp_path: Path, tiny_bert: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    bortnas(*general_search(tiny_bert, corpus, tmp_path), cwd=tmp_path)
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 's.db'}")
    settings = study.user_attrs["settings"]
    assert settings["task"] == "general" and settings["corpus"] == [str(corpus)] and settings["teacher_steps"] == 0
    trials = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(trials) == 2
    for trial in trials:
        attrs = trial.user_attrs
        assert attrs["metric"] == "relation_agreement"
        # W's error is 1 - agreement, and the agreement is exp(-KL) of the held-out relations
        assert attrs["error"] == pytest.approx(1 - attrs["dev_score"])
        assert 0 < attrs["dev_score"] < 1 and attrs["dev_metrics"]["relation_kl"] > 0

    out = tmp_path / "encoder"
    # a length in both steps and tokens is refused in one line, nothing written
    one_line_error(bortnas(*export_argv(tmp_path, out, 20), "--tokens", "99", cwd=tmp_path, check=False), 2, "two lengths")
    assert not out.exists()
    bortnas(*export_argv(tmp_path, out, 3000, "--tokens"), cwd=tmp_path)
    meta = json.loads((out / "bortnas.json").read_text())
    assert (meta["task"], meta["metric"], meta["model_class"]) == ("general", "relation_agreement", "AutoModel")
    # 3,000 tokens at 16 windows a step of at most 16 tokens: at least 12 steps, as many as the windows' mean length says
    training = meta["training"]
    assert training["tokens_budget"] == 3000 and 1 < training["tokens_per_example"] <= 16
    assert training["steps"] == math.ceil(3000 / (16 * training["tokens_per_example"])) >= 12
    assert meta["attempts"] == []  # nothing to climb to: the teacher agrees with itself by definition
    assert meta["teacher_metrics"]["test_metrics"]["relation_agreement"] == pytest.approx(1.0)
    general = meta["general"]
    assert general["corpus"] == [str(corpus)] and general["loss"].startswith("relation KL")
    assert general["held_out_windows"]["dev"] >= 4 and general["train_windows"] > 60
    assert not (out / "modules.json").exists()  # a teacher that is no embedding model: no sentence-transformers files
    assert not list((tmp_path / "cache" / "exports").glob("*/*.pt"))  # the resumable state is dropped once written
    payload = json.dumps({"dir": str(out), "texts": ["the movie was great", "a film"]})
    proc = subprocess.run([sys.executable, "-c", RELOAD, payload], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    assert reloaded["type"] == "BertModel" and reloaded["shape"][-1] == meta["candidate"]["hidden"]


FINETUNE = ("--text-column", "sentence", "--label-column", "sentiment", "--teacher-steps", "150", "--steps", "150")
FINETUNE += ("--lr", "3e-3", "--batch-size", "16", "--max-length", "16", "-q", "--format", "json")


# distil is the slower variant (the teacher runs every step); the default suite keeps plain
@pytest.mark.parametrize("method", ["plain", pytest.param("distil", marks=pytest.mark.slow)])
def test_finetune_adapts_an_exported_general_encoder_to_a_task(tmp_path: Path, tiny_bert: Path, tiny_task: Path, method: str) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    bortnas(*general_search(tiny_bert, corpus, tmp_path), cwd=tmp_path)
    encoder = tmp_path / "encoder"
    bortnas(*export_argv(tmp_path, encoder, 10), cwd=tmp_path)
    cut = json.loads((encoder / "bortnas.json").read_text())
    hidden = cut["candidate"]["hidden"]
    # the export records the teacher units it was cut from: one teacher layer per layer, one unit per dimension
    assert len(cut["training"]["teacher_layers"]) == 1 and len(cut["training"]["teacher_hidden"]) == hidden

    out = tmp_path / "reviews"
    argv = ["finetune", "--model", str(encoder), "--data", str(tiny_task), "--teacher", str(tiny_bert), "--out", str(out)]
    printed = json.loads(bortnas(*argv, "--method", method, *FINETUNE, cwd=tmp_path).stdout)
    meta = json.loads((out / "bortnas.json").read_text())
    assert meta["task"] == "classification" and meta["finetuned_from"] == str(encoder)
    assert meta["training"]["finetune"] == method and meta["training"]["steps"] == 150
    assert meta["candidate"]["hidden"] == hidden and meta["model_class"] == "AutoModelForSequenceClassification"
    # the model's units still descend from the teacher units the encoder was cut from; the task teacher is
    # fine-tuned from the files the encoder was cut from, so distillation matches its hidden states there
    units = ("teacher_layers", "teacher_hidden")
    assert {k: meta["training"][k] for k in units} == {k: cut["training"][k] for k in units}
    assert method != "distil" or meta["training"]["hidden_weight"] == 1.0
    assert printed["model"]["test_score"] == pytest.approx(meta["metrics"]["test_score"])
    assert printed["teacher"]["test_score"] == pytest.approx(meta["teacher_metrics"]["test_score"])
    # the tiny task is separable by its words: both methods learn it from the general encoder. Dev and test hold
    # 24 examples each, and a run's score moves by a few of them, so the check reads both (chance is 0.5)
    assert (meta["metrics"]["dev_score"] + meta["metrics"]["test_score"]) / 2 >= 0.75, meta["metrics"]

    # a directory that is no model, and an out directory already holding files: one line each, nothing written
    one_line_error(bortnas(*argv[:2], str(tmp_path), *argv[3:], *FINETUNE, cwd=tmp_path, check=False), 2, "no model directory")
    one_line_error(bortnas(*argv, *FINETUNE, cwd=tmp_path, check=False), 2, str(out))


def test_finetune_by_agora_starts_every_fine_tune_from_the_general_encoder(tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    bortnas(*general_search(tiny_bert, corpus, tmp_path), cwd=tmp_path)
    encoder = tmp_path / "encoder"
    bortnas(*export_argv(tmp_path, encoder, 10), cwd=tmp_path)
    grid = tmp_path / "grid.yaml"
    grid.write_text("lr: [3.0e-3]\nseed: [0, 1]\n")
    out = tmp_path / "reviews"
    argv = ["finetune", "--model", str(encoder), "--data", str(tiny_task), "--teacher", str(tiny_bert), "--out", str(out), *FINETUNE]
    # Agora's flags with another method: refused in one line before anything is trained
    refused = bortnas(*argv, "--agora-replay", "0", cwd=tmp_path, check=False)
    one_line_error(refused, 2, "--agora-replay applies to --method agora only")
    bortnas(*argv, "--method", "agora", "--agora-grid", str(grid), "--agora-replay", "0", cwd=tmp_path)
    meta = json.loads((out / "bortnas.json").read_text())
    assert meta["training"]["finetune"] == "agora" and meta["finetuned_from"] == str(encoder)
    # the written model's units descend from those the encoder was cut from, and it records them for a later fine-tuning
    cut = json.loads((encoder / "bortnas.json").read_text())["training"]
    assert meta["training"]["teacher_hidden"] == cut["teacher_hidden"] and meta["training"]["teacher_layers"] == cut["teacher_layers"]
    agora = meta["agora"]
    # two settings: the first round fine-tunes both on the task's data; a round adds teacher-labelled examples
    first = agora["log"][0]
    assert set(first["accuracies"]) == {"lr=0.003,seed=0", "lr=0.003,seed=1"} and agora["theta"] in first["accuracies"]
    assert first["train_size"] == meta["provenance"]["data"]["train"]
    assert first["train_size"] <= agora["train_size"] <= agora["log"][-1]["train_size"]  # the data only grows
    assert (meta["metrics"]["dev_score"] + meta["metrics"]["test_score"]) / 2 >= 0.75, meta["metrics"]


MLM_RELOAD = r"""
import json, sys, torch
sys.modules['bortnas'] = None
import transformers
args = json.loads(sys.argv[1])
model = transformers.AutoModelForMaskedLM.from_pretrained(args['dir']).eval()
encoder = transformers.AutoModel.from_pretrained(args['dir']).eval()
tok = transformers.AutoTokenizer.from_pretrained(args['dir'])
batch = tok(['the movie was [MASK]'], return_tensors='pt')
with torch.no_grad():
    logits = model(**batch).logits
    states = encoder(**batch).last_hidden_state
print(json.dumps({'type': type(model).__name__, 'logits': list(logits.shape), 'states': list(states.shape)}))
"""


def test_a_teacher_with_a_masked_lm_head_is_distilled_on_masked_tokens_and_exported_with_it(tmp_path: Path) -> None:
    import torch
    from conftest import VOCAB, tiny_config, write_tokenizer
    from transformers import AutoModelForMaskedLM

    teacher = tmp_path / "mlm_teacher"
    torch.manual_seed(0)
    AutoModelForMaskedLM.from_config(tiny_config("bert")).save_pretrained(teacher)
    write_tokenizer(teacher)
    corpus = write_corpus(tmp_path / "corpus.txt")
    bortnas(*general_search(teacher, corpus, tmp_path), cwd=tmp_path)
    out = tmp_path / "encoder"
    one_line_error(bortnas(*export_argv(tmp_path, out, 10), "--onnx", cwd=tmp_path, check=False), 2, "masked-LM head")
    assert not out.exists()
    bortnas(*export_argv(tmp_path, out, 10), cwd=tmp_path)
    meta = json.loads((out / "bortnas.json").read_text())
    assert meta["model_class"] == "AutoModelForMaskedLM" and meta["general"]["masked_lm"] is True
    assert "Bort's masked-token loss" in meta["general"]["loss"]
    proc = subprocess.run([sys.executable, "-c", MLM_RELOAD, json.dumps({"dir": str(out)})], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    reloaded = json.loads(proc.stdout.strip().splitlines()[-1])
    hidden = meta["candidate"]["hidden"]
    # the head came along, cut to the student's width: vocabulary logits from AutoModelForMaskedLM, states from AutoModel
    assert reloaded["type"] == "BertForMaskedLM" and reloaded["logits"][-1] == len(VOCAB)
    assert reloaded["states"][-1] == hidden


@pytest.mark.slow  # the default suite covers the sentence-transformers export by the embedding task's test
def test_general_student_of_an_embedding_teacher_exports_sentence_transformers_files(tmp_path: Path, tiny_bert: Path) -> None:
    from bortnas.data.sentence_dirs import Pooling, write_sentence_files

    teacher = tmp_path / "st_teacher"
    shutil.copytree(tiny_bert, teacher)
    write_sentence_files(teacher, Pooling("mean", True), 32, 16)
    corpus = write_corpus(tmp_path / "corpus.txt")
    bortnas(*general_search(teacher, corpus, tmp_path), cwd=tmp_path)
    out = tmp_path / "encoder"
    bortnas(*export_argv(tmp_path, out, 10), cwd=tmp_path)
    meta = json.loads((out / "bortnas.json").read_text())
    assert meta["task"] == "general" and "pooled embeddings" in meta["general"]["loss"]
    assert (out / "modules.json").is_file() and (out / "1_Pooling" / "config.json").is_file()


@pytest.mark.parametrize(
    ("extra", "fragment"),
    [
        (("--task", "classification"), "--task classification does not apply to --objective general"),
        (("--corpus", "MISSING.txt"), "does not exist"),
        (("--data", "DATA"), "is task data, but the general objective distils on unlabelled text"),
        (("--teacher-steps", "5"), "--teacher-steps=5"),
    ],
    ids=["task", "missing-corpus", "data", "teacher-steps"],
)
def test_general_flags_that_do_not_go_together_are_refused_in_one_line(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, extra: tuple[str, ...], fragment: str
) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    argv = general_search(tiny_bert, corpus, tmp_path)
    if extra[0] == "--corpus":
        argv[argv.index("--corpus") + 1] = str(tmp_path / extra[1])
        extra = ()
    extra = tuple(str(tiny_task) if e == "DATA" else e for e in extra)
    one_line_error(bortnas(*argv, *extra, cwd=tmp_path, check=False), 2, fragment)
    assert not (tmp_path / "s.db").exists()


def test_corpus_without_the_general_objective_is_refused(tmp_path: Path, tiny_bert: Path) -> None:
    corpus = write_corpus(tmp_path / "corpus.txt")
    argv = general_search(tiny_bert, corpus, tmp_path)
    argv[argv.index("general")] = "task"
    one_line_error(bortnas(*argv, cwd=tmp_path, check=False), 2, "--corpus is the unlabelled text of the general objective")
    assert not (tmp_path / "s.db").exists()
