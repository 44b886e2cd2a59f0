"""Strategies: Optuna samplers over the candidate dimensions, and the FPTAS plan.

The samplers propose adaptively; FPTAS decides every candidate it will evaluate from p and i
alone (`fptas_plan`), and the runner evaluates those as trials of the same study.
"""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy
import optuna

from bortnas.algo import fptas
from bortnas.algo.objective import MIN_ERROR
from bortnas.core.budget import LatencyTable
from bortnas.core.errors import UserInputError
from bortnas.core.settings import STRATEGIES, check_epsilon
from bortnas.core.space import DIMENSIONS, ArchSpec, SearchSpace, TeacherShape
from bortnas.cost.bits import price
from bortnas.search.records import TrialRecord, p_bits

__all__ = [
    "STRATEGIES",
    "describe_plan",
    "distributions",
    "error_model",
    "features",
    "fptas_plan",
    "fptas_refinement",
    "fptas_result",
    "grid_order",
    "head_mismatch",
    "make_sampler",
    "ordering",
]


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """One categorical distribution per dimension (and quant), shared by every strategy."""
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        key: optuna.distributions.CategoricalDistribution(list(getattr(space, key))) for key in DIMENSIONS
    }
    dists["quant"] = optuna.distributions.CategoricalDistribution([q.value for q in space.quant])
    return dists


