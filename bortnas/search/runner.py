"""The trial loop: ask the sampler, skip invalid and already-finished candidates, score, tell.

Optuna layer. Counting is by distinct finished candidates, so re-running the same command
resumes a study and stops at the requested number without re-evaluating anything, and several
processes on one study share the work (`bortnas.search.claims`). Invalid combinations (hidden
not divisible by heads) and repeats of a finished or running candidate are told as PRUNED with
the reason in `skip_reason`; a repeat of a finished one carries its W as intermediate value, so
TPE still learns from it. What is recorded around each trial (provenance, failures, scores,
the progress bar, the stop rule) is `bortnas.search.bookkeeper`'s, shared with the Ray backend.
Only a candidate's own failures (`is_expected_failure`: divergence, out of memory, a stated
`TrialFailed`) are recorded as failed trials; any other exception stops the search.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import optuna

from bortnas.core.space import ArchSpec, SearchSpace
from bortnas.search.bookkeeper import TrialBookkeeper, driven_heartbeats, interrupt_reason, is_expected_failure, search_target
from bortnas.search.budget_screen import BudgetScreen
from bortnas.search.claims import Coordination, claim_asked, heartbeat, next_action, read_state
from bortnas.search.strategies import distributions

_logger = logging.getLogger(__name__)


class Scored(Protocol):
    """What an evaluator returns: the objective W and the trial attributes to store."""

    @property
    def w(self) -> float: ...

    def attrs(self) -> dict[str, Any]: ...


Evaluator = Callable[[ArchSpec], Scored]


def run_search(
    study: optuna.Study,
    space: SearchSpace,
    evaluate: Evaluator,
    n_trials: int,
    strategy: str,
    provenance: Mapping[str, Any] | None = None,
    show_progress_bar: bool = False,
    proposals: Sequence[ArchSpec] | None = None,
    coordination: Coordination | None = None,
    screen: BudgetScreen | None = None,
) -> int:
    """Evaluate candidates until the study holds `n_trials` distinct finished ones (or the space is exhausted).

    `evaluate` scores one candidate (raising `TrialFailed` on divergence); `provenance` is stored
    on every evaluated trial. With `proposals` (the FPTAS plan, the grid order), the first
    `n_trials` of those candidates are evaluated, in order, instead of asking the sampler; each
    is enqueued so the trial carries it as its parameters. With a shared `coordination`, any
    number of processes may run this on the same study: each candidate is evaluated once and the
    study ends with exactly `n_trials` finished candidates (see `bortnas.search.claims`). With a
    `screen`, a sampler's proposal outside the budget is skipped before any training.

    Returns:
        The number of candidates scored by this call.

    Raises:
        Exception: whatever `evaluate` raised that is not a candidate's own failure
            (`bortnas.search.bookkeeper.is_expected_failure`); its trial is told FAIL first.
    """
    coordination = coordination or Coordination()
    dists = distributions(space)
    target = search_target(n_trials, space, proposals)
    book = TrialBookkeeper(study, target, strategy, provenance, show_progress_bar=show_progress_bar)
    try:
        with driven_heartbeats():
            while book.should_continue():
                action, state = next_action(study, coordination, target, proposals, book.failed)
                book.observe(state)
                if action == "finish":
                    break
                if action == "wait":
                    _logger.debug("every remaining candidate is being evaluated by another worker; waiting %.0f s", coordination.poll_s)
                    time.sleep(coordination.poll_s)
                    continue
                trial = study.ask(dists)
                spec = claim_asked(study, trial, target, coordination, state, screen)
                if spec is None:
                    book.record_skip()
                    continue
                book.start(trial, spec)
                try:
                    with heartbeat(study, trial, coordination):
                        score = evaluate(spec)
                except Exception as e:
                    if not is_expected_failure(e):
                        book.record_error(trial, spec, e)
                        raise
                    book.record_failure(trial, spec, e)
                    continue
                except KeyboardInterrupt as e:
                    book.record_interrupt(trial, interrupt_reason(e))
                    raise
                book.record_score(trial, spec, score.w, score.attrs())
    finally:
        book.close()
    book.finish(len(read_state(study, coordination).finished))
    return book.scored
