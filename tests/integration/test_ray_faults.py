"""Ray under faults, for real: a trial's worker process killed with SIGKILL mid-trial; the Ray head killed under its driver.

The killed worker's trial is told FAIL and its candidate queued again, so the search ends with the exact
count, each candidate finished once. Killing the head stops the driver; the same command run again
completes the study, nothing finished lost or counted twice.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import cli_env, record_fault, search_args, study_figures, wait_for_new_finish
from test_workers import COMPLETE, FAIL, check_exact, wait_for_running_claim

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.xdist_group("ray")]


def ray_command(tmp_path: Path, teacher: Path, task: Path, space: Path, storage: str) -> list[str]:
    ray = ("--storage", storage, "--backend", "ray", "--ray-cpus", "2", "--cpus-per-trial", "1", "--no-asha")
    extra = ("--strategy", "grid", "--n-trials", "3", "--trial-steps", "600")
    return [sys.executable, "-m", "bortnas", *search_args(teacher, task, space, *ray, *extra, strategy=None, trial_steps=None)]


def processes(title: str, timeout: float = 120) -> list[int]:
    """Pids of the processes whose command line (Ray sets it to the role, e.g. ray::ImplicitFunc.train) holds `title`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = []
        for entry in Path("/proc").iterdir():
            try:
                if entry.name.isdigit() and title in (entry / "cmdline").read_bytes().decode(errors="replace"):
                    found.append(int(entry.name))
            except OSError:  # the process ended meanwhile
                continue
        if found:
            return found
        time.sleep(0.2)
    raise AssertionError(f"no process {title!r} within {timeout} s")


def test_a_ray_worker_killed_mid_trial_is_retried_with_exact_counts(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path
) -> None:
    storage = f"sqlite:///{tmp_path / 'ray.db'}"
    driver = subprocess.Popen(
        ray_command(tmp_path, tiny_bert, tiny_task, tiny_space, storage),
        cwd=tmp_path,
        env=cli_env(tmp_path),
        stderr=subprocess.PIPE,
        text=True,
    )
    running = wait_for_running_claim(storage, "tiny", driver, timeout=600)
    victim = processes("ray::ImplicitFunc", timeout=600)[0]
    time.sleep(2.0)  # into its training
    before = {
        t.number: t.user_attrs["arch_id"] for t in optuna.load_study(study_name="tiny", storage=storage).get_trials(states=(COMPLETE,))
    }
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    recover_s = wait_for_new_finish(storage, "tiny", set(before), killed_at, timeout=600)
    _, err = driver.communicate(timeout=900)
    assert driver.returncode == 0, err[-3000:]
    trials = check_exact(storage, "tiny", 3)
    record_fault("Ray trial worker killed (SIGKILL) mid-trial", **study_figures(storage, "tiny", before, recover_s))
    lost = [t for t in trials if t.state == FAIL and "worker was lost" in t.user_attrs.get("fail_reason", "")]
    assert lost, [(t.number, t.state, t.user_attrs.get("fail_reason")) for t in trials]
    for failed in lost:  # each candidate whose worker died was evaluated again and finished
        assert any(t.state == COMPLETE and t.user_attrs["arch_id"] == failed.user_attrs["arch_id"] for t in trials)
    assert running.number in {t.number for t in trials}


def test_a_killed_ray_head_resumes_with_exact_counts(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'ray.db'}"
    command = ray_command(tmp_path, tiny_bert, tiny_task, tiny_space, storage)
    command += ["--heartbeat-interval", "1", "--grace-period", "3"]
    driver = subprocess.Popen(command, cwd=tmp_path, env=cli_env(tmp_path), stderr=subprocess.PIPE, text=True)
    wait_for_running_claim(storage, "tiny", driver, timeout=600)
    time.sleep(2.0)
    before = {
        t.number: t.user_attrs["arch_id"] for t in optuna.load_study(study_name="tiny", storage=storage).get_trials(states=(COMPLETE,))
    }
    for head in processes("gcs_server"):  # the local head the driver started: its control store, the cluster's state
        os.kill(head, signal.SIGKILL)
    killed_at = time.monotonic()
    try:
        driver.communicate(timeout=300)
    except subprocess.TimeoutExpired:
        driver.kill()  # a driver that hangs on a dead head counts as killed with it
        driver.communicate()
    resumed = subprocess.Popen(command, cwd=tmp_path, env=cli_env(tmp_path), stderr=subprocess.PIPE, text=True)
    recover_s = wait_for_new_finish(storage, "tiny", set(before), killed_at, timeout=600)
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err[-3000:]
    check_exact(storage, "tiny", 3)
    record_fault("Ray head killed (SIGKILL), same command run again", **study_figures(storage, "tiny", before, recover_s))
