"""Several real `bortnas search` processes on one study: exact counts, no duplicates, killed workers.

SQLite here (the default storage); PostgreSQL in test_postgres.py with the same checks.
"""

from __future__ import annotations

import collections
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from conftest import cli_env, record_fault, search_args, study_figures, wait_for_new_finish

pytestmark = pytest.mark.integration

COMPLETE, FAIL, RUNNING = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL, optuna.trial.TrialState.RUNNING
HEARTBEAT = ("--heartbeat-interval", "1", "--grace-period", "3")  # a killed worker's trial is failed within seconds


def search_command(teacher: Path, task: Path, space: Path, storage: str, *extra: str) -> list[str]:
    """argv of the tiny search on `storage`; `extra` names the strategy and the trial steps."""
    return [
        sys.executable,
        "-m",
        "bortnas",
        *search_args(teacher, task, space, "--storage", storage, *extra, strategy=None, trial_steps=None),
    ]


def start(command: list[str], cwd: Path) -> subprocess.Popen:
    return subprocess.Popen(command, cwd=cwd, env=cli_env(cwd), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc: subprocess.Popen, timeout: float = 300) -> str:
    out, err = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, f"exit {proc.returncode}:\n{err}"
    return err


def check_exact(storage: str, study: str, n: int) -> list[optuna.trial.FrozenTrial]:
    """The study holds exactly `n` finished trials, all of distinct candidates, and nothing left running."""
    trials = optuna.load_study(study_name=study, storage=storage).get_trials()
    complete = [t for t in trials if t.state == COMPLETE]
    counts = collections.Counter(t.user_attrs["arch_id"] for t in complete)
    assert len(complete) == n, [(t.number, t.state.name, t.user_attrs.get("skip_reason")) for t in trials]
    assert max(counts.values()) == 1, counts
    assert not [t for t in trials if t.state == RUNNING]
    return trials


def wait_for_running_claim(storage: str, study: str, proc: subprocess.Popen, timeout: float = 300) -> optuna.trial.FrozenTrial:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            trials = optuna.load_study(study_name=study, storage=storage).get_trials(states=(RUNNING,))
        except KeyError:
            trials = []
        claimed = [t for t in trials if t.user_attrs.get("claim") == t.number]
        if claimed:
            return claimed[0]
        time.sleep(0.2)
    raise AssertionError("no trial started in time")


@pytest.fixture(scope="module")
def warm_cache(tmp_path_factory: pytest.TempPathFactory, tiny_bert: Path, tiny_task: Path) -> Path:
    """A working directory whose teacher cache holds the fine-tuned task teacher, so the timed parts below are trials
    only; the tests of this module share it (under xdist: those of one worker), each with a storage file of its own."""
    directory = tmp_path_factory.mktemp("workers")
    space = directory / "tiny.yaml"  # tiny_space's; the teacher's cache entry does not depend on the space
    space.write_text("name: tiny\nlayers: [1, 2]\nhidden: [16, 32]\nheads: [2, 4]\nffn: [32, 64]\n")
    storage = f"sqlite:///{directory / 'warm.db'}"
    finish(
        start(search_command(tiny_bert, tiny_task, space, storage, "--strategy", "tpe", "--n-trials", "1", "--trial-steps", "2"), directory)
    )
    return directory


