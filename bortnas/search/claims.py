"""Which worker evaluates which candidate: claims, heartbeats and stale trials of a shared study.

Optuna layer. Any number of processes (local workers, Ray trials, a restarted driver) may run
the same search on one study. A worker *claims* a candidate before training it: under a lock
shared by every process of the storage (`bortnas.search.storage.claim_lock`), it reads the study and
marks its RUNNING trial with `claim = <its own trial number>` (and `worker = host:pid`) unless the candidate is already
finished or claimed, or enough candidates are. The mark is the trial's own number because
Optuna's retry callback copies user attributes into the re-queued trial: a copied claim names
another number and does not count. RUNNING trials count only while their workers send
heartbeats; a silent one is failed and re-queued by the next `fail_stale` call.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import socket
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import optuna

from bortnas.core.errors import StorageError
from bortnas.core.space import ArchSpec
from bortnas.search.budget_screen import BudgetScreen

_logger = logging.getLogger(__name__)
_RUNNING, _COMPLETE, _PRUNED = optuna.trial.TrialState.RUNNING, optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


@dataclasses.dataclass(frozen=True)
class Coordination:
    """How a worker shares its study with others.

    `lock` serialises claims across processes; `heartbeat_storage` is the study's storage when
    it has heartbeats enabled (None: this worker is alone, RUNNING trials of others are ignored);
    `poll_s` is how long a worker waits when every remaining candidate is claimed by a running trial.
    """

    lock: Callable[[], contextlib.AbstractContextManager[None]] = contextlib.nullcontext
    heartbeat_storage: optuna.storages.RDBStorage | None = None
    poll_s: float = 5.0

    @property
    def shared(self) -> bool:
        return self.heartbeat_storage is not None


@dataclasses.dataclass(frozen=True)
class StudyState:
    """A snapshot of a study's candidates: finished (arch_id -> (trial, W)), running, stopped early."""

    finished: dict[str, tuple[int, float]]
    running: dict[str, int]
    stopped_early: dict[str, int]

    def taken(self, arch_id: str) -> int | None:
        """The trial that finished, runs or stopped `arch_id`, or None if it is free."""
        for table in (self.finished, self.running, self.stopped_early):
            if arch_id in table:
                entry = table[arch_id]
                return entry[0] if isinstance(entry, tuple) else entry
        return None

    @property
    def committed(self) -> int:
        """Candidates finished or being evaluated: what counts toward the requested number."""
        return len(self.finished.keys() | self.running.keys())


def read_state(study: optuna.Study, coordination: Coordination, exclude: int | None = None) -> StudyState:
    """The candidates of `study`, ignoring trial `exclude` (the caller's own)."""
    finished: dict[str, tuple[int, float]] = {}
    running: dict[str, int] = {}
    stopped: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False, states=(_RUNNING, _COMPLETE, _PRUNED)):
        attrs = trial.user_attrs
        arch_id = attrs.get("arch_id")
        if arch_id is None or trial.number == exclude:
            continue
        if trial.state == _COMPLETE and trial.value is not None:
            finished.setdefault(arch_id, (trial.number, trial.value))
        elif trial.state == _RUNNING and coordination.shared and attrs.get("claim") == trial.number:
            running.setdefault(arch_id, trial.number)
        elif trial.state == _PRUNED and "stopped_early_at" in attrs:
            stopped.setdefault(arch_id, trial.number)
    return StudyState(finished, running, stopped)


def claim(study: optuna.Study, trial: optuna.Trial, spec: ArchSpec, target: int, coordination: Coordination) -> str | None:
    """Claim `spec` for `trial`; returns None on success, else why the trial must be skipped.

    Skipped: `spec` is finished, being evaluated or was stopped early by another trial, or the
    study already holds `target` finished or running candidates.

    The claim is read back after the lock is released. A server's lock dies with its session, so
    a database restart during a claim can let two workers claim the same candidate; each writes
    its claim before it reads the others', so at least one of them sees the other and backs off
    (both may: the candidate is then free for the next claim). Never both train it.
    """
    with coordination.lock():
        state = read_state(study, coordination, exclude=trial.number)
        other = state.taken(spec.arch_id)
        if other is not None:
            return f"duplicate of trial {other}"
        if state.committed >= target:
            return f"the study already has {target} candidates finished or running"
        storage = coordination.heartbeat_storage
        if storage is not None:
            # beat before the claim becomes visible, so a worker dying right after still goes stale
            storage.record_heartbeat(_trial_id(storage, study, trial))
        trial.set_user_attr("arch_id", spec.arch_id)
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        trial.set_user_attr("claim", trial.number)
    rival = read_state(study, coordination, exclude=trial.number).taken(spec.arch_id)
    if rival is not None:
        return f"duplicate of trial {rival} (claimed while the claim lock was lost)"
    return None


