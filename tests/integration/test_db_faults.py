"""The study database fails under running searches, for real: a PostgreSQL restart, a SQLite file that is not one.

The restart test restarts the machine's PostgreSQL server (`pg_ctlcluster ... restart`) while two
search workers train and send heartbeats: each retries its storage calls with backoff, the search
ends with exactly the trials asked for, none lost, none counted twice. It shares the server with
the other PostgreSQL tests, so it runs on their worker (xdist group) and only in the slow suite.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from conftest import bortnas, one_line_error, record_fault, search_args, study_figures, wait_for_new_finish
from test_workers import COMPLETE, RUNNING, check_exact, finish, postgres_server, postgres_url, search_command, start, warm_cache  # noqa: F401

pytestmark = pytest.mark.integration


def restart_postgres() -> float:
    """Restart the local PostgreSQL cluster; the seconds it took."""
    version = sorted(p.name for p in Path("/etc/postgresql").iterdir())[-1]
    began = time.monotonic()
    subprocess.run(["pg_ctlcluster", version, "main", "restart"], check=True, capture_output=True, timeout=120)
    return time.monotonic() - began


def mid_search(storage: str, workers: list[subprocess.Popen], timeout: float) -> dict[int, str]:
    """Wait until study "tiny" has a finished candidate and another in training; its finished trials (number -> candidate)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert all(w.poll() is None for w in workers), [w.communicate()[1][-3000:] for w in workers]
        trials = optuna.load_study(study_name="tiny", storage=storage).get_trials() if "tiny" in optuna.get_all_study_names(storage) else []
        if any(t.state == COMPLETE for t in trials) and any(t.state == RUNNING and t.user_attrs.get("claim") == t.number for t in trials):
            return {t.number: t.user_attrs["arch_id"] for t in trials if t.state == COMPLETE}
        time.sleep(0.2)
    raise AssertionError(f"no candidate finished with another in training within {timeout} s")


@pytest.mark.slow
@pytest.mark.xdist_group("postgres")
def test_a_postgresql_restart_mid_search_loses_and_doubles_nothing(
    warm_cache: Path,  # noqa: F811
    postgres_url: str,  # noqa: F811
    tiny_bert: Path,
    tiny_task: Path,
    tiny_space: Path,
) -> None:
    heartbeats = ("--heartbeat-interval", "1", "--grace-period", "30")  # beats every second: the restart surely meets one
    command = search_command(
        tiny_bert, tiny_task, tiny_space, postgres_url, "--strategy", "random", "--n-trials", "6", "--trial-steps", "300", *heartbeats
    )
    command.remove("-q")  # the retry warning is what shows the fault reached the workers
    workers = [start(command, warm_cache) for _ in range(2)]
    before = mid_search(postgres_url, workers, timeout=300)
    restarted_at = time.monotonic()
    restart_s = restart_postgres()
    recover_s = wait_for_new_finish(postgres_url, "tiny", set(before), restarted_at)
    errors = [finish(w) for w in workers]
    assert any("is unreachable" in e and "retrying" in e for e in errors), errors
    trials = check_exact(postgres_url, "tiny", 6)  # exactly the trials asked for, each candidate once, none left RUNNING
    figures = study_figures(postgres_url, "tiny", before, recover_s)
    record_fault(f"PostgreSQL restarted ({restart_s:.1f} s) under 2 search workers", **figures)
    after = {t.number: t.user_attrs["arch_id"] for t in trials if t.state == COMPLETE}
    assert before.items() <= after.items()  # nothing that had finished was lost


def test_a_sqlite_file_that_is_not_a_database_is_refused_in_one_line(
    tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path
) -> None:
    (tmp_path / "bortnas.db").write_text("these are notes, not a database\n" * 100)
    refused = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--n-trials", "1"), cwd=tmp_path, check=False)
    one_line_error(refused, 2, "is not a SQLite database")
    one_line_error(bortnas("trials", "--study", "tiny", cwd=tmp_path, check=False), 2, "is not a SQLite database")
    assert (tmp_path / "bortnas.db").read_text().startswith("these are notes")


@pytest.mark.slow
@pytest.mark.xdist_group("postgres")
def test_a_postgresql_restart_under_ray_trials_loses_and_doubles_nothing(
    warm_cache: Path,  # noqa: F811
    postgres_url: str,  # noqa: F811
    tiny_bert: Path,
    tiny_task: Path,
    tiny_space: Path,
) -> None:
    """The Ray driver asks, claims, beats and tells for its trials through the same retrying storage as a local worker."""
    ray = ("--backend", "ray", "--ray-cpus", "2", "--cpus-per-trial", "1", "--no-asha", "--heartbeat-interval", "1", "--grace-period", "30")
    extra = (
        "--storage",
        postgres_url,
        *ray,
        "--strategy",
        "grid",
        "--n-trials",
        "4",
        "--trial-steps",
        "1500",
    )  # trials outlast the restart
    command = [
        sys.executable,
        "-m",
        "bortnas",
        *search_args(tiny_bert, tiny_task, tiny_space, *extra, strategy=None, trial_steps=None, quiet=False),
    ]
    driver = start(command, warm_cache)
    before = mid_search(postgres_url, [driver], timeout=600)
    restarted_at = time.monotonic()
    restart_s = restart_postgres()
    recover_s = wait_for_new_finish(postgres_url, "tiny", set(before), restarted_at, timeout=600, workers=[driver])
    err = finish(driver, timeout=900)
    assert "is unreachable" in err and "retrying" in err, err[-3000:]
    check_exact(postgres_url, "tiny", 4)
    record_fault(f"PostgreSQL restarted ({restart_s:.1f} s) under a Ray search", **study_figures(postgres_url, "tiny", before, recover_s))
