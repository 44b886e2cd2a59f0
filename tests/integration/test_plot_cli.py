"""`bortnas plot` in a subprocess: the files it writes, its stdout, and its errors."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import FAKE_BEST, FAKE_FRONT, bortnas, make_scored_study, one_line_error

pytestmark = pytest.mark.integration

NAMES = ["pareto.png", "history.png", "pareto.html", "history.html"]


def plot_error(proc: subprocess.CompletedProcess, fragment: str) -> None:
    """`bortnas plot`'s one-line usage error, exit 2, nothing on stdout."""
    one_line_error(proc, 2, fragment)
    assert proc.stderr.lstrip().startswith("bortnas plot: error: ") and proc.stdout == "", proc.stderr


def test_plot_writes_the_files_and_prints_their_paths(tmp_path: Path) -> None:
    make_scored_study(f"sqlite:///{tmp_path / 'bortnas.db'}")
    proc = bortnas("plot", "--study", "fake", "-q", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    default = tmp_path / "plots" / "fake"
    assert proc.stdout.splitlines() == [str(default / name) for name in NAMES]
    assert (default / "pareto.png").read_bytes()[:8] == (default / "history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert all((default / name).read_text().rstrip().endswith("</html>") for name in NAMES[2:])

    proc = bortnas("plot", "--study", "fake", "--out", "figures", "--format", "json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["files"] == [str(tmp_path / "figures" / name) for name in NAMES]
    assert (report["front"], report["best_trial"], report["scored"]) == (list(FAKE_FRONT), FAKE_BEST, 6)
    assert "Pareto front of (p, i, error): trials [0, 1, 3, 6]" in proc.stderr  # the INFO line, on stderr


def test_plot_errors(tmp_path: Path) -> None:
    plot_error(bortnas("plot", "--study", "fake", cwd=tmp_path, check=False), "--storage sqlite:///bortnas.db does not exist")
    assert not (tmp_path / "bortnas.db").exists()
    make_scored_study(f"sqlite:///{tmp_path / 'bortnas.db'}")
    plot_error(
        bortnas("plot", "--study", "other", cwd=tmp_path, check=False), "study 'other' does not exist in this storage (studies: fake)"
    )
    assert bortnas("plot", "--study", "fake", "--out", "p", "-q", cwd=tmp_path).returncode == 0
    plot_error(bortnas("plot", "--study", "fake", "--out", "p", cwd=tmp_path, check=False), "pareto.png exists and overwrite is off")
    assert bortnas("plot", "--study", "fake", "--out", "p", "--overwrite", "-q", cwd=tmp_path).returncode == 0
    assert not (tmp_path / "plots").exists()
