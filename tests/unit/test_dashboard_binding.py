"""bortnas.app.dashboard without a browser: loopback binding, the exposure warning, and its errors."""

from __future__ import annotations

import logging
import socket
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest

from bortnas.app.dashboard import DEFAULT_HOST, DEFAULT_PORT, is_loopback, serve
from bortnas.core.errors import MissingDependencyError, ParameterError, UserInputError


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "10.0.0.1", "example.org"])
def test_other_hosts_count_as_exposed(host: str) -> None:
    assert not is_loopback(host)


@pytest.fixture()
def calls(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    """Replace the server with a recorder, and let bortnas log records reach caplog even after the CLI configured logging."""
    import optuna_dashboard

    recorded: list[dict[str, Any]] = []
    monkeypatch.setattr(
        optuna_dashboard, "run_server", lambda storage, host, port: recorded.append({"storage": storage, "host": host, "port": port})
    )
    monkeypatch.setattr(logging.getLogger("bortnas"), "propagate", True)
    caplog.set_level(logging.INFO, logger="bortnas.app.dashboard")
    return recorded


def test_default_binding_is_loopback_and_quiet(tmp_path: Path, calls: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    optuna.create_study(study_name="s", storage=url)
    serve(url)
    assert len(calls) == 1 and (calls[0]["host"], calls[0]["port"]) == (DEFAULT_HOST, DEFAULT_PORT) == ("127.0.0.1", 8080)
    assert isinstance(calls[0]["storage"], optuna.storages.RDBStorage)
    assert [s.study_name for s in optuna.get_all_study_summaries(calls[0]["storage"])] == ["s"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_binding_beyond_loopback_warns(tmp_path: Path, calls: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> None:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    optuna.create_study(study_name="s", storage=url)
    serve(url, host="0.0.0.0", port=8123)
    assert (calls[0]["host"], calls[0]["port"]) == ("0.0.0.0", 8123)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "host 0.0.0.0 makes" in warnings[0] and "no authentication" in warnings[0]


def test_a_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path, calls: list[dict[str, Any]]) -> None:
    with pytest.raises(UserInputError, match=r"^storage sqlite:///.*none\.db does not exist: run a search first"):
        serve(f"sqlite:///{tmp_path / 'none.db'}")
    assert not (tmp_path / "none.db").exists() and not calls


@pytest.mark.parametrize("port", [0, 65536, -1])
def test_a_port_outside_1_65535_is_refused(tmp_path: Path, calls: list[dict[str, Any]], port: int) -> None:
    with pytest.raises(ParameterError, match=f"^port {port} is not a TCP port"):
        serve(f"sqlite:///{tmp_path / 'bortnas.db'}", port=port)
    assert not calls


def test_a_port_in_use_is_a_user_error(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    optuna.create_study(study_name="s", storage=url)
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()  # Linux refuses a second bind to a listening port even with SO_REUSEADDR, so serve cannot start
        port = holder.getsockname()[1]
        with pytest.raises(UserInputError, match=f"cannot listen on 127.0.0.1:{port}.*pass a free port or another host"):
            serve(url, port=port)


def test_without_optuna_dashboard_the_error_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'bortnas.db'}"
    optuna.create_study(study_name="s", storage=url)
    monkeypatch.setitem(sys.modules, "optuna_dashboard", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'bortnas\[dashboard\]'"):
        serve(url)
