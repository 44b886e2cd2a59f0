"""Storage calls through a lost connection: retried with backoff for a bounded time, then one line; a commit that
landed before the connection dropped is not applied twice."""

from __future__ import annotations

import time

import optuna
import pytest
import sqlalchemy

from bortnas.core.errors import StorageError
from bortnas.search.storage import ResilientRDBStorage, is_transient, open_storage, retry_transient

URL = "postgresql://bob:s3cr3t@db.example/x"


def lost(message: str = "server closed the connection unexpectedly") -> optuna.exceptions.StorageInternalError:
    """What Optuna raises when the server went away mid-call: its own error, caused by SQLAlchemy's OperationalError."""
    error = optuna.exceptions.StorageInternalError("An exception is raised during the commit.")
    error.__cause__ = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception(message))
    return error


def test_a_call_is_retried_until_the_server_answers() -> None:
    outcomes: list[BaseException | str] = [lost(), lost(), "done"]

    def call() -> str:
        outcome = outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    began = time.monotonic()
    assert retry_transient(call, URL, "get_all_studies", retry_for_s=30) == "done"
    assert 1.4 <= time.monotonic() - began < 5  # backoff 0.5 s, then 1 s


def test_a_server_gone_for_longer_than_the_bound_ends_in_one_line_without_the_password() -> None:
    def call() -> None:
        raise lost("connection refused")

    with pytest.raises(StorageError) as raised:
        retry_transient(call, URL, "get_all_studies", retry_for_s=1.2)
    message = str(raised.value)
    assert "\n" not in message and "s3cr3t" not in message
    assert message.startswith("lost the study database postgresql://bob:***@db.example/x for 1 s (") and "connection refused" in message


def test_an_error_of_the_call_itself_is_not_retried() -> None:
    calls = []

    def call() -> None:
        calls.append(1)
        raise optuna.exceptions.StorageInternalError("invalid data") from sqlalchemy.exc.DataError("INSERT", {}, Exception("too long"))

    with pytest.raises(optuna.exceptions.StorageInternalError):
        retry_transient(call, URL, "set_trial_user_attr")
    assert calls == [1] and not is_transient(ValueError("x"))


def test_a_state_update_that_landed_before_the_connection_dropped_counts_as_done() -> None:
    outcomes: list[BaseException] = [lost(), optuna.exceptions.UpdateFinishedTrialError("trial 3 is already finished")]

    def call() -> None:
        raise outcomes.pop(0)

    assert retry_transient(call, URL, "set_trial_state_values", retry_for_s=30) is True
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):  # without an earlier failure it is the caller's mistake
        retry_transient(call_finished, URL, "set_trial_state_values")


def call_finished() -> None:
    raise optuna.exceptions.UpdateFinishedTrialError("trial 3 is already finished")


def test_an_opened_storage_retries(tmp_path: object) -> None:
    storage = open_storage(f"sqlite:///{tmp_path}/b.db")
    assert isinstance(storage, ResilientRDBStorage) and storage.get_all_studies() == []
    for name in ("record_heartbeat", "set_trial_state_values", "_get_stale_trial_ids", "_get_trials", "_create_new_trial"):
        assert getattr(ResilientRDBStorage, name).__wrapped__ is getattr(optuna.storages.RDBStorage, name), name


def test_a_server_claim_lock_pickles_as_ray_tune_pickles_its_searcher() -> None:
    import pickle

    from bortnas.search.storage import ServerLock, claim_lock

    lock = claim_lock("postgresql+psycopg2://bob@127.0.0.1:1/x", "study")  # nothing listens: nothing is connected yet
    copy = pickle.loads(pickle.dumps(lock))
    assert isinstance(copy, ServerLock) and (copy.url, copy.key) == (lock.url, lock.key)  # type: ignore[attr-defined]
