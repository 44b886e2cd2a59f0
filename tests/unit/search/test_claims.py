"""bortnas.search.claims on studies built by hand: the study snapshot, claims, the next-action rule, skipped trials, stale trials."""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from bortnas.core.space import ArchSpec, parse_search_space
from bortnas.search.claims import Coordination, StudyState, claim, claim_asked, fail_stale, next_action, read_state
from bortnas.search.storage import claim_lock, open_storage
from bortnas.search.strategies import distributions

TrialState = optuna.trial.TrialState
# the runner drives heartbeats itself (`claims.heartbeat`), as these tests do by hand
pytestmark = pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")

SPACE = parse_search_space({"name": "c", "layers": [1, 2], "hidden": [16, 24], "heads": [2, 3], "ffn": [32, 64]}, "test_claims")
DISTS = distributions(SPACE)
A = ArchSpec(1, 16, 2, 32)
B = ArchSpec(1, 16, 2, 64)
C = ArchSpec(2, 16, 2, 32)
D = ArchSpec(2, 24, 3, 64)
INVALID = ArchSpec(1, 16, 3, 32)  # 16 is not divisible by 3


@pytest.fixture()
def shared(tmp_path: Path) -> tuple[optuna.Study, Coordination]:
    """A study on SQLite with heartbeats, and the coordination of a worker that shares it."""
    url = f"sqlite:///{tmp_path / 'claims.db'}"
    storage = open_storage(url, heartbeat_interval=60)
    study = optuna.create_study(storage=storage, study_name="c", direction="maximize")
    return study, Coordination(lock=claim_lock(url, "c"), heartbeat_storage=storage, poll_s=0.01)


def ask(study: optuna.Study, spec: ArchSpec) -> optuna.Trial:
    study.enqueue_trial(spec.to_dict())
    trial = study.ask(DISTS)
    assert ArchSpec.from_dict(trial.params) == spec
    return trial


def finish(study: optuna.Study, spec: ArchSpec, w: float) -> int:
    trial = ask(study, spec)
    trial.set_user_attr("arch_id", spec.arch_id)
    study.tell(trial, w)
    return trial.number


def stop_early(study: optuna.Study, spec: ArchSpec) -> int:
    trial = ask(study, spec)
    trial.set_user_attr("arch_id", spec.arch_id)
    trial.set_user_attr("stopped_early_at", 1)
    study.tell(trial, state=TrialState.PRUNED)
    return trial.number


def run(study: optuna.Study, spec: ArchSpec, coordination: Coordination) -> int:
    """A RUNNING trial of another worker that claimed `spec`."""
    trial = ask(study, spec)
    assert claim(study, trial, spec, 100, coordination) is None
    return trial.number


def test_taken_looks_in_finished_running_and_stopped_early() -> None:
    state = StudyState(finished={"a": (0, 1.5), "b": (2, 0.5)}, running={"b": 5, "c": 6}, stopped_early={"d": 4})
    assert [state.taken(x) for x in "abcde"] == [0, 2, 6, 4, None]
    assert state.committed == 3  # a, b (finished and running counts once), c; the stopped-early d does not count
    assert StudyState({}, {}, {"d": 4}).committed == 0


