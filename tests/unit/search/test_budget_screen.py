"""Which candidates a budget admits, hand-set latencies, and the one-line refusal of an impossible budget."""

from __future__ import annotations

import pytest

from bortnas.core.budget import Budget, LatencyTable
from bortnas.core.errors import InfeasibleBudgetError, UserInputError
from bortnas.core.space import ArchSpec, QuantMode, TeacherShape, parse_search_space
from bortnas.cost import param_count
from bortnas.search.budget_screen import BudgetScreen, refuse_simulated_latency
from bortnas.search.fptas_sampler import arch_sampler

SHAPE = TeacherShape(2, 32, 4, 64, vocab_size=40, max_positions=64, type_vocab_size=2)
SPACE = parse_search_space({"name": "tiny", "layers": [1, 2], "hidden": [16, 32], "heads": [2, 4], "ffn": [32, 64]}, "test")
# latency grows with layers and ffn only (hand-set, not measured): 1 ms per layer, +0.5 ms for ffn 64
TABLE = LatencyTable({c.key: c.layers + (0.5 if c.ffn == 64 else 0.0) for c in SPACE.candidates()}, 2.5, 3.0, "cpu", 1, 24, 10, 0.0)


def test_feasible_set_is_exactly_the_candidates_inside() -> None:
    screen = BudgetScreen(Budget(max_latency_ms=1.2), SHAPE, 24, TABLE)
    inside = screen.feasible(SPACE.candidates())
    assert inside and all(c.layers == 1 and c.ffn == 32 for c in inside)
    assert len(inside) == len([c for c in SPACE.candidates() if c.layers == 1 and c.ffn == 32])
    assert screen.reason(ArchSpec(2, 16, 2, 32)) == "outside the budget: latency 2.00 ms > 1.20 ms (max_latency_ms)"


def test_params_bound_uses_the_exact_count() -> None:
    small = ArchSpec(1, 16, 2, 32)
    limit = param_count(small, SHAPE).total
    screen = BudgetScreen(Budget(max_params=limit), SHAPE, 24, TABLE)
    # heads change no parameter count: both head counts of the smallest shape fit, nothing else does
    assert screen.feasible(SPACE.candidates()) == [small, ArchSpec(1, 16, 4, 32)]
    assert screen.reason(ArchSpec(1, 16, 2, 64)) is not None


def test_impossible_budget_names_the_cheapest_candidate() -> None:
    screen = BudgetScreen(Budget(max_latency_ms=0.4), SHAPE, 24, TABLE)
    with pytest.raises(
        InfeasibleBudgetError,
        match=r"no candidate of tiny.yaml meets the budget \(latency <= 0.40 ms\): the cheapest, "
        r"L1-H16-A2-I32-fp32, has latency 1.00 ms on cpu, 1 thread\(s\), batch 1 at 24 tokens",
    ):
        screen.check_any(list(SPACE.candidates()), "tiny.yaml")


def test_constraint_values_per_bound() -> None:
    screen = BudgetScreen(Budget(max_latency_ms=1.5, max_params=1e9), SHAPE, 24, TABLE)
    small, large = ArchSpec(1, 16, 2, 32), ArchSpec(2, 32, 4, 64)
    assert screen.constraints(small)["max_latency_ms"] == pytest.approx(1.0 / 1.5 - 1)
    assert screen.constraints(large)["max_latency_ms"] == pytest.approx(2.5 / 1.5 - 1)
    assert screen.constraints(small)["max_params"] == pytest.approx(param_count(small, SHAPE).total / 1e9 - 1)
    assert screen.constraints(ArchSpec(1, 16, 3, 32)) == {"max_latency_ms": 0.0, "max_params": 0.0}  # not a candidate


def test_fptas_plans_over_the_feasible_set_only() -> None:
    screen = BudgetScreen(Budget(max_latency_ms=1.2), SHAPE, 24, TABLE)
    feasible = screen.feasible(SPACE.candidates())
    plan = arch_sampler(SPACE, SHAPE, 24, 0.1, feasible)
    assert plan.representatives and set(plan.representatives) <= set(feasible)
    by_latency = arch_sampler(SPACE, SHAPE, 24, 0.1, feasible, cost="latency", table=TABLE)
    assert by_latency.i_max == 2.5 and set(by_latency.representatives) <= set(feasible)


def test_min_speedup_reads_the_teacher_from_the_same_table() -> None:
    # the table's teacher takes 3.0 ms: 2x faster is 1.5 ms, which only the 1-layer candidates meet
    screen = BudgetScreen(Budget(min_speedup=2), SHAPE, 24, TABLE)
    assert screen.budget == Budget(max_latency_ms=1.5)
    assert {c.layers for c in screen.feasible(SPACE.candidates())} == {1}
    assert screen.describe() == "latency <= 1.50 ms: 2x faster than the teacher's 3.00 ms"


def test_simulated_latencies_are_refused_for_latency_budgets_and_cost() -> None:
    modes = {QuantMode.FP32, QuantMode.BIBERT, QuantMode.BIT_W1A2}
    with pytest.raises(
        UserInputError,
        match=r"^max_latency_ms=3 and cost='latency' compare .* holds bibert, bit_w1a2, which .* bound max_size_mib / max_flops",
    ):
        refuse_simulated_latency(modes, Budget(max_latency_ms=3), "latency", "space.yaml")
    with pytest.raises(UserInputError, match=r"^min_speedup=4 compare"):
        refuse_simulated_latency(modes, Budget(min_speedup=4), "flops", "space.yaml")
    # modes whose latency is real, or bounds that read no latency, pass
    refuse_simulated_latency({QuantMode.FP32, QuantMode.INT8, QuantMode.BITNET158}, Budget(max_latency_ms=3), "latency", "space.yaml")
    refuse_simulated_latency(modes, Budget(max_size_mib=3), "flops", "space.yaml")
    refuse_simulated_latency(modes, Budget(), None, "space.yaml")
