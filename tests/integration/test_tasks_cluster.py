"""Tasks other than classification on the many-worker paths: a tagged corpus searched on Ray (each worker rebuilds
the task from the study's pinned settings alone) and a regression search in PostgreSQL, resumed there."""

from __future__ import annotations

import json
import random
from pathlib import Path

import optuna
import pytest
from conftest import bortnas
from test_tasks import _tag, _write_conll, task_search, words_of, write_space
from test_workers import postgres_server, postgres_url  # noqa: F401  (the fixtures)

pytestmark = pytest.mark.integration


@pytest.mark.slow
@pytest.mark.xdist_group("ray")
def test_token_classification_on_ray_scores_entity_f1_in_every_worker(tmp_path: Path, tiny_bert: Path) -> None:
    rng = random.Random(5)
    sentences = [[(w, _tag(w)) for w in words_of(rng)[0]] for _ in range(160)]
    data = _write_conll(tmp_path / "tags.conll", sentences)
    storage, space = tmp_path / "ray.db", write_space(tmp_path)
    argv = task_search(tiny_bert, data, space, storage, "--teacher-steps", "30", "--backend", "ray", "--ray-cpus", "2", "--format", "json")
    argv[argv.index("grid")] = "random"  # Ray runs sampler strategies
    proc = bortnas(*argv, "--n-trials", "2", cwd=tmp_path, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert (out["task"], out["metric"]) == ("token_classification", "entity_f1")
    study = optuna.load_study(study_name="tiny", storage=f"sqlite:///{storage}")
    complete = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2
    for trial in complete:
        attrs = trial.user_attrs
        assert attrs["backend"] == "ray" and attrs["metric"] == "entity_f1" and attrs["task"] == "token_classification"
        assert set(attrs["dev_metrics"]) == {"entity_f1", "entity_precision", "entity_recall"}
        assert attrs["error"] == pytest.approx(1 - attrs["dev_metrics"]["entity_f1"])


def test_regression_in_postgresql_resumes_with_its_task(tmp_path: Path, tiny_bert: Path, postgres_url: str) -> None:  # noqa: F811
    rng = random.Random(6)
    rows = []
    for _ in range(160):
        words, positive, negative = words_of(rng)
        rows.append((" ".join(words), positive - negative + rng.random() / 10))
    data = tmp_path / "scores.csv"
    data.write_text("sentence,score\n" + "".join(f"{text},{score}\n" for text, score in rows))
    study = "tiny"
    argv = task_search(tiny_bert, data, write_space(tmp_path), tmp_path / "unused.db", "--teacher-steps", "30")
    argv[argv.index("--storage") + 1] = postgres_url
    argv += ["--text-column", "sentence", "--label-column", "score"]
    bortnas(*argv, cwd=tmp_path)
    loaded = optuna.load_study(study_name=study, storage=postgres_url)
    assert loaded.user_attrs["settings"]["task"] == "regression"
    complete = [t for t in loaded.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(complete) == 2 and all(t.user_attrs["metric"] == "pearson" for t in complete)
    for trial in complete:  # W's error is 1 - the trial's dev Pearson
        assert trial.user_attrs["error"] == pytest.approx(1 - max(0.0, trial.user_attrs["dev_metrics"]["pearson"]))
    again = bortnas(*argv, "--task", "classification", cwd=tmp_path, check=False)  # another task on resume is refused
    assert again.returncode == 2 and "task: 'regression' -> 'classification'" in again.stderr, again.stderr
