"""Export selection by budget, on a study built by hand (tests/conftest.py FAKE_SCORES: no training)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import optuna
import pytest
from conftest import FAKE_BEST, make_scored_study

from bortnas.core.budget import Budget, LatencyTable
from bortnas.core.errors import ExportError, InfeasibleBudgetError, ParameterError, UserInputError
from bortnas.core.space import ArchSpec
from bortnas.search.records import TrialRecord, load_records
from bortnas.search.selection import Selection, choose_trial, more_accurate, parse_accuracy_drop, qualifying

# FAKE_SCORES by trial number: latency ms, dev accuracy, points below the teacher's 0.85
#   0: 1.9 0.90 -5 | 1: 1.1 0.80 5 | 3: 0.7 0.70 15 | 5: 1.3 0.75 10 | 6: 1.6 0.55 30 | 7: 0.9 0.68 17


@pytest.fixture()
def study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'fake.db'}"
    make_scored_study(url)
    return optuna.load_study(study_name="fake", storage=url)


def test_without_budget_the_argmax_w_trial(study: optuna.Study) -> None:
    assert choose_trial(study).number == FAKE_BEST


def test_cost_budget_exports_the_most_accurate_trial_within_it(study: optuna.Study) -> None:
    # inside 1.2 ms: trials 1 (0.80), 3 (0.70), 7 (0.68)
    assert choose_trial(study, selection=Selection(Budget(max_latency_ms=1.2))).number == 1
    # size: trials 3, 6 and 7 are under 0.2 MiB (p + 32,000 bits); 3 is the most accurate of them
    assert choose_trial(study, selection=Selection(Budget(max_size_mib=0.2))).number == 3


def test_accuracy_budget_exports_the_fastest_trial_that_meets_it(study: optuna.Study) -> None:
    # within 10 points: trials 0 (1.9 ms), 1 (1.1 ms) and 5 (1.3 ms); the most accurate (0) is not the fastest (1)
    assert choose_trial(study, selection=Selection(max_accuracy_drop=10)).number == 1
    assert choose_trial(study, selection=Selection(max_accuracy_drop=0)).number == 0


def test_both_budgets_export_the_fastest_trial_meeting_both(study: optuna.Study) -> None:
    # latency <= 1.5 and within 15 points: trials 1 (1.1), 3 (0.7), 5 (1.3) -> 3
    assert choose_trial(study, selection=Selection(Budget(max_latency_ms=1.5), 15)).number == 3
    # within 12 points instead: 1 and 5 -> 1
    assert choose_trial(study, selection=Selection(Budget(max_latency_ms=1.5), 12)).number == 1


def test_an_export_climbs_to_the_fastest_trial_more_accurate_than_its_pick(study: optuna.Study) -> None:
    records = load_records(study)

    def climb(number: int) -> int | None:
        found = more_accurate(records, number)
        return None if found is None else found.number

    # above W's pick 3 (0.70): 1 (1.1 ms, 0.80), 5 (1.3 ms, 0.75), 0 (1.9 ms, 0.90) -> the fastest, 1, not the nearest score, 5
    assert climb(FAKE_BEST) == 1
    assert climb(1) == 0 and climb(0) is None  # 0 is the most accurate trial: nothing is left to climb to
    assert climb(7) == 3  # 0.68 -> 0.70 at 0.7 ms, the fastest of all
    assert climb(6) == 3  # the failed (2) and pruned (4) trials are never offered


def test_where_no_trial_scored_higher_the_export_climbs_to_a_slower_one_of_the_same_score() -> None:
    # every candidate at the same floor after the search's short training (an entity F1 of 0)
    records = [
        TrialRecord(n, "COMPLETE", None, {"w": 1.0, "dev_score": 0.0, "latency_table_ms": ms}) for n, ms in ((0, 2.0), (1, 1.0), (2, 3.0))
    ]
    found = [more_accurate(records, n) for n in (1, 0, 2)]
    assert [None if r is None else r.number for r in found] == [0, 2, None]


def test_qualifying_marks_what_trials_shows(study: optuna.Study) -> None:
    inside = qualifying(load_records(study), Selection(Budget(max_latency_ms=1.2)))
    assert sorted(r.number for r in inside) == [1, 3, 7]


def test_nothing_qualifying_names_the_closest_trial(study: optuna.Study) -> None:
    with pytest.raises(InfeasibleBudgetError, match=r"latency <= 0.50 ms: the closest, trial 3 \(L1-H16-A2-I32-fp32\), has latency 0.70"):
        choose_trial(study, selection=Selection(Budget(max_latency_ms=0.5)))
    # with an accuracy budget too, the excesses add up: trial 3 is 40 % over in latency and 15 points short (0.55),
    # trial 1 120 % over and 5 points short (1.25), trial 0 280 % over and inside in accuracy (2.8)
    with pytest.raises(InfeasibleBudgetError, match=r"the closest, trial 3 .* 15.00 points below"):
        choose_trial(study, selection=Selection(Budget(max_latency_ms=0.5), 0))


def test_a_trial_number_and_a_budget_are_exclusive(study: optuna.Study) -> None:
    with pytest.raises(UserInputError, match=r"^number=1 and selection \(dev score at most 2 points below the teacher's\) both choose"):
        choose_trial(study, 1, Selection(max_accuracy_drop=2))
    with pytest.raises(ExportError, match="not a finished candidate"):
        choose_trial(study, 2)


@pytest.mark.parametrize("text", ["-1", "abc", "nan", "inf"])
def test_bad_accuracy_drops_are_one_line(text: str) -> None:
    with pytest.raises(ParameterError, match=f"^max_accuracy_drop='{text}' "):
        parse_accuracy_drop(text)
    assert parse_accuracy_drop("2.5") == 2.5 and parse_accuracy_drop("0") == 0.0


def test_min_speedup_uses_the_study_latency_table(study: optuna.Study) -> None:
    with pytest.raises(ParameterError, match="^min_speedup=2 needs the latency table .*: bound the latency itself instead"):
        choose_trial(study, selection=Selection(Budget(min_speedup=2)))
    # a teacher of 2.4 ms: 2x faster is 1.2 ms, the budget of test_cost_budget_exports_the_most_accurate_trial_within_it
    study.set_user_attr("latency_table", LatencyTable({}, 2.5, 2.4, "cpu", 1, 24, 10, 0.0).to_dict())
    assert choose_trial(study, selection=Selection(Budget(min_speedup=2))).number == 1


def test_a_latency_budget_is_applied_to_latencies_timed_again(study: optuna.Study) -> None:
    # The study's table: teacher 2.4 ms, so 2x is 1.2 ms and trial 1 (1.1 ms, 0.80) is chosen. Timed again
    # now, the teacher takes 2.0 ms (bound 1.0) and trial 1 1.15 ms: it falls out, and trial 3 (0.7 ms,
    # 0.70) is the most accurate left. Only trials within 1.5x of the bound (1.8 ms) are timed again:
    # not trial 0 (1.9 ms).
    study.set_user_attr("latency_table", LatencyTable({}, 2.5, 2.4, "cpu", 1, 24, 10, 0.0).to_dict())
    now = {"L1-H32-A4-I64-fp32": 1.15, "L1-H16-A2-I32-fp32": 0.7, "L2-H16-A4-I64-fp32": 1.3, "L2-H32-A4-I64-bitnet158": 1.6}
    now["L1-H16-A4-I32-fp32"] = 0.8
    asked: list[list[str]] = []

    def retime(specs: Sequence[ArchSpec]) -> LatencyTable:
        asked.append(sorted(s.key for s in specs))
        return LatencyTable({s.key: now[s.key] for s in specs}, 2.0, 2.0, "cpu", 1, 24, 10, 0.0)

    selection = Selection(Budget(min_speedup=2))
    assert choose_trial(study, selection=selection).number == 1
    assert choose_trial(study, selection=selection, retime=retime).number == 3
    assert asked == [sorted(now)]
    # an accuracy budget alone is not a latency budget: nothing is timed
    assert choose_trial(study, selection=Selection(max_accuracy_drop=10), retime=retime).number == 1
    assert len(asked) == 1


def test_latency_budgets_refuse_a_study_with_simulated_latencies(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'binary.db'}"
    make_scored_study(url, "binary", quantized="bit_w1a1")
    study = optuna.load_study(study_name="binary", storage=url)
    for budget, used in ((Budget(max_latency_ms=1.2), "max_latency_ms=1.2"), (Budget(min_speedup=2), "min_speedup=2")):
        with pytest.raises(UserInputError, match=rf"^{used} compare measured latencies, but study 'binary' holds bit_w1a1, which"):
            choose_trial(study, selection=Selection(budget))
    # budgets that do not read latency, and a trial named outright, still export
    assert choose_trial(study, selection=Selection(Budget(max_size_mib=0.2))).number == 3
    assert choose_trial(study, 6).number == 6
