"""Token-classification data: tagged sentences read from CoNLL-style or JSONL files, their tag
sets, and the alignment of word tags to a tokenizer's sub-words.

Data layer: reads files, no torch. Every error is one line naming the file, the line and the fix.
"""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bortnas.core.errors import DataError
from bortnas.data.tasks import _check_encoding, _decode

__all__ = [
    "CONLL_SUFFIXES",
    "JSONL_SUFFIXES",
    "Sentence",
    "first_subword_labels",
    "read_conll",
    "read_sentences",
    "read_token_jsonl",
    "tag_set",
    "truncated_words",
]

CONLL_SUFFIXES = (".conll", ".txt", ".iob", ".bio")
JSONL_SUFFIXES = (".jsonl", ".json")
_DOCSTART = "-DOCSTART-"


@dataclasses.dataclass(frozen=True)
class Sentence:
    """One tagged sentence, one tag per word.

    `line` is the 1-based line of the file where the sentence starts, for error messages: in a
    CoNLL file word i is on line ``line + i``; in a JSONL file the whole sentence is on `line`.
    """

    words: tuple[str, ...]
    tags: tuple[str, ...]
    line: int


def _read_text(path: Path, encoding: str, kind: str) -> str:
    """The decoded text of `path`; a DataError when it is missing, unreadable or not `encoding`."""
    codec = _check_encoding(encoding)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: pass an existing {kind} file.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}; pass a readable {kind} file.") from e
    return _decode(path, data, encoding, codec)


def _lines(text: str) -> Iterable[tuple[int, str]]:
    # StringIO splits on \n, \r and \r\n only (str.splitlines also splits on \x0b, \u2028, ...),
    # so the numbers match what an editor shows
    return enumerate((line.rstrip("\r\n") for line in io.StringIO(text, newline=None)), 1)


def read_conll(path: str | Path, *, encoding: str = "utf-8", word_column: int = 0, tag_column: int = -1) -> list[Sentence]:
    """The sentences of a CoNLL-style file: one word per line, whitespace-separated columns, a
    blank line between sentences.

    The word is column `word_column` and its tag column `tag_column` (default: first and last,
    so CoNLL-2003's four-column files read as they are). Lines starting with ``-DOCSTART-`` are
    document separators and are skipped; runs of blank lines are one break. The file is decoded
    with `encoding` (a Python codec name); "utf-8" also accepts a leading BOM.

    Raises:
        ParameterError: an unknown `encoding`.
        DataError: a missing, unreadable or undecodable file; a word line with a single column or
            too few columns for `word_column`/`tag_column`; no sentence at all.
    """
    path = Path(path)
    text = _read_text(path, encoding, "CoNLL (one word and its tag per line)")
    sentences: list[Sentence] = []
    words: list[str] = []
    tags: list[str] = []
    start = 0

    def close() -> None:
        if words:
            sentences.append(Sentence(words=tuple(words), tags=tuple(tags), line=start))
            words.clear()
            tags.clear()

    for number, line in _lines(text):
        columns = line.split()
        if not columns or columns[0].startswith(_DOCSTART):
            close()
            continue
        if len(columns) == 1:
            raise DataError(
                f"{path} line {number} has one column ({columns[0]!r}) but needs a word and its tag: "
                "add the tag after the word, separated by whitespace (e.g. 'Paris B-LOC')."
            )
        try:
            word, tag = columns[word_column], columns[tag_column]
        except IndexError:
            raise DataError(
                f"{path} line {number} has {len(columns)} columns, too few for word_column={word_column} and "
                f"tag_column={tag_column}: pass the columns this file has (counted from 0; -1 is the last).",
                mentions=("word_column", "tag_column"),
            ) from None
        if not words:
            start = number
        words.append(word)
        tags.append(tag)
    close()
    if not sentences:
        raise DataError(f"{path} has no sentences: write one word and its tag per line, with a blank line between sentences.")
    return sentences


def _string_list(path: Path, number: int, key: str, value: Any, *, allow_int: bool) -> list[str]:
    what = "strings or integers" if allow_int else "strings"
    if not isinstance(value, list):
        raise DataError(f"{path} line {number}: {key!r} is a {type(value).__name__}, not a list: write it as a JSON list of {what}.")
    out = []
    for i, item in enumerate(value):
        # bool is an int subclass, but a true/false tag is a mistake, not label 1/0
        if isinstance(item, str) or (allow_int and isinstance(item, int) and not isinstance(item, bool)):
            out.append(str(item))
        else:
            raise DataError(f"{path} line {number}: {key!r} item {i} is {json.dumps(item)}, not one of {what}: fix that item.")
    return out


