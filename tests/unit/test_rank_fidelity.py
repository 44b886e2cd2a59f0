"""The statistics of benchmarks/rank_fidelity.py and the ordering check it shares with
benchmarks/search_efficiency.py, against hand computations."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # rank_fidelity imports search_efficiency as its script does
_SPEC = importlib.util.spec_from_file_location("rank_fidelity", BENCHMARKS / "rank_fidelity.py")
assert _SPEC is not None and _SPEC.loader is not None
rf = importlib.util.module_from_spec(_SPEC)
sys.modules["rank_fidelity"] = rf
_SPEC.loader.exec_module(rf)


def test_tau_b_by_hand() -> None:
    # 6 pairs, one swapped (the 2nd and 3rd): (5 - 1) / 6.
    assert rf.kendall_tau_b([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(4 / 6)
    assert rf.kendall_tau_b([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # A tie in x: 5 untied pairs in x, 6 in y, all 5 concordant: 5 / sqrt(30), not 5 / 6 or 1.
    assert rf.kendall_tau_b([1, 1, 2, 3], [1, 2, 3, 4]) == pytest.approx(5 / math.sqrt(30))
    # Every candidate at the same (majority-class) error: no evidence either way.
    assert math.isnan(rf.kendall_tau_b([0.41, 0.41, 0.41], [0.3, 0.2, 0.1]))
    with pytest.raises(ValueError):
        rf.kendall_tau_b([1, 2], [1])


def test_order_violations_by_hand() -> None:
    se = sys.modules["search_efficiency"]
    items = [((1.0,), 0.3), ((2.0,), 0.2), ((3.0,), 0.25)]
    # Only (2, 3) is broken: the larger has 0.05 more error.
    assert se.order_violations(items) == pytest.approx({"share": 1 / 3, "mean_excess": 0.05, "max_excess": 0.05})
    # A second candidate of key 2 is not compared with the first (a tie), breaks the order against key 1 by 0.6
    # and keeps it against key 3: 2 of 5 ordered pairs broken.
    assert se.order_violations([*items, ((2.0,), 0.9)]) == pytest.approx({"share": 0.4, "mean_excess": 0.325, "max_excess": 0.6})
    assert se.order_violations([]) == {"share": 0.0, "mean_excess": 0.0, "max_excess": 0.0}


def test_recipe_parsing() -> None:
    assert rf.Recipe.parse("90") == rf.Recipe(90, None)
    assert rf.Recipe.parse("30:1e-3") == rf.Recipe(30, 1e-3)
    assert rf.Recipe.parse("30:1e-3").name == "30 steps, lr 0.001"
    for bad in ("x", "0", "30:-1", "30:abc"):
        with pytest.raises(SystemExit):
            rf.Recipe.parse(bad)


def test_candidates_are_a_latin_square() -> None:
    shapes = [tuple(int(part[1:]) for part in key.split("-")) for key in rf.CANDIDATES]
    assert len({(layers, hidden) for layers, hidden, _, _ in shapes}) == 12
    assert sorted(ffn for *_, ffn in shapes) == [192] * 4 + [768] * 4 + [1536] * 4
    assert sorted(heads for _, _, heads, _ in shapes) == [6] * 6 + [12] * 6


def test_report_on_a_hand_made_result() -> None:
    # Exports ordered by size (k0 smallest, worst); the table's trial errors tie the three smallest at a
    # majority-class 0.41 and get the rest right; one recipe reverses the order entirely.
    keys = rf.CANDIDATES
    exported = {
        k: {"dev_error": 0.40 - 0.01 * i, "test_error": 0.41 - 0.01 * i, "params_non_embedding": 1000 * (i + 1)} for i, k in enumerate(keys)
    }
    table = {k: 0.41 if i < 3 else 0.40 - 0.01 * i for i, k in enumerate(keys)}
    results = {
        "exports": exported,
        "table_recipe": "30 steps",
        "export_steps": 1500,
        "table_errors": table,
        "trials": {"reversed": {k: 0.1 + 0.01 * i for i, k in enumerate(keys)}},
        "order_keys": {k: [float(i), 0.0, 0.0] for i, k in enumerate(keys)},
    }
    report = rf.taus(results)
    assert report["zero-cost proxy (non-embedding parameters)"]["tau_dev"] == pytest.approx(1.0)
    # 66 pairs, 3 tied in the trial errors, the other 63 concordant: 63 / sqrt(63 * 66).
    table_row = report["table's trial (30 steps)"]
    assert table_row["tau_dev"] == pytest.approx(63 / math.sqrt(63 * 66))
    assert (table_row["ties"], table_row["top_pick"]) == (3, keys[-1])
    assert report["trial, reversed"]["tau_dev"] == pytest.approx(-1.0)
    assert report["trial, reversed"]["top_pick_export_dev_error"] == pytest.approx(0.40)
    broken = rf.violations(results)
    assert broken["export (1500 steps)"]["share"] == 0.0
    assert broken["trial, reversed"]["share"] == 1.0
    # the table's errors: every pair is ordered, only equal errors among the first three: none broken
    assert broken["table's trial (30 steps)"]["share"] == 0.0
