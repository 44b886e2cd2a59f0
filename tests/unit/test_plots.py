"""bortnas.app.plots on a study of made-up scores: the files, their formats, and that the marked front is the records' front."""

from __future__ import annotations

import logging
import struct
import sys
from pathlib import Path

import optuna
import pytest
from conftest import FAKE_BEST, FAKE_FRONT, make_scored_study

from bortnas.app.plots import write_plots
from bortnas.core.errors import BortnasError, MissingDependencyError, UserInputError
from bortnas.core.settings import RunSettings
from bortnas.core.space import parse_search_space
from bortnas.search import create_or_resume
from bortnas.search.records import front_and_best, load_records
from bortnas.search.storage import open_storage

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has right after the magic bytes."""
    data = path.read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", path
    return struct.unpack(">II", data[16:24])


@pytest.fixture()
def study(tmp_path: Path) -> optuna.Study:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    make_scored_study(url)
    return optuna.load_study(study_name="fake", storage=url)


def test_the_marked_front_and_best_are_those_of_the_records(tmp_path: Path, study: optuna.Study) -> None:
    report = write_plots(study, tmp_path / "plots")
    front, best = front_and_best(load_records(study))
    assert report.front == tuple(sorted(front)) == FAKE_FRONT  # trial numbers, not positions: trials 2 and 4 are not scored
    assert report.best == best == FAKE_BEST
    assert report.best_w == study.best_value
    assert report.scored == 6


def test_png_and_html_files(tmp_path: Path, study: optuna.Study) -> None:
    out = tmp_path / "new" / "plots"
    report = write_plots(study, out)
    assert [f.name for f in report.files] == ["pareto.png", "history.png", "pareto.html", "history.html"]
    assert all(f.parent == out for f in report.files)
    width, height = png_size(out / "pareto.png")
    assert width > height > 300  # two panels side by side
    assert min(png_size(out / "history.png")) > 300
    pareto, history = (out / "pareto.html").read_text(), (out / "history.html").read_text()
    for page in (pareto, history):
        assert "<html>" in page[:100].lower() and page.rstrip().endswith("</html>")
        assert "Plotly.newPlot" in page and 'src="https://cdn.plot.ly' not in page  # plotly.js embedded: opens offline
    assert "L1-H16-A2-I32-fp32" in pareto and "Pareto front of (p, i, error)" in pareto
    assert "Best Value" in history


def test_existing_plots_need_overwrite(tmp_path: Path, study: optuna.Study) -> None:
    out = tmp_path / "plots"
    write_plots(study, out)
    (out / "history.png").write_bytes(b"old")
    with pytest.raises(UserInputError, match=r"pareto.png exists and overwrite is off: pass overwrite=True"):
        write_plots(study, out)
    assert (out / "history.png").read_bytes() == b"old"  # refused before writing anything
    write_plots(study, out, overwrite=True)
    png_size(out / "history.png")


def test_a_study_without_scored_trials_is_an_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    space = parse_search_space({"layers": [1], "hidden": [16], "heads": [2], "ffn": [32]}, "test")
    study = create_or_resume(open_storage(url), "empty", space, RunSettings(), optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    trial.set_user_attr("fail_reason", "training diverged")
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    with pytest.raises(BortnasError, match=r"study 'empty' has no finished trial to plot: see `bortnas trials --study empty --all`"):
        write_plots(study, tmp_path / "plots")
    assert not (tmp_path / "plots").exists()


def test_an_out_path_that_is_a_file_is_refused(tmp_path: Path, study: optuna.Study) -> None:
    (tmp_path / "plots").write_text("")
    with pytest.raises(UserInputError, match="^out .* is a file: pass a directory"):
        write_plots(study, tmp_path / "plots")


def test_without_plotly_png_only_and_a_warning(
    tmp_path: Path, study: optuna.Study, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(sys.modules, "plotly", None)
    monkeypatch.setattr(logging.getLogger("bortnas"), "propagate", True)  # the CLI may have configured it in this process
    report = write_plots(study, tmp_path / "plots")
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(f.name for f in report.files) == ["history.png", "pareto.png"]
    assert any("plotly is not installed" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_without_matplotlib_the_error_names_the_extra(tmp_path: Path, study: optuna.Study, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    with pytest.raises(MissingDependencyError, match=r"needs matplotlib.*pip install 'bortnas\[dashboard\]'"):
        write_plots(study, tmp_path / "plots")
    assert not (tmp_path / "plots").exists()


def test_simulated_latencies_are_marked_and_refused_as_cost(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'binary.db'}"
    make_scored_study(url, "binary", quantized="bit_w1a1")
    study = optuna.load_study(study_name="binary", storage=url)
    report = write_plots(study, tmp_path / "plots")
    assert report.simulated == (6,)  # the bit_w1a1 trial
    pareto = (tmp_path / "plots" / "pareto.html").read_text()
    assert "latency simulated: no low-bit kernel" in pareto
    with pytest.raises(UserInputError, match="^cost='latency' compare measured latencies, but study 'binary' holds bit_w1a1"):
        write_plots(study, tmp_path / "other", cost="latency")
    assert write_plots(optuna.load_study(study_name="fake", storage=_fake(tmp_path)), tmp_path / "fp").simulated == ()


def _fake(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'fake.db'}"
    make_scored_study(url)
    return url