def test_two_workers_share_one_sqlite_study(warm_cache: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    storage = f"sqlite:///{warm_cache / 'shared.db'}"
    command = search_command(tiny_bert, tiny_task, tiny_space, storage, "--strategy", "random", "--n-trials", "6", "--trial-steps", "30")
    workers = [start(command, warm_cache) for _ in range(2)]
    errors = [finish(w) for w in workers]
    assert not any("database is locked" in e for e in errors), errors
    trials = check_exact(storage, "tiny", 6)
    assert len({t.user_attrs["worker"] for t in trials if t.state == COMPLETE}) == 2  # both did work
    with sqlite3.connect(warm_cache / "shared.db") as connection:
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_killed_worker_trial_is_failed_and_retried(warm_cache: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    storage = f"sqlite:///{warm_cache / 'kill.db'}"
    command = search_command(
        tiny_bert, tiny_task, tiny_space, storage, "--strategy", "grid", "--n-trials", "3", "--trial-steps", "400", *HEARTBEAT
    )
    victim = start(command, warm_cache)
    running = wait_for_running_claim(storage, "tiny", victim)
    assert running.user_attrs["worker"].endswith(f":{victim.pid}")
    before = {
        t.number: t.user_attrs["arch_id"] for t in optuna.load_study(study_name="tiny", storage=storage).get_trials(states=(COMPLETE,))
    }
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    killed_at = time.monotonic()
    resumed = start(command, warm_cache)
    recover_s = wait_for_new_finish(storage, "tiny", set(before), killed_at)
    finish(resumed)
    trials = check_exact(storage, "tiny", 3)
    record_fault("search worker killed (SIGKILL) mid-trial, SQLite", **study_figures(storage, "tiny", before, recover_s))
    killed = next(t for t in trials if t.number == running.number)
    assert killed.state == FAIL
    retry = next(t for t in trials if t.system_attrs.get("failed_trial") == running.number)
    assert retry.state == COMPLETE and retry.user_attrs["arch_id"] == running.user_attrs["arch_id"]


def test_a_killed_driver_resumes_without_rerunning(warm_cache: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    storage = f"sqlite:///{warm_cache / 'driver.db'}"
    command = search_command(
        tiny_bert, tiny_task, tiny_space, storage, "--strategy", "tpe", "--n-trials", "3", "--trial-steps", "300", *HEARTBEAT
    )
    driver = start(command, warm_cache)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:  # kill it in the middle: one candidate finished, the next one running
        assert driver.poll() is None, driver.communicate()[1]
        trials = optuna.load_study(study_name="tiny", storage=storage).get_trials() if "tiny" in optuna.get_all_study_names(storage) else []
        if any(t.state == COMPLETE for t in trials) and any(t.state == RUNNING and t.user_attrs.get("claim") == t.number for t in trials):
            break
        time.sleep(0.2)
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    before = {
        t.number: t.user_attrs["arch_id"] for t in optuna.load_study(study_name="tiny", storage=storage).get_trials(states=(COMPLETE,))
    }
    assert before
    killed_at = time.monotonic()
    resumed = start(command, warm_cache)
    recover_s = wait_for_new_finish(storage, "tiny", set(before), killed_at)
    finish(resumed)
    trials = check_exact(storage, "tiny", 3)
    record_fault("search driver killed (SIGKILL), same command run again", **study_figures(storage, "tiny", before, recover_s))
    after = {t.number: t.user_attrs["arch_id"] for t in trials if t.state == COMPLETE}
    assert before.items() <= after.items()  # what finished before the kill was kept, and not evaluated again


def _postgres_answers(dsn: str) -> bool:
    import psycopg2

    try:
        psycopg2.connect(dsn, connect_timeout=3).close()
        return True
    except psycopg2.OperationalError:
        return False


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """A PostgreSQL server on 127.0.0.1:5432 (the project's machines run one); installed and started if none answers."""
    dsn = os.environ.get("BORTNAS_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
    if not _postgres_answers(dsn):
        # A fresh machine: install and start Debian's postgresql server, trusting 127.0.0.1. Failing here is a failure, not a skip.
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, timeout=600)
        subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql"],
            check=True,
            capture_output=True,
            timeout=900,
            env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
        )
        version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
        subprocess.run(["pg_ctlcluster", version, "main", "start"], check=True, capture_output=True, timeout=120)
        conf = Path(f"/etc/postgresql/{version}/main/pg_hba.conf")
        conf.write_text("host all all 127.0.0.1/32 trust\n" + conf.read_text())
        subprocess.run(["pg_ctlcluster", version, "main", "reload"], check=True, capture_output=True, timeout=120)
    assert _postgres_answers(dsn), f"no PostgreSQL server answers at {dsn}"
    return dsn


@pytest.fixture()
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A database of its own for one test, dropped afterwards."""
    import uuid

    import psycopg2
    from sqlalchemy.engine import make_url

    name = f"bortnas_test_{uuid.uuid4().hex[:12]}"

    def execute(statement: str) -> None:  # a connection per statement: a test may restart the server in between
        admin = psycopg2.connect(postgres_server)
        admin.autocommit = True
        try:
            admin.cursor().execute(statement)
        finally:
            admin.close()

    execute(f"CREATE DATABASE {name}")
    try:
        yield make_url(postgres_server).set(drivername="postgresql+psycopg2", database=name).render_as_string(hide_password=False)
    finally:
        execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_concurrent_workers_on_postgresql(warm_cache: Path, postgres_url: str, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    command = search_command(tiny_bert, tiny_task, tiny_space, postgres_url, "--strategy", "tpe", "--n-trials", "7", "--trial-steps", "30")
    workers = [start(command, warm_cache) for _ in range(3)]
    for worker in workers:
        finish(worker)
    trials = check_exact(postgres_url, "tiny", 7)
    assert len({t.user_attrs["worker"] for t in trials if t.state == COMPLETE}) >= 2


@pytest.mark.slow  # two searches of 400-step trials
def test_sigterm_fails_the_running_trial_and_a_resume_evaluates_it_again(
    warm_cache: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path
) -> None:
    """What Ray, Kubernetes and Slurm send: the trial is told FAIL with the reason at once (no heartbeat wait), exit 143."""
    storage = f"sqlite:///{warm_cache / 'term.db'}"
    command = search_command(
        tiny_bert, tiny_task, tiny_space, storage, "--strategy", "grid", "--n-trials", "3", "--trial-steps", "400", *HEARTBEAT
    )
    victim = start(command, warm_cache)
    running = wait_for_running_claim(storage, "tiny", victim)
    before = {
        t.number: t.user_attrs["arch_id"] for t in optuna.load_study(study_name="tiny", storage=storage).get_trials(states=(COMPLETE,))
    }
    victim.send_signal(signal.SIGTERM)
    _, err = victim.communicate(timeout=60)
    stopped_at = time.monotonic()
    assert victim.returncode == 143, err
    assert err.strip().splitlines()[-1] == "bortnas search: terminated (signal 15)" and "Traceback" not in err
    stopped = optuna.load_study(study_name="tiny", storage=storage).trials[running.number]
    assert stopped.state == FAIL and stopped.user_attrs["fail_reason"] == "terminated by SIGTERM"
    resumed = start(command, warm_cache)
    recover_s = wait_for_new_finish(storage, "tiny", set(before), stopped_at)
    finish(resumed)
    trials = check_exact(storage, "tiny", 3)
    record_fault("search sent SIGTERM mid-trial, same command run again", **study_figures(storage, "tiny", before, recover_s))
    again = [t for t in trials if t.user_attrs.get("arch_id") == running.user_attrs["arch_id"] and t.number != running.number]
    assert [t.state for t in again] == [COMPLETE]  # evaluated again, never skipped as a duplicate
    assert not [t for t in trials if "duplicate" in str(t.user_attrs.get("skip_reason", ""))]
