"""Random malformed spaces, data files and flag values: refused in one line, never a traceback, nothing written.

Hypothesis writes the inputs a careless or hostile user might: YAML of the wrong shape, tables with
stray quotes, extra fields and odd bytes, JSON lines that are not objects, CoNLL lines without tags,
and flag values of every kind. The readers must either accept an input or raise a `UserInputError`
whose message is one line; the CLI must exit 2 with one line on stderr and leave its directory empty.
"""

from __future__ import annotations

import contextlib
import io
import json
import string
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bortnas.app import cli
from bortnas.core.errors import UserInputError
from bortnas.core.space import DIMENSIONS, load_search_space
from bortnas.data.corpus import read_documents
from bortnas.data.tasks import load_table, load_tagged, load_unlabeled

EXAMPLES = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
# text that stresses the parsers: delimiters, quotes, line breaks, control and non-ASCII characters
cells = st.text(alphabet=st.sampled_from(list(string.ascii_letters[:6] + string.digits[:3] + ",;\t\"' \n\r{}[]:#-\\é\x00")), max_size=12)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 5000), st.floats(allow_nan=True), cells)
values = st.recursive(
    scalars, lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(cells, inner, max_size=3)), max_leaves=8
)


def refused_in_one_line(read: object) -> None:
    """`read()` returns, or raises a UserInputError of one line; any other exception fails the test."""
    try:
        read()  # type: ignore[operator]
    except UserInputError as e:
        assert "\n" not in str(e).strip(), str(e)


def written(tmp: str, name: str, content: str | bytes) -> Path:
    path = Path(tmp) / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass"))
    return path


@EXAMPLES
@given(
    document=st.one_of(
        st.dictionaries(st.sampled_from([*DIMENSIONS, "name", "quant", "extra"]), values, max_size=7),
        st.dictionaries(st.sampled_from(DIMENSIONS), st.lists(st.integers(-3, 2000), max_size=4), min_size=len(DIMENSIONS)),
        values,
    ),
    raw=st.booleans(),
    noise=cells,
)
def test_a_random_search_space_is_read_or_refused_in_one_line(document: object, raw: bool, noise: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        text = noise if raw else yaml.safe_dump(document, allow_unicode=True)
        refused_in_one_line(lambda: load_search_space(written(tmp, "space.yaml", text)))


def tables(delimiter: str) -> st.SearchStrategy[str]:
    header = st.lists(st.sampled_from(["sentence", "sentiment", "pair", "x", ""]), min_size=1, max_size=4)
    row = st.lists(cells, max_size=5).map(delimiter.join)
    return st.tuples(header.map(delimiter.join), st.lists(row, max_size=12)).map(lambda t: "\n".join([t[0], *t[1]]) + "\n")


@EXAMPLES
@given(kind=st.sampled_from(["csv", "tsv"]), data=st.data(), task=st.sampled_from(["classification", "regression", "multi_label"]))
def test_a_random_table_is_read_or_refused_in_one_line(kind: str, data: st.DataObject, task: str) -> None:
    text = data.draw(tables("," if kind == "csv" else "\t"))
    with tempfile.TemporaryDirectory() as tmp:
        path = written(tmp, f"data.{kind}", text)
        refused_in_one_line(lambda: load_table(path, "sentence", "sentiment", task=task))
        refused_in_one_line(lambda: load_unlabeled(path, "sentence", "pair"))
        refused_in_one_line(lambda: read_documents(path, "sentence"))


@EXAMPLES
@given(lines=st.lists(st.one_of(values.map(json.dumps), cells), max_size=10), binary=st.binary(max_size=20))
def test_random_json_lines_are_read_or_refused_in_one_line(lines: list[str], binary: bytes) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = written(tmp, "data.jsonl", "\n".join(lines).encode("utf-8", "surrogatepass") + binary)
        refused_in_one_line(lambda: load_table(path, "sentence", "sentiment"))
        refused_in_one_line(lambda: load_tagged(path))


@EXAMPLES
@given(lines=st.lists(st.one_of(st.tuples(cells, st.sampled_from(["O", "B-PER", "I-PER", "", "X Y"])).map("\t".join), cells), max_size=14))
def test_random_conll_is_read_or_refused_in_one_line(lines: list[str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        refused_in_one_line(lambda: load_tagged(written(tmp, "data.conll", "\n".join(lines))))


SEARCH_FLAGS = [
    "--trial-steps", "--teacher-steps", "--max-length", "--batch-size", "--lr", "--seed", "--data-seed", "--epsilon",
    "--fptas-n0", "--fptas-s", "--n-trials", "--max-latency-ms", "--max-size-mib", "--min-speedup", "--latency-threads",
    "--heartbeat-interval", "--grace-period", "--strategy", "--task", "--init", "--cost", "--encoding", "--device",
    "--hidden-weight",
]  # fmt: skip
flag_values = st.one_of(
    st.integers(-10, 10).map(str), st.floats(allow_nan=True, allow_infinity=True).map(str), cells, st.sampled_from(["", "-1", "0", "1e309"])
)


def run_cli(argv: list[str]) -> tuple[int, str]:
    """`bortnas ARGV` in this process: the exit code and what it wrote on stderr."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = cli.main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
    return code, err.getvalue()


@EXAMPLES
@given(flags=st.lists(st.tuples(st.sampled_from(SEARCH_FLAGS), flag_values), min_size=1, max_size=4))
def test_random_search_flags_are_refused_in_one_line_and_nothing_is_written(flags: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["search", "--space", str(Path(tmp) / "missing.yaml"), "--storage", f"sqlite:///{tmp}/b.db", "--cache-dir", f"{tmp}/c"]
        argv += [f"{flag}={value}" for flag, value in flags]  # "=": a value may start with "-"
        code, err = run_cli(argv)
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert list(Path(tmp).iterdir()) == []


EXPORT_FLAGS = ["--steps", "--tokens", "--trial", "--min-speedup", "--max-accuracy-drop", "--accept-drop", "--climbs", "--finetune"]
EXPORT_FLAGS += ["--agora-grid", "--agora-replay"]


@EXAMPLES
@given(flags=st.lists(st.tuples(st.sampled_from(EXPORT_FLAGS), flag_values), min_size=1, max_size=3))
def test_random_export_flags_are_refused_in_one_line_and_nothing_is_written(flags: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        argv = ["export", "--study", "s", "--out", f"{tmp}/out", "--storage", f"sqlite:///{tmp}/b.db", "--cache-dir", f"{tmp}/c"]
        code, err = run_cli(argv + [f"{flag}={value}" for flag, value in flags])
        assert code == 2, err
        assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
        assert list(Path(tmp).iterdir()) == []


@pytest.mark.parametrize(
    ("text", "line", "what"),
    [
        ('sentence,sentiment\ngood,pos\n"bad,neg\nfine,pos\n', 3, "unterminated quote"),
        ("sentence,sentiment\ngood,pos\nbad,neg,extra\n", 3, "3 fields where the header has 2"),
        ('sentence,sentiment\n"two\nlines",pos\nshort\n', 4, "1 fields where the header has 2"),
        ('sentence,sentiment\ngood,pos\n"a"b,neg\n', 3, "bad quoting"),
    ],
)
def test_a_malformed_csv_row_is_named_by_its_line_and_what_is_wrong(tmp_path: Path, text: str, line: int, what: str) -> None:
    path = tmp_path / "data.csv"
    path.write_text(text)
    with pytest.raises(UserInputError, match=rf"data.csv line {line}: .*{what}"):
        load_table(path, "sentence", "sentiment")
