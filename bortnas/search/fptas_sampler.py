"""The FPTAS as an Optuna sampler, and how bortnas applies it to a search space.

Search layer, torch-free. `FPTASSampler` wraps the pure scheme of `bortnas.algo.fptas` (the
partition of a finite candidate set into (1 - epsilon)-wide buckets of N = (1 - p/p_T)(1 - i/i_T),
one representative per bucket, the argmax of W = N / e over what was evaluated) as a real
`optuna.samplers.BaseSampler`: any study over a finite set, with the user's own cost functions
and objective, can use it, and `bortnas.search` uses it for the architecture spaces.

It proposes the representatives in bucket order (best N first) and, with `refine=B`, B more
bucket members ranked by N(c) / e~(c), where e~ is an error model fitted to every error finished
so far (`bortnas.algo.fptas.refinement`). Proposals are re-read from the study on every trial, so
several workers on one storage share the plan, and a resumed study continues it.

`arch_sampler` builds the sampler bortnas runs on an `ArchSpec` space: p is the candidate's
non-embedding weight bits, i its FLOP-equivalents (or the study's measured latency), the bucket
representative the larger network (`ordering`), and the error model log-linear in the widths
(`error_model`).
"""

from __future__ import annotations

import dataclasses
import math
import statistics
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import numpy
import optuna
from optuna.trial import FrozenTrial, TrialState

from bortnas.algo import fptas
from bortnas.algo.objective import MIN_ERROR
from bortnas.core.budget import LatencyTable
from bortnas.core.errors import UserInputError
from bortnas.core.space import ArchSpec, SearchSpace, TeacherShape
from bortnas.cost.bits import price
from bortnas.search.ordered import OrderedSampler

__all__ = [
    "ERROR_MODEL_RIDGE",
    "CandidateErrorModel",
    "FPTASResult",
    "FPTASSampler",
    "arch_sampler",
    "error_model",
    "features",
    "head_mismatch",
    "inference_term",
    "ordering",
]

C = TypeVar("C")

# Fits an error estimate to the (candidate, error) pairs measured so far; returns candidate -> estimated error.
CandidateErrorModel = Callable[[Sequence[tuple[C, float]]], Callable[[C], float]]


@dataclasses.dataclass(frozen=True)
class FPTASResult(Generic[C]):
    """The scheme's answer from a study: the argmax-W candidate among those evaluated.

    Attributes:
        best: the candidate with the largest W (None before any evaluation finished).
        best_w: its W = N / max(e, 1e-7).
        evaluated: every evaluated candidate with its W, in trial order.
        guarantee: W(best) >= guarantee * the optimum over the set, if the ordering holds.
    """

    best: C | None
    best_w: float
    evaluated: tuple[tuple[C, float], ...]
    guarantee: float


