"""Optuna samplers that propose the members of a finite candidate set in an order they decide.

Search layer, torch-free. The FPTAS (`bortnas.search.fptas_sampler`) and the grid walk
(`bortnas.search.strategies`) both evaluate whole candidates in a fixed or data-driven order
rather than sampling parameters one by one. Like Optuna's `GridSampler`, the candidate is chosen
in `before_trial` and stored as a trial system attribute, and `sample_independent` then returns
its values, so any objective that calls `trial.suggest_categorical` with the candidate's
parameter names works unchanged.

Several workers may share one storage, each with a sampler over the same candidates in the same
order (a trial records its candidate's position): a worker takes the first candidate in the order that no
other trial holds, then reads the study again; if a trial with a smaller number took the same
candidate meanwhile, it yields and takes the next one, so a race costs a re-read, not a duplicate.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Generic, TypeVar, overload

import optuna
from optuna.distributions import BaseDistribution
from optuna.trial import FrozenTrial, TrialState

__all__ = ["OrderedSampler"]

_logger = logging.getLogger(__name__)

C = TypeVar("C")

INDEX_ATTR = "bortnas:candidate_index"
_RACE_RETRIES = 8  # re-reads after losing a race for a candidate: one per other worker that can race at once


class OrderedSampler(optuna.samplers.BaseSampler, Generic[C], abc.ABC):
    """Proposes candidates of a finite set, whole, in the order `order(study)` gives.

    Args:
        candidates: the finite set. Candidates need not be hashable; they are told apart by position.
        params: a candidate's Optuna parameters (name -> value). None: each candidate is itself a
            mapping of parameter names to values.
        seed: seeds the fallback sampler for parameters a candidate does not define.
    """

    def __init__(self, candidates: Sequence[C], params: Callable[[C], Mapping[str, Any]] | None = None, seed: int | None = None) -> None:
        if not candidates:
            raise ValueError("candidates is empty: give at least one candidate.")
        self._candidates = list(candidates)
        to_params: Callable[[C], Mapping[str, Any]] = params if params is not None else _as_mapping
        self._params = [dict(to_params(c)) for c in self._candidates]
        self._index = {_params_key(p): k for k, p in enumerate(self._params)}
        if len(self._index) != len(self._params):
            raise ValueError("two candidates have the same parameters: give each candidate distinct parameter values.")
        self._fallback = optuna.samplers.RandomSampler(seed=seed)

    @property
    def candidates(self) -> list[C]:
        return list(self._candidates)

    def order(self, study: optuna.Study) -> list[C]:
        """Every candidate the sampler would evaluate, first to last, as the study stands now."""
        return [self._candidates[k] for k in self.order_indices(study)]

    @abc.abstractmethod
    def order_indices(self, study: optuna.Study) -> list[int]:
        """`order` as positions in `candidates`."""

    def order_length(self, study: optuna.Study) -> int:
        """len(order(study)), which a subclass may know without ranking anything."""
        return len(self.order_indices(study))

    def proposals(self, study: optuna.Study) -> Sequence[C]:
        """`order(study)` as a live sequence, read again on every use: what bortnas's trial loop walks
        (`bortnas.search.claims.next_action`), so its claims, heartbeats and retries apply to the
        candidates this sampler chooses."""
        return _LiveOrder(self, study)

    @abc.abstractmethod
    def target(self) -> int:
        """How many distinct candidates the sampler means to evaluate: a prefix of `order`."""

    def candidate_of(self, trial: FrozenTrial) -> C | None:
        """The candidate a trial evaluates: the one this sampler gave it, or the one its parameters
        name (an enqueued trial); None for parameters outside the set."""
        index = self._index_of(trial)
        return None if index is None else self._candidates[index]

    # --- optuna.samplers.BaseSampler

    def reseed_rng(self) -> None:
        self._fallback.reseed_rng()

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return {}

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]) -> dict[str, Any]:
        return {}

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        # An enqueued or retried trial already carries its parameters: it is not given another candidate.
        if INDEX_ATTR in trial.system_attrs or "fixed_params" in trial.system_attrs:
            return
        for _ in range(_RACE_RETRIES):
            index = self._next_free(study, trial.number)
            study._storage.set_trial_system_attr(trial._trial_id, INDEX_ATTR, index)
            if self._first_holder(study, index) in (None, trial.number):
                return
        _logger.warning("trial %d keeps losing races for candidates to other workers; it evaluates a duplicate", trial.number)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str, param_distribution: BaseDistribution) -> Any:
        index = trial.system_attrs.get(INDEX_ATTR)
        if index is not None and param_name in self._params[index]:
            value = self._params[index][param_name]
            if not param_distribution._contains(param_distribution.to_internal_repr(value)):
                raise ValueError(
                    f"candidate {index} has {param_name}={value!r}, which the objective's distribution {param_distribution} excludes."
                )
            return value
        return self._fallback.sample_independent(study, trial, param_name, param_distribution)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState, values: Sequence[float] | None) -> None:
        # Stop once every candidate of the target is finished or held by a running trial: a worker
        # that went on would find none free and evaluate a duplicate.
        held = self._holders(study)
        if sum(1 for k in self.order_indices(study)[: self.target()] if k in held) >= self.target():
            try:
                study.stop()
            except RuntimeError:
                pass  # ask-and-tell: there is no optimize loop to stop; the caller counts trials itself

    # --- helpers

    def _index_of(self, trial: FrozenTrial) -> int | None:
        index = trial.system_attrs.get(INDEX_ATTR)
        if index is not None:
            return int(index)
        names = self._params[0].keys()
        if not all(name in trial.params for name in names):
            return None
        return self._index.get(_params_key({name: trial.params[name] for name in names}))

    def _holders(self, study: optuna.Study) -> dict[int, int]:
        """Candidate index -> the smallest trial number holding it (finished, running or waiting)."""
        held: dict[int, int] = {}
        for t in study.get_trials(deepcopy=False):
            index = self._index_of(t)
            if index is not None and (index not in held or t.number < held[index]):
                held[index] = t.number
        return held

    def _first_holder(self, study: optuna.Study, index: int) -> int | None:
        return self._holders(study).get(index)

    def _next_free(self, study: optuna.Study, number: int) -> int:
        held = {k for k, n in self._holders(study).items() if n != number}
        order = self.order_indices(study)
        for k in order:
            if k not in held:
                return k
        _logger.warning("every candidate has been proposed; trial %d evaluates the first one again", number)
        return order[0] if order else 0


class _LiveOrder(Sequence[C]):
    def __init__(self, sampler: OrderedSampler[C], study: optuna.Study) -> None:
        self._sampler, self._study = sampler, study

    def __iter__(self) -> Iterator[C]:
        return iter(self._sampler.order(self._study))

    def __len__(self) -> int:
        return self._sampler.order_length(self._study)

    @overload
    def __getitem__(self, index: int) -> C: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[C]: ...

    def __getitem__(self, index: int | slice) -> C | Sequence[C]:
        return self._sampler.order(self._study)[index]


def _as_mapping(candidate: Any) -> Mapping[str, Any]:
    if not isinstance(candidate, Mapping):
        raise TypeError(f"candidate {candidate!r} is not a mapping of parameter names to values: pass params=... to name its parameters.")
    return candidate


def _params_key(params: Mapping[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted(params.items()))
