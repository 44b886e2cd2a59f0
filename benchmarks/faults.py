"""The reliability table: each fault injected for real by its test, and what the study held afterwards.

Runs the fault-injection tests (`tests/integration/test_workers.py`, `test_db_faults.py`,
`test_ray_faults.py`: real processes killed by signal, Ray's worker and head processes among them,
the machine's PostgreSQL server restarted with `pg_ctlcluster`) with
`BORTNAS_FAULT_LOG` set, so each one records its figures as it asserts them: trials that ran a
candidate, finished trials, finished trials lost (must be 0), candidates finished twice (must be 0),
and the time to recover (from the fault to the next finished trial). Prints a Markdown table and
writes the rows as JSON. A test that fails fails the run: a fault that was not survived has no row.

    python benchmarks/faults.py                 # 15-30 min on 2 CPU cores; needs root for pg_ctlcluster
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tasks import machine  # type: ignore[import-not-found]

REPO = Path(__file__).resolve().parents[1]
TESTS = [
    "tests/integration/test_workers.py::test_a_killed_worker_trial_is_failed_and_retried",
    "tests/integration/test_workers.py::test_a_killed_driver_resumes_without_rerunning",
    "tests/integration/test_workers.py::test_sigterm_fails_the_running_trial_and_a_resume_evaluates_it_again",
    "tests/integration/test_db_faults.py::test_a_postgresql_restart_mid_search_loses_and_doubles_nothing",
    "tests/integration/test_db_faults.py::test_a_postgresql_restart_under_ray_trials_loses_and_doubles_nothing",
    "tests/integration/test_ray_faults.py::test_a_ray_worker_killed_mid_trial_is_retried_with_exact_counts",
    "tests/integration/test_ray_faults.py::test_a_killed_ray_head_resumes_with_exact_counts",
]


def _kind(fault: str) -> str:
    """A fault's name without its measured parts in brackets ("PostgreSQL restarted (3.2 s) under ...")."""
    return re.sub(r" \([^)]*\)", "", fault)


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| fault injected | trials ran | finished | lost | counted twice | time to recover |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['fault']} | {row['trials']} | {row['finished']} | {row['lost']} | {row['counted_twice']} | {row['recover_s']:.1f} s |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks" / "results" / "faults_cpu.json")
    parser.add_argument(
        "--only", default=None, help="the tests whose name holds this text; their rows replace the same faults' rows in the JSON"
    )
    args = parser.parse_args(argv)
    tests_to_run = [t for t in TESTS if args.only is None or args.only in t]
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "faults.jsonl"
        env = {**os.environ, "BORTNAS_FAULT_LOG": str(log)}
        tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "", *tests_to_run], cwd=REPO, env=env)
        rows = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    if args.only is not None and args.json.is_file():  # keep the rows of the faults not run now
        new = {_kind(row["fault"]) for row in rows}
        rows = [row for row in json.loads(args.json.read_text())["rows"] if _kind(row["fault"]) not in new] + rows
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"command": "python benchmarks/faults.py", "machine": machine(), "rows": rows}, indent=1) + "\n")
    print(table(rows))
    return tests.returncode


if __name__ == "__main__":
    sys.exit(main())
