"""bortnas.search.storage: SQLite hardening, URL errors, heartbeats, and the claim lock across processes."""

from __future__ import annotations

import contextlib
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import optuna
import pytest

from bortnas.core.errors import StorageError
from bortnas.search.storage import claim_lock, open_storage, storage_exists


def journal_mode(path: Path) -> str:
    with contextlib.closing(sqlite3.connect(path)) as connection:
        return connection.execute("PRAGMA journal_mode").fetchone()[0]


def test_a_sqlite_file_is_opened_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    storage = open_storage(f"sqlite:///{path}")
    assert path.is_file() and journal_mode(path) == "wal"
    study = optuna.create_study(storage=storage, study_name="s")
    study.add_trial(optuna.trial.create_trial(value=1.0))
    assert [t.value for t in open_storage(f"sqlite:///{path}").get_all_trials(study._study_id)] == [1.0]  # reopened: same data


def test_a_plain_sqlite_file_is_switched_to_wal(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with contextlib.closing(sqlite3.connect(path)) as connection:
        connection.execute("CREATE TABLE t (x INTEGER)")
    assert journal_mode(path) == "delete"
    open_storage(f"sqlite:///{path}")
    assert journal_mode(path) == "wal"


def test_heartbeats_are_off_unless_asked(tmp_path: Path) -> None:
    assert open_storage(f"sqlite:///{tmp_path / 'a.db'}").get_heartbeat_interval() is None
    storage = open_storage(f"sqlite:///{tmp_path / 'b.db'}", heartbeat_interval=5, max_retry=4)
    assert storage.get_heartbeat_interval() == 5
    assert storage.grace_period == 15  # three intervals by default
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, optuna.storages.RetryHeartbeatStaleTrialCallback) and callback._max_retry == 4
    assert open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=5, grace_period=7).grace_period == 7


def test_a_malformed_url_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match=r"^storage='not a url' is not a SQLAlchemy URL: use e.g. sqlite:///bortnas.db"):
        open_storage("not a url")


def test_a_missing_directory_is_a_storage_error_and_is_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(StorageError, match=rf"directory {missing} does not exist; create it first"):
        open_storage(f"sqlite:///{missing / 's.db'}")
    assert not missing.exists()


def test_a_missing_driver_is_a_storage_error() -> None:
    try:
        import pymysql  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("pymysql is installed")
    with pytest.raises(StorageError, match=r"^storage='mysql\+pymysql://u@localhost/db' needs a database driver that is not installed"):
        open_storage("mysql+pymysql://u@localhost/db")


def test_an_unknown_dialect_and_an_unreachable_server_are_storage_errors() -> None:
    with pytest.raises(StorageError, match=r"^storage='nosuchdb://u@localhost/db' cannot be opened .*: check the URL"):
        open_storage("nosuchdb://u@localhost/db")
    pytest.importorskip("psycopg2")
    with pytest.raises(StorageError, match=r"^storage='postgresql\+psycopg2://u@127.0.0.1:1/db' cannot be opened"):
        open_storage("postgresql+psycopg2://u@127.0.0.1:1/db")  # port 1: nothing listens, the connection is refused


def test_storage_exists(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    assert not storage_exists(url)
    assert not (tmp_path / "s.db").exists()  # asking does not create the file
    open_storage(url)
    assert storage_exists(url)
    assert storage_exists("sqlite://") and storage_exists("sqlite:///:memory:")  # in memory: nothing to create
    assert storage_exists("postgresql://u@db.example/bortnas")  # a server: cannot be known without connecting


def test_claim_lock_without_a_shared_server_is_a_no_op() -> None:
    assert claim_lock("sqlite://", "s") is contextlib.nullcontext


def test_the_sqlite_claim_lock_is_a_file_next_to_the_database(tmp_path: Path) -> None:
    lock = claim_lock(f"sqlite:///{tmp_path / 's.db'}", "s")
    with lock():
        assert (tmp_path / "s.db.lock").is_file()
    with lock():  # released: it can be taken again
        pass


HOLDER = textwrap.dedent(
    """
    import sys, time
    from pathlib import Path
    from bortnas.search.storage import claim_lock

    url, held, release, log = sys.argv[1], Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
    with claim_lock(url, "s")():
        held.write_text("held")
        deadline = time.monotonic() + 60
        while not release.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        with log.open("a") as handle:
            handle.write("child releases\\n")
    """
)


def test_the_sqlite_claim_lock_excludes_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    held, release, log = tmp_path / "held", tmp_path / "release", tmp_path / "log"
    child = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(held), str(release), str(log)])
    try:
        deadline = time.monotonic() + 60
        while not held.exists():
            assert child.poll() is None and time.monotonic() < deadline, "the child never took the lock"
            time.sleep(0.02)

        acquired = threading.Event()

        def take() -> None:
            with claim_lock(url, "s")():
                with log.open("a") as handle:
                    handle.write("parent acquires\n")
                acquired.set()

        waiter = threading.Thread(target=take, daemon=True)
        waiter.start()
        # while the child holds the lock, the parent's acquisition waits (however long we look)
        assert not acquired.wait(0.5)
        release.touch()
        assert child.wait(60) == 0
        waiter.join(60)
        assert acquired.is_set()
        assert log.read_text().splitlines() == ["child releases", "parent acquires"]
    finally:
        release.touch()
        if child.poll() is None:
            child.kill()
            child.wait()
