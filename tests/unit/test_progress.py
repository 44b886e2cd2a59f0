"""Progress off a terminal: log lines at a steady interval with rate and time left; silence for short work."""

from __future__ import annotations

import logging

import pytest

from bortnas.core.progress import LogProgress, progress_bar


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_log_progress_reports_every_interval_with_rate_and_time_left(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.progress")
    caplog.set_level(logging.INFO, logger="test.progress")
    progress = LogProgress(100, "distil", interval=30.0, clock=clock, logger=logger)
    for _ in range(10):  # 10 steps in 20 s: below the interval, nothing yet
        clock.t += 2.0
        progress.update()
    assert caplog.messages == []
    for _ in range(5):  # 15 steps in 30 s: 0.5 steps/s, 85 left -> 170 s
        clock.t += 2.0
        progress.update()
    progress.set_postfix(loss="0.412")
    assert caplog.messages == ["distil: 15/100 steps (15 %), 0.50 steps/s, about 2 min 50 s left"]
    for _ in range(85):
        clock.t += 2.0
        progress.update()
    progress.close()
    assert caplog.messages[-1] == "distil: 100/100 steps (100 %), 0.50 steps/s, done in 3 min 20 s, loss=0.412"
    assert len(caplog.messages) == 1 + 170 // 30 + 1  # one line per 30 s (15 steps), and the final one


def test_short_work_stays_silent_and_an_early_stop_is_reported(caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    logger = logging.getLogger("test.progress")
    caplog.set_level(logging.INFO, logger="test.progress")
    short = LogProgress(10, "trial", interval=30.0, clock=clock, logger=logger)
    for _ in range(10):
        clock.t += 1.0
        short.update()
    short.close()
    assert caplog.messages == []
    stopped = LogProgress(100, "export", interval=30.0, clock=clock, logger=logger)
    for _ in range(40):
        clock.t += 1.0
        stopped.update()
    stopped.close()  # interrupted at 40 of 100: the last state is logged
    assert caplog.messages[-1].startswith("export: 40/100 steps (40 %), 1.00 steps/s, about 1 min 00 s left")


def test_progress_bar_is_a_log_reporter_off_a_terminal_and_nothing_when_disabled() -> None:
    # pytest captures stderr, so it is not a terminal here
    assert isinstance(progress_bar(5, "x", enabled=True), LogProgress)
    assert not isinstance(progress_bar(5, "x", enabled=False), LogProgress)
