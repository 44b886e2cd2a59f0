"""The CLI's habits through real subprocesses: torch-free read-only commands, progress off a terminal,
undecodable data files, and the task teacher's accuracy logged once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, bortnas, cli_env, make_scored_study, search_args

pytestmark = pytest.mark.integration

# Run the CLI in-process in a fresh interpreter and report whether torch / transformers were imported.
PROBE = (
    "import sys; from bortnas.app.cli import main; rc = main(sys.argv[1:]); "
    "print('MODULES', 'torch' in sys.modules, 'transformers' in sys.modules, file=sys.stderr); sys.exit(rc)"
)


def probe(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", PROBE, *args], cwd=cwd, env=cli_env(cwd), capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("command", ["trials", "plot", "space"])
def test_read_only_commands_never_import_torch(tmp_path: Path, command: str) -> None:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    make_scored_study(url)
    args = {
        "trials": ["trials", "--study", "fake", "--storage", url],
        "plot": ["plot", "--study", "fake", "--storage", url, "--out", str(tmp_path / "plots")],
        "space": ["space", str(REPO / "search_spaces" / "minilm_quick.yaml")],
    }[command]
    proc = probe(*args, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "MODULES False False" in proc.stderr


def test_undecodable_data_is_one_line_exit_2_and_nothing_written(tmp_path: Path, tiny_bert: Path, tiny_space: Path) -> None:
    data = tmp_path / "latin1.csv"
    data.write_bytes("sentence,sentiment\ncaf\xe9 good,pos\nbad movie,neg\n".encode("latin-1"))
    base = search_args(tiny_bert, data, tiny_space, "--storage", f"sqlite:///{tmp_path / 'bortnas.db'}", quiet=False)
    proc = bortnas(*base, cwd=tmp_path, check=False)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "latin1.csv" in lines[0] and "utf-8" in lines[0] and "--encoding" in lines[0]
    bad = bortnas(*base, "--encoding", "klingon-8", cwd=tmp_path, check=False)
    assert bad.returncode == 2 and "klingon-8" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "bortnas.db").exists() and not (tmp_path / "cache").exists()


def test_off_a_terminal_long_work_logs_progress_and_the_teacher_accuracy_once(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'bortnas.db'}"
    args = search_args(
        tiny_bert, tiny_task, tiny_space, "--n-trials", "1", "--storage", storage, teacher_steps=20, trial_steps=4, quiet=False
    )
    proc = bortnas(*args, cwd=tmp_path, env=cli_env(tmp_path, BORTNAS_PROGRESS_INTERVAL="0"), check=False)
    assert proc.returncode == 0, proc.stderr
    assert "fine-tune teacher: 20/20 steps (100 %)" in proc.stderr  # a line, where a terminal would show a bar
    assert "steps/s" in proc.stderr and "\r" not in proc.stderr
    teacher_lines = [line for line in proc.stderr.splitlines() if "task teacher (classification, fine-tuned 20 steps)" in line]
    assert len(teacher_lines) == 1 and "dev accuracy" in teacher_lines[0] and "test accuracy" in teacher_lines[0]