def make_sampler(strategy: str, space: SearchSpace, seed: int, n_trials: int) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of `strategy`. Under a budget, TPE and NSGA-II learn the feasible region from
    the constraint values each proposal carries (`bortnas.search.claims.claim_asked`).

    Raises:
        UserInputError: unknown strategy name.
    """
    if strategy in ("fptas", "grid"):
        # These enqueue their candidates (`proposals`); the sampler never chooses one.
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if strategy == "tpe":
        # constant liar: with many workers, TPE treats running trials as poor, so it does not propose the same region twice
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(10, max(2, n_trials // 3)), constant_liar=True)
    if strategy == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(50, n_trials // 2)))
    raise UserInputError(f"--strategy {strategy!r} is unknown: use one of {', '.join(STRATEGIES)}.")


def grid_order(space: SearchSpace, seed: int) -> list[ArchSpec]:
    """Every valid candidate once, in an order shuffled with `seed` (as Optuna's GridSampler visits its grid).

    Optuna's GridSampler is not used itself: it proposes the invalid combinations too, and it
    stops the study from inside `tell`, which an ask/tell loop cannot handle.
    """
    order = list(space.candidates())
    random.Random(seed).shuffle(order)
    return order


def inference_term(
    space: SearchSpace, shape: TeacherShape, seq_len: int, cost: str = "flops", table: LatencyTable | None = None
) -> tuple[Callable[[ArchSpec], float], float]:
    """W's i as a function of the candidate, and its value at the maximum point T: FLOP-equivalents
    at `seq_len` ("flops"), or the latency table's milliseconds ("latency").

    Raises:
        UserInputError: cost "latency" without a latency table.
    """
    if cost == "flops":
        return (lambda c: price(c, shape, seq_len).i), price(space.maximum_point, shape, seq_len).i
    if table is None:
        raise UserInputError("--cost latency needs the study's latency table, and this study has none: start a new --study.")
    return (lambda c: table.ms[c.key]), table.maximum_point_ms


def head_mismatch(spec: ArchSpec, shape: TeacherShape) -> float:
    """How far the candidate's head size is from the teacher's, in octaves: 0 when every kept head
    is one of the teacher's heads whole, 1 when heads are halved (or doubled with zero padding)."""
    return abs(math.log2(spec.head_size / (shape.hidden // shape.heads)))


def ordering(shape: TeacherShape, seq_len: int) -> Callable[[ArchSpec], tuple[float, float, float]]:
    """The FPTAS's "larger network" (its bucket representative): larger p first; among equal p
    (the head count changes neither p nor FLOPs), the head size closer to the teacher's, then larger i.

    Why heads before i: a cut keeps the teacher's heads whole only at the teacher's head size.
    On the committed 72-candidate table (`benchmarks/results/bench.db`), of the 21 pairs that
    differ only in heads (6 or 12) and whose errors differ, the variant at the teacher's head
    size had the smaller error in 18, at hidden 192 (6 heads) as at 384 (12 heads).
    """

    def key(c: ArchSpec) -> tuple[float, float, float]:
        cost = price(c, shape, seq_len)
        return (cost.p, -head_mismatch(c, shape), cost.i)

    return key


def fptas_plan(
    space: SearchSpace,
    shape: TeacherShape,
    seq_len: int,
    epsilon: float,
    candidates: Sequence[ArchSpec] | None = None,
    cost: str = "flops",
    table: LatencyTable | None = None,
) -> fptas.FptasPlan[ArchSpec]:
    """The FPTAS partition of `candidates` (default: the whole space; a budget passes its feasible
    set) with W's p (non-embedding bits) and i (`inference_term`), normalised by the space's T;
    each bucket is represented by its largest member in `ordering`.

    Raises:
        UserInputError: epsilon outside (0, 1), or cost "latency" without a table.
    """
    check_epsilon(epsilon)
    top = space.maximum_point
    i, i_max = inference_term(space, shape, seq_len, cost, table)
    return fptas.plan(
        list(space.candidates()) if candidates is None else list(candidates),
        lambda c: price(c, shape, seq_len).p,
        i,
        epsilon,
        p_max=price(top, shape, seq_len).p,
        i_max=i_max,
        size=ordering(shape, seq_len),
    )


def features(spec: ArchSpec, shape: TeacherShape) -> list[float]:
    """What the refinement's error model regresses log error on: log2 of each width and the depth,
    the head-size mismatch and log2 of the weight bits."""
    bits = spec.quant.config.weight_bits
    return [1.0, math.log2(spec.hidden), math.log2(spec.layers), math.log2(spec.ffn), head_mismatch(spec, shape), math.log2(bits)]


ERROR_MODEL_RIDGE = 1e-2  # shrinks the fit while few errors are known (the first refinement sees only the representatives)


def error_model(shape: TeacherShape) -> fptas.ErrorModel[ArchSpec]:
    """A log-linear error estimate across buckets, refitted to every error measured so far:
    log e = features(c) . beta, beta by ridge least squares, capped at the largest error measured.

    Why across buckets: on the reviews table the ordering's worst misjudgements are between shapes
    (a deep, narrow representative that stays at the majority class beside a shallow, full-width
    member 25 % better), which a fit over every measured error sees and a representative's own
    error does not. Why the cap: a trained classifier ends no worse than predicting the majority
    class, and the worst errors measured are already there, but the fit extrapolates the smallest
    candidates above it, which buries exactly the candidates whose W is largest when errors tie
    (on the BoolQ table the optimum is the smallest candidate; at epsilon 0.2, uncapped, 16
    evaluations reach it, capped 10, README "Search efficiency")."""

    def fit(errors: Mapping[ArchSpec, float]) -> Callable[[ArchSpec], float]:
        if len(errors) < 2:
            mean = statistics.fmean(errors.values()) if errors else 1.0
            return lambda c: mean
        x = numpy.array([features(c, shape) for c in errors])
        y = numpy.log(numpy.maximum(numpy.array(list(errors.values())), MIN_ERROR))
        beta = numpy.linalg.solve(x.T @ x + ERROR_MODEL_RIDGE * numpy.eye(x.shape[1]), x.T @ y)
        worst = max(errors.values())
        return lambda c: min(math.exp(float(numpy.dot(features(c, shape), beta))), worst)

    return fit


def fptas_refinement(
    plan: fptas.FptasPlan[ArchSpec],
    space: SearchSpace,
    shape: TeacherShape,
    seq_len: int,
    errors: Mapping[ArchSpec, float],
    count: int,
    cost: str = "flops",
    table: LatencyTable | None = None,
) -> list[ArchSpec]:
    """The next `count` bucket members to evaluate (`bortnas.algo.fptas.refinement` with `error_model`),
    with the plan's N under the study's cost."""
    i, _ = inference_term(space, shape, seq_len, cost, table)
    n = lambda c: fptas.numerator(price(c, shape, seq_len).p, i(c), plan.p_max, plan.i_max)
    return fptas.refinement(plan, n, errors, count, error_model(shape))


def fptas_result(
    plan: fptas.FptasPlan[ArchSpec], records: Sequence[TrialRecord], steps: int, cost: str = "flops"
) -> fptas.FptasResult[ArchSpec]:
    """The FPTAS's answer (`bortnas.algo.fptas.select`) from the finished trials of its study.

    Each finished trial is one (candidate, theta) evaluation; the search trains one theta (the
    study's settings), so a trial's stored p, i (FLOPs, or its table latency under cost
    "latency") and error are all the scheme needs.
    """
    i_key = "latency_table_ms" if cost == "latency" else "flops"
    costs = {r.spec: (p_bits(r.attrs), r.attrs[i_key]) for r in records if r.scored and r.spec is not None}
    errors = {(r.spec, None): r.attrs["error"] for r in records if r.scored and r.spec is not None}
    return fptas.select(plan, lambda c: costs[c][0], lambda c: costs[c][1], errors, steps)


def describe_plan(plan: fptas.FptasPlan[ArchSpec], epsilon: float, n0: float, s: float) -> dict[str, Any]:
    """The FPTAS settings and guarantee, as stored with the study."""
    return {
        "epsilon": epsilon,
        "n0": n0,
        "s": s,
        "steps": fptas.steps_for(epsilon, n0, s),
        "guarantee": plan.guarantee,
        "buckets": len(plan.buckets),
        "evaluation_bound": plan.evaluation_bound,
        "representatives": [c.key for c in plan.representatives],
        "excluded": len(plan.excluded),
    }
