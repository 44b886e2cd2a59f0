"""`bortnas.api.search.frontier`: the finished trials no other beats on both speed and dev score, fastest first."""

from __future__ import annotations

import dataclasses

from bortnas.api.results import TrialSummary
from bortnas.api.search import frontier

BASE = TrialSummary(
    number=0,
    state="COMPLETE",
    candidate="L2-H64-A4-I128-fp32",
    w=None,
    error=None,
    dev_score=None,
    params_non_embedding=1000,
    size_mib=1.0,
    flops=None,
    latency_ms=None,
    latency_table_ms=None,
    latency_simulated=False,
    cost="flops",
    pareto=False,
    best=False,
    in_budget=None,
    note="",
)


def trial(
    number: int, dev_score: float | None, *, table_ms: float | None = None, flops: float | None = None, state: str = "COMPLETE"
) -> TrialSummary:
    return dataclasses.replace(BASE, number=number, dev_score=dev_score, latency_table_ms=table_ms, flops=flops, state=state)


def numbers(summaries: tuple[TrialSummary, ...]) -> list[int]:
    return [t.number for t in summaries]


def test_only_complete_trials_with_a_dev_score_count() -> None:
    trials = [
        trial(0, 0.70, table_ms=5.0),
        trial(1, 0.99, table_ms=1.0, state="PRUNED"),
        trial(2, 0.99, table_ms=1.0, state="FAIL"),
        trial(3, 0.99, table_ms=1.0, state="RUNNING"),
        trial(4, None, table_ms=1.0),
        trial(5, 0.80, table_ms=6.0),
    ]
    assert numbers(frontier(trials)) == [0, 5]
    assert frontier([trial(1, 0.9, state="PRUNED"), trial(2, None)]) == ()


def test_sorted_fastest_first_by_table_latency() -> None:
    trials = [trial(0, 0.9, table_ms=9.0), trial(1, 0.5, table_ms=1.0), trial(2, 0.7, table_ms=4.0)]
    result = frontier(trials)
    assert numbers(result) == [1, 2, 0]
    assert result[0] is trials[1]


def test_table_latency_is_preferred_to_flops() -> None:
    # by FLOPs trial 0 would be fastest; by the table it is slowest
    trials = [trial(0, 0.9, table_ms=9.0, flops=1.0), trial(1, 0.5, table_ms=1.0, flops=9.0)]
    assert numbers(frontier(trials)) == [1, 0]


def test_flops_rank_trials_without_table_latency() -> None:
    trials = [trial(0, 0.9, flops=3e9), trial(1, 0.6, flops=1e9), trial(2, 0.8, flops=2e9)]
    assert numbers(frontier(trials)) == [1, 2, 0]


def test_a_trial_with_neither_latency_nor_flops_ranks_last() -> None:
    trials = [trial(0, 0.95), trial(1, 0.6, flops=1e9)]
    assert numbers(frontier(trials)) == [1, 0]


def test_a_slower_trial_that_is_not_more_accurate_is_dropped() -> None:
    trials = [
        trial(0, 0.80, table_ms=1.0),
        trial(1, 0.80, table_ms=2.0),  # as accurate, slower
        trial(2, 0.75, table_ms=3.0),  # less accurate, slower
        trial(3, 0.85, table_ms=4.0),
        trial(4, 0.84, table_ms=5.0),  # beats trial 0 but not trial 3, which is faster
        trial(5, 0.90, table_ms=6.0),
    ]
    assert numbers(frontier(trials)) == [0, 3, 5]


def test_ties_in_speed_keep_the_lower_trial_number_first() -> None:
    # equally fast: the lower number comes first and a later one stays only if more accurate
    assert numbers(frontier([trial(7, 0.9, table_ms=2.0), trial(3, 0.8, table_ms=2.0)])) == [3, 7]
    assert numbers(frontier([trial(7, 0.8, table_ms=2.0), trial(3, 0.8, table_ms=2.0)])) == [3]


def test_negative_scores_are_compared_as_scores() -> None:
    # a correlation may be negative: the less negative slower trial still improves on the faster one
    assert numbers(frontier([trial(0, -0.4, table_ms=1.0), trial(1, -0.1, table_ms=2.0), trial(2, -0.3, table_ms=3.0)])) == [0, 1]


def test_a_slower_trial_after_a_zero_score_is_dropped_unless_more_accurate() -> None:
    trials = [trial(0, 0.0, table_ms=1.0), trial(1, 0.0, table_ms=2.0), trial(2, -0.2, table_ms=3.0), trial(3, 0.1, table_ms=4.0)]
    assert numbers(frontier(trials)) == [0, 3]
