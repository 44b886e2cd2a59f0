"""Search strategies: how a search proposes candidates, each an Optuna sampler behind one interface.

Search layer, torch-free. A strategy is a frozen dataclass of its own knobs (`FPTAS(epsilon=0.1)`,
`TPE(n_trials=16)`), validated on construction. `sampler(problem)` builds the Optuna sampler of
one search; `target` says how many distinct candidates the search ends with, and `trial_steps`
how long each trains. FPTAS and Grid decide whole candidates in an order
(`bortnas.search.ordered.OrderedSampler`); the others are Optuna's samplers over the dimensions.
"""

from __future__ import annotations

import abc
import dataclasses
import random
from collections.abc import Sequence
from typing import Any, ClassVar

import optuna

from bortnas.algo import fptas
from bortnas.core.budget import LatencyTable
from bortnas.core.errors import ParameterError
from bortnas.core.settings import DEFAULT_TRIAL_STEPS
from bortnas.core.space import DIMENSIONS, ArchSpec, SearchSpace, TeacherShape
from bortnas.search.fptas_sampler import FPTASSampler, arch_params, arch_sampler
from bortnas.search.ordered import OrderedSampler

__all__ = [
    "FPTAS",
    "NSGA2",
    "STRATEGIES",
    "TPE",
    "Counted",
    "Grid",
    "GridOrderSampler",
    "RandomSearch",
    "SearchProblem",
    "Strategy",
    "distributions",
    "grid_order",
]


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """One categorical distribution per dimension (and quant), shared by every strategy: the study's schema."""
    dists: dict[str, optuna.distributions.BaseDistribution] = {
        key: optuna.distributions.CategoricalDistribution(list(getattr(space, key))) for key in DIMENSIONS
    }
    dists["quant"] = optuna.distributions.CategoricalDistribution([q.value for q in space.quant])
    return dists


@dataclasses.dataclass(frozen=True)
class SearchProblem:
    """What a strategy plans over: the space, the teacher's shape, the sequence length of FLOPs, the
    candidates inside the budget, W's inference term ("flops" or "latency", with the study's table)."""

    space: SearchSpace
    shape: TeacherShape
    seq_len: int
    feasible: tuple[ArchSpec, ...]
    cost: str = "flops"
    table: LatencyTable | None = None
    seed: int = 0


class Strategy(abc.ABC):
    """How a search proposes candidates. Subclasses are frozen dataclasses of their settings."""

    name: ClassVar[str]

    @abc.abstractmethod
    def sampler(self, problem: SearchProblem) -> optuna.samplers.BaseSampler:
        """The Optuna sampler of one search over `problem`."""

    @abc.abstractmethod
    def target(self, sampler: optuna.samplers.BaseSampler, problem: SearchProblem) -> int:
        """How many distinct finished candidates the search ends with."""

    def trial_steps(self, given: int) -> int:
        """Distillation steps of every trial, from the settings' `trial_steps`."""
        return given

    def describe(self, sampler: optuna.samplers.BaseSampler) -> dict[str, Any] | None:
        """What the study stores about the plan (None: nothing)."""
        return None


@dataclasses.dataclass(frozen=True)
class FPTAS(Strategy):
    """The FPTAS of de Wynter (2020): evaluate one representative per (1 - epsilon)-wide bucket of
    N = (1 - p/p_T)(1 - i/i_T), each for n = ceil(n0 / (epsilon * s^1.5)) steps, and return the
    argmax of W; W >= (1 - epsilon) times the space's optimum when larger networks have smaller errors.

    Args:
        epsilon: bucket width in (0, 1); smaller evaluates more candidates for longer.
        n0: the step constant of n.
        s: the smoothness parameter s of n.
        refine: bucket members evaluated after the representatives, best bound first (never a worse W).

    Raises:
        ParameterError: epsilon outside (0, 1), a non-positive n0 or s, or a negative refine.
    """

    epsilon: float = 0.1
    n0: float = 6.0
    s: float = 1.0
    refine: int = 0

    name: ClassVar[str] = "fptas"

    def __post_init__(self) -> None:
        if not 0.0 < self.epsilon < 1.0:
            raise ParameterError("epsilon", f"={self.epsilon} must be in (0, 1), e.g. 0.1 for a 90 % guarantee.")
        for name in ("n0", "s"):
            if not getattr(self, name) > 0:
                raise ParameterError(name, f"={getattr(self, name)} must be positive.")
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise ParameterError("refine", f"={self.refine!r} must be an integer >= 0.")

    @property
    def steps(self) -> int:
        """n = ceil(n0 / (epsilon * s^1.5)), the training steps of every evaluation."""
        return fptas.steps_for(self.epsilon, self.n0, self.s)

    def trial_steps(self, given: int) -> int:
        if given != DEFAULT_TRIAL_STEPS:
            raise ParameterError(
                "trial_steps",
                f"={given} does not apply to the FPTAS: its steps are n = ceil(n0 / (epsilon * s^1.5)) = {self.steps}; "
                "set epsilon or n0 instead.",
            )
        return self.steps

    def sampler(self, problem: SearchProblem) -> FPTASSampler[ArchSpec]:
        return arch_sampler(
            problem.space,
            problem.shape,
            problem.seq_len,
            self.epsilon,
            problem.feasible,
            problem.cost,
            problem.table,
            refine=self.refine,
            seed=problem.seed,
        )

    def target(self, sampler: optuna.samplers.BaseSampler, problem: SearchProblem) -> int:
        assert isinstance(sampler, FPTASSampler)
        return sampler.n_evaluations

    def describe(self, sampler: optuna.samplers.BaseSampler) -> dict[str, Any]:
        """The settings and guarantee stored with the study (attribute "fptas")."""
        assert isinstance(sampler, FPTASSampler)
        return {
            "epsilon": self.epsilon,
            "n0": self.n0,
            "s": self.s,
            "steps": self.steps,
            "guarantee": sampler.guarantee,
            "buckets": len(sampler.buckets),
            "evaluation_bound": sampler.evaluation_bound,
            "representatives": [c.key for c in sampler.representatives],
            "excluded": len(sampler.excluded),
        }


