"""Study storage: an Optuna RDBStorage from a SQLAlchemy URL, and the lock that serialises claims.

Optuna layer. SQLite (the default) is hardened for several processes on one machine: WAL
journal, a long busy timeout, and retries of the table creation two fresh processes can race
on. PostgreSQL (or any SQLAlchemy URL Optuna supports) serves a cluster. Search workers record
heartbeats, so a trial whose process died is failed and re-queued (`RetryHeartbeatStaleTrialCallback`).

Once a storage is open, a lost connection (a database restart, a network cut, SQLite's "database is
locked") does not end the run: every storage call is retried with exponential backoff for
`RETRY_FOR_S` seconds (`ResilientRDBStorage`), then fails with one line. A URL that cannot be
opened at the start fails at once: that is a typo or a server that is not there, not a fault.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import logging
import sqlite3
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url

from bortnas.core.errors import StorageError
from bortnas.core.storage_url import DEFAULT_STORAGE, redact

__all__ = ["DEFAULT_STORAGE", "claim_lock", "open_storage", "storage_exists"]

SQLITE_TIMEOUT_S = 60
RETRY_FOR_S = 120.0  # how long an open storage's calls are retried through a lost connection
_FIRST_DELAY_S, _MAX_DELAY_S = 0.5, 10.0
_T = TypeVar("_T")
_logger = logging.getLogger(__name__)


def is_transient(error: BaseException) -> bool:
    """Whether `error` is a lost or busy connection that a retry may get past (Optuna wraps it in StorageInternalError)."""
    cause = error.__cause__ if isinstance(error, optuna.exceptions.StorageInternalError) else error
    lost = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.PendingRollbackError, sqlite3.OperationalError)
    if isinstance(cause, lost):  # PendingRollbackError: a session left invalid by the connection that died
        return True
    return isinstance(cause, sqlalchemy.exc.DBAPIError) and bool(cause.connection_invalidated)


def retry_transient(
    call: Callable[[], _T], url: str, what: str, retry_for_s: float = RETRY_FOR_S, reset: Callable[[], None] | None = None
) -> _T:
    """`call()`, retried with exponential backoff while it fails with a transient error, for at most `retry_for_s` seconds.

    A state update that failed after its commit reached the server finds the trial already
    finished when it is retried: that is its own earlier attempt, and counts as done. `reset`
    runs before each retry (a storage drops its thread's session, which the dead connection left invalid).

    Raises:
        StorageError: still failing after `retry_for_s` seconds, in one line naming the storage.
    """
    deadline, delay, failed = time.monotonic() + retry_for_s, _FIRST_DELAY_S, False
    while True:
        try:
            return call()
        except optuna.exceptions.UpdateFinishedTrialError:
            if failed and what == "set_trial_state_values":
                return True  # type: ignore[return-value]  # what Optuna's method returns on success
            raise
        except (optuna.exceptions.StorageInternalError, sqlalchemy.exc.SQLAlchemyError, sqlite3.OperationalError) as e:
            if not is_transient(e):
                raise
            reason = str(e.__cause__ or e).strip().splitlines()[0] if str(e.__cause__ or e).strip() else type(e).__name__
            if time.monotonic() + delay > deadline:
                raise StorageError(
                    f"lost the study database {redact(url)} for {retry_for_s:.0f} s ({redact(reason)}): "
                    "check the server, then run the same command again to resume the study.",
                    mentions=("storage",),
                ) from e
            if not failed:
                _logger.warning(
                    "the study database %s is unreachable (%s); retrying for up to %.0f s", redact(url), redact(reason), retry_for_s
                )
            failed = True
            if reset is not None:
                reset()
            time.sleep(delay)
            delay = min(2 * delay, _MAX_DELAY_S)


class ResilientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDBStorage whose public calls ride out a lost connection (`retry_transient`).

    Optuna opens a session per call and SQLAlchemy's pre-ping replaces a dead pooled connection,
    so retrying the call is enough once the server answers again; a worker's heartbeat thread,
    its claims and its results all go through here.
    """

    retry_for_s: float = RETRY_FOR_S


def _resilient(name: str, method: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(method)
    def call(self: ResilientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return retry_transient(lambda: method(self, *args, **kwargs), self.url, name, self.retry_for_s, self.remove_session)

    return call


# the private methods Optuna's own wrappers call (`_CachedStorage`, `fail_stale_trials`) go through the database too
_PRIVATE_CALLS = ("_get_stale_trial_ids", "_get_trials", "_get_best_trial_id", "_set_trial_param", "_create_new_trial")
for _name, _method in vars(optuna.storages.RDBStorage).items():
    public = not _name.startswith("_") and _name not in ("remove_session", "upgrade", "get_heartbeat_interval")
    if callable(_method) and (public or _name in _PRIVATE_CALLS):
        setattr(ResilientRDBStorage, _name, _resilient(_name, _method))


def _is_sqlite_file(url: str) -> str | None:
    try:
        parsed = make_url(url)
    except (sqlalchemy.exc.ArgumentError, ValueError):
        return None  # not a URL at all: `open_storage` says so in one line
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
    except (sqlalchemy.exc.ArgumentError, ValueError) as e:  # ValueError: a port that is not a number
        raise StorageError(
            f"storage={redact(url)!r} is not a SQLAlchemy URL: use e.g. sqlite:///bortnas.db or postgresql+psycopg2://user@host/db.",
            mentions=("storage",),
        ) from e
    engine_kwargs: dict[str, object] = {}
    database = _is_sqlite_file(url)
    if parsed.get_backend_name() == "sqlite":
        if database and not Path(database).parent.exists():
            raise StorageError(
                f"storage={redact(url)!r}: directory {Path(database).parent} does not exist; create it first.", mentions=("storage",)
            )
        engine_kwargs["connect_args"] = {"timeout": SQLITE_TIMEOUT_S}
        if database and _not_sqlite(Path(database)):
            raise StorageError(
                f"storage={redact(url)!r}: {database} is not a SQLite database (it lacks SQLite's file header): "
                "pass the file a search wrote, or a new file name.",
                mentions=("storage",),
            )
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
                lambda: ResilientRDBStorage(
                    url,
                    engine_kwargs=engine_kwargs,
                    heartbeat_interval=heartbeat_interval,
                    grace_period=grace,
                    heartbeat_stale_trial_callback=stale_callback,
                )
            )
    except (ImportError, ModuleNotFoundError) as e:
        raise StorageError(
            f"storage={redact(url)!r} needs a database driver that is not installed ({e}): install the driver the URL names.",
            mentions=("storage",),
        ) from e
    except (sqlalchemy.exc.SQLAlchemyError, ValueError) as e:
        raise StorageError(
            f"storage={redact(url)!r} cannot be opened ({redact(str(e).splitlines()[0])}): "
            "check the URL and that its database is reachable.",
            mentions=("storage",),
        ) from e


def _not_sqlite(path: Path) -> bool:
    """A file is there, not empty, and does not start with SQLite's 16-byte header."""
    try:
        with path.open("rb") as handle:
            head = handle.read(16)
    except FileNotFoundError:
        return False
    return bool(head) and head != b"SQLite format 3\x00"


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
    return ServerLock(url, name, backend)


class ServerLock:
    """The claim lock of a database server: a PostgreSQL session advisory lock keyed by the study's
    name, MySQL's `GET_LOCK`; `lock()` is a context manager holding it.

    An object rather than a closure so that it pickles: a Ray Tune searcher carries it, and Tune
    pickles its searcher. The engine (its pool holds thread locks) is made where it is first used.
    """

    def __init__(self, url: str, name: str, backend: str) -> None:
        self.url, self.backend = url, backend
        self.key = int.from_bytes(hashlib.sha256(f"bortnas:{name}".encode()).digest()[:8], "big", signed=True)
        self._engine: sqlalchemy.Engine | None = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_engine": None}

    def _statements(self) -> tuple[str, str, int | str]:
        if self.backend == "postgresql":
            return "SELECT pg_advisory_lock(:k)", "SELECT pg_advisory_unlock(:k)", self.key
        return "SELECT GET_LOCK(:k, 600)", "SELECT RELEASE_LOCK(:k)", str(self.key)

    def _locked(self) -> sqlalchemy.Connection:
        if self._engine is None:
            self._engine = sqlalchemy.create_engine(self.url, poolclass=sqlalchemy.pool.NullPool)
        lock, _, arg = self._statements()
        connection = self._engine.connect()
        try:
            connection.execute(sqlalchemy.text(lock), {"k": arg})
        except BaseException:
            connection.close()
            raise
        return connection

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        connection = retry_transient(self._locked, self.url, "claim lock")
        _, unlock, arg = self._statements()
        try:
            yield
        finally:
            try:
                connection.execute(sqlalchemy.text(unlock), {"k": arg})
            except sqlalchemy.exc.SQLAlchemyError as e:
                if not is_transient(e):
                    raise
                # the connection died with the server's session, and the session's lock with it
            finally:
                connection.close()
