from __future__ import annotations

import json
from pathlib import Path

import pytest

from bortnas.core.errors import DataError, ParameterError, UserInputError
from bortnas.data.tasks import load_rotten_tomatoes, load_table, load_unlabeled


def test_rotten_tomatoes_is_split_by_movie() -> None:
    import bz2
    import csv

    from bortnas.data.tasks import _locate_rotten_tomatoes

    data = load_rotten_tomatoes(seed=0)
    assert data.label_names == ("rotten", "fresh")
    assert len(data.train) + len(data.dev) + len(data.test) == 7403 + 5405
    movie_of = {}
    with bz2.open(_locate_rotten_tomatoes(), "rt", newline="") as handle:
        for row in csv.DictReader(handle):
            movie_of.setdefault(row["text"].strip(), set()).add(row["movie_name"])
    movies = [set().union(*(movie_of[ex.text] for ex in split)) for split in (data.train, data.dev, data.test)]
    # snippets quoted for several movies aside, no movie appears in two splits
    unique = {t for t, m in movie_of.items() if len(m) == 1}
    only = [set().union(*(movie_of[ex.text] for ex in split if ex.text in unique)) for split in (data.train, data.dev, data.test)]
    assert not (only[0] & only[1]) and not (only[0] & only[2]) and not (only[1] & only[2])
    assert len(movies[1]) > 50
    assert load_rotten_tomatoes(seed=0).fingerprint() == data.fingerprint() != load_rotten_tomatoes(seed=1).fingerprint()


def test_csv_tsv_jsonl_load_the_same_task(tmp_path: Path) -> None:
    rows = [{"t": f"text {k}", "q": f"pair {k}", "y": "yes" if k % 3 else "no"} for k in range(30)]
    (tmp_path / "a.csv").write_text("t,q,y\n" + "".join(f"{r['t']},{r['q']},{r['y']}\n" for r in rows))
    (tmp_path / "a.tsv").write_text("t\tq\ty\n" + "".join(f"{r['t']}\t{r['q']}\t{r['y']}\n" for r in rows))
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    loaded = [load_table(tmp_path / f"a.{ext}", "t", "y", pair_column="q", seed=3) for ext in ("csv", "tsv", "jsonl")]
    assert loaded[0].fingerprint() == loaded[1].fingerprint() == loaded[2].fingerprint()
    task = loaded[0]
    assert task.label_names == ("no", "yes")
    assert (len(task.train), len(task.dev), len(task.test)) == (24, 3, 3)
    assert all(ex.pair == ex.text.replace("text", "pair") for ex in task.train)
    assert all((ex.label == 1) == (int(ex.text.split()[1]) % 3 != 0) for ex in task.train)


