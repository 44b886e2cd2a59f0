"""Progress of long work: a tqdm bar on a terminal, a log line at a steady interval elsewhere.

Pure layer (tqdm, no torch). Off a terminal (CI logs, `nohup`, a Ray job's log) a bar would print
nothing useful, so `progress_bar` returns a `LogProgress` instead: the same `update`,
`set_postfix` and `close` calls, reported as one INFO line every `interval` seconds with the
steps done, the rate and the time left. Library functions take `show_progress_bar: bool` and
call `progress_bar`; only the CLI decides whether progress is shown at all (`-q` turns it off).
`$BORTNAS_PROGRESS_INTERVAL` sets the interval in seconds.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any, Protocol

from tqdm.auto import tqdm

_logger = logging.getLogger("bortnas.progress")
LOG_INTERVAL_S = 30.0


class Progress(Protocol):
    """What the loops call on a progress reporter (a subset of tqdm's interface)."""

    def update(self, n: int = 1) -> Any: ...

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


def _duration(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


class LogProgress:
    """Reports progress as log lines, one per `interval` seconds, and a last one when work that
    took longer than `interval` ends (shorter work stays silent, as a bar would be gone by then).

    `clock` is injectable so tests can step time.
    """

    def __init__(
        self,
        total: int,
        desc: str,
        initial: int = 0,
        unit: str = "steps",
        interval: float = LOG_INTERVAL_S,
        clock: Callable[[], float] = time.monotonic,
        logger: logging.Logger = _logger,
    ) -> None:
        self.total, self.desc, self.unit, self.interval = total, desc, unit, interval
        self.n = self._start_n = initial
        self._clock, self._logger = clock, logger
        self._started = self._last = clock()
        self._postfix = ""
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.n += n
        now = self._clock()
        done = bool(self.total) and self.n >= self.total
        if now - self._last >= self.interval or (done and now - self._started >= self.interval):
            self._report(now)

    def set_postfix(self, ordered_dict: Any = None, refresh: bool = True, **kwargs: Any) -> None:
        items = {**(dict(ordered_dict) if ordered_dict else {}), **kwargs}
        self._postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def line(self, now: float) -> str:
        """The progress line at time `now`: done/total, percent, rate and time left."""
        elapsed = max(now - self._started, 1e-9)
        rate = (self.n - self._start_n) / elapsed
        parts = [f"{self.desc}: {self.n}/{self.total} {self.unit}" + (f" ({100 * self.n / self.total:.0f} %)" if self.total else "")]
        parts.append(f"{rate:.2f} {self.unit}/s" if rate < 10 else f"{rate:.0f} {self.unit}/s")
        if self.total and self.n < self.total and rate > 0:
            parts.append(f"about {_duration((self.total - self.n) / rate)} left")
        elif self.total and self.n >= self.total:
            parts.append(f"done in {_duration(elapsed)}")
        if self._postfix:
            parts.append(self._postfix)
        return ", ".join(parts)

    def _report(self, now: float) -> None:
        self._last = now
        self._logger.info("%s", self.line(now))

    def close(self) -> None:
        """Report where work stopped early (an error, an interrupt) if any line was logged before."""
        if not self._closed and self._last > self._started and (not self.total or self.n < self.total):
            self._report(self._clock())
        self._closed = True


def log_interval() -> float:
    """Seconds between progress lines off a terminal: `$BORTNAS_PROGRESS_INTERVAL`, default 30."""
    try:
        return max(0.0, float(os.environ.get("BORTNAS_PROGRESS_INTERVAL", LOG_INTERVAL_S)))
    except ValueError:
        return LOG_INTERVAL_S


def progress_bar(total: int, desc: str, enabled: bool, initial: int = 0, leave: bool = True, unit: str = "steps") -> Progress:
    """A progress reporter for `total` units of work: nothing when not `enabled`, a tqdm bar on
    stderr when it is a terminal, else a `LogProgress`."""
    if enabled and not sys.stderr.isatty():
        return LogProgress(total, desc, initial=initial, unit=unit, interval=log_interval())
    bar: Progress = tqdm(total=total, initial=initial, desc=desc, disable=not enabled, file=sys.stderr, leave=leave)
    return bar
