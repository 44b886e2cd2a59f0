"""Budgets: parsing text, what breaks a bound, Optuna's constraint values, and how settings pin them."""

from __future__ import annotations

import math

import pytest

from bortnas.core.budget import Budget, CandidateCost, LatencyTable
from bortnas.core.errors import ParameterError
from bortnas.core.settings import RunSettings

COST = CandidateCost(params=4_000_000, size_mib=15.0, flops=2.0e8, latency_ms=3.0)


@pytest.mark.parametrize(
    ("field", "text", "fragment"),
    [
        ("max_latency_ms", "-1", "max_latency_ms='-1' must be a positive finite number"),
        ("max_latency_ms", "0", "max_latency_ms='0' must be a positive"),
        ("max_size_mib", "ten", "max_size_mib='ten' is not a number"),
        ("max_params", "nan", "max_params='nan' must be a positive finite"),
        ("max_flops", "inf", "max_flops='inf' must be a positive finite"),
    ],
)
def test_bad_bounds_are_refused_naming_the_field(field: str, text: str, fragment: str) -> None:
    with pytest.raises(ParameterError, match=fragment):
        Budget.parse(**{field: text})


def test_text_becomes_numbers_and_describes_itself() -> None:
    budget = Budget.parse(max_latency_ms="2.5", max_params="5e6")
    assert budget.given() == {"max_latency_ms": 2.5, "max_params": 5e6}
    assert budget.describe() == "latency <= 2.50 ms, parameters <= 5e+06 parameters"
    assert not Budget() and budget


def test_violations_and_constraints_are_hand_computed() -> None:
    budget = Budget(max_latency_ms=2.0, max_size_mib=20.0, max_flops=1.0e8)
    # latency 3.0 / 2.0 - 1 = 0.5; size 15 / 20 - 1 = -0.25 (inside); FLOPs 2e8 / 1e8 - 1 = 1.0
    assert budget.constraints(COST) == pytest.approx([0.5, -0.25, 1.0])
    assert budget.excess(COST) == pytest.approx({"max_latency_ms": 0.5, "max_flops": 1.0})
    assert budget.worst_excess(COST) == pytest.approx(1.0)
    reason = budget.violation(COST)
    assert reason == "outside the budget: latency 3.00 ms > 2.00 ms (max_latency_ms), FLOPs 2e+08 FLOPs > 1e+08 FLOPs (max_flops)"
    assert Budget(max_latency_ms=3.0).violation(COST) is None  # the bound itself is inside
    unmeasured = CandidateCost(1, 1.0, 1.0, None)
    assert Budget(max_latency_ms=3.0).constraints(unmeasured) == [math.inf]


def test_settings_pin_budget_and_cost_only_when_set() -> None:
    assert "max_latency_ms" not in RunSettings().to_dict() and "cost" not in RunSettings().to_dict()
    pinned = RunSettings(budget=Budget.parse(max_latency_ms="4"), cost="latency").to_dict()  # text, as the CLI passes it
    assert pinned["max_latency_ms"] == 4.0 and pinned["cost"] == "latency"
    assert RunSettings.from_dict(pinned).budget == Budget(max_latency_ms=4.0)
    with pytest.raises(ParameterError, match="cost='speed' is unknown"):
        RunSettings(cost="speed")
    with pytest.raises(ParameterError, match="max_size_mib='-3'"):
        Budget.parse(max_size_mib="-3")


def test_latency_table_round_trips() -> None:
    table = LatencyTable({"L1-H16-A2-I32-fp32": 0.5}, 2.0, 3.0, "cpu", 1, 24, 10, 0.1)
    assert LatencyTable.from_dict(table.to_dict()) == table
    assert table.latency("L1-H16-A2-I32-fp32") == 0.5 and table.latency("nope") is None


def test_a_speedup_is_a_latency_bound_against_the_teacher() -> None:
    assert Budget.parse(min_speedup="8").against(24.0) == Budget(max_latency_ms=3.0)
    assert Budget(max_latency_ms=2.0, min_speedup=8).against(24.0).max_latency_ms == 2.0  # the tighter bound wins
    assert Budget(min_speedup=4).describe() == "at least 4x faster than the teacher" and Budget(min_speedup=4)
    with pytest.raises(ParameterError, match="min_speedup='0'"):
        Budget.parse(min_speedup="0")
