from __future__ import annotations

import json
from pathlib import Path

import pytest

from bortnas.data.tasks import load_rotten_tomatoes, load_table
from bortnas.core.errors import DataError


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
        ("t,z\na,1\nb,0\nc,1\n", "x.csv", r"column 'y' is missing .* \(found: t, z\)"),
        ('{"t": "a", "y": 1}\nnot json\n', "x.jsonl", "line 2 is not JSON"),
        ("t,y\na,1\n,0\nc,1\n", "x.csv", "row 2 has an empty 't'"),
    ],
)
def test_bad_files_are_clear_errors(tmp_path: Path, content: str, name: str, fragment: str) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(DataError, match=fragment):
        load_table(path, "t", "y")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_table(tmp_path / "none.csv", "t", "y")
