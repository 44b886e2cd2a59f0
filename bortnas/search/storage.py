"""Study storage: an Optuna RDBStorage from a SQLAlchemy URL, and the lock that serialises claims.

Optuna layer. SQLite (the default) is hardened for several processes on one machine: WAL
journal, a long busy timeout, and retries of the table creation two fresh processes can race
on. PostgreSQL (or any SQLAlchemy URL Optuna supports) serves a cluster. Search workers record
heartbeats, so a trial whose process died is failed and re-queued (`RetryHeartbeatStaleTrialCallback`).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from bortnas.core.errors import StorageError

DEFAULT_STORAGE = "sqlite:///bortnas.db"
SQLITE_TIMEOUT_S = 60
_T = TypeVar("_T")


def _is_sqlite_file(url: str) -> str | None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        return parsed.database
    return None


def _retry_locked(fn: Callable[[], _T], attempts: int = 8) -> _T:
    """Run `fn`, retrying SQLite's transient "database is locked" and table-creation races."""
    for attempt in range(attempts):
        try:
            return fn()
        except (sqlalchemy.exc.OperationalError, sqlalchemy.exc.IntegrityError, sqlite3.OperationalError) as e:
            transient = "locked" in str(e) or "already exists" in str(e) or "UNIQUE constraint" in str(e)
            if not transient or attempt == attempts - 1:
                raise
            time.sleep(0.2 * (attempt + 1))
    raise AssertionError("unreachable")


def open_storage(
    url: str = DEFAULT_STORAGE,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    max_retry: int = 2,
) -> optuna.storages.RDBStorage:
    """Open (creating tables if needed) the study database at `url`.

    With `heartbeat_interval` (seconds), RUNNING trials must record heartbeats; one silent for
    `grace_period` seconds is failed by the next worker that checks and re-queued as a WAITING
    trial with the same parameters, at most `max_retry` times.

    Raises:
        StorageError: the URL is malformed, its driver is missing, or the database is unreachable.
    """
    try:
        parsed = make_url(url)
    except sqlalchemy.exc.ArgumentError as e:
        raise StorageError(
            f"storage={url!r} is not a SQLAlchemy URL: use e.g. sqlite:///bortnas.db or postgresql+psycopg2://user@host/db.",
            mentions=("storage",),
        ) from e
    engine_kwargs: dict[str, object] = {}
    database = _is_sqlite_file(url)
    if parsed.get_backend_name() == "sqlite":
        if database and not Path(database).parent.exists():
            raise StorageError(
                f"storage={url!r}: directory {Path(database).parent} does not exist; create it first.", mentions=("storage",)
            )
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
        if database:
            _retry_locked(lambda: _enable_wal(database))
    else:
        engine_kwargs["pool_pre_ping"] = True
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeats: in Optuna since 2.9
            grace, stale_callback = None, None  # heartbeats off
            if heartbeat_interval is not None:
                grace = grace_period or 3 * heartbeat_interval
                stale_callback = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=max_retry)
            return _retry_locked(
                lambda: optuna.storages.RDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=stale_callback,
                )
            )
    except (ImportError, ModuleNotFoundError) as e:
        raise StorageError(
            f"storage={url!r} needs a database driver that is not installed ({e}): install the driver the URL names.",
            mentions=("storage",),
        ) from e
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
        raise StorageError(
            f"storage={url!r} cannot be opened ({str(e).splitlines()[0]}): check the URL and that its database is reachable.",
            mentions=("storage",),
        ) from e


def _enable_wal(database: str) -> None:
    """WAL lets readers and one writer work at once; the mode is stored in the file, so once is enough."""
    with contextlib.closing(sqlite3.connect(database, timeout=SQLITE_TIMEOUT_S)) as connection:
        connection.execute("PRAGMA journal_mode=WAL")


def storage_exists(url: str) -> bool:
    """False when `url` is a SQLite file that does not exist yet (so reading it would create it)."""
    database = _is_sqlite_file(url)
    return database is None or Path(database).exists()


def claim_lock(url: str, name: str) -> Callable[[], contextlib.AbstractContextManager[None]]:
    """A lock, shared by every process on the same storage, for the short claim step of a trial.

    SQLite files are local, so a file lock next to the database serves; PostgreSQL uses a
    session advisory lock keyed by `name`, MySQL `GET_LOCK`. The lock is held only while a
    worker reads the study and marks its candidate, never during training.
    """
    database = _is_sqlite_file(url)
    if database is not None:
        path = Path(f"{database}.lock")

        @contextlib.contextmanager
        def file_lock() -> Iterator[None]:
            with path.open("a") as handle:
                fcntl.flock(handle, fcntl.LOCK_EX)
                try:
                    yield
                finally:
                    fcntl.flock(handle, fcntl.LOCK_UN)

        return file_lock
    backend = make_url(url).get_backend_name()
    if backend not in ("postgresql", "mysql", "mariadb"):
        return contextlib.nullcontext
    engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
    key = int.from_bytes(hashlib.sha256(f"bortnas:{name}".encode()).digest()[:8], "big", signed=True)

    @contextlib.contextmanager
    def server_lock() -> Iterator[None]:
        with engine.connect() as connection:
            if backend == "postgresql":
                connection.execute(sqlalchemy.text("SELECT pg_advisory_lock(:k)"), {"k": key})
                unlock = sqlalchemy.text("SELECT pg_advisory_unlock(:k)")
            else:
                connection.execute(sqlalchemy.text("SELECT GET_LOCK(:k, 600)"), {"k": str(key)})
                unlock = sqlalchemy.text("SELECT RELEASE_LOCK(:k)")
            try:
                yield
            finally:
                connection.execute(unlock, {"k": key if backend == "postgresql" else str(key)})

    return server_lock
