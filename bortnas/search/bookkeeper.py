"""What every search loop writes around one trial, written once: the local loop and the Ray searcher use it.

Optuna layer (no torch, no Ray). A search loop decides *which* candidate to evaluate through
`bortnas.search.claims`; a `TrialBookkeeper` records what happened to it, the same way whatever
ran it: the provenance attributes of a claimed trial, a failure (`fail_reason`, told FAIL, not
retried by this run), a score (its attributes, told W, the log line and the progress bar), a
candidate stopped early by a scheduler, an interrupt; and the stop rule that ends a search whose
sampler keeps proposing invalid or taken candidates, or whose candidates keep failing.

Which exceptions are a trial's own failure (`is_expected_failure`) is decided here too, so a bug
(a shape mismatch, a typo raising `AttributeError`) stops the search instead of being written
down as one more failed candidate.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import math
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import optuna

from bortnas.core.errors import Terminated, TrialFailed
from bortnas.core.progress import Progress, progress_bar
from bortnas.core.space import ArchSpec, SearchSpace
from bortnas.search.claims import StudyState

_logger = logging.getLogger(__name__)

_FAIL, _PRUNED = optuna.trial.TrialState.FAIL, optuna.trial.TrialState.PRUNED

INTERRUPTED = "interrupted by the user"
LOST_WORKER_RETRIES = 2  # evaluations of a candidate again after its worker process was lost
TERMINATED = "terminated by SIGTERM"


def interrupt_reason(error: BaseException | None) -> str:
    """The `fail_reason` of a trial a stopped process leaves: Ctrl-C's, or SIGTERM's (`Terminated`)."""
    return TERMINATED if isinstance(error, Terminated) else INTERRUPTED


def is_expected_failure(error: BaseException) -> bool:
    """Whether `error` is a failure of the candidate itself, recorded on its trial while the search goes on.

    Expected: `TrialFailed` (divergence, a non-finite evaluation, any failure a trial states),
    host memory exhaustion (`MemoryError`) and torch's out-of-memory error (a candidate too large
    for its device). Anything else is a bug or a broken environment and must surface.

    The search layer does not import torch (`bortnas trials` stays light), so torch's class is
    looked up in `sys.modules`: a torch exception can only exist once torch is imported, so this
    is an exact `isinstance` check, not a guess from the class name, and no caller has to pass
    torch's types in.
    """
    if isinstance(error, (TrialFailed, MemoryError)):
        return True
    torch = sys.modules.get("torch")
    oom = getattr(torch, "OutOfMemoryError", None) if torch is not None else None
    return isinstance(oom, type) and isinstance(error, oom)


def search_target(n_trials: int, space: SearchSpace, proposals: Sequence[ArchSpec] | None = None) -> int:
    """How many finished candidates the search aims for: `n_trials`, or fewer when there are not that many.

    `proposals` (the FPTAS plan, the grid order) bounds it instead of the space.
    """
    available = len(space) if proposals is None else len(proposals)
    target = min(n_trials, available)
    if target < n_trials:
        _logger.warning("there are only %d candidates to evaluate; stopping at %d instead of %d", target, target, n_trials)
    return target


@contextlib.contextmanager
def driven_heartbeats() -> Iterator[None]:
    """Silence Optuna's warning that heartbeats belong to `Study.optimize`: bortnas drives them itself (`claims.Heartbeat`)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
        yield


