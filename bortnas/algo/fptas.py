"""The FPTAS for optimal sub-architecture extraction (de Wynter 2020, used to pick Bort).

Pure layer: no torch, no I/O, no clock. The error of a candidate is the only expensive quantity;
it comes from an injected evaluator, called only for the candidates the scheme needs.

What the sources say, and the reading implemented here (docs/algorithms.md §2):

- [A] "partitioning the space every epsilon architectures, and picking the best of these
  partitioned architectures, returns an epsilon-optimal solution"; [P abstract] the result is
  within (1 - epsilon) of the optimum under the strong AB^nC property; the run time is
  O(|Xi| + |W*_T| (1 + |Theta||B||Xi| / (epsilon s^(3/2)))).
- [R] The partition. W(xi) = N(xi) / e(xi) with N(xi) = (1 - p/p_T)(1 - i/i_T), which is
  analytic. Candidates are put in geometric buckets of N: bucket k holds the candidates with
  (1 - eps)^(k+1) < N / N_max <= (1 - eps)^k, so within a bucket N varies by less than a factor
  (1 - eps). "Every epsilon" is read as this geometric partition (the knapsack-FPTAS way of
  rounding), not as every eps-th candidate of a list.
- [R] The ordering. The AB^nC property orders networks by size and gives "an ordering of the
  error across Xi": the larger network (larger p, then larger i) has the smaller surrogate error.
  So in each bucket only its largest member, the representative, needs an error estimate.
  Which member is "largest" is a key the caller may inject (`plan(size=...)`, default (p, i)):
  candidates that tie on p (the head count changes neither p nor FLOPs) are told apart by what
  they inherit from a teacher (`bortnas.search.strategies.ordering`).
- [R] The guarantee. Let xi* maximise W, in bucket B with representative r. Then e(r) <= e(xi*)
  (ordering) and N(r) > (1 - eps) N(xi*) (bucket width), so W(r) > (1 - eps) W(xi*), and the
  returned candidate, the argmax of W over the representatives, is at least as good.
  Evaluations: at most one per non-empty bucket, i.e. at most
  1 + floor(ln(N_max / N_min) / -ln(1 - eps)) = O(log(N_max/N_min) / eps), and never more than
  |Xi|. Candidates with N = 0 (as large as T in p or i) have W = 0 and are never evaluated.
- [R] Steps per candidate. The complexity term |Theta||B||Xi|/(eps s^(3/2)) is read as every
  evaluation running n = ceil(n0 / (eps * s^(3/2))) SGD steps (n0 a constant; s > 0 the
  smoothness parameter of the paper, 1 by default): n grows as 1/eps.
- [R] Hyperparameters. Each representative is trained once per theta in Theta and keeps its
  smallest error, as "W is maximised over theta for each xi" in Algorithm 1 lines 7-8.

If the ordering does not hold (a larger network has a larger error), the bound can fail:
`tests/unit/algo/test_fptas.py` builds such an instance and shows by how much.

The scheme runs as an Optuna sampler, `bortnas.search.fptas_sampler.FPTASSampler`: each
evaluation is a trial, so it resumes and spreads over workers.

Beyond the paper, `refinement` spends B more evaluations on bucket members after the
representatives (`FPTAS(refine=B)`, `bortnas search --fptas-refine B`), taking first the members with the highest
N(c) / e~(c), e~ an estimate of the error fitted to the errors measured so far (injected; the
default is the ordering's own bound, e~(c) = e(r) for the representative r of c's bucket: the
most a member can reach if the ordering holds). Where the ordering misjudged a member (a
smaller network with a smaller error), an estimate fitted across buckets ranks it up. With
`select` taking the argmax of W over everything evaluated, the answer is never worse than the
plain scheme's and is the exhaustive optimum once B covers every member; taken one at a time,
each chosen deterministically from what is known, a budget's evaluations are a prefix of every
larger budget's, so the answer is never worse with a larger B.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import Any, Generic, TypeVar

from bortnas.algo.objective import MIN_ERROR

Candidate = TypeVar("Candidate", bound=Hashable)
Theta = TypeVar("Theta")  # hyperparameters a candidate was trained with; `select` keeps each candidate's best

__all__ = [
    "ErrorModel",
    "FptasPlan",
    "FptasResult",
    "bound_estimate",
    "plan",
    "refinement",
    "select",
    "steps_for",
]


def steps_for(epsilon: float, n0: float, s: float = 1.0) -> int:
    """Training steps n = ceil(n0 / (epsilon * s^(3/2))) of every error estimate."""
    _check_epsilon(epsilon)
    if n0 <= 0 or s <= 0:
        raise ValueError(f"n0={n0} and s={s} must be positive.")
    return math.ceil(n0 / (epsilon * s**1.5))


def _check_epsilon(epsilon: float) -> None:
    if not 0.0 < epsilon < 1.0:
        raise ValueError(f"epsilon={epsilon} must be in (0, 1): e.g. 0.1 for a 90 % guarantee.")


@dataclasses.dataclass(frozen=True)
class FptasPlan(Generic[Candidate]):
    """Which candidates need an error estimate, decided from p and i alone."""

    epsilon: float
    p_max: float
    i_max: float
    buckets: tuple[tuple[Candidate, ...], ...]  # non-empty buckets, best N first; each sorted large to small (by `size`)
    representatives: tuple[Candidate, ...]  # one per bucket: its largest member
    excluded: tuple[Candidate, ...]  # N = 0: never better than W = 0
    evaluation_bound: int  # 1 + floor(ln(N_max / N_min) / -ln(1 - eps)), capped at |Xi|

    @property
    def guarantee(self) -> float:
        """The returned W is at least this fraction of the optimum (under the ordering)."""
        return 1.0 - self.epsilon


@dataclasses.dataclass(frozen=True)
class FptasResult(Generic[Candidate]):
    best: Candidate | None
    best_w: float
    w: dict[Candidate, float]  # W of every evaluated candidate
    errors: dict[Candidate, float]
    plan: FptasPlan[Candidate]
    steps: int

    @property
    def evaluations(self) -> int:
        return len(self.errors)


def numerator(p: float, i: float, p_max: float, i_max: float) -> float:
    """N = (1 - p/p_T)(1 - i/i_T): the analytic part of W."""
    return (1.0 - p / p_max) * (1.0 - i / i_max)


def plan(
    candidates: Sequence[Candidate],
    p: Callable[[Candidate], float],
    i: Callable[[Candidate], float],
    epsilon: float,
    p_max: float | None = None,
    i_max: float | None = None,
    size: Callable[[Candidate], Any] | None = None,
) -> FptasPlan[Candidate]:
    """Partition `candidates` into (1 - epsilon)-wide buckets of N and pick each bucket's representative.

    `p_max` and `i_max` are p and i of the maximum point T (default: the largest over `candidates`).
    The representative of a bucket is its largest member by `size` (a sort key; default (p, i)):
    under the AB^nC ordering, the one with the smallest error.

    Raises:
        ValueError: epsilon outside (0, 1), no candidates, or a non-positive p_max / i_max.
    """
    _check_epsilon(epsilon)
    if not candidates:
        raise ValueError("the space has no candidates.")
    costs = {c: (float(p(c)), float(i(c))) for c in candidates}
    p_top = max(v[0] for v in costs.values()) if p_max is None else p_max
    i_top = max(v[1] for v in costs.values()) if i_max is None else i_max
    if p_top <= 0 or i_top <= 0:
        raise ValueError(f"p(T)={p_top} and i(T)={i_top} must be positive.")
    scored = {c: numerator(pc, ic, p_top, i_top) for c, (pc, ic) in costs.items()}
    # N <= 0 when a candidate is at least as large as T in p or i (both larger makes the product positive, but no better)
    positive = [c for c in candidates if scored[c] > 0.0 and costs[c][0] < p_top and costs[c][1] < i_top]
    kept = set(positive)
    excluded = tuple(c for c in candidates if c not in kept)
    if not positive:
        return FptasPlan(epsilon, p_top, i_top, (), (), excluded, 0)
    n_max = max(scored[c] for c in positive)
    n_min = min(scored[c] for c in positive)
    log_step = -math.log1p(-epsilon)
    grouped: dict[int, list[Candidate]] = {}
    for c in positive:
        # tiny tolerance so a ratio of exactly (1 - eps)^k lands in bucket k, not k + 1
        k = math.floor(-math.log(scored[c] / n_max) / log_step + 1e-12)
        grouped.setdefault(k, []).append(c)
    rank: Callable[[Candidate], Any] = (lambda c: costs[c]) if size is None else size
    buckets = tuple(tuple(sorted(grouped[k], key=rank, reverse=True)) for k in sorted(grouped))
    bound = min(len(positive), 1 + math.floor(math.log(n_max / n_min) / log_step + 1e-12))
    return FptasPlan(
        epsilon=epsilon,
        p_max=p_top,
        i_max=i_top,
        buckets=buckets,
        representatives=tuple(b[0] for b in buckets),
        excluded=excluded,
        evaluation_bound=bound,
    )


# Fits an error estimate to the errors measured so far: candidate -> estimated error.
ErrorModel = Callable[[Mapping[Candidate, float]], Callable[[Candidate], float]]


def bound_estimate(the_plan: FptasPlan[Candidate], errors: Mapping[Candidate, float]) -> Callable[[Candidate], float]:
    """The ordering's own estimate: a member's error is its representative's (the lowest the ordering
    allows it); a member of a bucket whose representative has no error gets 1."""
    rep = {c: bucket[0] for bucket in the_plan.buckets for c in bucket}
    return lambda c: errors.get(rep[c], 1.0)


def refinement(
    the_plan: FptasPlan[Candidate],
    n: Callable[[Candidate], float],
    errors: Mapping[Candidate, float],
    count: int,
    model: ErrorModel[Candidate] | None = None,
) -> list[Candidate]:
    """The next `count` bucket members to evaluate (module docstring), given every error so far:
    the unevaluated members by N(c) / estimated e(c), highest first; the estimate is `model`
    fitted to `errors` (default: `bound_estimate`). Ties keep the buckets' order. Deterministic
    in its inputs, so evaluating them one batch at a time makes each budget's evaluations a
    prefix of a larger budget's.

    Raises:
        ValueError: a negative count.
    """
    if count < 0:
        raise ValueError(f"count={count} must be >= 0.")
    estimate = bound_estimate(the_plan, errors) if model is None else model(errors)
    members = [c for bucket in the_plan.buckets for c in bucket[1:] if c not in errors]
    ranked = sorted(enumerate(members), key=lambda kc: (-n(kc[1]) / max(estimate(kc[1]), MIN_ERROR), kc[0]))
    return [c for _, c in ranked[:count]]


def select(
    the_plan: FptasPlan[Candidate],
    p: Callable[[Candidate], float],
    i: Callable[[Candidate], float],
    errors: Mapping[tuple[Candidate, Theta], float],
    steps: int,
) -> FptasResult[Candidate]:
    """The scheme's answer from the errors measured so far: each evaluated candidate keeps its
    smallest error over the thetas it was trained with (Algorithm 1 maximises W over theta per
    candidate), and the argmax-W one is returned: a representative, or a member a `refinement`
    evaluated. Pairs of `errors` whose candidate is in no bucket are ignored; a candidate without
    any error (a failed evaluation) is left out.
    """
    best_error: dict[Candidate, float] = {}
    members = {c for bucket in the_plan.buckets for c in bucket}
    for (c, _), e in errors.items():
        if c in members:
            best_error[c] = min(e, best_error.get(c, e))
    w = {c: numerator(p(c), i(c), the_plan.p_max, the_plan.i_max) / max(e, MIN_ERROR) for c, e in best_error.items()}
    best = max(w, key=lambda c: w[c]) if w else None
    return FptasResult(best=best, best_w=w[best] if best is not None else 0.0, w=w, errors=best_error, plan=the_plan, steps=steps)
