"""A study written by a newer bortnas is refused in one line, by every command that reads or resumes it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from conftest import make_scored_study

from bortnas import __version__
from bortnas.core.errors import StudyMismatchError
from bortnas.core.settings import RunSettings
from bortnas.core.space import parse_search_space
from bortnas.search import create_or_resume
from bortnas.search.storage import open_storage
from bortnas.search.study import open_study


@pytest.mark.parametrize("written", ["99.0.0", "not a version"])
def test_a_study_from_a_newer_bortnas_is_refused(tmp_path: Path, written: str) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    make_scored_study(url)
    open_study(url, "fake")  # this version's own study reads
    optuna.load_study(study_name="fake", storage=url).set_user_attr("bortnas_version", written)
    with pytest.raises(StudyMismatchError, match=rf"written by bortnas {written}, newer than this bortnas {__version__}"):
        open_study(url, "fake")
    space = parse_search_space({"name": "fake", "layers": [1, 2], "hidden": [16, 32], "heads": [2, 4], "ffn": [32, 64]}, "t")
    with pytest.raises(StudyMismatchError, match="upgrade bortnas"):
        create_or_resume(open_storage(url), "fake", space, RunSettings(), optuna.samplers.RandomSampler())


def test_a_study_from_an_older_bortnas_reads(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    make_scored_study(url)
    optuna.load_study(study_name="fake", storage=url).set_user_attr("bortnas_version", "0.0.1")
    assert open_study(url, "fake")[0].study_name == "fake"