def read_token_jsonl(path: str | Path, *, tokens_key: str = "tokens", tags_key: str = "tags", encoding: str = "utf-8") -> list[Sentence]:
    """The sentences of a JSONL file: one JSON object per line with a list of words under
    `tokens_key` and a list of their tags under `tags_key`; blank lines are skipped.

    Tags may be strings or integers. Integers are kept as their decimal string ("3"): this reader
    does not know the label names they index; against a fine-tuned teacher `align_labels`
    (`bortnas.data.tasks`) reads whole numbers as the teacher's label ids.

    Raises:
        ParameterError: an unknown `encoding`.
        DataError: a missing, unreadable or undecodable file; a line that is not a JSON object, lacks
            a key, holds something other than lists of strings (or integer tags), has an empty
            sentence, an empty word or tag, or a different number of tags than words; no sentence.
    """
    path = Path(path)
    text = _read_text(path, encoding, f"JSONL (one object with {tokens_key!r} and {tags_key!r} lists per line)")
    sentences: list[Sentence] = []
    for number, line in _lines(text):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{path} line {number} is not JSON: {e.msg}; write one JSON object per line.") from e
        if not isinstance(row, dict):
            raise DataError(
                f"{path} line {number} is a JSON {type(row).__name__}, not an object: write {{{tokens_key!r}: [...], {tags_key!r}: [...]}}."
            )
        for parameter, key in (("tokens_key", tokens_key), ("tags_key", tags_key)):
            if key not in row:
                found = ", ".join(repr(k) for k in sorted(row)) or "none"
                raise DataError(
                    f"{path} line {number} has no key {key!r} (found: {found}): pass {parameter}= naming its key.", mentions=(parameter,)
                )
        words = _string_list(path, number, tokens_key, row[tokens_key], allow_int=False)
        tags = _string_list(path, number, tags_key, row[tags_key], allow_int=True)
        if not words:
            raise DataError(f"{path} line {number} has an empty sentence: remove it.")
        if len(words) != len(tags):
            raise DataError(f"{path} line {number} has {len(words)} words but {len(tags)} tags: give exactly one tag per word.")
        for key, items in ((tokens_key, words), (tags_key, tags)):
            blank = next((i for i, item in enumerate(items) if not item.strip()), None)
            if blank is not None:
                # a tokenizer drops a blank word, which would shift every later word's tag
                raise DataError(f"{path} line {number}: {key!r} item {blank} is empty or only whitespace: remove it or fill it in.")
        sentences.append(Sentence(words=tuple(words), tags=tuple(tags), line=number))
    if not sentences:
        raise DataError(f"{path} has no sentences: write one JSON object with {tokens_key!r} and {tags_key!r} lists per line.")
    return sentences


def read_sentences(path: str | Path, **kwargs: Any) -> list[Sentence]:
    """The sentences of `path`, read by its suffix: .jsonl/.json with `read_token_jsonl`,
    .conll/.txt/.iob/.bio with `read_conll`; `kwargs` go to that reader.

    Raises:
        DataError: another suffix, or whatever the reader raises.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        return read_token_jsonl(path, **kwargs)
    if suffix in CONLL_SUFFIXES:
        return read_conll(path, **kwargs)
    accepted = ", ".join(CONLL_SUFFIXES + JSONL_SUFFIXES)
    raise DataError(f"{path} has an unknown extension {suffix!r} for token data: rename it to one of {accepted} (CoNLL or JSONL).")


def tag_set(sentences: Iterable[Sentence]) -> tuple[str, ...]:
    """The distinct tags of `sentences`, sorted, with "O" first when present (label 0 is "outside")."""
    return _ordered({tag for sentence in sentences for tag in sentence.tags})


def _ordered(tags: set[str]) -> tuple[str, ...]:
    return (("O",) if "O" in tags else ()) + tuple(sorted(tags - {"O"}))


def first_subword_labels(word_ids: Sequence[int | None], word_labels: Sequence[int], ignore: int = -100) -> list[int]:
    """The label of each token of one tokenized sequence, from a fast tokenizer's ``word_ids()``.

    A word's label goes on its first sub-word; its later sub-words and the special tokens (word id
    None) get `ignore`, so the loss and the metrics read each word once. A word id equal to the
    previous token's is a later sub-word; a pair's second sequence, whose ids restart at 0 after a
    separator, is handled the same way.

    Raises:
        ValueError: a word id outside ``range(len(word_labels))``.
    """
    labels = []
    previous: int | None = None
    for position, word in enumerate(word_ids):
        if word is not None and not 0 <= word < len(word_labels):
            raise ValueError(f"word_ids[{position}]={word} is outside the {len(word_labels)} word labels: pass this sequence's labels.")
        labels.append(ignore if word is None or word == previous else word_labels[word])
        previous = word
    return labels


def truncated_words(word_ids: Sequence[int | None], n_words: int) -> int:
    """How many of the sequence's `n_words` words have no token in `word_ids`, so no label and no
    prediction: words cut off by truncation (a word cut mid-way keeps its first sub-word and is not
    counted), or words the tokenizer produced no token for.

    Raises:
        ValueError: a word id outside ``range(n_words)``.
    """
    present = {word for word in word_ids if word is not None}
    outside = sorted(word for word in present if not 0 <= word < n_words)
    if outside:
        raise ValueError(f"word id {outside[0]} is outside the sentence's {n_words} words: pass the word count of this sequence.")
    return n_words - len(present)
