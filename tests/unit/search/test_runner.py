from __future__ import annotations

from pathlib import Path

import optuna

from bortnas.core.errors import TrialFailed
from bortnas.core.settings import RunSettings
from bortnas.core.space import load_search_space
from bortnas.search import create_or_resume, make_sampler, run_search
from bortnas.search.storage import open_storage
from bortnas.trial.context import build_context
from bortnas.trial.scoring import context_evaluator


def test_a_failing_trial_is_recorded_and_the_study_goes_on(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    settings = RunSettings(
        teacher=str(tiny_bert),
        data=str(tiny_task),
        text_column="sentence",
        label_column="sentiment",
        teacher_steps=5,
        trial_steps=2,
        max_length=16,
        batch_size=16,
    )
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
    study = create_or_resume(storage, "s", space, settings, make_sampler("random", space, 0, 3))
    scored = run_search(study, space, flaky, n_trials=3, strategy="random", provenance=provenance)
    assert scored == 3
    states = [t.state for t in study.get_trials() if "skip_reason" not in t.user_attrs]
    assert states.count(optuna.trial.TrialState.FAIL) == 1 and states.count(optuna.trial.TrialState.COMPLETE) == 3
    failed = next(t for t in study.get_trials() if t.state == optuna.trial.TrialState.FAIL)
    assert failed.user_attrs["fail_reason"] == "training diverged: loss is nan at step 1 of 2"
    assert failed.user_attrs["candidate"] == calls[0].to_dict()
