"""bortnas.search.study: a new study pins its space and settings; resuming checks them; loading finds bortnas studies only."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from bortnas import __version__
from bortnas.core.errors import StudyMismatchError, StudyNotFoundError
from bortnas.core.settings import RunSettings
from bortnas.core.space import parse_search_space
from bortnas.search.storage import open_storage
from bortnas.search.study import create_or_resume, load_study

SPACE = parse_search_space({"name": "tiny", "layers": [1, 2], "hidden": [16, 32], "heads": [2, 4], "ffn": [32, 64]}, "test_study")
OTHER_SPACE = parse_search_space({"name": "tiny", "layers": [1, 2, 3], "hidden": [16, 32], "heads": [2, 4], "ffn": [32, 64]}, "test_study")
FPTAS = {"epsilon": 0.1, "n0": 6.0, "s": 1.0, "steps": 60, "candidates": 4}


@pytest.fixture()
def storage(tmp_path: Path) -> optuna.storages.RDBStorage:
    return open_storage(f"sqlite:///{tmp_path / 'study.db'}")


def sampler() -> optuna.samplers.BaseSampler:
    return optuna.samplers.RandomSampler(seed=0)


def test_a_new_study_pins_its_space_and_settings(storage: optuna.storages.RDBStorage) -> None:
    settings = RunSettings(trial_steps=5, batch_size=8)
    study = create_or_resume(storage, "s", SPACE, settings, sampler())
    attrs = study.user_attrs
    assert attrs["space_fingerprint"] == SPACE.fingerprint()
    assert attrs["settings"] == settings.to_dict() and attrs["settings"]["trial_steps"] == 5
    assert attrs["space"] == SPACE.to_dict() and attrs["space_name"] == "tiny"
    assert attrs["bortnas_version"] == __version__
    assert "fptas" not in attrs
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_resuming_with_the_same_space_and_settings_keeps_the_trials(storage: optuna.storages.RDBStorage) -> None:
    study = create_or_resume(storage, "s", SPACE, RunSettings(), sampler())
    study.add_trial(optuna.trial.create_trial(value=0.5))
    again = create_or_resume(storage, "s", SPACE, RunSettings(), sampler())
    assert again._study_id == study._study_id
    assert [t.value for t in again.trials] == [0.5]


def test_resuming_with_another_space_is_refused(storage: optuna.storages.RDBStorage) -> None:
    create_or_resume(storage, "s", SPACE, RunSettings(), sampler())
    with pytest.raises(
        StudyMismatchError,
        match=r"study 's' was created with another search space: resume it with the original settings or choose a new study name",
    ):
        create_or_resume(storage, "s", OTHER_SPACE, RunSettings(), sampler())
    assert optuna.load_study(study_name="s", storage=storage).user_attrs["space_fingerprint"] == SPACE.fingerprint()


def test_resuming_with_changed_settings_names_them(storage: optuna.storages.RDBStorage) -> None:
    create_or_resume(storage, "s", SPACE, RunSettings(trial_steps=60, seed=0), sampler())
    with pytest.raises(StudyMismatchError, match=r"other settings \(seed: 0 -> 3, trial_steps: 60 -> 5\)") as raised:
        create_or_resume(storage, "s", SPACE, RunSettings(trial_steps=5, seed=3), sampler())
    assert "batch_size" not in str(raised.value)  # unchanged settings are not listed
    assert optuna.load_study(study_name="s", storage=storage).user_attrs["settings"]["trial_steps"] == 60


def test_a_setting_left_out_at_its_default_is_compared_too(storage: optuna.storages.RDBStorage) -> None:
    create_or_resume(storage, "s", SPACE, RunSettings(), sampler())  # the default encoding is not stored
    with pytest.raises(StudyMismatchError, match=r"\(encoding: 'utf-8' -> 'latin-1'\)"):
        create_or_resume(storage, "s", SPACE, RunSettings(encoding="latin-1"), sampler())


def test_a_setting_dropped_back_to_its_default_is_named(storage: optuna.storages.RDBStorage) -> None:
    create_or_resume(storage, "s", SPACE, RunSettings(encoding="latin-1"), sampler())
    with pytest.raises(StudyMismatchError, match=r"other settings \(encoding: 'latin-1' -> 'utf-8'\)"):
        create_or_resume(storage, "s", SPACE, RunSettings(), sampler())


def test_the_fptas_plan_is_stored_and_another_epsilon_refused(storage: optuna.storages.RDBStorage) -> None:
    study = create_or_resume(storage, "f", SPACE, RunSettings(), sampler(), fptas=FPTAS)
    assert study.user_attrs["fptas"] == FPTAS
    create_or_resume(storage, "f", SPACE, RunSettings(), sampler(), fptas=dict(FPTAS))  # the same plan resumes
    create_or_resume(storage, "f", SPACE, RunSettings(), sampler())  # so does a caller that does not run the FPTAS
    with pytest.raises(StudyMismatchError, match=r"study 'f' ran FPTAS with epsilon=0.1, n0=6.0, s=1.0"):
        create_or_resume(storage, "f", SPACE, RunSettings(), sampler(), fptas={**FPTAS, "epsilon": 0.2})
    with pytest.raises(StudyMismatchError, match=r"epsilon=0.1, n0=6.0"):
        create_or_resume(storage, "f", SPACE, RunSettings(), sampler(), fptas={**FPTAS, "n0": 3.0})
    assert optuna.load_study(study_name="f", storage=storage).user_attrs["fptas"] == FPTAS


def test_an_fptas_plan_is_added_to_a_study_made_without_one(storage: optuna.storages.RDBStorage) -> None:
    create_or_resume(storage, "f", SPACE, RunSettings(), sampler())
    study = create_or_resume(storage, "f", SPACE, RunSettings(), sampler(), fptas=FPTAS)
    assert study.user_attrs["fptas"] == FPTAS


def test_load_study_returns_the_pinned_space_and_settings(storage: optuna.storages.RDBStorage) -> None:
    settings = RunSettings(trial_steps=7, init="scratch", encoding="latin-1")
    create_or_resume(storage, "s", SPACE, settings, sampler())
    study, space, loaded = load_study(storage, "s")
    assert study.study_name == "s"
    assert space.fingerprint() == SPACE.fingerprint() and space.name == "tiny"
    assert loaded == settings and loaded.learning_rate == 1e-3


def test_load_study_of_an_unknown_name_lists_the_known_ones(storage: optuna.storages.RDBStorage) -> None:
    with pytest.raises(StudyNotFoundError, match=r"study 'nope' does not exist in this storage \(studies: none\)"):
        load_study(storage, "nope")
    create_or_resume(storage, "alpha", SPACE, RunSettings(), sampler())
    create_or_resume(storage, "beta", SPACE, RunSettings(), sampler())
    with pytest.raises(StudyNotFoundError, match=r"\(studies: alpha, beta\): pass the study name and storage URL of a search"):
        load_study(storage, "nope")


def test_load_study_refuses_a_study_not_made_by_bortnas(storage: optuna.storages.RDBStorage) -> None:
    optuna.create_study(storage=storage, study_name="plain")
    with pytest.raises(StudyNotFoundError, match=r"study 'plain' was not created by bortnas search \(no settings recorded\)"):
        load_study(storage, "plain")
