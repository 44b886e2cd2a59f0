"""Task metrics on hand-computed cases; entity F1 also against seqeval where it is installed."""

from __future__ import annotations

import math
import random
import warnings
from collections.abc import Callable

import pytest

from bortnas.core.task_metrics import accuracy, entity_f1, entity_spans, multilabel_f1, pearson, recall_at_k, spearman


def test_accuracy_counts_matches() -> None:
    assert accuracy([0, 1, 2, 1], [0, 1, 1, 1]) == 0.75


@pytest.mark.parametrize(
    ("call", "fragment"),
    [
        (lambda: accuracy([0, 1], [0]), r"pred has 2 items but gold has 1"),
        (lambda: accuracy([], []), r"pred and gold are empty"),
        (lambda: pearson([1.0, 2.0], [1.0]), r"x has 2 items but y has 1"),
        (lambda: spearman([1.0, float("nan")], [1.0, 2.0]), r"x\[1\]=nan is not finite"),
        (lambda: multilabel_f1([[0, 1]], [[0, 1], [1, 0]]), r"pred has 1 items but gold has 2"),
        (lambda: multilabel_f1([[0, 1, 1]], [[0, 1]]), r"pred\[0\] has 3 labels but gold\[0\] has 2"),
        (lambda: multilabel_f1([[0, 2]], [[0, 1]]), r"pred\[0\] holds 2: indicator rows hold 0 or 1"),
        (lambda: entity_f1([["O"]], [["O"], ["O"]]), r"pred has 1 items but gold has 2"),
        (lambda: entity_f1([["O", "O"]], [["O"]]), r"pred\[0\] has 2 tags but gold\[0\] has 1"),
        (lambda: recall_at_k([[1]], [1, 2]), r"ranked has 1 items but relevant has 2"),
        (lambda: recall_at_k([[1]], [1], k=0), r"k=0 must be at least 1"),
        (lambda: recall_at_k([[1]], [set()]), r"relevant\[0\] is empty"),
    ],
)
def test_bad_inputs_are_one_line_value_errors(call: Callable[[], object], fragment: str) -> None:
    with pytest.raises(ValueError, match=fragment) as info:
        call()
    assert "\n" not in str(info.value)


def test_pearson_of_a_hand_computed_case() -> None:
    # x - mean = (-1, 0, 1), y - mean = (-1, -1, 2): r = 3 / sqrt(2 * 6)
    assert pearson([1, 2, 3], [1, 1, 4]) == pytest.approx(3 / math.sqrt(12))
    assert pearson([1, 2, 3], [6, 4, 2]) == pytest.approx(-1.0)


def test_correlations_of_a_constant_side_are_zero_not_nan() -> None:
    assert pearson([1, 2, 3], [5, 5, 5]) == 0.0
    assert spearman([2, 2], [1, 3]) == 0.0
    assert pearson([7.0], [3.0]) == 0.0


def test_spearman_gives_ties_their_mean_rank() -> None:
    # ranks of x: (1, 2.5, 2.5, 4); of y: (1, 2, 3, 4); centred: (-1.5, 0, 0, 1.5) and (-1.5, -.5, .5, 1.5)
    # r = 4.5 / sqrt(4.5 * 5)
    assert spearman([10, 20, 20, 30], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(4.5 * 5))
    # monotone but not linear: rank correlation 1, Pearson below 1
    assert spearman([1, 2, 3, 4], [1, 10, 100, 1000]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [1, 10, 100, 1000]) < 0.9


def test_multilabel_f1_micro_and_macro() -> None:
    gold = [[1, 0, 1], [0, 1, 1], [1, 0, 0]]
    pred = [[1, 0, 0], [1, 1, 1], [1, 0, 0]]
    # label 0: tp 2, fp 1, fn 0 -> 4/5; label 1: tp 1 -> 1; label 2: tp 1, fn 1 -> 2/3
    # micro: tp 4, fp 1, fn 1 -> 8/10
    micro, macro = multilabel_f1(pred, gold)
    assert micro == pytest.approx(0.8)
    assert macro == pytest.approx((4 / 5 + 1 + 2 / 3) / 3)


def test_a_label_never_gold_nor_predicted_scores_zero_in_the_macro_mean() -> None:
    # label 1 is absent on both sides: F1 0 (scikit-learn's zero_division=0), still averaged
    micro, macro = multilabel_f1([[1, 0], [0, 0]], [[1, 0], [0, 0]])
    assert (micro, macro) == (1.0, 0.5)
    assert multilabel_f1([[0, 0]], [[0, 0]]) == (0.0, 0.0)


