"""The wall-clock model of benchmarks/search_efficiency.py, against schedules worked out by hand."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from bortnas.core.space import REFERENCE_SHAPES, ArchSpec

_SPEC = importlib.util.spec_from_file_location(
    "search_efficiency", Path(__file__).resolve().parents[2] / "benchmarks" / "search_efficiency.py"
)
assert _SPEC is not None and _SPEC.loader is not None
se = importlib.util.module_from_spec(_SPEC)
sys.modules["search_efficiency"] = se  # its dataclasses look their module up while being defined
_SPEC.loader.exec_module(se)

SHAPE = REFERENCE_SHAPES["minilm-l6"]


def test_fptas_on_two_workers_by_hand() -> None:
    # Three candidates with p = 1, 2, 8 (i = 0, p_T = 10): N = 0.9, 0.8, 0.2; at eps 0.5 the first two share a
    # bucket (0.8 / 0.9 > 0.5) whose representative is b (larger p); c is alone. Representatives b, c start at
    # t = 0 on the two workers (b takes 4 s, c 10 s); b's worker is free at 4 and takes the refinement's only
    # member, a (3 s): done at 7. So completions: b at 4, a at 7, c at 10.
    a, b, c = ArchSpec(1, 96, 2, 192), ArchSpec(1, 192, 6, 192), ArchSpec(2, 384, 12, 1536)
    rows = {
        a: se.Row(params=1.0, flops=0.0, latency_ms=1.0, error=0.3, w=3.0, seconds=3.0),
        b: se.Row(params=2.0, flops=0.0, latency_ms=1.0, error=0.2, w=4.0, seconds=4.0),
        c: se.Row(params=8.0, flops=0.0, latency_ms=1.0, error=0.1, w=2.0, seconds=10.0),
    }
    top = {"params": 10.0, "flops": 1.0}
    events = se.simulate_fptas(rows, top, SHAPE, 0.5, workers=2, refine=5)
    assert events == [(4.0, b), (7.0, a), (10.0, c)]
    assert se.simulate_fptas(rows, top, SHAPE, 0.5, workers=2, refine=0) == [(4.0, b), (10.0, c)]
    # regret reaches 0 (W* = 4, b's) at b's completion; 25 % or less already then, so both gaps at t = 4
    assert se.time_to(events, rows, best_w=4.0, gap=0.01) == 4.0
    # one worker: b (4), c (14), a (17); the best W so far is 4 from t = 4 on
    serial = se.simulate_fptas(rows, top, SHAPE, 0.5, workers=1, refine=5)
    assert [t for t, _ in serial] == [4.0, 14.0, 17.0]


def test_time_to_never_reached_is_inf() -> None:
    a = ArchSpec(1, 96, 2, 192)
    rows = {a: se.Row(params=1.0, flops=0.0, latency_ms=1.0, error=0.3, w=1.0, seconds=1.0)}
    assert se.time_to([(1.0, a)], rows, best_w=2.0, gap=0.01) == pytest.approx(float("inf"))
