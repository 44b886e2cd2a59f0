"""Every task through the real CLI in subprocesses on tiny random teachers: regression, multi-label,
token classification and embeddings searched, exported and reloaded without bortnas; a fine-tuned
teacher used as it is with its labels matched by name; the refusals of bad task inputs; truncation reported.
"""

from __future__ import annotations

import csv
import json
import math
import random
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from conftest import FILLER, NEGATIVE, POSITIVE, bortnas, cli_env, completed, one_line_error, tiny_config, write_tokenizer

pytestmark = pytest.mark.integration

MAX_LENGTH = 24


def write_space(directory: Path, hidden: str = "[16, 32]") -> Path:
    path = directory / "space.yaml"
    path.write_text(f"name: tiny\nlayers: [1]\nhidden: {hidden}\nheads: [2]\nffn: [32]\n")
    return path


def task_search(teacher: Path, data: Path, space: Path, storage: Path, *extra: str, quiet: bool = True) -> list[str]:
    """`search` argv of the tiny grid on `teacher` and `data`; `extra` sets the columns, the task, the teacher's steps."""
    return [
        "search",
        *("--space", str(space), "--teacher", str(teacher), "--data", str(data)),
        *("--storage", f"sqlite:///{storage}", "--strategy", "grid", "--trial-steps", "10"),
        *("--teacher-lr", "3e-3", "--lr", "3e-3", "--batch-size", "16", "--max-length", str(MAX_LENGTH)),
        *(("-q",) if quiet else ()),
        *extra,
    ]


def export(storage: Path, out: Path, cwd: Path) -> dict:
    bortnas("export", "--storage", f"sqlite:///{storage}", "--study", "tiny", "--out", str(out), "--steps", "20", "-q", cwd=cwd)
    return json.loads((out / "bortnas.json").read_text())


def pinned_settings(storage: Path) -> dict:
    return optuna.load_study(study_name="tiny", storage=f"sqlite:///{storage}").user_attrs["settings"]


def trials_json(storage: Path, cwd: Path) -> list[dict]:
    return json.loads(bortnas("trials", "--storage", f"sqlite:///{storage}", "--study", "tiny", "--format", "json", cwd=cwd).stdout)


def words_of(rng: random.Random) -> tuple[list[str], int, int]:
    """3-8 filler words and 0-3 positive and 0-3 negative ones, shuffled: (words, #positive, #negative)."""
    p, n = rng.randint(0, 3), rng.randint(0, 3)
    words = rng.choices(FILLER, k=rng.randint(3, 8)) + rng.choices(POSITIVE, k=p) + rng.choices(NEGATIVE, k=n)
    rng.shuffle(words)
    return words, p, n


def splits(items: list, seed: int = 0) -> tuple[list, list, list]:
    """Train / dev / test as bortnas cuts them (`load_table`, `load_tagged`): shuffled with `seed`, then 80/10/10."""
    items = list(items)
    random.Random(seed).shuffle(items)
    n = len(items)
    n_dev, n_test = max(1, round(n * 0.1)), max(1, round(n * 0.1))
    return items[: n - n_dev - n_test], items[n - n_dev - n_test : n - n_test], items[n - n_test :]


def dev_part(items: list) -> list:
    return splits(items)[1]