def test_read_state_sorts_the_trials(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    first = finish(study, A, 0.7)
    finish(study, A, 0.9)  # a repeat: the first finished trial is the one named
    running = run(study, B, coordination)
    stopped = stop_early(study, C)
    unclaimed = ask(study, D)  # asked, never claimed: no worker evaluates it
    unclaimed.set_user_attr("arch_id", D.arch_id)
    copied = ask(study, D)  # a retried trial: the claim copied from the trial it repeats names another number
    copied.set_user_attr("arch_id", D.arch_id)
    copied.set_user_attr("claim", unclaimed.number)
    skipped = ask(study, C)  # pruned as a duplicate, not stopped early
    skipped.set_user_attr("arch_id", C.arch_id)
    skipped.set_user_attr("skip_reason", "duplicate")
    study.tell(skipped, state=TrialState.PRUNED)
    failed = ask(study, D)
    failed.set_user_attr("arch_id", D.arch_id)
    study.tell(failed, state=TrialState.FAIL)
    ask(study, D)  # no arch_id: ignored

    state = read_state(study, coordination)
    assert state.finished == {A.arch_id: (first, 0.7)}
    assert state.running == {B.arch_id: running}
    assert state.stopped_early == {C.arch_id: stopped}
    assert read_state(study, coordination, exclude=running).running == {}
    alone = read_state(study, Coordination())  # not shared: the RUNNING trials of others are ignored
    assert alone.running == {} and alone.finished == state.finished and alone.stopped_early == state.stopped_early


def test_a_claim_marks_the_trial_with_its_own_number(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    finish(study, A, 0.5)
    finish(study, B, 0.4)
    trial = ask(study, C)
    assert trial.number == 2
    assert claim(study, trial, C, 3, coordination) is None
    attrs = study.trials[2].user_attrs
    assert attrs["claim"] == 2 and attrs["arch_id"] == C.arch_id
    assert attrs["worker"] == f"{socket.gethostname()}:{os.getpid()}"
    assert read_state(study, coordination).running == {C.arch_id: 2}


@pytest.mark.parametrize("how", ["finished", "running", "stopped_early"])
def test_a_taken_candidate_is_not_claimed_again(shared: tuple[optuna.Study, Coordination], how: str) -> None:
    study, coordination = shared
    finish(study, D, 0.1)  # so the taking trial is not trial 0
    other = {
        "finished": lambda: finish(study, A, 0.5),
        "running": lambda: run(study, A, coordination),
        "stopped_early": lambda: stop_early(study, A),
    }[how]()
    assert other == 1
    trial = ask(study, A)
    assert claim(study, trial, A, 10, coordination) == f"duplicate of trial {other}"
    assert "claim" not in study.trials[trial.number].user_attrs
    assert claim(study, trial, B, 10, coordination) is None  # another candidate is free


def test_a_running_claim_blocks_only_a_shared_worker(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    run(study, A, coordination)
    alone = Coordination()
    assert claim(study, ask(study, A), A, 10, alone) is None


def test_a_copied_claim_does_not_block(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    retried = ask(study, A)
    retried.set_user_attr("arch_id", A.arch_id)
    retried.set_user_attr("claim", retried.number + 7)  # as Optuna's retry callback copies it from the failed trial
    trial = ask(study, A)
    assert claim(study, trial, A, 10, coordination) is None
    assert study.trials[trial.number].user_attrs["claim"] == trial.number


def test_the_target_counts_finished_and_running_candidates(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    finish(study, A, 0.5)
    run(study, B, coordination)
    stop_early(study, C)  # stopped early: does not count
    trial = ask(study, D)
    assert claim(study, trial, D, 2, coordination) == "the study already has 2 candidates finished or running"
    assert claim(study, trial, D, 3, coordination) is None
    assert claim(study, ask(study, ArchSpec(2, 24, 2, 32)), ArchSpec(2, 24, 2, 32), 3, coordination) == (
        "the study already has 3 candidates finished or running"
    )


def waiting(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return study.get_trials(states=(TrialState.WAITING,))


def test_next_action_finishes_at_the_target(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    finish(study, A, 0.5)
    finish(study, B, 0.25)
    action, state = next_action(study, coordination, 2, [A, B, C], set())
    assert action == "finish" and set(state.finished) == {A.arch_id, B.arch_id}
    assert waiting(study) == []
    assert next_action(study, coordination, 3, None, set())[0] == "ask"


def test_next_action_enqueues_the_first_free_proposal(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    finish(study, A, 0.5)
    run(study, B, coordination)
    action, _ = next_action(study, coordination, 4, [A, B, C, D], failed={C.arch_id})
    assert action == "ask"
    assert [ArchSpec.from_dict(t.system_attrs["fixed_params"]) for t in waiting(study)] == [
        D
    ]  # A finished, B running, C failed in this run
    assert next_action(study, coordination, 4, [A, B, C, D], failed={C.arch_id})[0] == "ask"
    assert len(waiting(study)) == 1  # a proposal already waiting is not enqueued twice
    assert ArchSpec.from_dict(study.ask(DISTS).params) == D


def test_next_action_without_proposals_enqueues_nothing(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    assert next_action(study, coordination, 3, None, set())[0] == "ask"
    assert waiting(study) == []


def test_next_action_waits_for_running_candidates(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    finish(study, A, 0.5)
    run(study, B, coordination)
    action, state = next_action(study, coordination, 2, None, set())  # committed 2 >= 2, one of them still running
    assert action == "wait" and state.running == {B.arch_id: 1}
    assert next_action(study, coordination, 3, [A, B], set())[0] == "wait"  # no free proposal, but B may still fail
    assert next_action(study, Coordination(), 2, None, set())[0] == "ask"  # alone: the other worker's trial is ignored
    assert waiting(study) == []


def test_next_action_finishes_when_nothing_is_left(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    finish(study, A, 0.5)
    stop_early(study, B)
    action, _ = next_action(study, coordination, 4, [A, B, C], failed={C.arch_id})
    assert action == "finish"
    assert waiting(study) == []


def test_claim_asked_claims_a_free_candidate(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    _, state = next_action(study, coordination, 2, [C], set())
    trial = study.ask(DISTS)
    assert claim_asked(study, trial, 2, coordination, state) == C
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.RUNNING and frozen.user_attrs["claim"] == trial.number


def test_claim_asked_prunes_a_duplicate_of_a_finished_candidate_with_its_w(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    done = finish(study, A, 0.625)
    state = read_state(study, coordination)
    trial = ask(study, A)
    assert claim_asked(study, trial, 5, coordination, state) is None
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.PRUNED
    assert frozen.user_attrs["skip_reason"] == f"duplicate of trial {done}"
    assert frozen.intermediate_values == {0: 0.625}
    assert "claim" not in frozen.user_attrs


def test_claim_asked_prunes_a_duplicate_of_a_running_candidate_without_a_value(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    other = run(study, A, coordination)
    state = read_state(study, coordination)
    trial = ask(study, A)
    assert claim_asked(study, trial, 5, coordination, state) is None
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.PRUNED and frozen.user_attrs["skip_reason"] == f"duplicate of trial {other}"
    assert frozen.intermediate_values == {}


def test_a_claim_that_raced_a_lost_lock_backs_off(shared: tuple[optuna.Study, Coordination]) -> None:
    """A database restart kills a server's claim lock: another worker's claim of the same candidate
    lands while this one holds the lock it thinks it has. The read-back finds it, and this trial
    is pruned before training, so the candidate is trained once."""
    study, coordination = shared
    rival = ask(study, A)

    @contextlib.contextmanager
    def lost_lock() -> Iterator[None]:
        yield
        # the rival read the study before this claim was written and writes its own after
        rival.set_user_attr("arch_id", A.arch_id)
        rival.set_user_attr("claim", rival.number)

    raced = Coordination(lock=lost_lock, heartbeat_storage=coordination.heartbeat_storage, poll_s=0.01)
    trial = ask(study, A)
    assert claim_asked(study, trial, 5, raced, read_state(study, raced)) is None
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.PRUNED
    assert frozen.user_attrs["skip_reason"] == f"duplicate of trial {rival.number} (claimed while the claim lock was lost)"
    # the rival's own read-back now finds no other claim of A: it trains A
    assert read_state(study, coordination, exclude=rival.number).taken(A.arch_id) is None
    assert read_state(study, coordination).running == {A.arch_id: rival.number}


def test_claim_asked_prunes_an_invalid_candidate(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    trial = ask(study, INVALID)
    assert claim_asked(study, trial, 5, coordination, read_state(study, coordination)) is None
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.PRUNED
    assert frozen.user_attrs["skip_reason"] == "hidden 16 is not divisible by heads 3"
    assert "arch_id" not in frozen.user_attrs and frozen.intermediate_values == {}


def test_claim_asked_prunes_past_the_target(shared: tuple[optuna.Study, Coordination]) -> None:
    study, coordination = shared
    finish(study, A, 0.5)
    trial = ask(study, B)
    assert claim_asked(study, trial, 1, coordination, read_state(study, coordination)) is None
    frozen = study.trials[trial.number]
    assert frozen.state == TrialState.PRUNED
    assert frozen.user_attrs["skip_reason"] == "the study already has 1 candidates finished or running"
    assert frozen.intermediate_values == {}


def test_fail_stale_fails_and_requeues_a_silent_claimed_trial(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'stale.db'}"
    storage = open_storage(url, heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=storage, study_name="s", direction="maximize")
    coordination = Coordination(lock=claim_lock(url, "s"), heartbeat_storage=storage, poll_s=0.01)
    dead = ask(study, A)
    assert claim(study, dead, A, 5, coordination) is None  # claiming beats once; then the worker "dies"
    never_claimed = ask(study, B)  # asked, then died before its claim: Optuna has no heartbeat of it
    fail_stale(study, coordination)
    assert study.trials[dead.number].state == TrialState.RUNNING  # within the grace period
    assert read_state(study, coordination).running == {A.arch_id: dead.number}

    fail_stale(study, Coordination())  # a worker alone never fails the trials of others
    assert study.trials[dead.number].state == TrialState.RUNNING

    deadline = time.monotonic() + 15
    while study.trials[dead.number].state == TrialState.RUNNING and time.monotonic() < deadline:
        time.sleep(0.5)
        fail_stale(study, coordination)
    assert study.trials[dead.number].state == TrialState.FAIL
    assert study.trials[never_claimed.number].state == TrialState.RUNNING  # Optuna fails only trials that beat once

    # the retry callback re-queued A with the user attributes copied, claim included: the candidate is free again
    (retry,) = waiting(study)
    assert ArchSpec.from_dict(retry.params) == A and retry.user_attrs["claim"] == dead.number
    action, state = next_action(study, coordination, 5, [A, B], set())
    assert action == "ask" and state.taken(A.arch_id) is None
    trial = study.ask(DISTS)
    assert trial.number == retry.number
    assert claim_asked(study, trial, 5, coordination, state) == A
    assert study.trials[trial.number].user_attrs["claim"] == trial.number