Action = Literal["ask", "wait", "finish"]


def next_action(
    study: optuna.Study, coordination: Coordination, target: int, proposals: Sequence[ArchSpec] | None, failed: set[str]
) -> tuple[Action, StudyState]:
    """What a worker does next, and the study as it saw it; the one decision of every search loop.

    "finish": the study holds `target` finished candidates, or nothing is left that this worker
    could evaluate. "wait": every remaining candidate is being evaluated by another worker (ask
    again later; one of them may die). "ask": ask the sampler for a trial; with `proposals` (FPTAS,
    grid), the first free one not in `failed` (this run's failures) is enqueued first so the
    asked trial carries it. Stale trials of dead workers are failed first, so their candidates
    are free again.
    """
    fail_stale(study, coordination)
    state = read_state(study, coordination)
    if len(state.finished) >= target:
        return "finish", state
    free = None if proposals is None else [s for s in proposals if state.taken(s.arch_id) is None and s.arch_id not in failed]
    if state.committed >= target or free == []:
        return ("wait" if state.running else "finish"), state
    if free and not study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,)):
        study.enqueue_trial({**free[0].to_dict(), "quant": free[0].quant.value})
    return "ask", state


def claim_asked(
    study: optuna.Study,
    trial: optuna.Trial,
    target: int,
    coordination: Coordination,
    state: StudyState,
    screen: BudgetScreen | None = None,
) -> ArchSpec | None:
    """Claim the candidate of a freshly asked `trial`; None if it was skipped instead.

    A skipped trial (invalid candidate, outside the `screen`'s budget, duplicate, enough
    candidates committed) is told PRUNED with its `skip_reason`, before any training; a
    duplicate of a finished candidate also reports that candidate's W, so a model-based sampler
    still learns the repeat's value.
    """
    spec = ArchSpec.from_dict(trial.params)
    reason = None if spec.is_valid else f"hidden {spec.hidden} is not divisible by heads {spec.heads}"
    if screen is not None:
        for key, value in screen.constraints(spec).items():
            trial.set_constraint(key, value)
        reason = reason or screen.reason(spec)
    if reason is None:
        reason = claim(study, trial, spec, target, coordination)
    if reason is None:
        return spec
    trial.set_user_attr("skip_reason", reason)
    done = state.finished.get(spec.arch_id)
    if done is not None:
        trial.report(done[1], step=0)
    study.tell(trial, state=_PRUNED)
    return None


def _trial_id(storage: optuna.storages.RDBStorage, study: optuna.Study, trial: optuna.Trial) -> int:
    return storage.get_trial_id_from_study_id_trial_number(storage.get_study_id_from_name(study.study_name), trial.number)


def fail_stale(study: optuna.Study, coordination: Coordination) -> None:
    """Fail RUNNING trials whose workers stopped sending heartbeats; Optuna's callback re-queues them."""
    if coordination.shared:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)


class Heartbeat:
    """Records heartbeats for one trial from a background thread between `start()` and `stop()`."""

    def __init__(self, study: optuna.Study, trial: optuna.Trial, coordination: Coordination) -> None:
        self._storage = coordination.heartbeat_storage
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if self._storage is not None:
            self._trial_id = _trial_id(self._storage, study, trial)
            self._thread = threading.Thread(target=self._beat, name=f"bortnas-heartbeat-{trial.number}", daemon=True)

    def _beat(self) -> None:
        assert self._storage is not None
        interval = self._storage.get_heartbeat_interval() or 60
        while not self._stop.is_set():
            try:
                self._storage.record_heartbeat(self._trial_id)  # retried through a lost connection (ResilientRDBStorage)
            except StorageError as e:  # the worker's own next storage call meets the same fault and ends the run
                _logger.warning("heartbeats of trial %d stopped: %s", self._trial_id, e)
                return
            self._stop.wait(interval)

    def start(self) -> Heartbeat:
        if self._thread is not None:
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join()


@contextlib.contextmanager
def heartbeat(study: optuna.Study, trial: optuna.Trial, coordination: Coordination) -> Iterator[None]:
    """Record heartbeats for `trial` while the block runs."""
    beat = Heartbeat(study, trial, coordination).start()
    try:
        yield
    finally:
        beat.stop()
