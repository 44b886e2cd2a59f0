"""Create or resume a study; its user attributes pin the space and settings it was made with."""

from __future__ import annotations

import json
import warnings
from typing import Any

import optuna
from packaging.version import InvalidVersion, Version

from bortnas import __version__
from bortnas.core.budget import LatencyTable
from bortnas.core.errors import ParameterError, StudyMismatchError, StudyNotFoundError
from bortnas.core.settings import OMITTED_AT_DEFAULT, RunSettings
from bortnas.core.space import SearchSpace, parse_search_space
from bortnas.core.storage_url import redact, resolve_storage
from bortnas.search.storage import open_storage, storage_exists

PINNED = ("space_fingerprint", "settings")


def create_or_resume(
    storage: optuna.storages.BaseStorage,
    name: str,
    space: SearchSpace,
    settings: RunSettings,
    sampler: optuna.samplers.BaseSampler,
    fptas: dict[str, Any] | None = None,
    latency_table: LatencyTable | None = None,
) -> optuna.Study:
    """The study `name`, created if new; resuming checks it was made with the same space and settings.

    `fptas` (the plan summary of an FPTAS run) is stored as the study attribute "fptas"; a study
    resumed with another epsilon is refused like other settings. `latency_table` is stored as
    "latency_table" unless the study has one already (it is measured once per study). The
    objective is named "W", so optuna-dashboard labels it.

    Raises:
        StudyMismatchError: the existing study used another search space or other settings.
    """
    study = optuna.create_study(storage=storage, study_name=name, sampler=sampler, direction="maximize", load_if_exists=True)
    wanted: dict[str, Any] = {"space_fingerprint": space.fingerprint(), "settings": settings.to_dict()}
    existing = study.user_attrs
    check_written_by(existing, name)
    if fptas is not None:
        previous = existing.get("fptas")
        if previous is not None and (previous["epsilon"], previous["n0"], previous["s"]) != (fptas["epsilon"], fptas["n0"], fptas["s"]):
            raise StudyMismatchError(
                f"study {name!r} ran FPTAS with epsilon={previous['epsilon']}, n0={previous['n0']}, s={previous['s']}: "
                "resume with those or choose a new study name."
            )
    if "space_fingerprint" not in existing:
        # the fingerprint is written last: it marks a complete record, so a worker started in the same second
        # never reads a study whose settings are not written yet (it writes the same attributes itself)
        study.set_user_attr("space", space.to_dict())
        study.set_user_attr("space_name", space.name)
        study.set_user_attr("bortnas_version", __version__)
        study.set_user_attr("settings", wanted["settings"])
        if fptas is not None:
            study.set_user_attr("fptas", fptas)
        study.set_user_attr("space_fingerprint", wanted["space_fingerprint"])
        _complete(study, latency_table)
        return study
    for key in PINNED:
        if json.dumps(existing.get(key), sort_keys=True) != json.dumps(wanted[key], sort_keys=True):
            what = "another search space" if key == "space_fingerprint" else "other settings"
            diff = ""
            if key == "settings":
                before, now = existing.get(key) or {}, wanted[key]
                # a key only one side has counts too: a setting back at a default that is not stored, or a setting that is new
                changed = sorted(k for k in before.keys() | now.keys() if before.get(k) != now.get(k))

                def value(settings: dict[str, Any], k: str) -> Any:
                    return settings.get(k, OMITTED_AT_DEFAULT.get(k))

                diff = f" ({', '.join(f'{k}: {value(before, k)!r} -> {value(now, k)!r}' for k in changed)})"
            raise StudyMismatchError(
                f"study {name!r} was created with {what}{diff}: resume it with the original settings or choose a new study name."
            )
    if fptas is not None and "fptas" not in existing:
        study.set_user_attr("fptas", fptas)
    _complete(study, latency_table)
    return study


def check_written_by(attrs: dict[str, Any], name: str) -> None:
    """Refuse a study a newer bortnas wrote: its records may mean what this version cannot know.

    Raises:
        StudyMismatchError: its `bortnas_version` is newer than this one's.
    """
    written = attrs.get("bortnas_version")
    try:
        newer = written is not None and Version(str(written)) > Version(__version__)
    except InvalidVersion:
        newer = True  # not a version this bortnas wrote
    if newer:
        raise StudyMismatchError(
            f"study {name!r} was written by bortnas {written}, newer than this bortnas {__version__}: "
            "upgrade bortnas to read or resume it (every worker of a study runs the same version)."
        )


def _complete(study: optuna.Study, latency_table: LatencyTable | None) -> None:
    """Name the objective "W" and store the latency table, where the study lacks them (older studies)."""
    if study.metric_names is None:
        with warnings.catch_warnings():  # experimental since Optuna 3.2 and unchanged since; the dashboard reads it
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(["W"])
    if latency_table is not None and "latency_table" not in study.user_attrs:
        study.set_user_attr("latency_table", latency_table.to_dict())


def latency_table(study: optuna.Study) -> LatencyTable | None:
    """The latency table stored with `study` (None for studies made before tables existed)."""
    stored = study.user_attrs.get("latency_table")
    return LatencyTable.from_dict(stored) if stored else None


def find_study(storage_url: str, name: str) -> optuna.Study | None:
    """The study `name` if the storage and the study exist already; None otherwise. Creates nothing."""
    if not storage_exists(storage_url):
        return None
    storage = open_storage(storage_url)
    if name not in {s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)}:
        return None
    return optuna.load_study(study_name=name, storage=storage)


def load_study(storage: optuna.storages.BaseStorage, name: str) -> tuple[optuna.Study, SearchSpace, RunSettings]:
    """An existing bortnas study with its space and settings.

    Raises:
        StudyNotFoundError: no study of that name, or it was not made by bortnas.
    """
    names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    if name not in names:
        known = ", ".join(names) if names else "none"
        raise StudyNotFoundError(
            f"study {name!r} does not exist in this storage (studies: {known}): pass the study name and storage URL of a search."
        )
    study = optuna.load_study(study_name=name, storage=storage)
    attrs = study.user_attrs
    if "settings" not in attrs:
        raise StudyNotFoundError(f"study {name!r} was not created by bortnas search (no settings recorded).")
    check_written_by(attrs, name)
    space = parse_search_space(attrs["space"], f"study {name!r}", default_name=attrs.get("space_name", name))
    return study, space, RunSettings.from_dict(attrs["settings"])


def open_study(storage_url: str | None, name: str) -> tuple[optuna.Study, SearchSpace, RunSettings]:
    """`load_study` on the storage at `storage_url`, which must exist already (reading must not create it);
    None is `$BORTNAS_STORAGE`, else the default SQLite file.

    Raises:
        ParameterError: `storage_url` is a SQLite file that does not exist (parameter "storage", as the
            API's `search`, `trials` and `export` name it).
        StorageError: the URL is invalid or the database cannot be opened.
        StudyNotFoundError: see `load_study`.
    """
    storage_url = resolve_storage(storage_url)
    if not storage_exists(storage_url):
        raise ParameterError(
            "storage", f" {redact(storage_url)} does not exist: run a search first (`bortnas search`) or pass the storage of one."
        )
    return load_study(open_storage(storage_url), name)
