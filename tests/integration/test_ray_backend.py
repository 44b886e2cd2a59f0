"""`bortnas search --backend ray` for real: a local Ray, Ray Tune trials, StudySearch asking and telling the bortnas study."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import optuna
import pytest
from conftest import bortnas, search_args

# one xdist worker runs every Ray test in turn (`-n 2 --dist loadgroup`): one Ray at a time on the machine's cores,
# and the module's head is started once
pytestmark = [pytest.mark.integration, pytest.mark.xdist_group("ray")]

COMPLETE, PRUNED = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED


def ray_search(tmp_path: Path, teacher: Path, task: Path, space: Path, *extra: str) -> dict:
    ray = ("--storage", f"sqlite:///{tmp_path / 'ray.db'}", "--backend", "ray", "--ray-cpus", "2", "--format", "json")
    proc = bortnas(*search_args(teacher, task, space, *ray, *extra, strategy=None, trial_steps=None), cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_sampler_search_with_asha_on_ray(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    out = ray_search(tmp_path, tiny_bert, tiny_task, tiny_space, "--strategy", "tpe", "--n-trials", "4", "--trial-steps", "30")
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'ray.db'}").get_trials()
    complete = [t for t in trials if t.state == COMPLETE]
    assert len(complete) == 4
    assert max(collections.Counter(t.user_attrs["arch_id"] for t in complete).values()) == 1
    for trial in complete:
        assert trial.user_attrs["backend"] == "ray" and trial.user_attrs["steps"] == 30
        assert trial.value == pytest.approx(trial.user_attrs["w"]) and trial.user_attrs["latency_ms"] > 0
        assert trial.user_attrs["latency_device"] == "cpu"  # no --gpus-per-trial: the trial ran on its CPU
    stopped = [t for t in trials if t.state == PRUNED and "stopped_early_at" in t.user_attrs]
    assert all(t.user_attrs["stopped_early_at"] < 30 for t in stopped)
    taken = [t.user_attrs["arch_id"] for t in complete + stopped]
    assert len(taken) == len(set(taken))  # no candidate evaluated twice, stopped early or not
    assert out["best_trial"] == max(complete, key=lambda t: t.value).number


@pytest.mark.slow
def test_fptas_candidates_in_parallel_on_ray(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    out = ray_search(tmp_path, tiny_bert, tiny_task, tiny_space, "--strategy", "fptas", "--epsilon", "0.5", "--fptas-n0", "4")
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'ray.db'}")
    plan = study.user_attrs["fptas"]
    complete = [t for t in study.get_trials() if t.state == COMPLETE]
    assert sorted(t.user_attrs["key"] for t in complete) == sorted(plan["representatives"])
    assert not [t for t in study.get_trials() if "stopped_early_at" in t.user_attrs]  # FPTAS evaluates its candidates in full
    assert out["fptas"]["representatives"] == plan["representatives"]
