"""The CLI's habits through real subprocesses: torch-free read-only commands, progress off a terminal,
undecodable data files, and the task teacher's accuracy logged once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import make_scored_study

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
# Run the CLI in-process in a fresh interpreter and report whether torch / transformers were imported.
PROBE = (
    "import sys; from bortnas.app.cli import main; rc = main(sys.argv[1:]); "
    "print('MODULES', 'torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr); sys.exit(rc)"
)


def run(*args: str, cwd: Path, env: dict[str, str] | None = None, probe: bool = False) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", PROBE, *args] if probe else [sys.executable, "-m", "bortnas", *args]
    environment = dict(os.environ, BORTNAS_CACHE=str(cwd / "cache"), PYTHONPATH=str(REPO), **(env or {}))
    return subprocess.run(command, cwd=cwd, env=environment, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", ["trials", "plot", "space"])
def test_read_only_commands_never_import_torch(tmp_path: Path, command: str) -> None:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    make_scored_study(url)
    args = {
        "trials": ["trials", "--study", "fake", "--storage", url],
        "plot": ["plot", "--study", "fake", "--storage", url, "--out", str(tmp_path / "plots")],
        "space": ["space", str(REPO / "search_spaces" / "minilm_quick.yaml")],
    }[command]
    proc = run(*args, cwd=tmp_path, probe=True)
    assert proc.returncode == 0, proc.stderr
    assert "MODULES False False" in proc.stderr


def test_undecodable_data_is_one_line_exit_2_and_nothing_written(tmp_path: Path, tiny_bert: Path, tiny_space: Path) -> None:
    data = tmp_path / "latin1.csv"
    data.write_bytes("sentence,sentiment\ncaf\xe9 good,pos\nbad movie,neg\n".encode("latin-1"))
    base = [
        "search",
        "--space",
        str(tiny_space),
        "--teacher",
        str(tiny_bert),
        "--data",
        str(data),
        "--text-column",
        "sentence",
        "--label-column",
        "sentiment",
        "--storage",
        f"sqlite:///{tmp_path / 'bortnas.db'}",
    ]
    proc = run(*base, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "latin1.csv" in lines[0] and "utf-8" in lines[0] and "--encoding" in lines[0]
    bad = run(*base, "--encoding", "klingon-8", cwd=tmp_path)
    assert bad.returncode == 2 and "klingon-8" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bortnas.db").exists() and not (tmp_path / "cache").exists()


def test_off_a_terminal_long_work_logs_progress_and_the_teacher_accuracy_once(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path
) -> None:
    args = [
        "search",
        "--space",
        str(tiny_space),
        "--teacher",
        str(tiny_bert),
        "--data",
        str(tiny_task),
        "--text-column",
        "sentence",
        "--label-column",
        "sentiment",
        "--teacher-steps",
        "20",
        "--teacher-lr",
        "3e-3",
        "--lr",
        "3e-3",
        "--strategy",
        "tpe",
        "--trial-steps",
        "4",
        "--batch-size",
        "16",
        "--max-length",
        "24",
        "--n-trials",
        "1",
        "--storage",
        f"sqlite:///{tmp_path / 'bortnas.db'}",
    ]
    proc = run(*args, cwd=tmp_path, env={"BORTNAS_PROGRESS_INTERVAL": "0"})
    assert proc.returncode == 0, proc.stderr
    assert "fine-tune teacher: 20/20 steps (100 %)" in proc.stderr  # a line, where a terminal would show a bar
    assert "steps/s" in proc.stderr and "\r" not in proc.stderr
    assert proc.stderr.count("task teacher dev accuracy") == 1
