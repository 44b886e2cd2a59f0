"""Exports under faults, for real: SIGTERM mid-training, two exports to one directory, a full disk (a small tmpfs).

Each leaves either the earlier directory or the new one whole, never a mixture or a partial one, and
says what happened in one line. The teacher cache is tested on a full disk too.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import bortnas, cli_env, one_line_error, search_args, tmpfs

pytestmark = pytest.mark.integration

EXPORT = ("export", "--study", "tiny", "--accept-drop", "none", "-q")


@pytest.fixture(scope="module")
def studied(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, tiny_task: Path) -> Path:
    """A working directory with a finished tiny study (bortnas.db) and its teacher cache."""
    directory = tmp_path_factory.mktemp("export_faults")
    space = directory / "tiny.yaml"
    space.write_text("name: tiny\nlayers: [1, 2]\nhidden: [16, 32]\nheads: [2, 4]\nffn: [32, 64]\n")
    bortnas(*search_args(tiny_bert, tiny_task, space, "--n-trials", "2"), cwd=directory)
    return directory


@pytest.fixture()
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 100 MiB tmpfs: room for an export (it asks for the weights plus 64 MiB), until it is filled."""
    with tmpfs(tmp_path / "disk", "100m") as mount:
        yield mount


def start_export(cwd: Path, out: Path, *extra: str) -> subprocess.Popen:
    command = [sys.executable, "-m", "bortnas", *EXPORT, "--out", str(out), *extra]
    return subprocess.Popen(command, cwd=cwd, env=cli_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for_lock(out: Path, proc: subprocess.Popen, timeout: float = 120) -> None:
    """Until `proc` has claimed `out` (its lock file exists), i.e. it is past its checks and training."""
    deadline = time.monotonic() + timeout
    lock = out.parent / f".{out.name}.bortnas-lock"
    while not lock.exists():
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the export never claimed its directory"
        time.sleep(0.1)
    time.sleep(1.0)  # into the training


def leftovers(parent: Path, name: str) -> list[str]:
    """Staging, set-aside and lock entries an export left beside `name`."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{name}."))


@pytest.mark.slow  # several exports: the default suite keeps the damaged-file and cache cases
def test_sigterm_stops_an_export_like_ctrl_c_and_keeps_the_earlier_one(studied: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    bortnas(*EXPORT, "--out", str(out), "--steps", "5", cwd=studied)
    before = (out / "bortnas.json").read_text()
    victim = start_export(studied, out, "--steps", "100000", "--overwrite")
    wait_for_lock(out, victim)
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=60)
    assert victim.returncode == 143, err
    assert err.strip().splitlines() == ["bortnas export: terminated (signal 15)"]
    assert (out / "bortnas.json").read_text() == before  # untouched
    assert leftovers(tmp_path, "model") == []


@pytest.mark.slow  # several exports: the default suite keeps the damaged-file and cache cases
def test_two_exports_to_one_directory_one_wins_the_other_refuses(studied: Path, tmp_path: Path) -> None:
    out = tmp_path / "model"
    first = start_export(studied, out, "--steps", "1000000")  # holds the directory for as long as the test needs
    wait_for_lock(out, first)
    second = bortnas(*EXPORT, "--out", str(out), "--steps", "5", "--overwrite", cwd=studied, check=False)
    one_line_error(second, 2, "is being written by another bortnas process")
    assert first.poll() is None  # the first one goes on, alone
    first.send_signal(signal.SIGTERM)
    _, err = first.communicate(timeout=60)
    assert first.returncode == 143, err
    assert not out.exists() and leftovers(tmp_path, "model") == []  # nothing of either was left
    bortnas(*EXPORT, "--out", str(out), "--steps", "5", cwd=studied)  # free again once the holder is gone
    assert json.loads((out / "bortnas.json").read_text())["training"]["steps"] == 5


@pytest.mark.slow  # several exports: the default suite keeps the damaged-file and cache cases
def test_a_full_disk_refuses_an_export_in_one_line_and_keeps_the_earlier_one(studied: Path, small_disk: Path) -> None:
    out = small_disk / "model"
    bortnas(*EXPORT, "--out", str(out), "--steps", "5", cwd=studied)
    before = (out / "bortnas.json").read_text()
    filler = small_disk / "filler"
    with filler.open("wb") as handle:  # leave about 8 MiB
        handle.truncate(0)
        free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
        handle.write(b"\0" * (free - 8 * 2**20))
    refused = bortnas(*EXPORT, "--out", str(out), "--steps", "5", "--overwrite", cwd=studied, check=False)
    one_line_error(refused, 2, f"in {small_disk}, which has")
    assert "MiB" in refused.stderr
    assert (out / "bortnas.json").read_text() == before
    assert leftovers(small_disk, "model") == []


def test_a_full_disk_refuses_the_teacher_cache_in_one_line(tmp_path: Path, tiny_bert: Path, tiny_task: Path, small_disk: Path) -> None:
    space = tmp_path / "tiny.yaml"
    space.write_text("name: tiny\nlayers: [1]\nhidden: [16]\nheads: [2]\nffn: [32]\n")
    filler = small_disk / "filler"
    free = os.statvfs(small_disk).f_bavail * os.statvfs(small_disk).f_frsize
    filler.write_bytes(b"\0" * (free - 4 * 2**20))
    refused = bortnas(
        *search_args(tiny_bert, tiny_task, space, "--n-trials", "1"),
        cwd=tmp_path,
        env=cli_env(tmp_path, BORTNAS_CACHE=str(small_disk)),
        check=False,
    )
    one_line_error(refused, 2, "caching the teacher in")
    assert not list((small_disk / "teachers").iterdir())


def test_an_exported_model_cut_short_is_refused_in_one_line(studied: Path, tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    out = tmp_path / "model"
    bortnas(*EXPORT, "--out", str(out), "--steps", "5", cwd=studied)
    weights = out / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])  # a copy cut short
    refused = bortnas(
        *("finetune", "--model", str(out), "--teacher", str(tiny_bert), "--data", str(tiny_task)),
        *("--text-column", "sentence", "--label-column", "sentiment", "--out", str(tmp_path / "tuned"), "--steps", "5", "-q"),
        cwd=studied,
        check=False,
    )
    one_line_error(refused, 2, "copy model.safetensors again")
    assert not (tmp_path / "tuned").exists() and leftovers(tmp_path, "tuned") == []


@pytest.mark.parametrize(("damaged", "says"), [("tokenizer.json", "no usable tokenizer"), ("config.json", "is not a valid JSON file")])
def test_a_teacher_file_that_does_not_parse_is_refused_in_one_line(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path, damaged: str, says: str
) -> None:
    teacher = tmp_path / "teacher"
    shutil.copytree(tiny_bert, teacher)
    (teacher / damaged).write_text('{"version": "1.0", "trunc')
    refused = bortnas(
        *search_args(tiny_bert, tiny_task, tiny_space, "--teacher", str(teacher), "--n-trials", "1"), cwd=tmp_path, check=False
    )
    one_line_error(refused, 2, says)
    assert not (tmp_path / "bortnas.db").exists()