class TrialBookkeeper:
    """Records what happens to the trials of one search run on `study`, and says when the run should stop.

    One per run (a local `run_search` call, one Ray Tune driver). `provenance` (what produced the
    scores: settings fingerprints, the teacher) is stored on every claimed trial with `strategy`,
    and `backend` when given ("ray"; a local search stores none, as it always has). Counting
    (`scored`, `failures`, `skips`) is this run's own: several runs may share the study.
    """

    def __init__(
        self,
        study: optuna.Study,
        target: int,
        strategy: str,
        provenance: Mapping[str, Any] | None = None,
        backend: str | None = None,
        show_progress_bar: bool = False,
    ) -> None:
        self.study = study
        self.target = target
        self.attrs: dict[str, Any] = {**(provenance or {}), "strategy": strategy, **({"backend": backend} if backend else {})}
        self.show_progress_bar = show_progress_bar
        # An invalid or taken proposal costs a sampler call; a sampler that keeps proposing them
        # (a small space, most of it taken) would loop forever without this bound.
        self.max_skips = 20 * max(target, 10)
        # A few failures are the candidates' own; as many as the target means the setup is broken.
        self.max_failures = max(3, target)
        self.skips = self.failures = self.scored = 0
        self.failed: set[str] = set()  # arch_ids failed in this run: a proposal that failed is not retried by it
        self.lost: collections.Counter[str] = collections.Counter()  # arch_ids whose worker was lost, per candidate
        self.best: float | None = None
        self._bar: Progress | None = None

    def __getstate__(self) -> dict[str, Any]:
        # Ray Tune pickles its search algorithm when the Tuner is made; a bar holds a terminal stream.
        state = self.__dict__.copy()
        state["_bar"] = None
        return state

    # -- the stop rule ---------------------------------------------------------------------------

    def should_continue(self) -> bool:
        """False once this run skipped `max_skips` proposals or had `max_failures` failed trials."""
        return self.skips < self.max_skips and self.failures < self.max_failures

    # -- what the loop saw -----------------------------------------------------------------------

    def observe(self, state: StudyState) -> None:
        """Take in a snapshot of the study: the progress bar starts at its finished count, the best W includes them."""
        values = [w for _, w in state.finished.values()]
        if values:
            self.best = max(values) if self.best is None else max(self.best, *values)
        self._progress(len(state.finished))

    def _progress(self, finished: int = 0) -> Progress:
        if self._bar is None:
            self._bar = progress_bar(self.target, "trials", self.show_progress_bar, initial=min(finished, self.target), unit="trials")
        return self._bar

    # -- one trial -------------------------------------------------------------------------------

    def start(self, trial: optuna.Trial, spec: ArchSpec) -> None:
        """Mark a claimed trial with the run's provenance and its candidate, before it is evaluated."""
        for key, value in {**self.attrs, "candidate": spec.to_dict()}.items():
            trial.set_user_attr(key, value)

    def record_skip(self) -> None:
        """Count a proposal that `claims.claim_asked` skipped (it has told the trial PRUNED already)."""
        self.skips += 1

    def record_failure(self, trial: optuna.Trial, spec: ArchSpec, reason: BaseException | str, candidate_at_fault: bool = True) -> None:
        """Tell the trial FAIL with its `fail_reason`; this run does not propose `spec` again.

        A failure outside the candidate (`candidate_at_fault` False: its worker process was lost)
        queues the candidate again, so it is evaluated next, up to `LOST_WORKER_RETRIES` times: a
        candidate that kills every worker that trains it is its own fault after all.
        """
        _logger.warning("trial %d (%s) failed: %s", trial.number, spec.key, reason)
        trial.set_user_attr("fail_reason", str(reason))
        self.study.tell(trial, state=_FAIL)
        self.failures += 1
        if not candidate_at_fault:
            self.lost[spec.arch_id] += 1
            if self.lost[spec.arch_id] <= LOST_WORKER_RETRIES:
                self.study.enqueue_trial(trial.params)  # the next ask gets it, whatever the sampler would propose
                return
        self.failed.add(spec.arch_id)

    def record_error(self, trial: optuna.Trial, spec: ArchSpec, error: BaseException) -> None:
        """Tell the trial FAIL for an unexpected error the caller is about to re-raise, so the study keeps no RUNNING trial."""
        _logger.error("trial %d (%s) raised %s: %s; the search stops", trial.number, spec.key, type(error).__name__, error)
        trial.set_user_attr("fail_reason", f"{type(error).__name__}: {error}")
        self.study.tell(trial, state=_FAIL)

    def record_interrupt(self, trial: optuna.Trial, reason: str = INTERRUPTED) -> None:
        """Tell the trial FAIL: the search was stopped while it ran (a later run evaluates the candidate)."""
        trial.set_user_attr("fail_reason", reason)
        self.study.tell(trial, state=_FAIL)

    def record_stopped_early(self, trial: optuna.Trial, step: Any, w: float, error: Any) -> None:
        """Tell PRUNED a trial that a scheduler (ASHA) stopped: its candidate is taken, but it is not finished.

        `stopped_early_at` is what `claims.read_state` recognises such trials by.
        """
        trial.set_user_attr("stopped_early_at", step)
        trial.set_user_attr("w_at_stop", w)
        trial.set_user_attr("error_at_stop", error)
        self.study.tell(trial, state=_PRUNED)

    def record_score(self, trial: optuna.Trial, spec: ArchSpec, w: float, attrs: Mapping[str, Any]) -> None:
        """Store the score's attributes on the trial, tell it W, log the trial line and move the bar."""
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        self.study.tell(trial, w)
        self.scored += 1
        _logger.info("trial %d %s: W %.3f, dev error %.4f", trial.number, spec.key, w, attrs.get("error", math.nan))
        self.best = w if self.best is None else max(self.best, w)
        bar = self._progress()
        bar.update(1)
        bar.set_postfix(best_W=f"{self.best:.3f}", refresh=False)

    # -- the end ---------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the progress bar (safe to call more than once)."""
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    def finish(self, finished: int) -> None:
        """Close the bar, and warn when the study holds fewer than `target` finished candidates (`finished`)."""
        self.close()
        if finished < self.target:
            _logger.warning(
                "stopped with %d of %d candidates finished (%d failures, %d skipped proposals)",
                finished,
                self.target,
                self.failures,
                self.skips,
            )
