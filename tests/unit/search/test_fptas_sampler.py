"""FPTASSampler in plain Optuna, with no bortnas model code: a toy problem with a known optimum,
several workers on one SQLite storage, and the sampler bortnas's own search uses."""

from __future__ import annotations

import threading
from pathlib import Path

import optuna
import pytest

from bortnas import FPTASSampler
from bortnas.search.ordered import INDEX_ATTR

optuna.logging.set_verbosity(optuna.logging.WARNING)

WIDTHS, DEPTHS = (64, 128, 256), (1, 2, 4)
GRID = [{"width": w, "depth": d} for w in WIDTHS for d in DEPTHS]


def p(c: dict[str, int]) -> float:
    return c["width"] * c["depth"]


def i(c: dict[str, int]) -> float:
    return c["depth"]


def error(c: dict[str, int]) -> float:
    """Falls with size, so the ordering the guarantee needs holds."""
    return 1.0 / (1 + c["width"] * c["depth"] / 64)


def objective(trial: optuna.Trial) -> float:
    return error({"width": trial.suggest_categorical("width", WIDTHS), "depth": trial.suggest_categorical("depth", DEPTHS)})


def w(c: dict[str, int]) -> float:
    return (1 - p(c) / 2048) * (1 - i(c) / 8) / error(c)


def test_plain_optuna_finds_the_known_optimum_with_the_plan_s_evaluations() -> None:
    sampler = FPTASSampler(GRID, p=p, i=i, epsilon=0.2, p_max=2048, i_max=8)
    # by hand: N = (1 - p/2048)(1 - d/8); buckets of width 0.8 from N_max = 0.84 (256x1, p 256, d 1) hold
    # {256x1, 128x1, 64x1}, {256x2, 128x2, 64x2}, {64x4}, {128x4}, {256x4}: five representatives
    assert sampler.representatives == [
        {"width": 256, "depth": 1},
        {"width": 256, "depth": 2},
        {"width": 64, "depth": 4},
        {"width": 128, "depth": 4},
        {"width": 256, "depth": 4},
    ]
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=20)  # the sampler stops the study once its plan is evaluated
    assert [t.params for t in study.trials] == sampler.representatives
    result = sampler.result(study)
    optimum = max(GRID, key=w)
    assert optimum == {"width": 256, "depth": 2} == result.best
    assert result.best_w == pytest.approx(w(optimum)) and result.guarantee == pytest.approx(0.8)


def test_refinement_evaluates_more_members_and_never_loses() -> None:
    plain = FPTASSampler(GRID, p=p, i=i, epsilon=0.5, p_max=2048, i_max=8)
    refined = FPTASSampler(GRID, p=p, i=i, epsilon=0.5, p_max=2048, i_max=8, refine=3)
    assert refined.n_evaluations == plain.n_evaluations + 3
    studies = []
    for sampler in (plain, refined):
        study = optuna.create_study(sampler=sampler)
        study.optimize(objective, n_trials=sampler.n_evaluations)
        studies.append(study)
    assert [t.params for t in studies[1].trials][: plain.n_evaluations] == plain.representatives
    assert refined.result(studies[1]).best_w >= plain.result(studies[0]).best_w
    assert len({tuple(t.params.items()) for t in studies[1].trials}) == refined.n_evaluations  # no candidate twice


def test_workers_on_one_storage_share_the_plan_without_duplicates(tmp_path: Path) -> None:
    storage = f"sqlite:///{tmp_path / 'fptas.db'}"
    optuna.create_study(storage=storage, study_name="toy")
    sampler = FPTASSampler(GRID, p=p, i=i, epsilon=0.1, p_max=2048, i_max=8)

    def worker() -> None:
        study = optuna.load_study(study_name="toy", storage=storage, sampler=sampler)
        study.optimize(objective, n_trials=sampler.n_evaluations)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    study = optuna.load_study(study_name="toy", storage=storage)
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    evaluated = [tuple(sorted(t.params.items())) for t in done]
    assert set(evaluated) == {tuple(sorted(c.items())) for c in sampler.representatives}
    assert all(INDEX_ATTR in t.system_attrs for t in done)
    # a worker that loses a race takes the next free candidate; only a worker that starts a trial when none is
    # free (the last ones are running elsewhere) evaluates a duplicate, then stops: at most one per worker
    assert len(evaluated) - len(set(evaluated)) <= len(threads)
    assert sampler.result(study).best == max(sampler.representatives, key=w)


def test_a_resumed_study_continues_the_plan() -> None:
    sampler = FPTASSampler(GRID, p=p, i=i, epsilon=0.2, p_max=2048, i_max=8)
    study = optuna.create_study(sampler=sampler)
    study.optimize(objective, n_trials=2)
    study.optimize(objective, n_trials=10)
    assert [t.params for t in study.trials] == sampler.representatives


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="epsilon=1.0 must be in"):
        FPTASSampler(GRID, p=p, i=i, epsilon=1.0)
    with pytest.raises(ValueError, match="same parameters"):
        FPTASSampler([GRID[0], dict(GRID[0])], p=p, i=i)
    with pytest.raises(TypeError, match="pass params="):
        FPTASSampler([(64, 1), (128, 1)], p=lambda c: c[0], i=lambda c: c[1])


def test_candidates_of_any_type_with_params() -> None:
    # N = (1 - 64/512)(1 - 1/4) = 0.656 and (1 - 128/512)(1 - 1/4) = 0.5625: ratio 0.857 < 0.9, two buckets at epsilon 0.1
    sampler = FPTASSampler(
        [(64, 1), (128, 1)], p=lambda c: c[0], i=lambda c: c[1], params=lambda c: {"width": c[0], "depth": c[1]}, p_max=512, i_max=4
    )
    assert sampler.representatives == [(64, 1), (128, 1)] and sampler.numerator((64, 1)) == pytest.approx(0.65625)
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: 0.1 * t.suggest_categorical("width", [64, 128]) / 64 + 0 * t.suggest_categorical("depth", [1]), n_trials=5)
    assert sampler.result(study).best == (64, 1)  # errors 0.1 and 0.2: W = 6.56 against 2.81