@pytest.mark.parametrize(
    ("tags", "spans"),
    [
        # IOB2
        (["B-PER", "I-PER", "O", "B-LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
        (["B-PER", "B-PER", "I-PER"], {("PER", 0, 1), ("PER", 1, 3)}),
        # IOB1: an I- after O starts an entity; B- only separates two adjacent entities of one type
        (["I-PER", "I-PER", "B-PER", "O", "I-LOC"], {("PER", 0, 2), ("PER", 2, 3), ("LOC", 4, 5)}),
        # a type switch inside a run of I- tags is two entities
        (["I-PER", "I-LOC", "I-LOC"], {("PER", 0, 1), ("LOC", 1, 3)}),
        # a dangling I- after O starts an entity, and so does B- followed by I- of another type
        (["O", "I-ORG", "O", "B-PER", "I-LOC"], {("ORG", 1, 2), ("PER", 3, 4), ("LOC", 4, 5)}),
        # IOBES: S- is one word, E- closes; E- E- of one type are two entities, I- after E- restarts
        (["S-PER", "B-LOC", "I-LOC", "E-LOC", "E-LOC", "I-LOC", "E-LOC"], {("PER", 0, 1), ("LOC", 1, 4), ("LOC", 4, 5), ("LOC", 5, 7)}),
        # IOE: the entity runs up to its E-
        (["I-PER", "E-PER", "I-PER", "O"], {("PER", 0, 2), ("PER", 2, 3)}),
        # an entity open at the end closes there
        (["O", "B-MISC", "I-MISC"], {("MISC", 1, 3)}),
        # unprefixed tags are I-<tag>; bare B/I are untyped entities
        (["PER", "PER", "O", "LOC"], {("PER", 0, 2), ("LOC", 3, 4)}),
        (["B", "I", "O", "B", "B"], {("", 0, 2), ("", 3, 4), ("", 4, 5)}),
        (["O", "O"], set()),
        ([], set()),
    ],
)
def test_entity_spans_follow_conlleval(tags: list[str], spans: set[tuple[str, int, int]]) -> None:
    assert entity_spans(tags) == spans


def test_entity_f1_exact_match_is_one() -> None:
    gold = [["B-PER", "I-PER", "O"], ["O", "B-LOC"]]
    assert entity_f1(gold, gold) == (1.0, 1.0, 1.0)


def test_entity_f1_counts_a_wrong_boundary_as_a_miss_and_a_false_positive() -> None:
    gold = [["B-PER", "I-PER", "O", "B-LOC"], ["B-ORG", "O"]]
    # the PER entity is one word too short; LOC and ORG are right; an extra MISC is predicted
    pred = [["B-PER", "O", "O", "B-LOC"], ["B-ORG", "B-MISC"]]
    precision, recall, f1 = entity_f1(pred, gold)
    assert precision == pytest.approx(2 / 4)
    assert recall == pytest.approx(2 / 3)
    assert f1 == pytest.approx(2 * (1 / 2) * (2 / 3) / (1 / 2 + 2 / 3))


def test_entity_f1_matches_entities_within_their_sentence_only() -> None:
    # the same (type, start, end) in another sentence is not a match
    assert entity_f1([["B-PER"], ["O"]], [["O"], ["B-PER"]]) == (0.0, 0.0, 0.0)


def test_entity_f1_without_entities_is_zero() -> None:
    assert entity_f1([["O", "O"]], [["O", "O"]]) == (0.0, 0.0, 0.0)
    assert entity_f1([["B-PER"]], [["O"]]) == (0.0, 0.0, 0.0)


def test_entity_f1_agrees_with_seqeval_on_random_tags() -> None:
    metrics = pytest.importorskip("seqeval.metrics")
    rng = random.Random(0)
    tags = ["O"] + [f"{prefix}-{kind}" for prefix in "BIES" for kind in ("PER", "LOC")]
    for _ in range(300):
        gold = [[rng.choice(tags) for _ in range(rng.randint(0, 8))] for _ in range(rng.randint(1, 4))]
        pred = [[rng.choice(tags) if rng.random() < 0.4 else tag for tag in sentence] for sentence in gold]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # seqeval warns on 0/0, which both sides score 0
            expected = (metrics.precision_score(gold, pred), metrics.recall_score(gold, pred), metrics.f1_score(gold, pred))
        assert entity_f1(pred, gold) == pytest.approx(expected, abs=1e-12), (pred, gold)


def test_recall_at_k_with_one_relevant_id_per_query() -> None:
    ranked = [[3, 1, 2], [2, 3, 1], [1, 2, 3]]
    assert recall_at_k(ranked, [1, 1, 1], k=1) == pytest.approx(1 / 3)
    assert recall_at_k(ranked, [1, 1, 1], k=2) == pytest.approx(2 / 3)
    assert recall_at_k(ranked, [1, 1, 1], k=10) == 1.0


def test_recall_at_k_with_several_relevant_ids_averages_each_querys_share() -> None:
    ranked = [[5, 6, 7, 8], [9, 1]]
    # query 0: {5, 8} with top-2 {5, 6} -> 1/2; query 1: {1} found -> 1
    assert recall_at_k(ranked, [{5, 8}, frozenset({1})], k=2) == pytest.approx(0.75)
