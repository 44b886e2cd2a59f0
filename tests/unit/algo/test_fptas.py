"""The FPTAS guarantee on synthetic instances: (1 - eps) of the exhaustive optimum, few evaluations.

The scheme runs as the product runs it: `FPTASSampler` in a plain Optuna study whose objective
returns each candidate's error (`bortnas.algo.fptas` holds the pure plan, refinement and selection).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bortnas.algo import fptas
from bortnas.algo.objective import w_coefficient
from bortnas.search.fptas_sampler import FPTASResult, FPTASSampler

optuna.logging.set_verbosity(optuna.logging.WARNING)

Instance = tuple[list[int], dict[int, tuple[float, float]], dict[int, float]]


@st.composite
def ordered_instances(draw: st.DrawFn) -> Instance:
    """Candidates with random p, i and errors that never increase with (p, i): the AB^nC ordering."""
    n = draw(st.integers(min_value=1, max_value=60))
    sizes = draw(st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 10_000)), min_size=n, max_size=n, unique=True))
    order = sorted(range(n), key=lambda k: sizes[k])
    drops = draw(st.lists(st.floats(0.0, 0.05), min_size=n, max_size=n))
    start = draw(st.floats(0.3, 0.9))
    errors, e = {}, start
    for rank, k in enumerate(order):
        e = max(0.001, e - drops[rank])
        errors[k] = e
    return list(range(n)), {k: (float(sizes[k][0]), float(sizes[k][1])) for k in range(n)}, errors


def run(
    candidates: list[int],
    p: Callable[[int], float],
    i: Callable[[int], float],
    error: Callable[[int], float],
    epsilon: float,
    p_max: float,
    i_max: float,
    refine: int = 0,
    model: fptas.ErrorModel[int] | None = None,
) -> tuple[FPTASResult[dict[str, int]], FPTASSampler[dict[str, int]]]:
    """The scheme in a plain in-memory Optuna study: candidate k is the parameter {"c": k}."""
    by_index = None if model is None else (lambda pairs: _on_dicts(model({c["c"]: e for c, e in pairs})))
    sampler = FPTASSampler(
        [{"c": k} for k in candidates],
        p=lambda c: p(c["c"]),
        i=lambda c: i(c["c"]),
        epsilon=epsilon,
        p_max=p_max,
        i_max=i_max,
        refine=refine,
        error_model=by_index,
    )
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda trial: error(trial.suggest_categorical("c", candidates)), n_trials=sampler.n_evaluations)
    return sampler.result(study), sampler


def _on_dicts(estimate: Callable[[int], float]) -> Callable[[dict[str, int]], float]:
    return lambda c: estimate(c["c"])


def exhaustive(candidates: list[int], costs: dict[int, tuple[float, float]], errors: dict[int, float], p_max: float, i_max: float) -> float:
    return max(w_coefficient(*costs[c], errors[c], p_max, i_max) for c in candidates)


@settings(max_examples=150, deadline=None)
@given(instance=ordered_instances(), epsilon=st.sampled_from([0.01, 0.05, 0.1, 0.2, 0.3, 0.5]))
def test_guarantee_and_evaluation_bound_on_ordered_instances(instance: Instance, epsilon: float) -> None:
    candidates, costs, errors = instance
    p_max = max(c[0] for c in costs.values()) * 1.1
    i_max = max(c[1] for c in costs.values()) * 1.1
    calls = []

    def error(c: int) -> float:
        calls.append(c)
        return errors[c]

    result, sampler = run(candidates, lambda c: costs[c][0], lambda c: costs[c][1], error, epsilon, p_max, i_max)
    optimum = exhaustive(candidates, costs, errors, p_max, i_max)
    assert result.best_w >= (1 - epsilon) * optimum - 1e-12
    assert result.best_w <= optimum + 1e-12
    assert result.guarantee == 1 - epsilon
    assert len(result.evaluated) == len(calls) == len(set(calls)) <= sampler.evaluation_bound <= len(candidates)
    numerators = [fptas.numerator(*costs[c], p_max, i_max) for c in candidates]
    assert sampler.evaluation_bound <= 1 + math.log(max(numerators) / min(numerators)) / -math.log1p(-epsilon) + 1e-9


def test_buckets_by_hand() -> None:
    # N = 1 - p/10 with i_max huge: p = 1, 2, 3, 5 -> N = 0.9, 0.8, 0.7, 0.5; eps = 0.2 -> ratio to 0.9:
    # 1, 0.889, 0.778, 0.556 -> buckets k = 0, 0, 1, 2 (0.8^1 = 0.8, 0.8^2 = 0.64, 0.8^3 = 0.512)
    costs = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 5.0, "T": 10.0}
    the_plan = fptas.plan(list(costs), lambda c: costs[c], lambda c: 0.0 + (costs[c] == 10.0), 0.2, i_max=1e12)
    assert the_plan.buckets == (("b", "a"), ("c",), ("d",))
    assert the_plan.representatives == ("b", "c", "d")
    assert the_plan.excluded == ("T",)
    assert the_plan.evaluation_bound == 1 + math.floor(math.log(0.9 / 0.5) / -math.log(0.8))


def test_injected_size_picks_the_representative() -> None:
    # "a2" and "a" tie on p and i: the default key keeps input order ("a" first); a size key that
    # ranks "a2" larger makes it the representative, without moving any bucket boundary.
    costs = {"a": 2.0, "a2": 2.0, "c": 5.0, "T": 10.0}  # N = 0.8, 0.8, 0.5: buckets 0 and 2 at eps 0.2
    p = costs.__getitem__

    def i(c: str) -> float:
        return 0.0

    default = fptas.plan(list(costs), p, i, 0.2, i_max=1e12)
    ranked = fptas.plan(list(costs), p, i, 0.2, i_max=1e12, size=lambda c: (costs[c], c == "a2"))
    assert default.representatives == ("a", "c")
    assert ranked.representatives == ("a2", "c")
    assert [set(b) for b in ranked.buckets] == [set(b) for b in default.buckets]


def test_steps_grow_as_one_over_epsilon() -> None:
    assert fptas.steps_for(0.1, n0=6) == 60
    assert fptas.steps_for(0.05, n0=6) == 120
    assert fptas.steps_for(0.1, n0=6, s=4.0) == 8  # 6 / (0.1 * 8) = 7.5
    with pytest.raises(ValueError, match="epsilon=1.5 must be in"):
        fptas.steps_for(1.5, n0=6)


def test_select_keeps_each_candidates_smallest_error_over_thetas() -> None:
    # Algorithm 1 maximises W over theta per candidate: x trained with two thetas keeps its better error
    costs = {"x": 1.0, "y": 4.0}
    the_plan = fptas.plan(list(costs), costs.__getitem__, costs.__getitem__, 0.5, p_max=8, i_max=8)
    errors = {("x", 0.4): 0.4, ("x", 0.2): 0.2, ("y", 0.4): 0.3}
    result = fptas.select(the_plan, costs.__getitem__, costs.__getitem__, errors, steps=2)
    assert result.errors == {"x": 0.2, "y": 0.3}
    assert result.best == "x" and result.best_w == pytest.approx((1 - 1 / 8) ** 2 / 0.2)


def test_violating_the_ordering_can_break_the_bound() -> None:
    """When a larger candidate has a larger error, the representative misleads the scheme.

    a and b share a bucket (N = 0.9 and 0.8 with eps = 0.2); b is larger, so only b is
    evaluated. If b is much worse than a (against the ordering), the returned W is far below
    (1 - eps) of the optimum. This is the documented failure mode, not a bug.
    """
    costs = {"a": 1.0, "b": 2.0}
    errors = {"a": 0.05, "b": 0.5}
    names = list(costs)
    result, _ = run([0, 1], lambda k: costs[names[k]], lambda k: 0.0, lambda k: errors[names[k]], 0.2, 10, 1e12)
    optimum = max(fptas.numerator(costs[c], 0.0, 10, 1e12) / errors[c] for c in costs)
    assert result.best == {"c": 1} and len(result.evaluated) == 1
    assert result.best_w < (1 - 0.2) * optimum
    assert result.best_w == pytest.approx(0.8 / 0.5) and optimum == pytest.approx(0.9 / 0.05)


@st.composite
def any_instances(draw: st.DrawFn) -> Instance:
    """Candidates with random p, i and errors, with or without the AB^nC ordering."""
    if draw(st.booleans()):
        return draw(ordered_instances())
    n = draw(st.integers(min_value=1, max_value=40))
    sizes = draw(st.lists(st.tuples(st.integers(1, 10_000), st.integers(1, 10_000)), min_size=n, max_size=n, unique=True))
    errors = draw(st.lists(st.floats(0.001, 0.9), min_size=n, max_size=n))
    return list(range(n)), {k: (float(sizes[k][0]), float(sizes[k][1])) for k in range(n)}, dict(enumerate(errors))


def nearest(errors: Mapping[int, float]) -> Callable[[int], float]:
    """An error model for the tests: the error of the evaluated candidate with the nearest index."""
    return lambda c: errors[min(errors, key=lambda k: (abs(k - c), k))] if errors else 0.5


def refined(
    instance: Instance, epsilon: float, budget: int, model: fptas.ErrorModel[int] | None = None
) -> tuple[FPTASResult[dict[str, int]], list[int], float, int]:
    """The scheme with `budget` refinements: its result, the candidates evaluated in order, the
    exhaustive optimum, and how many bucket members there are."""
    candidates, costs, errors = instance
    p_max = max(c[0] for c in costs.values()) * 1.1
    i_max = max(c[1] for c in costs.values()) * 1.1
    calls: list[int] = []

    def error(c: int) -> float:
        calls.append(c)
        return errors[c]

    p, i = (lambda c: costs[c][0]), (lambda c: costs[c][1])
    result, sampler = run(candidates, p, i, error, epsilon, p_max, i_max, refine=budget, model=model)
    return result, calls, exhaustive(candidates, costs, errors, p_max, i_max), sum(len(b) for b in sampler.buckets)


@settings(max_examples=100, deadline=None)
@given(
    instance=any_instances(),
    epsilon=st.sampled_from([0.05, 0.1, 0.2, 0.5]),
    budget=st.integers(0, 50),
    model=st.sampled_from([None, nearest]),
)
def test_refinement_never_loses_and_reaches_the_optimum(
    instance: Instance, epsilon: float, budget: int, model: fptas.ErrorModel[int] | None
) -> None:
    plain, plain_calls, optimum, members = refined(instance, epsilon, 0)
    result, calls, _, _ = refined(instance, epsilon, budget, model)
    assert result.best_w >= plain.best_w  # never worse than the plain scheme
    assert calls[: len(plain_calls)] == plain_calls and len(calls) == len(set(calls))  # the representatives, then new members
    assert len(calls) == min(members, len(plain_calls) + budget)
    if budget >= members - len(plain_calls):  # B covers the space: the exhaustive optimum
        assert result.best_w == pytest.approx(optimum)
    bigger, bigger_calls, _, _ = refined(instance, epsilon, budget + 1, model)
    assert bigger_calls[: len(calls)] == calls  # a budget's evaluations are a prefix of a larger budget's
    assert bigger.best_w >= result.best_w  # so regret never grows with the budget


def test_refinement_order_by_hand() -> None:
    # eps 0.2, i_max huge so N = 1 - p/10: a (p 1, N 0.9) and b (p 2, N 0.8) share bucket 0 with b as
    # representative; c (p 3, N 0.7) and d (p 3.5, N 0.65) share bucket 1 with d representing.
    # e(b) = 0.5 and e(d) = 0.2: bounds a 0.9 / 0.5 = 1.8, c 0.7 / 0.2 = 3.5 -> c first, then a.
    costs = {"a": 1.0, "b": 2.0, "c": 3.0, "d": 3.5}
    the_plan = fptas.plan(list(costs), costs.__getitem__, lambda c: 0.0, 0.2, p_max=10, i_max=1e12)
    assert the_plan.representatives == ("b", "d")
    n = lambda c: 1 - costs[c] / 10
    assert fptas.refinement(the_plan, n, {"b": 0.5, "d": 0.2}, 5) == ["c", "a"]
    assert fptas.refinement(the_plan, n, {"b": 0.5, "d": 0.2}, 1) == ["c"]
    assert fptas.refinement(the_plan, n, {"d": 0.2}, 5) == ["c", "a"]  # b failed: its bucket comes last
    with pytest.raises(ValueError, match="count=-1"):
        fptas.refinement(the_plan, n, {}, -1)
    # a model fitted across buckets can put a member of a worse bucket first: here a's estimate 0.1 (W 9)
    assert fptas.refinement(the_plan, n, {"b": 0.5, "d": 0.2}, 2, lambda errors: {"a": 0.1, "c": 0.2}.__getitem__) == ["a", "c"]
