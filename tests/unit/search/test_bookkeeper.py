"""The trial bookkeeper and the failures a search records or lets surface, without training anything."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import optuna
import pytest

from bortnas.core.errors import Terminated, TrialFailed
from bortnas.core.space import ArchSpec, SearchSpace, parse_search_space
from bortnas.search import run_search
from bortnas.search.bookkeeper import INTERRUPTED, LOST_WORKER_RETRIES, TERMINATED, TrialBookkeeper, interrupt_reason, is_expected_failure
from bortnas.search.claims import Coordination, read_state
from bortnas.search.storage import open_storage

COMPLETE, FAIL, PRUNED, RUNNING = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.FAIL,
    optuna.trial.TrialState.PRUNED,
    optuna.trial.TrialState.RUNNING,
)


@dataclasses.dataclass(frozen=True)
class FakeScore:
    spec: ArchSpec
    w: float

    def attrs(self) -> dict[str, Any]:
        return {"w": self.w, "error": 0.25, "key": self.spec.key, "arch_id": self.spec.arch_id}


def space() -> SearchSpace:
    return parse_search_space({"name": "t", "layers": [1, 2], "hidden": [16, 32], "heads": [2, 4], "ffn": [32, 64]}, "test")


def study() -> optuna.Study:
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))


def evaluated(s: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in s.get_trials() if "skip_reason" not in t.user_attrs]


@pytest.mark.parametrize("error", [RuntimeError("extracted weight (4, 4) does not fit (8, 8)"), ValueError("bad value"), KeyError("k")])
def test_an_unexpected_error_surfaces_and_leaves_its_trial_failed(error: Exception) -> None:
    s, calls = study(), []

    def buggy(spec: ArchSpec) -> FakeScore:
        calls.append(spec)
        if len(calls) == 2:
            raise error
        return FakeScore(spec, 0.5)

    with pytest.raises(type(error)):
        run_search(s, space(), buggy, n_trials=4, strategy="random", provenance={"teacher": "tiny"})
    assert len(calls) == 2  # the search stopped at the bug
    trials = evaluated(s)
    assert not [t for t in trials if t.state == RUNNING]
    assert [t.state for t in trials] == [COMPLETE, FAIL]
    assert trials[1].user_attrs["fail_reason"] == f"{type(error).__name__}: {error}"
    assert trials[1].user_attrs["candidate"] == calls[1].to_dict() and trials[1].user_attrs["teacher"] == "tiny"


@pytest.mark.parametrize("error", [TrialFailed("training diverged: loss is nan at step 1 of 2"), MemoryError("cannot allocate")])
def test_a_failed_trial_is_recorded_and_the_search_goes_on(error: Exception) -> None:
    s, calls = study(), []

    def flaky(spec: ArchSpec) -> FakeScore:
        calls.append(spec)
        if len(calls) == 1:
            raise error
        return FakeScore(spec, 0.1 * len(calls))

    scored = run_search(s, space(), flaky, n_trials=3, strategy="random", provenance={"teacher": "tiny"})
    assert scored == 3
    trials = evaluated(s)
    assert [t.state for t in trials] == [FAIL, COMPLETE, COMPLETE, COMPLETE]
    failed = trials[0]
    assert failed.user_attrs["fail_reason"] == str(error)
    assert failed.user_attrs["candidate"] == calls[0].to_dict()
    assert failed.user_attrs["strategy"] == "random" and failed.user_attrs["teacher"] == "tiny"
    assert "backend" not in failed.user_attrs  # a local search never stored one
    for trial in trials[1:]:
        assert trial.value == trial.user_attrs["w"] and trial.user_attrs["strategy"] == "random"


def test_torch_out_of_memory_is_expected_and_other_errors_are_not(monkeypatch: pytest.MonkeyPatch) -> None:
    class OutOfMemoryError(RuntimeError):
        pass

    assert is_expected_failure(TrialFailed("diverged")) and is_expected_failure(MemoryError())
    assert not is_expected_failure(RuntimeError("CUDA error: device-side assert triggered"))
    assert not is_expected_failure(OutOfMemoryError("looks like one, but is not torch's"))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(OutOfMemoryError=OutOfMemoryError))
    assert is_expected_failure(OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert not is_expected_failure(RuntimeError("another torch error"))


def test_the_search_layer_still_does_not_import_torch() -> None:
    code = "import sys, bortnas.search.runner, bortnas.search.bookkeeper; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


@pytest.mark.parametrize(("stop", "reason"), [(KeyboardInterrupt(), INTERRUPTED), (Terminated(15), TERMINATED)])
def test_an_interrupt_fails_its_trial_with_its_reason_and_stops(stop: KeyboardInterrupt, reason: str) -> None:
    s = study()

    def interrupted(spec: ArchSpec) -> FakeScore:
        raise stop

    with pytest.raises(type(stop)):
        run_search(s, space(), interrupted, n_trials=2, strategy="random")
    (trial,) = evaluated(s)
    assert trial.state == FAIL and trial.user_attrs["fail_reason"] == reason
    assert interrupt_reason(None) == INTERRUPTED


def test_failing_every_candidate_stops_at_the_failure_bound(caplog: pytest.LogCaptureFixture) -> None:
    s = study()

    def broken(spec: ArchSpec) -> FakeScore:
        raise TrialFailed("training diverged")

    caplog.set_level(logging.WARNING, logger="bortnas.search")
    assert run_search(s, space(), broken, n_trials=2, strategy="random") == 0
    assert [t.state for t in evaluated(s)] == [FAIL] * 3  # max(3, target)
    assert "stopped with 0 of 2 candidates finished (3 failures, " in caplog.text
    assert caplog.text.count("failed: training diverged") == 3


def test_the_bookkeeper_records_start_score_skip_and_stop() -> None:
    s = study()
    book = TrialBookkeeper(s, target=2, strategy="tpe", provenance={"teacher": "tiny"}, backend="ray")
    spec = ArchSpec(1, 16, 2, 32)
    trial = s.ask()
    book.start(trial, spec)
    book.observe(read_state(s, Coordination()))
    book.record_score(trial, spec, 0.75, FakeScore(spec, 0.75).attrs())
    stopped = s.ask()
    stopped.set_user_attr("arch_id", ArchSpec(2, 16, 2, 32).arch_id)  # what `claims.claim` stores
    book.start(stopped, ArchSpec(2, 16, 2, 32))
    book.record_stopped_early(stopped, 10, 0.5, 0.3)
    book.finish(len(read_state(s, Coordination()).finished))
    done, pruned = s.get_trials()
    assert done.state == COMPLETE and done.value == 0.75 and book.scored == 1 and book.best == 0.75
    assert {k: done.user_attrs[k] for k in ("teacher", "strategy", "backend", "candidate")} == {
        "teacher": "tiny",
        "strategy": "tpe",
        "backend": "ray",
        "candidate": spec.to_dict(),
    }
    assert pruned.state == PRUNED and (
        pruned.user_attrs["stopped_early_at"],
        pruned.user_attrs["w_at_stop"],
        pruned.user_attrs["error_at_stop"],
    ) == (10, 0.5, 0.3)
    assert read_state(s, Coordination()).stopped_early == {ArchSpec(2, 16, 2, 32).arch_id: 1}
    for _ in range(book.max_skips - 1):
        book.record_skip()
    assert book.should_continue()
    book.record_skip()
    assert not book.should_continue()


def test_the_score_line_and_the_best_w_include_what_the_study_held(caplog: pytest.LogCaptureFixture) -> None:
    s = study()
    old = ArchSpec(2, 32, 4, 64)
    trial = s.ask()
    trial.set_user_attr("arch_id", old.arch_id)
    s.tell(trial, 0.9)
    book = TrialBookkeeper(s, target=3, strategy="random", show_progress_bar=False)
    book.observe(read_state(s, Coordination()))
    spec = ArchSpec(1, 16, 2, 32)
    trial = s.ask()
    caplog.set_level(logging.INFO, logger="bortnas.search")
    book.record_score(trial, spec, 0.5, FakeScore(spec, 0.5).attrs())
    assert f"trial 1 {spec.key}: W 0.500, dev error 0.2500" in caplog.messages
    assert book.best == 0.9


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_study_search_asks_and_tells_the_study_without_ray_privates(tmp_path: Path) -> None:
    pytest.importorskip("ray.tune")
    from bortnas.ray.tune import StudySearch

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}", heartbeat_interval=60, grace_period=120)
    s = optuna.create_study(storage=storage, direction="maximize", sampler=optuna.samplers.RandomSampler(seed=0))
    book = TrialBookkeeper(s, target=3, strategy="random", provenance={"teacher": "tiny"}, backend="ray")
    searcher = StudySearch(s, space(), 3, None, Coordination(heartbeat_storage=storage, poll_s=0.1), book)
    assert searcher.metric == "w" and searcher.mode == "max"
    specs = {tid: ArchSpec.from_dict(searcher.suggest(tid)["candidate"]) for tid in "abc"}  # type: ignore[index,arg-type]
    assert len({spec.arch_id for spec in specs.values()}) == 3
    assert searcher.suggest("d") is None  # three candidates running: Tune asks again when one ends
    searcher.on_trial_result("a", {"w": 0.4, "error": 0.3, "step": 5, "training_iteration": 1})
    searcher.on_trial_complete(
        "a",
        {
            "w": 0.6,
            "error": 0.2,
            "step": 10,
            "training_iteration": 2,
            "final": True,
            "attrs": json.dumps(FakeScore(specs["a"], 0.6).attrs()),
        },
    )
    searcher.on_trial_complete("a", {"w": 0.6, "final": True, "attrs": "{}"})  # a second notification is ignored
    searcher.on_trial_complete("b", {"w": 0.3, "error": 0.4, "step": 5, "training_iteration": 1})  # stopped by ASHA
    searcher.on_trial_complete("c", {"w": 0.0, "failed": "out of GPU memory"})
    by_arch = {t.user_attrs["arch_id"]: t for t in evaluated(s)}
    a, b, c = (by_arch[specs[tid].arch_id] for tid in "abc")
    assert a.state == COMPLETE and a.value == 0.6 and a.intermediate_values == {1: 0.4}
    assert {k: a.user_attrs[k] for k in ("teacher", "strategy", "backend")} == {"teacher": "tiny", "strategy": "random", "backend": "ray"}
    assert b.state == PRUNED and (b.user_attrs["stopped_early_at"], b.user_attrs["w_at_stop"], b.user_attrs["error_at_stop"]) == (
        5,
        0.3,
        0.4,
    )
    assert c.state == FAIL and c.user_attrs["fail_reason"] == "out of GPU memory" and specs["c"].arch_id in book.failed
    assert searcher.scored == 1
    assert searcher.suggest("e") is not None
    searcher.abandon(TERMINATED)  # what Tune left without a completion is failed, not left RUNNING
    assert [t.user_attrs["fail_reason"] for t in s.get_trials() if t.state == FAIL] == ["out of GPU memory", TERMINATED]
    assert not [t for t in s.get_trials() if t.state == RUNNING]
    assert not searcher.set_search_properties("w", "max", {"layers": 1})  # a Tune param_space cannot replace the study's
    searcher.save(str(tmp_path / "nothing"))
    searcher.restore(str(tmp_path / "nothing"))
    assert not (tmp_path / "nothing").exists()


def test_a_lost_worker_queues_its_candidate_again_a_bounded_number_of_times() -> None:
    s = study()
    book = TrialBookkeeper(s, 3, "random")
    spec = ArchSpec(1, 16, 2, 32)
    for attempt in range(LOST_WORKER_RETRIES + 1):
        trial = s.ask({"layers": optuna.distributions.IntDistribution(1, 2)}) if attempt == 0 else s.ask()
        book.record_failure(trial, spec, "worker lost", candidate_at_fault=False)
        queued = s.get_trials(deepcopy=False, states=(optuna.trial.TrialState.WAITING,))
        if attempt < LOST_WORKER_RETRIES:
            assert spec.arch_id not in book.failed and len(queued) == 1 and queued[0].system_attrs["fixed_params"] == trial.params
        else:  # it kept killing its workers: its own fault, like a candidate that diverges
            assert spec.arch_id in book.failed and queued == []
    assert [t.user_attrs["fail_reason"] for t in s.get_trials(states=(FAIL,))] == ["worker lost"] * (LOST_WORKER_RETRIES + 1)
