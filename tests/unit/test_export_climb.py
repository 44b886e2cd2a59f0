"""An export (of a trial it was not told) checks its trained model on dev and climbs the frontier while it is too far
below the teacher: a scored study, with training and dev scoring replaced by a table of scores."""

from __future__ import annotations

import importlib
import types
from pathlib import Path
from typing import Any

import optuna
import pytest
from conftest import FAKE_BEST, make_scored_study

from bortnas.api.export import _climb
from bortnas.api.finetune import Distil
from bortnas.core.budget import Budget
from bortnas.search.selection import Selection

TEACHER_DEV = 0.85
# by module path: the package's `bortnas.export` attribute is the export function, which hides the subpackage
writer = importlib.import_module("bortnas.export.writer")
metrics = importlib.import_module("bortnas.trial.metrics")


def climb(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    trained_dev: dict[int, float],
    accept: float,
    climbs: int,
    start: int = FAKE_BEST,
    selection: Selection | None = None,
) -> tuple[int, list[Any], list[int]]:
    """Run `_climb` from trial `start` (default W's pick, 3) where trial N trains to dev score
    `trained_dev[N]`: the trial written, the attempts recorded and the trials trained after the first."""
    tmp_path.mkdir(exist_ok=True)
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_scored_study(storage)
    study = optuna.load_study(study_name="fake", storage=storage)
    trained: list[int] = []

    def train_trial(ctx: Any, trial: optuna.trial.FrozenTrial, *args: Any) -> Any:
        trained.append(trial.number)
        return types.SimpleNamespace(model=trial.number)

    monkeypatch.setattr(writer, "train_trial", train_trial)
    monkeypatch.setattr(metrics, "score_metrics", lambda model, ctx, split: {"accuracy": trained_dev[model]})
    ctx: Any = types.SimpleNamespace(
        task=types.SimpleNamespace(check_metric="accuracy"), teacher=types.SimpleNamespace(dev_metrics={"accuracy": TEACHER_DEV}), dev=None
    )
    first = study.trials[start]
    fake: Any = types.SimpleNamespace(model=start)  # a Finetuned as `_climb` reads it
    chosen, model, attempts = _climb(
        ctx,
        study,
        first,
        fake,
        accept,
        climbs,
        10,
        Distil(),
        False,
        (),
        False,
        selection,
    )
    assert model.model == chosen.number  # the model written is the one trained for the trial written
    return chosen.number, attempts, trained


def test_a_pick_within_the_accepted_drop_is_written_as_trained(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    chosen, attempts, trained = climb(tmp_path, monkeypatch, {FAKE_BEST: 0.84}, accept=2.0, climbs=2)
    assert chosen == FAKE_BEST and trained == []
    expected = {
        "trial": 3,
        "candidate": "L1-H16-A2-I32-fp32",
        "metric": "accuracy",
        "dev_score": 0.84,
        "dev_drop_points": pytest.approx(1.0),
    }
    assert attempts == [expected]


def test_a_pick_too_far_below_climbs_to_the_fastest_more_accurate_trial(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # W's pick 3 trains to 0.80 (5 points below 0.85): trial 1, the fastest above it on the search's dev scores, reaches 0.84
    chosen, attempts, trained = climb(tmp_path, monkeypatch, {3: 0.80, 1: 0.84}, accept=2.0, climbs=2)
    assert chosen == 1 and trained == [1]
    assert [(a["trial"], round(a["dev_drop_points"], 6)) for a in attempts] == [(3, 5.0), (1, 1.0)]


def test_climbs_stop_at_the_limit_and_keep_the_most_accurate_model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # 3 -> 1 -> 0 are all too far below: with 2 climbs the export stops after trial 0 and writes trial 1, the best trained
    scores = {3: 0.70, 1: 0.80, 0: 0.78}
    chosen, attempts, trained = climb(tmp_path, monkeypatch, scores, accept=2.0, climbs=2)
    assert trained == [1, 0] and chosen == 1 and [a["trial"] for a in attempts] == [3, 1, 0]
    chosen, attempts, trained = climb(tmp_path / "one", monkeypatch, scores, accept=2.0, climbs=1)
    assert trained == [1] and chosen == 1 and [a["trial"] for a in attempts] == [3, 1]
    chosen, attempts, trained = climb(tmp_path / "none", monkeypatch, scores, accept=2.0, climbs=0)
    assert trained == [] and chosen == FAKE_BEST


def test_the_most_accurate_trial_of_the_study_has_nowhere_to_climb(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # an accepted drop of 0 with the pick 1 point short climbs 3 -> 1 -> 0 (the study's most accurate) and stops there
    chosen, attempts, trained = climb(tmp_path, monkeypatch, {3: 0.84, 1: 0.83, 0: 0.845}, accept=0.0, climbs=5)
    assert trained == [1, 0] and chosen == 0 and len(attempts) == 3


def test_with_a_cost_budget_the_export_climbs_only_within_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # within 1.2 ms the budget's pick is trial 1 (0.80 on the search's dev); trained to 0.80 it is 5 points short, and
    # the only more accurate trial, 0, takes 1.9 ms: nothing inside the budget to climb to
    scores = {1: 0.80, 0: 0.90}
    chosen, attempts, trained = climb(
        tmp_path, monkeypatch, scores, accept=2.0, climbs=2, start=1, selection=Selection(Budget(max_latency_ms=1.2))
    )
    assert chosen == 1 and trained == [] and len(attempts) == 1
    chosen, attempts, trained = climb(tmp_path / "free", monkeypatch, scores, accept=2.0, climbs=2, start=1)
    assert chosen == 0 and trained == [0]  # without the budget it climbs to 0