@pytest.mark.parametrize(
    ("content", "name", "fragment"),
    [
        ("t,y\na,1\n", "x.txt", "unknown extension"),
        ("t,y\na,1\nb,1\nc,1\n", "x.csv", "1 distinct label"),
        ('{"t": "a", "y": 1}\nnot json\n', "x.jsonl", "line 2 is not JSON"),
        ("t,y\na,1\n,0\nc,1\n", "x.csv", "row 2 has an empty 't'"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, content: str, name: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        load_table(path, "t", "y")


@pytest.mark.parametrize(
    ("parameter", "columns"),
    [("text_column", ("q", "y")), ("label_column", ("t", "z")), ("pair_column", ("t", "y"))],
)
def test_a_column_the_file_lacks_names_its_parameter(tmp_path: Path, parameter: str, columns: tuple[str, str]) -> None:
    path = tmp_path / "x.csv"
    path.write_text(f"{columns[0]},{columns[1]}\na,1\nb,0\nc,1\n")
    missing = {"text_column": "t", "label_column": "y", "pair_column": "p"}[parameter]
    with pytest.raises(
        ParameterError, match=rf"^{parameter}='{missing}' is not a column of .*x\.csv \(found: .*\): pass one of those"
    ) as info:
        load_table(path, "t", "y", pair_column="p")
    assert info.value.parameter == parameter


def test_column_names_in_an_error_are_quoted_so_it_stays_one_line(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    path.write_text('{"a\\nb": "text", "label": 1}\n{"a\\nb": "more", "label": 0}\n')
    with pytest.raises(ParameterError) as info:
        load_table(path, "sentence", "label")
    assert str(info.value) == f"text_column='sentence' is not a column of {path} (found: 'a\\nb', 'label'): pass one of those."


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "none.csv", "t", "y")


def _latin1_csv(tmp_path: Path) -> Path:
    """A CSV saved as latin-1: 'café' is the byte 0xe9, which is not valid UTF-8."""
    path = tmp_path / "reviews_latin1.csv"
    text = "t,y\n" + "".join(f"caf\u00e9 {k},{'yes' if k % 2 else 'no'}\n" for k in range(6))
    path.write_bytes(text.encode("latin-1"))
    return path


def test_non_utf8_file_is_a_one_line_data_error(tmp_path: Path) -> None:
    path = _latin1_csv(tmp_path)
    with pytest.raises(DataError, match=r"reviews_latin1\.csv is not valid utf-8 text") as info:
        load_table(path, "t", "y")
    message = str(info.value)
    assert "\n" not in message
    # first bad byte: "t,y\ncaf" is 7 bytes, so 0xe9 sits at offset 7 on line 2
    assert "byte 0xe9 at byte offset 7 (line 2)" in message
    assert "name its real encoding, e.g. encoding=latin-1." in message
    assert str(path) in message
    assert not isinstance(info.value.__cause__, UnicodeDecodeError)


def test_a_bad_byte_late_in_the_file_is_found_before_anything_is_returned(tmp_path: Path) -> None:
    path = tmp_path / "late.jsonl"
    good = "".join(json.dumps({"t": f"text {k}", "y": k % 2}) + "\n" for k in range(50))
    path.write_bytes(good.encode() + b'{"t": "caf\xe9", "y": 1}\n')
    with pytest.raises(DataError, match=rf"late\.jsonl is not valid utf-8 text: byte 0xe9 at byte offset {len(good) + 10} \(line 51\)"):
        load_table(path, "t", "y")


def test_latin1_file_loads_with_its_encoding(tmp_path: Path) -> None:
    task = load_table(_latin1_csv(tmp_path), "t", "y", encoding="latin-1")
    texts = sorted(ex.text for split in (task.train, task.dev, task.test) for ex in split)
    assert texts == [f"caf\u00e9 {k}" for k in range(6)]
    assert task.label_names == ("no", "yes")


@pytest.mark.parametrize("encoding", ["klingon-8", "rot13", ""])
def test_unknown_encoding_is_a_clear_error(tmp_path: Path, encoding: str) -> None:
    with pytest.raises(
        ParameterError, match=rf"^encoding='{encoding}' is not a known text encoding: pass a Python codec name such as utf-8"
    ):
        load_table(_latin1_csv(tmp_path), "t", "y", encoding=encoding)


@pytest.mark.parametrize("name", ["bom.csv", "bom.tsv", "bom.jsonl"])
@pytest.mark.parametrize("encoding", ["utf-8", "UTF8", "utf-8-sig"])
def test_utf8_bom_does_not_end_up_in_the_first_column(tmp_path: Path, name: str, encoding: str) -> None:
    import codecs

    rows = [("gr\u00fc\u00dfe", "a"), ("b", "b"), ("c", "a")]
    if name.endswith(".jsonl"):
        text = "".join(json.dumps({"text": t, "y": y}) + "\n" for t, y in rows)
    else:
        sep = "\t" if name.endswith(".tsv") else ","
        text = f"text{sep}y\n" + "".join(f"{t}{sep}{y}\n" for t, y in rows)
    path = tmp_path / name
    path.write_bytes(codecs.BOM_UTF8 + text.encode("utf-8"))
    task = load_table(path, "text", "y", encoding=encoding)
    assert sorted(ex.text for split in (task.train, task.dev, task.test) for ex in split) == ["b", "c", "gr\u00fc\u00dfe"]
    assert task.label_names == ("a", "b")


def test_bom_file_with_a_bad_byte_reports_the_file_offset(tmp_path: Path) -> None:
    import codecs

    path = tmp_path / "bom_bad.csv"
    path.write_bytes(codecs.BOM_UTF8 + b"t,y\na,0\nb,1\nc,\xff\n")
    # 3 BOM bytes + "t,y\na,0\nb,1\nc," (14 bytes): offsets count from the start of the file
    with pytest.raises(DataError, match=r"byte 0xff at byte offset 17 \(line 4\)"):
        load_table(path, "t", "y")


def test_an_unlabelled_pool_reads_texts_and_pairs_and_refuses_bad_files(tmp_path: Path) -> None:
    good = tmp_path / "pool.csv"
    good.write_text("sentence,other,label\nfine film,x,1\n  ,x,0\nfine film,x,1\ndull plot,y,\n")
    assert load_unlabeled(good, "sentence") == (("fine film", None), ("dull plot", None))  # empty and repeated rows dropped
    assert load_unlabeled(good, "sentence", "other") == (("fine film", "x"), ("dull plot", "y"))
    jsonl = tmp_path / "pool.jsonl"
    jsonl.write_text('{"sentence": "a"}\n{"sentence": "b"}\n')
    assert load_unlabeled(jsonl, "sentence") == (("a", None), ("b", None))
    (tmp_path / "empty.csv").write_text("sentence\n   \n")
    (tmp_path / "latin.csv").write_bytes("sentence\ncaf\xe9\n".encode("latin-1"))
    cases = [
        (tmp_path / "missing.csv", r"^unlabeled .*missing\.csv does not exist"),
        (tmp_path / "empty.csv", r"^unlabeled .*empty\.csv has no text in column 'sentence'"),
        (tmp_path / "latin.csv", r"latin\.csv is not valid utf-8 text"),
        (jsonl.with_suffix(".txt"), r"does not exist|unknown extension"),
    ]
    for path, message in cases:
        with pytest.raises(UserInputError, match=message):
            load_unlabeled(path, "sentence")
    with pytest.raises(ParameterError, match=r"^unlabeled .*pool\.csv has no column 'text' \(found: 'label', 'other', 'sentence'\)"):
        load_unlabeled(good, "text")