def grid_order(space: SearchSpace, seed: int) -> list[ArchSpec]:
    """Every valid candidate once, in an order shuffled with `seed` (as Optuna's GridSampler visits its grid).

    Optuna's GridSampler is not used itself: it proposes the invalid combinations too, and it
    stops the study from inside `tell`, which an ask/tell loop cannot handle.
    """
    order = list(space.candidates())
    random.Random(seed).shuffle(order)
    return order


class GridOrderSampler(OrderedSampler[ArchSpec]):
    """Walks `candidates` in `grid_order`, `n_trials` of them."""

    def __init__(self, space: SearchSpace, candidates: Sequence[ArchSpec], n_trials: int, seed: int) -> None:
        inside = set(candidates)
        ordered = [c for c in grid_order(space, seed) if c in inside]
        super().__init__(ordered, arch_params, seed)
        self._n_trials = min(n_trials, len(ordered))

    def order_indices(self, study: optuna.Study) -> list[int]:
        return list(range(len(self._candidates)))

    def target(self) -> int:
        return self._n_trials


@dataclasses.dataclass(frozen=True)
class Counted(Strategy):
    """A strategy that evaluates `n_trials` distinct candidates (or every one inside the budget, if fewer).

    Raises:
        ParameterError: a non-positive n_trials.
    """

    n_trials: int = 8

    def __post_init__(self) -> None:
        if isinstance(self.n_trials, bool) or not isinstance(self.n_trials, int) or self.n_trials <= 0:
            raise ParameterError("n_trials", f"={self.n_trials!r} must be a positive integer.")

    def target(self, sampler: optuna.samplers.BaseSampler, problem: SearchProblem) -> int:
        return min(self.n_trials, len(problem.feasible))


@dataclasses.dataclass(frozen=True)
class Grid(Counted):
    """Every candidate inside the budget once, in a seeded random order, `n_trials` of them."""

    name: ClassVar[str] = "grid"

    def sampler(self, problem: SearchProblem) -> GridOrderSampler:
        return GridOrderSampler(problem.space, problem.feasible, self.n_trials, problem.seed)


@dataclasses.dataclass(frozen=True)
class RandomSearch(Counted):
    """Optuna's RandomSampler over the dimensions until `n_trials` distinct candidates finished."""

    name: ClassVar[str] = "random"

    def sampler(self, problem: SearchProblem) -> optuna.samplers.BaseSampler:
        return optuna.samplers.RandomSampler(seed=problem.seed)


@dataclasses.dataclass(frozen=True)
class TPE(RandomSearch):
    """Optuna's TPESampler (constant liar, so parallel workers do not propose one region twice); under
    a budget it learns the feasible region from each proposal's constraint values."""

    name: ClassVar[str] = "tpe"

    def sampler(self, problem: SearchProblem) -> optuna.samplers.BaseSampler:
        return optuna.samplers.TPESampler(seed=problem.seed, n_startup_trials=min(10, max(2, self.n_trials // 3)), constant_liar=True)


@dataclasses.dataclass(frozen=True)
class NSGA2(RandomSearch):
    """Optuna's NSGAIISampler, with a population of n_trials / 2 (between 4 and 50)."""

    name: ClassVar[str] = "nsga2"

    def sampler(self, problem: SearchProblem) -> optuna.samplers.BaseSampler:
        return optuna.samplers.NSGAIISampler(seed=problem.seed, population_size=max(4, min(50, self.n_trials // 2)))


STRATEGIES: dict[str, type[Strategy]] = {s.name: s for s in (FPTAS, Grid, RandomSearch, TPE, NSGA2)}
