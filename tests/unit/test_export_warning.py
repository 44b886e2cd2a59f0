"""An export far below its teacher says so and names the frontier's more accurate trials (a scored study, no training)."""

from __future__ import annotations

import logging
import types
from pathlib import Path

import pytest
from conftest import make_scored_study

from bortnas.api.export import _warn_if_far_below_teacher


def report(trial: int, points: float) -> types.SimpleNamespace:
    return types.SimpleNamespace(trial=trial, ratios=lambda: {"test_points": points})


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("bortnas") and r.levelno >= logging.WARNING]


def test_a_drop_over_two_points_names_the_more_accurate_frontier_trials(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_scored_study(storage)
    with caplog.at_level(logging.WARNING, logger="bortnas"):
        _warn_if_far_below_teacher(report(3, -5.0), "fake", storage, "accuracy")  # type: ignore[arg-type]
    # trial 3 (dev 0.70) is W's pick; trials 1 (0.80) and 0 (0.90) are faster-to-slower frontier points above it
    (line,) = warnings_of(caplog)
    assert line.startswith("the exported model is 5.00 points of test accuracy below its teacher; more accurate trials")
    assert "trial 1 (L1-H32-A4-I64-fp32), trial 0 (L2-H32-A4-I64-fp32)" in line


def test_within_two_points_or_at_the_top_of_the_frontier(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    storage = f"sqlite:///{tmp_path / 's.db'}"
    make_scored_study(storage)
    with caplog.at_level(logging.WARNING, logger="bortnas"):
        _warn_if_far_below_teacher(report(3, -2.0), "fake", storage, "accuracy")  # type: ignore[arg-type]
        assert not warnings_of(caplog)  # 2 points is within what an export may lose silently
        _warn_if_far_below_teacher(report(0, -3.0), "fake", storage, "accuracy")  # type: ignore[arg-type]
    (line,) = warnings_of(caplog)
    assert line.endswith("no trial of this study was more accurate on dev: search a space with larger candidates.")
