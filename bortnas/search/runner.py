"""The trial loop: ask the sampler, skip invalid and already-finished candidates, score, tell.

Optuna layer. Counting is by distinct finished candidates, so re-running the same command
resumes a study and stops at the requested number without re-evaluating anything, and several
processes on one study share the work (`bortnas.search.claims`). Invalid combinations (hidden
not divisible by heads) and repeats of a finished or running candidate are told as PRUNED with
the reason in `skip_reason`; a repeat of a finished one carries its W as intermediate value, so
TPE still learns from it.
"""

from __future__ import annotations

import logging
import sys
import time
import warnings
from typing import Any, Callable, Mapping, Protocol, Sequence

import optuna
from tqdm.auto import tqdm

from bortnas.core.errors import TrialFailed
from bortnas.search.claims import Coordination, claim_asked, heartbeat, next_action, read_state
from bortnas.search.strategies import distributions
from bortnas.core.space import ArchSpec, SearchSpace

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
) -> int:
    """Evaluate candidates until the study holds `n_trials` distinct finished ones (or the space is exhausted).

    `evaluate` scores one candidate (raising `TrialFailed` on divergence); `provenance` is stored
    on every evaluated trial. With `proposals` (the FPTAS plan, the grid order), the first
    `n_trials` of those candidates are evaluated, in order, instead of asking the sampler; each
    is enqueued so the trial carries it as its parameters. With a shared `coordination`, any
    number of processes may run this on the same study: each candidate is evaluated once and the
    study ends with exactly `n_trials` finished candidates (see `bortnas.search.claims`).

    Returns:
        The number of candidates scored by this call.
    """
    coordination = coordination or Coordination()
    provenance = {**(provenance or {}), "strategy": strategy}
    dists = distributions(space)
    target = min(n_trials, len(space) if proposals is None else len(proposals))
    if target < n_trials:
        _logger.warning("there are only %d candidates to evaluate; stopping at %d instead of %d", target, target, n_trials)
    state = read_state(study, coordination)
    max_skips = 20 * max(target, 10)
    skips = failures = scored = 0
    failed_here: set[str] = set()  # a proposal that failed in this run is not retried by it
    bar = tqdm(total=target, initial=min(len(state.finished), target), desc="trials", disable=not show_progress_bar, file=sys.stderr)
    try:
        with warnings.catch_warnings():
            # Optuna's heartbeats are driven here (`claims.heartbeat`), not by Study.optimize
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            while skips < max_skips and failures < max(3, target):
                action, state = next_action(study, coordination, target, proposals, failed_here)
                if action == "finish":
                    break
                if action == "wait":
                    _logger.debug("every remaining candidate is being evaluated by another worker; waiting %.0f s", coordination.poll_s)
                    time.sleep(coordination.poll_s)
                    continue
                trial = study.ask(dists)
                spec = claim_asked(study, trial, target, coordination, state)
                if spec is None:
                    skips += 1
                    continue
                for key, value in provenance.items():
                    trial.set_user_attr(key, value)
                trial.set_user_attr("candidate", spec.to_dict())
                try:
                    with heartbeat(study, trial, coordination):
                        score = evaluate(spec)
                except (TrialFailed, RuntimeError) as e:
                    _logger.warning("trial %d (%s) failed: %s", trial.number, spec.key, e)
                    trial.set_user_attr("fail_reason", str(e))
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    failed_here.add(spec.arch_id)
                    failures += 1
                    continue
                except KeyboardInterrupt:
                    trial.set_user_attr("fail_reason", "interrupted by the user")
                    study.tell(trial, state=optuna.trial.TrialState.FAIL)
                    raise
                for key, value in score.attrs().items():
                    trial.set_user_attr(key, value)
                study.tell(trial, score.w)
                scored += 1
                _logger.info("trial %d %s: W %.3f, dev error %.4f", trial.number, spec.key, score.w, score.attrs().get("error", float("nan")))
                bar.update(1)
                bar.set_postfix(best_W=f"{max([score.w, *(v for _, v in state.finished.values())]):.3f}", refresh=False)
    finally:
        bar.close()
    finished = read_state(study, coordination).finished
    if len(finished) < target:
        _logger.warning("stopped with %d of %d candidates finished (%d failures, %d skipped proposals)", len(finished), target, failures, skips)
    return scored
