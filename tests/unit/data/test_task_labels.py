"""What a label is, per task, when `bortnas.data.tasks` reads a user's table or tagged file, and how
the data's labels are renumbered to a teacher's head."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import pytest

from bortnas.core.errors import DataError
from bortnas.data.tasks import SOFT_ONLY, Example, TaskData, align_labels, infer_table_task, load_table, load_tagged


def _write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def _by_text(data: TaskData) -> dict[str, Example]:
    examples = data.train + data.dev + data.test
    by_text = {ex.text: ex for ex in examples}
    assert len(by_text) == len(examples)
    return by_text


# --- regression -------------------------------------------------------------------------------


def test_regression_parses_floats_and_names_its_one_output_after_the_column(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "s.csv", ["text", "score"], [["one", "0.5"], ["two", "3"], ["three", "-2.25"], ["four", "1e-3"]])
    data = load_table(path, "text", "score", task="regression")
    assert data.task == "regression"
    assert data.label_names == ("score",)
    assert data.num_labels == 1
    by_text = _by_text(data)
    assert {t: ex.label for t, ex in by_text.items()} == {"one": 0.5, "two": 3.0, "three": -2.25, "four": 0.001}
    assert all(isinstance(ex.label, float) for ex in by_text.values())
    assert {t: ex.line for t, ex in by_text.items()} == {"one": 1, "two": 2, "three": 3, "four": 4}


@pytest.mark.parametrize(
    ("cell", "why"), [("abc", "is not a number"), ("nan", "is not finite"), ("inf", "is not finite"), ("", "is not a number")]
)
def test_a_regression_cell_that_is_no_finite_number_names_file_row_and_column(tmp_path: Path, cell: str, why: str) -> None:
    path = _write_csv(tmp_path / "s.csv", ["text", "score"], [["one", "0.5"], ["two", "1.0"], ["three", cell], ["four", "2"]])
    with pytest.raises(DataError) as info:
        load_table(path, "text", "score", task="regression")
    message = str(info.value)
    assert message.startswith(f"{path} row 3 column 'score': {cell!r} {why}")
    assert "\n" not in message


def test_a_regression_jsonl_null_is_not_a_number(tmp_path: Path) -> None:
    path = _write_jsonl(tmp_path / "s.jsonl", [{"t": "a", "y": 1.5}, {"t": "b", "y": None}, {"t": "c", "y": 2}])
    with pytest.raises(DataError, match=r"row 2 column 'y': None is not a number"):
        load_table(path, "t", "y", task="regression")


# --- multi-label ------------------------------------------------------------------------------


def test_multi_label_from_a_jsonl_list_column(tmp_path: Path) -> None:
    rows = [
        {"text": "r1", "tags": ["sports", "art"]},
        {"text": "r2", "tags": ["politics"]},
        {"text": "r3", "tags": []},
        {"text": "r4", "tags": ["sports", "politics", "art"]},
        {"text": "r5", "tags": ["sports", "sports"]},
    ]
    data = load_table(_write_jsonl(tmp_path / "m.jsonl", rows), "text", "tags", task="multi_label")
    assert data.label_names == ("art", "politics", "sports")
    labels = {t: ex.label for t, ex in _by_text(data).items()}
    assert labels == {"r1": (0, 2), "r2": (1,), "r3": (), "r4": (0, 1, 2), "r5": (2,)}


def test_multi_label_from_csv_cells_with_commas_and_with_json_lists(tmp_path: Path) -> None:
    rows = [["r1", "b,a"], ["r2", '["c", "a"]'], ["r3", " c "], ["r4", ""], ["r5", "[]"]]
    data = load_table(_write_csv(tmp_path / "m.csv", ["text", "labels"], rows), "text", "labels", task="multi_label")
    assert data.label_names == ("a", "b", "c")
    labels = {t: ex.label for t, ex in _by_text(data).items()}
    assert labels == {"r1": (0, 1), "r2": (0, 2), "r3": (2,), "r4": (), "r5": ()}


def test_multi_label_from_several_indicator_columns_keeps_their_given_order(tmp_path: Path) -> None:
    rows = [["r1", "1", "0", "1"], ["r2", "0", "0", "0"], ["r3", "true", "1.0", ""], ["r4", "0", "1", "0"]]
    path = _write_csv(tmp_path / "m.csv", ["text", "x", "y", "z"], rows)
    data = load_table(path, "text", "z, x,y", task="multi_label")
    assert data.label_names == ("z", "x", "y")
    labels = {t: ex.label for t, ex in _by_text(data).items()}
    # columns in the order z, x, y: r1 has x and z, r3 has x and y, r4 has y
    assert labels == {"r1": (0, 1), "r2": (), "r3": (1, 2), "r4": (2,)}


def test_an_unparseable_json_list_cell_names_its_row(tmp_path: Path) -> None:
    rows = [["r1", "a,b"], ["r2", '["a", '], ["r3", "b"]]
    path = _write_csv(tmp_path / "m.csv", ["text", "labels"], rows)
    with pytest.raises(DataError) as info:
        load_table(path, "text", "labels", task="multi_label")
    assert str(info.value).startswith(f"{path} row 2 column 'labels': '[\"a\",' does not parse as a JSON list of labels")


def test_an_indicator_column_holding_two_is_an_error(tmp_path: Path) -> None:
    rows = [["r1", "1", "0"], ["r2", "0", "1"], ["r3", "1", "2"]]
    path = _write_csv(tmp_path / "m.csv", ["text", "x", "y"], rows)
    with pytest.raises(DataError) as info:
        load_table(path, "text", "x,y", task="multi_label")
    assert str(info.value).startswith(f"{path} row 3 column 'y': '2' is not 0 or 1")


# --- embeddings -------------------------------------------------------------------------------


def test_an_embedding_table_needs_no_label_column_and_has_no_labels(tmp_path: Path) -> None:
    rows = [["q1", "d1"], ["q2", "d2"], ["q3", "d3"], ["q4", "d4"]]
    path = _write_csv(tmp_path / "e.csv", ["query", "doc"], rows)
    data = load_table(path, "query", "label", pair_column="doc", task="embedding")
    assert data.task == "embedding"
    assert data.label_names == ()
    by_text = _by_text(data)
    assert {t: (ex.label, ex.pair) for t, ex in by_text.items()} == {
        "q1": (SOFT_ONLY, "d1"),
        "q2": (SOFT_ONLY, "d2"),
        "q3": (SOFT_ONLY, "d3"),
        "q4": (SOFT_ONLY, "d4"),
    }


def test_an_embedding_table_ignores_a_label_column_that_is_there(tmp_path: Path) -> None:
    # the "label" cells would fail any labelled task: an embedding task must not read them
    rows = [["a", "not a number"], ["b", '["x", '], ["c", ""]]
    data = load_table(_write_csv(tmp_path / "e.csv", ["text", "label"], rows), "text", "label", task="embedding")
    assert data.label_names == ()
    assert [ex.label for ex in data.train + data.dev + data.test] == [SOFT_ONLY] * 3


def test_an_empty_pair_of_an_embedding_table_names_its_row(tmp_path: Path) -> None:
    rows = [["q1", "d1"], ["q2", "d2"], ["q3", ""], ["q4", "d4"]]
    path = _write_csv(tmp_path / "e.csv", ["query", "doc"], rows)
    with pytest.raises(DataError) as info:
        load_table(path, "query", "label", pair_column="doc", task="embedding")
    assert str(info.value).startswith(f"{path} row 3 has an empty 'doc': an embedding pair needs both texts")


# --- infer_table_task -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rows", "label_column", "expected"),
    [
        ([{"t": "a", "x": "1", "y": "0"}], "x,y", "multi_label"),
        ([{"t": "a", "l": ["p"]}, {"t": "b", "l": "q"}], "l", "multi_label"),
        ([{"l": "1"}, {"l": "0"}, {"l": "0.5"}], "l", "regression"),
        ([{"l": 1}, {"l": 2.75}], "l", "regression"),
        ([{"l": "1"}, {"l": "0"}, {"l": "2.0"}], "l", "classification"),
        ([{"l": 0}, {"l": 1}, {"l": 3}], "l", "classification"),
        ([{"l": "pos"}, {"l": "0.5"}], "l", "classification"),
        ([{"l": "neg"}, {"l": "pos"}], "l", "classification"),
    ],
)
def test_infer_table_task(rows: list[dict[str, Any]], label_column: str, expected: str) -> None:
    assert infer_table_task(rows, label_column) == expected


# --- align_labels -----------------------------------------------------------------------------


def _sentiment(tmp_path: Path, labels: list[str]) -> TaskData:
    rows = [[f"review {n}", label] for n, label in enumerate(labels, 1)]
    return load_table(_write_csv(tmp_path / "sentiment.csv", ["text", "label"], rows), "text", "label")


def test_align_renumbers_every_example_to_the_teachers_order(tmp_path: Path) -> None:
    data = _sentiment(tmp_path, ["pos", "neg", "neu", "neg", "pos", "neu"])
    assert data.label_names == ("neg", "neu", "pos")
    assert _by_text(data)["review 1"].label == 2
    teacher = ("pos", "neu", "neg")
    aligned = align_labels(data, teacher, "teachers/sst3")
    assert aligned.label_names == teacher
    by_text = _by_text(aligned)
    # the teacher's ids: pos 0, neu 1, neg 2
    assert {t: ex.label for t, ex in by_text.items()} == {
        "review 1": 0,
        "review 2": 2,
        "review 3": 1,
        "review 4": 2,
        "review 5": 0,
        "review 6": 1,
    }
    assert [len(s) for s in (aligned.train, aligned.dev, aligned.test)] == [len(s) for s in (data.train, data.dev, data.test)]
    # each example keeps its row, so an error found after aligning still names it
    assert {t: ex.line for t, ex in by_text.items()} == {f"review {n}": n for n in range(1, 7)}


def test_align_keeps_examples_without_a_label_of_their_own() -> None:
    data = TaskData(
        train=(Example("a", 0), Example("b", SOFT_ONLY)),
        dev=(Example("c", 1),),
        test=(Example("d", 0),),
        label_names=("x", "y"),
        source="hand",
    )
    aligned = align_labels(data, ("y", "x"), "t")
    assert [ex.label for ex in aligned.train + aligned.dev + aligned.test] == [1, SOFT_ONLY, 0, 1]


def test_align_reads_whole_number_labels_as_the_teachers_ids(tmp_path: Path) -> None:
    data = _sentiment(tmp_path, ["1", "0", "1"])
    aligned = align_labels(data, ("LABEL_0", "LABEL_1"), "t")
    assert aligned.label_names == ("LABEL_0", "LABEL_1")
    assert {t: ex.label for t, ex in _by_text(aligned).items()} == {"review 1": 1, "review 2": 0, "review 3": 1}


def test_align_by_id_undoes_the_string_sort_of_numbers() -> None:
    # eleven numeric classes sort as strings: "0", "1", "10", "2", ..., "9"; data index 2 is class 10
    names = tuple(sorted(str(k) for k in range(11)))
    assert names[2] == "10"
    data = TaskData(
        train=(Example("ten", 2), Example("two", 3)),
        dev=(Example("nine", 10),),
        test=(Example("one", 1),),
        label_names=names,
        source="hand",
    )
    aligned = align_labels(data, tuple(f"LABEL_{k}" for k in range(11)), "t")
    assert {t: ex.label for t, ex in _by_text(aligned).items()} == {"ten": 10, "two": 2, "nine": 9, "one": 1}


def test_align_names_an_unknown_label_with_both_sets_and_its_first_row(tmp_path: Path) -> None:
    data = _sentiment(tmp_path, ["pos", "neg", "neg", "meh", "pos", "meh"])
    with pytest.raises(DataError) as info:
        align_labels(data, ("neg", "pos", "neutral"), "teachers/sst3")
    message = str(info.value)
    assert (
        "the data's labels (meh, neg, pos) do not match the teacher's (neg, pos, neutral, in teachers/sst3/config.json id2label)" in message
    )
    assert f"'meh' (first on row 4 of {tmp_path / 'sentiment.csv'}) is not one of them" in message


def test_align_rejects_another_number_of_classes(tmp_path: Path) -> None:
    data = _sentiment(tmp_path, ["pos", "neg", "pos"])
    with pytest.raises(
        DataError, match=r"\(neg, pos\) do not match the teacher's \(neg, neu, pos, in t/config.json id2label\): 2 labels against 3"
    ):
        align_labels(data, ("neg", "neu", "pos"), "t")


def test_align_lets_tagged_data_lack_some_of_the_teachers_tags() -> None:
    data = TaskData(
        train=(Example("Ann ran", (1, 0), words=("Ann", "ran")),),
        dev=(Example("ran", (0,), words=("ran",)),),
        test=(Example("Bob Ann", (1, 1), words=("Bob", "Ann")),),
        label_names=("O", "B-PER"),
        source="hand",
        task="token_classification",
    )
    aligned = align_labels(data, ("O", "B-LOC", "B-PER"), "t")
    assert aligned.label_names == ("O", "B-LOC", "B-PER")
    assert [ex.label for ex in aligned.train + aligned.dev + aligned.test] == [(2, 0), (0,), (2, 2)]


def test_align_renumbers_label_sets() -> None:
    data = TaskData(
        train=(Example("a", (0, 2)),),
        dev=(Example("b", ()),),
        test=(Example("c", (1,)),),
        label_names=("art", "politics", "sports"),
        source="hand",
        task="multi_label",
    )
    aligned = align_labels(data, ("sports", "art", "politics"), "t")
    assert [ex.label for ex in aligned.train + aligned.dev + aligned.test] == [(1, 0), (), (2,)]


@pytest.mark.parametrize("task", ["regression", "embedding"])
def test_align_leaves_tasks_without_classes_alone(task: str) -> None:
    data = TaskData(
        train=(Example("a", 0.5),),
        dev=(Example("b", 1.5),),
        test=(Example("c", 2.5),),
        label_names=("score",) if task == "regression" else (),
        source="hand",
        task=task,
    )
    assert align_labels(data, ("something", "else"), "t") is data


# --- load_tagged ------------------------------------------------------------------------------

CONLL = """\
-DOCSTART- -X- O O