class FPTASSampler(OrderedSampler[C]):
    """The FPTAS of de Wynter (2020) over a finite candidate set, as an Optuna sampler.

    The objective reports the candidate's error (its value, to minimise, by default), and the
    sampler proposes only the candidates the scheme needs: each bucket's representative, then
    `refine` more members. Pass `n_trials=sampler.n_evaluations` to `study.optimize`, or let the
    sampler stop the optimisation once they are done. `result(study)` is the answer, with at
    least `guarantee` times the optimal W when a larger network (by `size`) never has a larger error.

    Args:
        candidates: the finite set (any objects; mappings of parameter name to value by default).
        p: a candidate's size (e.g. parameters or bits); p of the maximum point is `p_max`.
        i: a candidate's inference cost (FLOPs, latency); that of the maximum point is `i_max`.
        epsilon: bucket width, in (0, 1): the guarantee is 1 - epsilon.
        params: a candidate's Optuna parameters (default: the candidate itself, a mapping).
        error: a finished trial's error in [0, 1] (default: its value).
        refine: bucket members evaluated after the representatives, ranked by `error_model`.
        p_max: p of the maximum point T (default: the largest p of the set).
        i_max: i of T (default: the largest i of the set).
        size: the "larger network" sort key that picks a bucket's representative (default (p, i)).
        error_model: estimates errors from the (candidate, error) pairs so far, for the refinement
            (default: a member's error is its representative's, the ordering's bound).
        seed: seeds the random fallback for parameters a candidate does not define.

    Raises:
        ValueError: epsilon outside (0, 1), a negative `refine`, an empty set, candidates with the
            same parameters, or non-positive p(T) / i(T).

    Example:
        >>> import optuna
        >>> from bortnas import FPTASSampler
        >>> grid = [{"width": w, "depth": d} for w in (64, 128, 256) for d in (1, 2, 4)]
        >>> sampler = FPTASSampler(grid, p=lambda c: c["width"] * c["depth"], i=lambda c: c["depth"], epsilon=0.2, p_max=2048, i_max=8)
        >>> study = optuna.create_study(sampler=sampler)
        >>> def objective(trial):
        ...     width = trial.suggest_categorical("width", [64, 128, 256])
        ...     depth = trial.suggest_categorical("depth", [1, 2, 4])
        ...     return 1.0 / (1 + width * depth / 64)  # the error
        >>> study.optimize(objective, n_trials=sampler.n_evaluations)
        >>> sampler.n_evaluations, sampler.result(study).best
        (5, {'width': 256, 'depth': 2})
    """

    def __init__(
        self,
        candidates: Sequence[C],
        p: Callable[[C], float],
        i: Callable[[C], float],
        epsilon: float = 0.1,
        *,
        params: Callable[[C], Mapping[str, Any]] | None = None,
        error: Callable[[FrozenTrial], float] | None = None,
        refine: int = 0,
        p_max: float | None = None,
        i_max: float | None = None,
        size: Callable[[C], Any] | None = None,
        error_model: CandidateErrorModel[C] | None = None,
        seed: int | None = None,
    ) -> None:
        super().__init__(candidates, params, seed)
        if refine < 0:
            raise ValueError(f"refine={refine} must be >= 0.")
        self._p = [float(p(c)) for c in self._candidates]
        self._i = [float(i(c)) for c in self._candidates]
        cands = self._candidates
        self._plan = fptas.plan(
            list(range(len(cands))),
            lambda k: self._p[k],
            lambda k: self._i[k],
            epsilon,
            p_max,
            i_max,
            size=None if size is None else (lambda k: size(cands[k])),
        )
        self._error = error if error is not None else _trial_value
        self._refine = refine
        self._error_model = error_model

    @property
    def epsilon(self) -> float:
        return self._plan.epsilon

    @property
    def p_max(self) -> float:
        """p of the maximum point T, W's normaliser of size."""
        return self._plan.p_max

    @property
    def i_max(self) -> float:
        """i of the maximum point T, W's normaliser of inference cost."""
        return self._plan.i_max

    @property
    def guarantee(self) -> float:
        """1 - epsilon: the returned W is at least this fraction of the optimum (under the ordering)."""
        return self._plan.guarantee

    @property
    def representatives(self) -> list[C]:
        """One candidate per bucket, best N first: what the scheme evaluates."""
        return [self._candidates[k] for k in self._plan.representatives]

    @property
    def buckets(self) -> list[list[C]]:
        """The non-empty buckets, best N first, each largest member first."""
        return [[self._candidates[k] for k in bucket] for bucket in self._plan.buckets]

    @property
    def excluded(self) -> list[C]:
        """Candidates with N = 0 (as large as T in p or i): W = 0, never evaluated."""
        return [self._candidates[k] for k in self._plan.excluded]

    @property
    def evaluation_bound(self) -> int:
        """1 + floor(ln(N_max / N_min) / -ln(1 - epsilon)), capped at the set's size: the most
        representatives any set with this N range can have."""
        return self._plan.evaluation_bound

    @property
    def n_evaluations(self) -> int:
        """How many candidates the sampler proposes: the representatives plus `refine` members."""
        return self.target()

    def target(self) -> int:
        members = sum(len(b) for b in self._plan.buckets)
        return min(len(self._plan.representatives) + self._refine, members)

    def numerator(self, candidate: C) -> float:
        """N = (1 - p/p_T)(1 - i/i_T) of a candidate: the analytic part of W."""
        k = self._position(candidate)
        return fptas.numerator(self._p[k], self._i[k], self._plan.p_max, self._plan.i_max)

    def order_length(self, study: optuna.Study) -> int:
        members = sum(len(b) for b in self._plan.buckets)
        return members if self._refine else len(self._plan.representatives)

    def order_indices(self, study: optuna.Study) -> list[int]:
        reps = list(self._plan.representatives)
        if not self._refine:
            return reps
        members = sum(len(b) - 1 for b in self._plan.buckets)
        return reps + self._refinement(self._errors(study), members)

    def next_members(self, errors: Sequence[tuple[C, float]], count: int) -> list[C]:
        """The `count` bucket members the refinement evaluates next, given the errors measured so far:
        the unevaluated ones by N(c) / e~(c), highest first (`bortnas.algo.fptas.refinement`)."""
        by_index = {self._position(c): e for c, e in errors}
        return [self._candidates[k] for k in self._refinement(by_index, count)]

    def _refinement(self, errors: Mapping[int, float], count: int) -> list[int]:
        n = lambda k: fptas.numerator(self._p[k], self._i[k], self._plan.p_max, self._plan.i_max)
        return fptas.refinement(self._plan, n, errors, count, self._index_model())

    def result(self, study: optuna.Study) -> FPTASResult[C]:
        """The argmax-W candidate over the study's finished evaluations (representatives and members)."""
        errors = self._errors(study)
        chosen = fptas.select(self._plan, lambda k: self._p[k], lambda k: self._i[k], {(k, None): e for k, e in errors.items()}, 0)
        best = None if chosen.best is None else self._candidates[chosen.best]
        evaluated = tuple((self._candidates[k], chosen.w[k]) for k in errors if k in chosen.w)
        return FPTASResult(best=best, best_w=chosen.best_w, evaluated=evaluated, guarantee=self.guarantee)

    def _errors(self, study: optuna.Study) -> dict[int, float]:
        """Candidate index -> its smallest finished error, in trial order."""
        errors: dict[int, float] = {}
        for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            k = self._index_of(trial)
            if k is None:
                continue
            e = self._error(trial)
            errors[k] = min(e, errors.get(k, e))
        return errors

    def _position(self, candidate: C) -> int:
        for k, c in enumerate(self._candidates):
            if c is candidate or c == candidate:
                return k
        raise KeyError(f"{candidate!r} is not one of the sampler's candidates.")

    def _index_model(self) -> fptas.ErrorModel[int] | None:
        user = self._error_model
        if user is None:
            return None
        cands = self._candidates

        def fit(errors: Mapping[int, float]) -> Callable[[int], float]:
            estimate = user([(cands[k], e) for k, e in errors.items()])
            return lambda k: estimate(cands[k])

        return fit


