from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import tiny_settings

from bortnas.core.budget import Budget, LatencyTable
from bortnas.core.errors import TrialFailed
from bortnas.core.settings import RunSettings
from bortnas.core.space import ArchSpec, TeacherShape, load_search_space
from bortnas.search import STRATEGIES, create_or_resume, run_search
from bortnas.search.budget_screen import BudgetScreen
from bortnas.search.storage import open_storage
from bortnas.search.strategies import SearchProblem
from bortnas.trial.context import build_context
from bortnas.trial.scoring import context_evaluator


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    settings = tiny_settings(tiny_bert, tiny_task, teacher_steps=5, trial_steps=2, max_length=16, batch_size=16)
    ctx = build_context(settings, cache_dir=tmp_path / "cache")
    space = load_search_space(tiny_space)
    real, provenance = context_evaluator(ctx, space)
    calls = []

    def flaky(spec):  # type: ignore[no-untyped-def]
        calls.append(spec)
        if len(calls) == 1:
            raise TrialFailed("training diverged: loss is nan at step 1 of 2")
        return real(spec)

    storage = open_storage(f"sqlite:///{tmp_path / 's.db'}")
    study = create_or_resume(storage, "s", space, settings, optuna.samplers.RandomSampler(seed=0))
    scored = run_search(study, space, flaky, n_trials=3, strategy="random", provenance=provenance)
    assert scored == 3
    states = [t.state for t in study.get_trials() if "skip_reason" not in t.user_attrs]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and states.count(optuna.trial.TrialState.COMPLETE) == 3
    failed = next(t for t in study.get_trials() if t.state == optuna.trial.TrialState.FAIL)
    assert failed.user_attrs["fail_reason"] == "training diverged: loss is nan at step 1 of 2"
    assert failed.user_attrs["candidate"] == calls[0].to_dict()


class _Score:
    """What an evaluator returns, without training: W from the candidate's size."""

    def __init__(self, spec: ArchSpec) -> None:
        self.spec = spec

    @property
    def w(self) -> float:
        return float(self.spec.layers * self.spec.ffn)

    def attrs(self) -> dict[str, object]:
        return {"w": self.w, "error": 0.2, "candidate": self.spec.to_dict(), "key": self.spec.key}


@pytest.mark.parametrize("strategy", ["random", "tpe", "nsga2"])
def test_no_candidate_outside_the_budget_is_ever_trained(tmp_path: Path, tiny_space: Path, strategy: str) -> None:
    """A hand-set latency table (1 ms per layer, +0.5 ms for FFN 64) and a 1.2 ms budget: only 1-layer, FFN-32 candidates may
    train; every other proposal is PRUNED with the budget's reason, and TPE / NSGA-II receive the constraint values."""
    space = load_search_space(tiny_space)
    shape = TeacherShape(2, 32, 4, 64, vocab_size=40, max_positions=64, type_vocab_size=2)
    table = LatencyTable({c.key: c.layers + (0.5 if c.ffn == 64 else 0.0) for c in space.candidates()}, 2.5, 3.0, "cpu", 1, 16, 10, 0.0)
    screen = BudgetScreen(Budget(max_latency_ms=1.2), shape, 16, table)
    trained: list[ArchSpec] = []

    def evaluate(spec: ArchSpec) -> _Score:
        trained.append(spec)
        return _Score(spec)

    study = create_or_resume(
        open_storage(f"sqlite:///{tmp_path / 'b.db'}"),
        "b",
        space,
        RunSettings(budget=Budget(max_latency_ms=1.2)),
        STRATEGIES[strategy](n_trials=3).sampler(SearchProblem(space, shape, 16, tuple(space.candidates()))),  # type: ignore[call-arg]
    )
    feasible = screen.feasible(space.candidates())
    run_search(study, space, evaluate, n_trials=len(feasible), strategy=strategy, screen=screen)
    assert trained and all(screen.reason(spec) is None for spec in trained)
    assert sorted(s.key for s in trained) == sorted(s.key for s in feasible)
    skipped = [t for t in study.get_trials() if "outside the budget" in t.user_attrs.get("skip_reason", "")]
    assert all(t.state == optuna.trial.TrialState.PRUNED for t in skipped)
    # every proposal carries its constraint (latency / 1.2 - 1), which TPE and NSGA-II read; it is positive exactly for
    # the proposals skipped for the budget
    for t in study.get_trials():
        value = t.constraints["max_latency_ms"]
        assert value == pytest.approx(table.ms[ArchSpec.from_dict(t.params).key] / 1.2 - 1)
        assert (value > 0) == ("outside the budget" in t.user_attrs.get("skip_reason", ""))
