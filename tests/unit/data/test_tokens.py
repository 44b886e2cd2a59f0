"""Token-classification files: CoNLL and JSONL reading, their one-line errors, tag checks and
the first-sub-word alignment of word tags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bortnas.core.errors import DataError, ParameterError
from bortnas.data.tokens import (
    Sentence,
    first_subword_labels,
    read_conll,
    read_sentences,
    read_token_jsonl,
    tag_set,
    truncated_words,
)

CONLL_2003 = """-DOCSTART- -X- -X- O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC


Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER

-DOCSTART- -X- -X- O

BRUSSELS NNP B-NP B-LOC
"""


def test_conll_2003_reads_word_and_last_column(tmp_path: Path) -> None:
    path = tmp_path / "train.conll"
    path.write_text(CONLL_2003)
    assert read_conll(path) == [
        Sentence(words=("EU", "rejects", "German"), tags=("B-ORG", "O", "B-MISC"), line=3),
        Sentence(words=("Peter", "Blackburn"), tags=("B-PER", "I-PER"), line=8),
        Sentence(words=("BRUSSELS",), tags=("B-LOC",), line=13),
    ]


def test_conll_columns_crlf_bom_and_a_missing_final_newline(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_bytes(b"\xef\xbb\xbfParis\tNNP\tB-LOC\r\nis\tVBZ\tO\r\n\r\nhi\tUH\tO")
    sentences = read_sentences(path, tag_column=1)
    assert sentences == [
        Sentence(words=("Paris", "is"), tags=("NNP", "VBZ"), line=1),
        Sentence(words=("hi",), tags=("UH",), line=4),
    ]


def test_jsonl_keeps_integer_tags_as_strings(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    rows = [{"tokens": ["EU", "rejects"], "ner_tags": [3, 0], "id": "0"}, {"tokens": ["Paris"], "ner_tags": ["B-LOC"]}]
    path.write_text(json.dumps(rows[0]) + "\n\n" + json.dumps(rows[1]) + "\n")
    assert read_sentences(path, tags_key="ner_tags") == [
        Sentence(words=("EU", "rejects"), tags=("3", "0"), line=1),
        Sentence(words=("Paris",), tags=("B-LOC",), line=3),
    ]


@pytest.mark.parametrize(
    ("name", "content", "fragment"),
    [
        ("a.conll", "EU B-ORG\nrejects\n", r"a.conll line 2 has one column \('rejects'\) but needs a word and its tag: add the tag"),
        ("a.conll", "\n\n-DOCSTART- O\n\n", r"a.conll has no sentences: write one word and its tag per line"),
        ("a.conll", "", r"a.conll has no sentences"),
        ("a.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": ["a"]\n', r"a.jsonl line 2 is not JSON: .*; write one JSON object"),
        ("a.jsonl", '["a", "O"]\n', r"a.jsonl line 1 is a JSON list, not an object: write"),
        ("a.jsonl", '{"words": ["a"], "labels": ["O"]}\n', r"line 1 has no key 'tokens' \(found: 'labels', 'words'\): pass tokens_key="),
        ("a.jsonl", '{"tokens": ["a"], "ner": ["O"]}\n', r"line 1 has no key 'tags' \(found: 'ner', 'tokens'\): pass tags_key="),
        ("a.jsonl", '{"tokens": "a b", "tags": ["O", "O"]}\n', r"a.jsonl line 1: 'tokens' is a str, not a list: write it as a JSON list"),
        ("a.jsonl", '{"tokens": ["a", 1], "tags": ["O", "O"]}\n', r"line 1: 'tokens' item 1 is 1, not one of strings: fix that item"),
        ("a.jsonl", '{"tokens": ["a"], "tags": [true]}\n', r"line 1: 'tags' item 0 is true, not one of strings or integers"),
        ("a.jsonl", '{"tokens": ["a", "b"], "tags": ["O"]}\n', r"a.jsonl line 1 has 2 words but 1 tags: give exactly one tag per word"),
        ("a.jsonl", '{"tokens": ["a"], "tags": ["O"]}\n{"tokens": [], "tags": []}\n', r"a.jsonl line 2 has an empty sentence: remove it"),
        ("a.jsonl", '{"tokens": ["a", ""], "tags": ["O", "O"]}\n', r"line 1: 'tokens' item 1 is empty or only whitespace: remove it"),
        ("a.jsonl", '{"tokens": ["a", "b"], "tags": ["O", " "]}\n', r"line 1: 'tags' item 1 is empty or only whitespace"),
        ("a.jsonl", "\n\n", r"a.jsonl has no sentences: write one JSON object"),
        ("a.csv", "a,O\n", r"a.csv has an unknown extension '.csv' for token data: rename it to one of .conll, .txt, .iob, .bio, .jsonl"),
    ],
)
def test_bad_files_are_one_line_errors_naming_file_line_and_fix(tmp_path: Path, name: str, content: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=fragment) as info:
        read_sentences(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_too_few_columns_names_the_column_parameters(tmp_path: Path) -> None:
    path = tmp_path / "a.conll"
    path.write_text("EU NNP B-ORG\nrejects O\n")
    with pytest.raises(DataError, match=r"line 2 has 2 columns, too few for word_column=0 and tag_column=2") as info:
        read_conll(path, tag_column=2)
    assert info.value.mentions == ("word_column", "tag_column")


def test_a_missing_file_and_a_bad_encoding(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"data file .*nope.conll does not exist: pass an existing CoNLL"):
        read_conll(tmp_path / "nope.conll")
    path = tmp_path / "latin.conll"
    path.write_bytes("Zürich B-LOC\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin.conll is not valid utf-8 text: byte 0xfc .* \(line 1\)"):
        read_conll(path)
    assert read_conll(path, encoding="latin-1")[0].words == ("Zürich",)
    with pytest.raises(ParameterError, match=r"encoding='nope' is not a known text encoding"):
        read_token_jsonl(path, encoding="nope")


def test_tag_set_puts_o_first() -> None:
    sentences = [Sentence(("a", "b"), ("I-PER", "O"), 1), Sentence(("c",), ("B-LOC",), 4)]
    assert tag_set(sentences) == ("O", "B-LOC", "I-PER")
    assert tag_set([Sentence(("a",), ("B-X",), 1)]) == ("B-X",)


def test_first_subword_labels_label_each_word_once() -> None:
    # [CLS] Wash ##ington is [SEP]: word 0 has two sub-words
    word_ids = [None, 0, 0, 1, None]
    assert first_subword_labels(word_ids, [3, 0]) == [-100, 3, -100, 0, -100]
    assert first_subword_labels(word_ids, [3, 0], ignore=-1) == [-1, 3, -1, 0, -1]
    # a pair's second sequence restarts its word ids after the separator
    assert first_subword_labels([None, 0, 1, None, 0, 0, None], [5, 6]) == [-100, 5, 6, -100, 5, -100, -100]


def test_first_subword_labels_refuse_a_word_id_without_a_label() -> None:
    with pytest.raises(ValueError, match=r"word_ids\[2\]=2 is outside the 2 word labels"):
        first_subword_labels([None, 0, 2], [1, 1])


def test_truncated_words_count_words_without_any_token() -> None:
    # 4 words, truncated inside word 2: word 2 keeps its first sub-word, word 3 is gone
    assert truncated_words([None, 0, 1, 1, 2, None], 4) == 1
    assert truncated_words([None, 0, 1, 2, 3, None], 4) == 0
    assert truncated_words([None, None], 3) == 3
    with pytest.raises(ValueError, match=r"word id 5 is outside the sentence's 4 words"):
        truncated_words([0, 5], 4)