EU NNP B-NP B-ORG
rejects VBZ B-VP O
German JJ B-NP B-MISC
call NN I-NP O

Peter NNP B-NP B-PER
Blackburn NNP I-NP I-PER


BRUSSELS NNP B-NP B-LOC
1996-08-22 CD I-NP O
"""


def test_load_tagged_reads_sentences_tags_and_lines(tmp_path: Path) -> None:
    path = tmp_path / "ner.conll"
    path.write_text(CONLL, encoding="utf-8")
    data = load_tagged(path)
    assert data.task == "token_classification"
    assert data.label_names == ("O", "B-LOC", "B-MISC", "B-ORG", "B-PER", "I-PER")
    assert data.path == str(path)
    by_text = _by_text(data)
    assert set(by_text) == {"EU rejects German call", "Peter Blackburn", "BRUSSELS 1996-08-22"}
    eu, peter, brussels = by_text["EU rejects German call"], by_text["Peter Blackburn"], by_text["BRUSSELS 1996-08-22"]
    assert eu.words == ("EU", "rejects", "German", "call")
    assert eu.label == (3, 0, 2, 0)
    assert eu.line == 3
    assert peter.words == ("Peter", "Blackburn")
    assert peter.label == (4, 5)
    assert peter.line == 8
    assert brussels.words == ("BRUSSELS", "1996-08-22")
    assert brussels.label == (1, 0)
    assert brussels.line == 12
    assert [len(s) for s in (data.train, data.dev, data.test)] == [1, 1, 1]


def test_an_unknown_tag_of_tagged_data_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "ner.conll"
    path.write_text(CONLL, encoding="utf-8")
    data = load_tagged(path)
    # B-MISC (German) is the third word of the sentence on line 3: line 5
    with pytest.raises(DataError, match=rf"'B-MISC' \(first on line 5 of {path}\) is not one of them"):
        align_labels(data, ("O", "B-LOC", "B-ORG", "B-PER", "I-PER"), "t")


def test_a_score_of_minus_100_is_a_score_not_the_unlabelled_marker() -> None:
    import math

    from bortnas.data.encode import _label_tensor

    labels = _label_tensor([Example("a", -100.0), Example("b", SOFT_ONLY), Example("c", 2.5)], "regression", 1)
    assert labels[0].item() == -100.0 and math.isnan(labels[1].item()) and labels[2].item() == 2.5
