"""benchmarks/frontier.py at toy scale: every method's rows, the truncations' layers, bortnas within its budgets, the PNG."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, make_teacher

pytestmark = pytest.mark.integration

SCRIPT = REPO / "benchmarks" / "frontier.py"


def six_layer_teacher(directory: Path) -> Path:
    """The conftest teacher (tokenizer, widths) at depth 6, so truncation has room: spread-3 differs from first-3.

    The tiny space below cuts 1 or 3 layers. On a CPU their batch-1 latencies are 0.29-0.41 and 0.53-0.60
    of the teacher's (fixed overhead plus a share per layer at these widths; the higher ends on a busy
    machine), well apart from the test's budgets of 1/1.3 = 0.77 and 1/2.2 = 0.45 of it, so which shapes
    fit a budget does not depend on timing noise.
    """
    import torch
    from transformers import BertConfig, BertModel

    make_teacher(directory)
    config = BertConfig.from_pretrained(directory)
    config.num_hidden_layers = 6
    torch.manual_seed(0)
    BertModel(config).save_pretrained(directory)
    return directory


def test_quick_frontier_on_a_tiny_teacher(tmp_path: Path, tiny_task: Path) -> None:
    teacher = six_layer_teacher(tmp_path / "teacher")
    space = tmp_path / "tiny.yaml"
    space.write_text("name: tiny\nlayers: [1, 3]\nhidden: [16, 32]\nheads: [2, 4]\nffn: [32, 64]\n")
    out = tmp_path / "out"
    command = [
        sys.executable,
        str(SCRIPT),
        "--quick",
        *("--teacher", str(teacher), "--data", str(tiny_task), "--text-column", "sentence", "--label-column", "sentiment"),
        *("--space", str(space), "--max-length", "16", "--teacher-steps", "40", "--teacher-lr", "3e-3", "--lr", "3e-3"),
        *("--batch-size", "16", "--speedups", "1.3", "2.2", "--epsilon", "0.9", "--truncate", "1", "3"),
        *("--steps", "30", "--sweep-steps", "8", "--lrs", "1e-3", "3e-3", "--scratch-lrs", "1e-3", "3e-3"),
        *("--scratch-sgd-lrs", "2e-2", "--rounds", "9", "--repeats", "15"),
        *("--out", str(out), "--cache-dir", str(tmp_path / "cache")),
    ]
    # one thread per process: toy models gain nothing from more, and spinning threads on a busy runner cost minutes
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    report = json.loads((out / "frontier.json").read_text())
    rows = report["rows"]
    by_label = {row["label"]: row for row in rows}

    assert {row["method"] for row in rows} == {"bortnas", "first-k", "spread-k", "scratch", "int8", "teacher"}
    assert all(math.isfinite(row["test_accuracy"]) and 0.0 <= row["test_accuracy"] <= 1.0 for row in rows)
    assert not by_label["teacher"]["broken"]  # the toy task is learnt, so the comparisons mean something
    assert all(row["latency_ms"]["1"]["median"] > 0 and row["latency_ms"]["32"]["median"] > 0 for row in rows)

    # truncations: the requested depths at the teacher's full width, from the named teacher layers
    assert by_label["first-1"]["teacher_layers"] == [0]
    assert by_label["first-3"]["teacher_layers"] == [0, 1, 2]
    assert by_label["spread-3"]["teacher_layers"] == [0, 3, 5]
    assert "spread-1" not in by_label and any("spread-1" in s for s in report["skipped"])
    for label, depth in (("first-1", 1), ("first-3", 3), ("spread-3", 3)):
        assert by_label[label]["spec"] == f"L{depth}-H32-A4-I64-fp32" and by_label[label]["steps"] == 30
    # every trained baseline took the best recipe of its own sweep on dev
    for row in rows:
        if row["method"] in ("first-k", "spread-k", "scratch"):
            sweep = row["sweep"]
            tried = {(s["optimizer"], s["lr"]) for s in sweep}
            assert tried == ({("adamw", 1e-3), ("adamw", 3e-3)} | ({("sgd", 2e-2)} if row["method"] == "scratch" else set()))
            best = max((s for s in sweep if s["dev_accuracy"] is not None), key=lambda s: (s["dev_accuracy"], -s["dev_loss"]))
            assert (row["recipe"]["optimizer"], row["recipe"]["lr"]) == (best["optimizer"], best["lr"])

    # bortnas: one exported model per budget, each within its budget in this table, each shape also trained from scratch
    bortnas = [row for row in rows if row["method"] == "bortnas"]
    teacher_b1 = next(row for row in rows if row["method"] == "teacher")["latency_ms"]["1"]["median"]
    assert sorted(row["speedup_target"] for row in bortnas) == [1.3, 2.2]
    for row in bortnas:
        # judged side by side with the teacher; whether it is met there is a timing, which a test does not assert
        assert row["budget_ms"] == pytest.approx(teacher_b1 / row["speedup_target"])
        # what the search and export checked: the speed-up over the teacher in the study's own table
        recorded = row["recorded"]
        assert recorded["latency_table_ms"] <= recorded["latency_table_teacher_ms"] / row["speedup_target"]
        assert row["recorded"]["test_accuracy"] == pytest.approx(row["test_accuracy"])
        assert row["steps"] == 30
    assert {row["spec"] for row in rows if row["method"] == "scratch"} == {row["spec"] for row in bortnas}
    assert len(report["comparisons"]) == 2 and all(c["verdict"] for c in report["comparisons"])
    assert by_label["teacher"]["spec"] == by_label["int8 teacher"]["spec"] == "L6-H32-A4-I64-fp32"

    assert "deprecated torch.ao path" in proc.stdout and "bortnas 2.2x" in proc.stdout
    assert (out / "frontier.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