def by_hand_pearson(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    cov = sum((a - mx) * (b - my) for a, b in zip(x, y, strict=True))
    return cov / math.sqrt(sum((a - mx) ** 2 for a in x) * sum((b - my) ** 2 for b in y))


# Run in a fresh interpreter in which bortnas cannot be imported: the stock transformers class named
# by `cls` loads the exported dir and runs `texts` (or `words`, split into words) through it.
RELOAD = r"""
import json, sys, torch
sys.modules['bortnas'] = None
import transformers
args = json.loads(sys.argv[1])
model = getattr(transformers, args['cls']).from_pretrained(args['dir']).eval()
tok = transformers.AutoTokenizer.from_pretrained(args['dir'])
words = args.get('words')
inputs = words if words is not None else args['texts']
enc = tok(inputs, is_split_into_words=words is not None, padding=True, truncation=True, max_length=args['max_length'], return_tensors='pt')
with torch.no_grad():
    out = model(**enc)
result = {'type': type(model).__name__, 'problem_type': model.config.problem_type,
          'num_labels': model.config.num_labels, 'id2label': model.config.id2label}
if hasattr(out, 'logits'):
    result['logits'] = out.logits.tolist()
    if words is not None:
        result['word_ids'] = [enc.word_ids(i) for i in range(len(words))]
else:
    mask = enc['attention_mask'].unsqueeze(-1).float()
    pooled = (out.last_hidden_state * mask).sum(1) / mask.sum(1)
    result['embeddings'] = torch.nn.functional.normalize(pooled, dim=-1).tolist()
    from sentence_transformers import SentenceTransformer
    result['st'] = SentenceTransformer(args['dir'], device='cpu').encode(args['texts'], convert_to_numpy=True).tolist()
print(json.dumps(result))
"""


def reload_stock(directory: Path, cls: str, **inputs: object) -> dict:
    payload = json.dumps({"dir": str(directory), "cls": cls, "max_length": MAX_LENGTH, **inputs})
    proc = subprocess.run([sys.executable, "-c", RELOAD, payload], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


# 1. Each task searched, exported and reloaded --------------------------------------------------------------------


def test_regression_inferred_exported_and_reloaded(tmp_path: Path, tiny_bert: Path) -> None:
    rng = random.Random(1)
    rows = []
    for _ in range(200):
        words, p, n = words_of(rng)
        rows.append((" ".join(words), f"{p - n + rng.random() * 0.1:.4f}"))
    data = tmp_path / "scores.csv"
    with data.open("w", newline="") as handle:
        csv.writer(handle).writerows([("sentence", "score"), *rows])
    storage, space = tmp_path / "s.db", write_space(tmp_path)

    out = json.loads(
        bortnas(
            *task_search(tiny_bert, data, space, storage, "--text-column", "sentence", "--label-column", "score", "--format", "json"),
            "--teacher-steps",
            "40",
            cwd=tmp_path,
        ).stdout
    )
    assert out["task"] == "regression" and out["metric"] == "pearson"
    settings = pinned_settings(storage)
    assert settings["task"] == "regression" and settings["teacher_steps"] == 40
    rows_json = trials_json(storage, tmp_path)
    assert sorted(r["trial"] for r in rows_json) == [0, 1]

    meta = export(storage, tmp_path / "model", tmp_path)
    assert (meta["task"], meta["metric"], meta["model_class"], meta["labels"]) == (
        "regression",
        "pearson",
        "AutoModelForSequenceClassification",
        ["score"],
    )
    dev = dev_part(rows)
    assert len(dev) == 20
    reloaded = reload_stock(tmp_path / "model", "AutoModelForSequenceClassification", texts=[text for text, _ in dev])
    assert reloaded["problem_type"] == "regression" and reloaded["num_labels"] == 1
    predicted = [row[0] for row in reloaded["logits"]]
    pearson = by_hand_pearson(predicted, [float(score) for _, score in dev])
    assert pearson == pytest.approx(meta["metrics"]["dev_metrics"]["pearson"], abs=1e-4)
    assert meta["metrics"]["dev_score"] == meta["metrics"]["dev_metrics"]["pearson"]


def _multi_label_rows(rows: int = 200) -> list[tuple[str, list[str]]]:
    rng = random.Random(2)
    out = []
    for _ in range(rows):
        words, p, n = words_of(rng)
        out.append((" ".join(words), (["pos"] if p else []) + (["neg"] if n else [])))
    return out


# the 0/1-column layout end to end is slow (the default suite sat at its 10-minute bound); tests/unit/data/test_task_labels.py reads it
@pytest.mark.parametrize("layout", ["jsonl_lists", pytest.param("csv_columns", marks=pytest.mark.slow)])
def test_multi_label_inferred_exported_and_reloaded(tmp_path: Path, tiny_bert: Path, layout: str) -> None:
    examples = _multi_label_rows()
    if layout == "jsonl_lists":
        data = tmp_path / "labels.jsonl"
        data.write_text("".join(json.dumps({"sentence": text, "labels": labels}) + "\n" for text, labels in examples))
        label_column, names = "labels", ["neg", "pos"]  # the names seen, sorted
    else:
        data = tmp_path / "labels.csv"
        with data.open("w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["sentence", "pos", "neg"])
            writer.writerows((text, int("pos" in labels), int("neg" in labels)) for text, labels in examples)
        label_column, names = "pos,neg", ["pos", "neg"]  # the columns, in the order given
    storage, space = tmp_path / "s.db", write_space(tmp_path)

    bortnas(
        *task_search(tiny_bert, data, space, storage, "--text-column", "sentence", "--label-column", label_column, "--teacher-steps", "40"),
        cwd=tmp_path,
    )
    assert pinned_settings(storage)["task"] == "multi_label"
    assert len(trials_json(storage, tmp_path)) == 2

    meta = export(storage, tmp_path / "model", tmp_path)
    assert (meta["task"], meta["metric"], meta["model_class"], meta["labels"]) == (
        "multi_label",
        "micro_f1",
        "AutoModelForSequenceClassification",
        names,
    )
    dev = dev_part(examples)
    reloaded = reload_stock(tmp_path / "model", "AutoModelForSequenceClassification", texts=[text for text, _ in dev])
    assert reloaded["problem_type"] == "multi_label_classification" and reloaded["num_labels"] == 2
    assert [reloaded["id2label"][str(k)] for k in range(2)] == names
    # micro F1 over every (example, label) cell, a label predicted where its logit is above 0
    tp = n_pred = n_gold = 0
    for logits, (_, labels) in zip(reloaded["logits"], dev, strict=True):
        for name, logit in zip(names, logits, strict=True):
            tp += int(logit > 0 and name in labels)
            n_pred += int(logit > 0)
            n_gold += int(name in labels)
    assert 2 * tp / (n_pred + n_gold) == pytest.approx(meta["metrics"]["dev_metrics"]["micro_f1"], abs=1e-9)


def _write_conll(path: Path, sentences: list[list[tuple[str, str]]]) -> Path:
    path.write_text("".join("".join(f"{word}\t{tag}\n" for word, tag in sentence) + "\n" for sentence in sentences))
    return path


def _tag(word: str) -> str:
    return "B-POS" if word in POSITIVE else "B-NEG" if word in NEGATIVE else "O"


def test_token_classification_inferred_exported_and_reloaded(tmp_path: Path, tiny_bert: Path) -> None:
    rng = random.Random(3)
    sentences = [[(w, _tag(w)) for w in words_of(rng)[0]] for _ in range(200)]
    data = _write_conll(tmp_path / "tags.conll", sentences)
    storage, space = tmp_path / "s.db", write_space(tmp_path)

    bortnas(*task_search(tiny_bert, data, space, storage, "--teacher-steps", "40"), cwd=tmp_path)
    settings = pinned_settings(storage)
    assert settings["task"] == "token_classification" and settings["teacher_steps"] == 40
    assert len(trials_json(storage, tmp_path)) == 2

    meta = export(storage, tmp_path / "model", tmp_path)
    assert (meta["task"], meta["metric"], meta["model_class"], meta["labels"]) == (
        "token_classification",
        "entity_f1",
        "AutoModelForTokenClassification",
        ["O", "B-NEG", "B-POS"],
    )
    dev = dev_part(sentences)
    reloaded = reload_stock(tmp_path / "model", "AutoModelForTokenClassification", words=[[w for w, _ in s] for s in dev])
    assert reloaded["type"] == "BertForTokenClassification"
    assert reloaded["id2label"] == {"0": "O", "1": "B-NEG", "2": "B-POS"}
    # every tag is a one-word B- entity, so entity F1 = 2 * matches / (predicted + gold) over (position, type)
    tp = n_pred = n_gold = 0
    for logits, word_ids, sentence in zip(reloaded["logits"], reloaded["word_ids"], dev, strict=True):
        predicted = {}
        for position, word in enumerate(word_ids):
            if word is not None and word not in predicted:
                predicted[word] = reloaded["id2label"][str(max(range(3), key=lambda k: logits[position][k]))]
        pred = {(i, t) for i, t in predicted.items() if t != "O"}
        gold = {(i, t) for i, (_, t) in enumerate(sentence) if t != "O"}
        tp, n_pred, n_gold = tp + len(pred & gold), n_pred + len(pred), n_gold + len(gold)
    assert 2 * tp / (n_pred + n_gold) == pytest.approx(meta["metrics"]["dev_metrics"]["entity_f1"], abs=1e-9)


@pytest.fixture()
def sentence_teacher(tmp_path: Path, tiny_bert: Path) -> Path:
    from bortnas.data.sentence_dirs import Pooling, write_sentence_files

    directory = tmp_path / "st_teacher"
    shutil.copytree(tiny_bert, directory)
    write_sentence_files(directory, Pooling("mean", True), 32, MAX_LENGTH)
    return directory


def test_embedding_exported_as_sentence_transformers(tmp_path: Path, sentence_teacher: Path) -> None:
    rng = random.Random(4)
    data = tmp_path / "pairs.csv"
    with data.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["query", "document"])
        for _ in range(200):
            words = words_of(rng)[0]
            writer.writerow([" ".join(words[:3]), " ".join(words)])
    storage, space = tmp_path / "s.db", write_space(tmp_path)

    extra = ("--task", "embedding", "--text-column", "query", "--text-pair-column", "document")
    bortnas(*task_search(sentence_teacher, data, space, storage, *extra), cwd=tmp_path)
    settings = pinned_settings(storage)
    assert settings["task"] == "embedding" and settings["teacher_steps"] == 0 and settings["pair_column"] == "document"
    assert len(trials_json(storage, tmp_path)) == 2

    meta = export(storage, tmp_path / "model", tmp_path)
    assert (meta["task"], meta["metric"], meta["model_class"]) == ("embedding", "cosine_spearman", "AutoModel")
    # the export's dev check reads recall@10 (the headline compares the student with the teacher itself), from W's pick on
    attempts = meta["attempts"]
    assert attempts[0]["trial"] == next(r["trial"] for r in trials_json(storage, tmp_path) if r["best"])
    assert {a["metric"] for a in attempts} == {"recall_at_10"} and meta["trial"] in [a["trial"] for a in attempts]
    assert (tmp_path / "model" / "modules.json").is_file() and (tmp_path / "model" / "1_Pooling" / "config.json").is_file()
    texts = ["the movie was great fun", "awful boring plot", "a film"]
    reloaded = reload_stock(tmp_path / "model", "AutoModel", texts=texts)
    assert len(reloaded["st"]) == 3 and len(reloaded["st"][0]) == meta["candidate"]["hidden"]
    for ours, theirs in zip(reloaded["embeddings"], reloaded["st"], strict=True):
        assert ours == pytest.approx(theirs, abs=1e-5)
        assert math.fsum(v * v for v in theirs) == pytest.approx(1.0, abs=1e-5)


# 2. A fine-tuned teacher used as it is ----------------------------------------------------------------------------


def _headed_copy(source: Path, target: Path, swap: bool) -> Path:
    """`source`'s config, weights and tokenizer in `target`; `swap`: the classifier's rows swapped and its
    labels reversed, the same classifier under the other label ids."""
    import torch
    from safetensors.torch import load_file, save_file

    target.mkdir()
    for path in source.iterdir():
        if path.name not in ("meta.json", "importance.safetensors"):
            shutil.copy(path, target / path.name)
    if swap:
        weights = load_file(str(target / "model.safetensors"))
        for key in ("classifier.weight", "classifier.bias"):
            weights[key] = torch.flip(weights[key], dims=[0]).contiguous()
        save_file(weights, str(target / "model.safetensors"), metadata={"format": "pt"})
        config = json.loads((target / "config.json").read_text())
        assert config["id2label"] == {"0": "neg", "1": "pos"}
        config["id2label"], config["label2id"] = {"0": "pos", "1": "neg"}, {"pos": 0, "neg": 1}
        (target / "config.json").write_text(json.dumps(config))
    return target


def test_fine_tuned_teacher_used_as_it_is_with_labels_matched_by_name(tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    space = write_space(tmp_path, hidden="[16]")
    columns = ("--text-column", "sentence", "--label-column", "sentiment")
    bortnas(*task_search(tiny_bert, tiny_task, space, tmp_path / "first.db", *columns, "--teacher-steps", "40"), cwd=tmp_path)
    (original,) = completed(tmp_path / "first.db", "tiny")
    fine_tuned = [p for p in (tmp_path / "cache" / "teachers").iterdir() if (p / "model.safetensors").is_file()]
    assert len(fine_tuned) == 1
    assert json.loads((fine_tuned[0] / "config.json").read_text())["architectures"] == ["BertForSequenceClassification"]
    teacher_accuracy = original.user_attrs["teacher_dev_score"]
    assert teacher_accuracy == json.loads((fine_tuned[0] / "meta.json").read_text())["dev_metrics"]["accuracy"]
    # away from 1/2, so labels matched by id instead of by name would show as 1 - accuracy on the swapped copy
    assert abs(teacher_accuracy - 0.5) > 0.1, teacher_accuracy

    env = cli_env(tmp_path, BORTNAS_PROGRESS_INTERVAL="0")
    for name, swap in (("headed", False), ("swapped", True)):
        teacher = _headed_copy(fine_tuned[0], tmp_path / name, swap)
        storage = tmp_path / f"{name}.db"
        # progress lines every step: a fine-tuning of the teacher would show as "fine-tune teacher"
        proc = bortnas(*task_search(teacher, tiny_task, space, storage, *columns, quiet=False), cwd=tmp_path, env=env)
        assert "used as it is" in proc.stderr and "fine-tune teacher" not in proc.stderr, proc.stderr
        assert "fine-tuning the teacher" not in proc.stderr and "trial 0" in proc.stderr, proc.stderr
        assert pinned_settings(storage)["teacher_steps"] == 0
        (trial,) = completed(storage, "tiny")
        assert trial.user_attrs["teacher_dev_score"] == pytest.approx(teacher_accuracy, abs=1e-12), name
        assert f"(teacher {teacher_accuracy:.4f})" in proc.stdout, proc.stdout

    storage = tmp_path / "again.db"
    args = task_search(tmp_path / "headed", tiny_task, space, storage, *columns, "--teacher-steps", "5", quiet=False)
    proc = bortnas(*args, cwd=tmp_path, env=env)
    assert "fine-tune teacher" in proc.stderr and "fine-tuning the teacher on the task (5 steps)" in proc.stderr, proc.stderr
    assert pinned_settings(storage)["teacher_steps"] == 5


# 3. Refusals: exit 2, one line, nothing written -------------------------------------------------------------------


def _headed_teacher(directory: Path, head: str, labels: list[str], **overrides: object) -> Path:
    """A tiny random BERT with a sequence ("sequence") or token ("token") classification head over `labels`."""
    import torch
    from transformers import BertForSequenceClassification, BertForTokenClassification

    torch.manual_seed(0)
    config = tiny_config(
        "bert",
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
        **overrides,
    )
    model = (BertForSequenceClassification if head == "sequence" else BertForTokenClassification)(config)
    model.save_pretrained(directory)
    write_tokenizer(directory)
    return directory


def _table(path: Path, header: list[str], rows: Sequence[Sequence[object]]) -> Path:
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows([header, *rows])
    return path


def _scores(tmp_path: Path, bad_row: int, bad: str) -> tuple[Path, list[str]]:
    rows: list[list[object]] = [[f"good film {i}", f"{i * 0.25:.2f}"] for i in range(6)]
    rows[bad_row - 1][1] = bad
    data = _table(tmp_path / "scores.csv", ["sentence", "score"], rows)
    return data, ["--text-column", "sentence", "--label-column", "score", "--task", "regression"]


def _case(name: str, tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> tuple[Path, Path, list[str], list[str]]:
    """(teacher, data, extra flags, fragments the one error line must hold) of refusal `name`."""
    reviews = ["--text-column", "sentence", "--label-column", "sentiment"]
    if name == "teacher_steps_0_without_head":
        return (
            tiny_bert,
            tiny_task,
            [*reviews, "--teacher-steps", "0"],
            [
                "--teacher-steps=0",
                f"{tiny_bert}/config.json declares no task head",
                "give it fine-tuning steps",
            ],
        )
    if name == "label_unknown_to_teacher":
        teacher = _headed_teacher(tmp_path / "teacher", "sequence", ["neg", "pos"], problem_type="single_label_classification")
        data = _table(tmp_path / "three.csv", ["sentence", "sentiment"], [["good", "pos"], ["bad", "neg"], ["film", "meh"]] * 4)
        return (
            teacher,
            data,
            reviews,
            [
                "the data's labels (meh, neg, pos)",
                f"the teacher's (neg, pos, in {teacher}/config.json id2label)",
                f"'meh' (first on row 3 of {data}) is not one of them",
            ],
        )
    if name in ("score_not_a_number", "score_nan", "score_inf"):
        bad = {"score_not_a_number": "lots", "score_nan": "nan", "score_inf": "inf"}[name]
        data, flags = _scores(tmp_path, 4, bad)
        detail = f"'{bad}' is not a number" if bad == "lots" else f"'{bad}' is not finite"
        return tiny_bert, data, flags, [f"{data} row 4 column 'score': {detail}", "fix or remove the row"]
    if name == "multi_label_cell_does_not_parse":
        rows: list[list[object]] = [["good film", '["pos"]'], ["bad film", '["neg"]'], ["a film", '["a", '], ["fun", "pos"]]
        data = _table(tmp_path / "sets.csv", ["sentence", "labels"], rows)
        return (
            tiny_bert,
            data,
            ["--text-column", "sentence", "--label-column", "labels", "--task", "multi_label"],
            [
                f"{data} row 3 column 'labels'",
                "does not parse as a JSON list",
            ],
        )
    if name == "conll_line_without_tag":
        data = tmp_path / "tags.conll"
        data.write_text("good\tB-POS\nfilm\tO\n\nbad\tB-NEG\nplot\n\nfun\tB-POS\n")
        return tiny_bert, data, [], [f"{data} line 5 has one column ('plot')", "add the tag after the word"]
    if name == "tag_unknown_to_teacher":
        teacher = _headed_teacher(tmp_path / "teacher", "token", ["O", "B-NEG", "B-POS"])
        data = _write_conll(tmp_path / "tags.conll", [[("good", "B-POS"), ("film", "O")], [("bad", "B-NEG"), ("actor", "B-PER")]] * 3)
        return (
            teacher,
            data,
            [],
            [
                f"'B-PER' (first on line 5 of {data}) is not one of them",
                "the data's labels (O, B-NEG, B-PER, B-POS)",
                f"the teacher's (O, B-NEG, B-POS, in {teacher}/config.json id2label)",
            ],
        )
    if name == "embedding_teacher_without_modules_json":
        return (
            tiny_bert,
            tiny_task,
            ["--task", "embedding", "--text-column", "sentence"],
            [
                "--task='embedding' needs a sentence-transformers teacher",
                f"{tiny_bert} has no modules.json",
            ],
        )
    if name == "embedding_teacher_without_pooling_config":
        from bortnas.data.sentence_dirs import Pooling, write_sentence_files

        teacher = tmp_path / "st_teacher"
        shutil.copytree(tiny_bert, teacher)
        write_sentence_files(teacher, Pooling("mean", True), 32, MAX_LENGTH)
        (teacher / "1_Pooling" / "config.json").unlink()
        return teacher, tiny_task, ["--task", "embedding", "--text-column", "sentence"], [f"{teacher}/1_Pooling/config.json"]
    if name == "regression_against_classification_head":
        teacher = _headed_teacher(tmp_path / "teacher", "sequence", ["neg", "pos"], problem_type="single_label_classification")
        data, flags = _scores(tmp_path, 1, "0.5")
        return teacher, data, flags, [f"--task='regression' but the teacher in {teacher} has a classification head"]
    raise AssertionError(name)


REFUSALS = [
    "teacher_steps_0_without_head",
    "label_unknown_to_teacher",
    "score_not_a_number",
    "score_nan",
    "score_inf",
    "multi_label_cell_does_not_parse",
    "conll_line_without_tag",
    "tag_unknown_to_teacher",
    "embedding_teacher_without_modules_json",
    "embedding_teacher_without_pooling_config",
    "regression_against_classification_head",
]


@pytest.mark.parametrize("name", REFUSALS)
def test_bad_task_input_refused_in_one_line(tmp_path: Path, tiny_bert: Path, tiny_task: Path, name: str) -> None:
    teacher, data, extra, fragments = _case(name, tmp_path, tiny_bert, tiny_task)
    work = tmp_path / "work"
    work.mkdir()
    storage = work / "s.db"
    proc = bortnas(*task_search(teacher, data, write_space(work), storage, *extra), cwd=work, check=False)
    one_line_error(proc, 2, fragments[0])
    for fragment in fragments[1:]:
        assert fragment in proc.stderr, proc.stderr
    assert not storage.exists() and not (work / "cache").exists()
    assert sorted(p.name for p in work.iterdir()) == ["space.yaml"]


# 4. Truncation is reported ----------------------------------------------------------------------------------------


def test_truncated_examples_counted(tmp_path: Path, tiny_bert: Path) -> None:
    rng = random.Random(5)
    rows = []
    for i in range(100):
        label = i % 2 == 0
        words = rng.choices(FILLER, k=rng.randint(1, 12)) + rng.choices(POSITIVE if label else NEGATIVE, k=2)
        rows.append([" ".join(words), "pos" if label else "neg"])
    data = _table(tmp_path / "long.csv", ["sentence", "sentiment"], rows)
    max_length = 12

    def cut(part: list[list[str]]) -> int:  # word-level tokenizer: one token per word, plus [CLS] and [SEP]
        return sum(len(text.split()) + 2 > max_length for text, _ in part)

    train, dev, test = splits(rows)
    counts = [cut(train), cut(dev), cut(test)]
    assert 0 < sum(counts) < len(rows)
    args = task_search(
        tiny_bert, data, write_space(tmp_path, hidden="[16]"), tmp_path / "s.db", "--text-column", "sentence", "--label-column", "sentiment"
    )
    args += ["--max-length", str(max_length), "--teacher-steps", "5", "--trial-steps", "5"]
    proc = bortnas(*args, cwd=tmp_path)
    expected = (
        f"{sum(counts)} of 100 examples are longer than max_length={max_length} tokens and were truncated "
        f"(train {counts[0]}, dev {counts[1]}, test {counts[2]})"
    )
    assert expected in proc.stderr, proc.stderr