def _trial_value(trial: FrozenTrial) -> float:
    if trial.value is None:
        raise ValueError(f"trial {trial.number} has no single value: pass error=... to FPTASSampler to read its error.")
    return float(trial.value)


# --- bortnas's architecture spaces


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
        raise UserInputError("cost='latency' needs the study's latency table, and this study has none: start a new study.")
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


def features(spec: ArchSpec, shape: TeacherShape) -> list[float]:
    """What the refinement's error model regresses log error on: log2 of each width and the depth,
    the head-size mismatch and log2 of the weight bits."""
    bits = spec.quant.config.weight_bits
    return [1.0, math.log2(spec.hidden), math.log2(spec.layers), math.log2(spec.ffn), head_mismatch(spec, shape), math.log2(bits)]


ERROR_MODEL_RIDGE = 1e-2  # shrinks the fit while few errors are known (the first refinement sees only the representatives)


def error_model(shape: TeacherShape) -> CandidateErrorModel[ArchSpec]:
    """A log-linear error estimate across buckets, refitted to every error measured so far:
    log e = features(c) . beta, beta by ridge least squares, capped at the largest error measured.

    Why across buckets: on the reviews table the ordering's worst misjudgements are between shapes
    (a deep, narrow representative that stays at the majority class beside a shallow, full-width
    member 25 % better), which a fit over every measured error sees and a representative's own
    error does not. Why the cap: a trained classifier ends no worse than predicting the majority
    class, and the worst errors measured are already there, but the fit extrapolates the smallest
    candidates above it, which buries exactly the candidates whose W is largest when errors tie
    (on the BoolQ table the optimum is the smallest candidate; at epsilon 0.2, uncapped, 16
    evaluations reach it, capped 10; docs/benchmarks/search-efficiency.md)."""

    def fit(errors: Sequence[tuple[ArchSpec, float]]) -> Callable[[ArchSpec], float]:
        if len(errors) < 2:
            mean = statistics.fmean(e for _, e in errors) if errors else 1.0
            return lambda c: mean
        x = numpy.array([features(c, shape) for c, _ in errors])
        y = numpy.log(numpy.maximum(numpy.array([e for _, e in errors]), MIN_ERROR))
        beta = numpy.linalg.solve(x.T @ x + ERROR_MODEL_RIDGE * numpy.eye(x.shape[1]), x.T @ y)
        worst = max(e for _, e in errors)
        return lambda c: min(math.exp(float(numpy.dot(features(c, shape), beta))), worst)

    return fit


def arch_params(spec: ArchSpec) -> dict[str, Any]:
    """A candidate's Optuna parameters: the study's schema (`bortnas.search.strategies.distributions`)."""
    return spec.to_dict()


def arch_sampler(
    space: SearchSpace,
    shape: TeacherShape,
    seq_len: int,
    epsilon: float,
    candidates: Sequence[ArchSpec] | None = None,
    cost: str = "flops",
    table: LatencyTable | None = None,
    refine: int = 0,
    seed: int | None = None,
) -> FPTASSampler[ArchSpec]:
    """The FPTAS over `candidates` (default: the whole space; a budget passes its feasible set),
    with p the non-embedding weight bits and i from `inference_term`, both normalised by the
    space's maximum point T; each bucket is represented by its largest member in `ordering`, and
    the refinement ranks members with `error_model`. A trial's error is its `error` attribute.

    Raises:
        UserInputError: cost "latency" without a latency table.
        ValueError: epsilon outside (0, 1), or an empty candidate set.
    """
    i, i_max = inference_term(space, shape, seq_len, cost, table)
    return FPTASSampler(
        list(space.candidates()) if candidates is None else list(candidates),
        p=lambda c: price(c, shape, seq_len).p,
        i=i,
        epsilon=epsilon,
        params=arch_params,
        error=lambda t: float(t.user_attrs["error"]),
        refine=refine,
        p_max=price(space.maximum_point, shape, seq_len).p,
        i_max=i_max,
        size=ordering(shape, seq_len),
        error_model=error_model(shape),
        seed=seed,
    )
