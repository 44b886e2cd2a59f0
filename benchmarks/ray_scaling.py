"""Ray scaling: trials per hour with 1, 2, 4, 8 workers on one Ray cluster, same candidates.

For each worker count W (skipped where the machine has fewer cores), `bortnas.search` with
`Execution(ray=RaySettings(num_cpus=W, cpus_per_trial=1))` and `Grid(n_trials=N)` (as `bortnas search
--backend ray --ray-cpus W --cpus-per-trial 1 --strategy grid`) evaluates the same N candidates of the space into
a fresh study (the task teacher is fine-tuned once, before any timing, and cached). The rate is
N over the span from the first trial's start to the last trial's end, read from the study
itself, so Ray's start-up is not counted; speedup = rate(W) / rate(1), efficiency = speedup / W.
Every trial runs torch on one thread, so W workers use W cores.

    python benchmarks/ray_scaling.py --workers 1 2 --json benchmarks/results/ray_scaling.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import optuna

import bortnas

REPO = Path(__file__).resolve().parents[1]


def search(storage: str, space: Path, n: int, steps: int, ray: bortnas.RaySettings | None) -> float:
    """Wall seconds of one search of `n` grid candidates into study "scaling" (with Ray's start-up, where `ray`)."""
    started = time.perf_counter()
    bortnas.search(
        space,
        storage=storage,
        study="scaling",
        settings=bortnas.RunSettings(trial_steps=steps),
        strategy=bortnas.Grid(n_trials=n),
        execution=bortnas.Execution(ray=ray),
    )
    return time.perf_counter() - started


def rate(storage: str) -> tuple[int, float]:
    """(finished trials, trials per hour over the span from first start to last end)."""
    trials = optuna.load_study(study_name="scaling", storage=storage).get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    return len(trials), 3600.0 * len(trials) / span


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--space", type=Path, default=REPO / "search_spaces" / "minilm_quick.yaml")
    parser.add_argument("--n-trials", type=int, default=8)
    parser.add_argument("--trial-steps", type=int, default=20)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as tmp:
        # fine-tune and cache the task teacher once, outside the timings
        search(f"sqlite:///{tmp}/warm.db", args.space, 1, 1, None)
        rows: list[dict[str, Any]] = []
        for workers in args.workers:
            if workers > cores:
                print(f"skipping {workers} workers: this machine has {cores} cores", file=sys.stderr)
                continue
            storage = f"sqlite:///{tmp}/w{workers}.db"
            wall = search(storage, args.space, args.n_trials, args.trial_steps, bortnas.RaySettings(num_cpus=workers, cpus_per_trial=1))
            finished, per_hour = rate(storage)
            rows.append({"workers": workers, "trials": finished, "trials_per_hour": per_hour, "wall_s": wall})
            print(json.dumps(rows[-1]), file=sys.stderr)
    base = rows[0]["trials_per_hour"] if rows and rows[0]["workers"] == 1 else None
    for row in rows:
        row["speedup"] = row["trials_per_hour"] / base if base else None
        row["efficiency"] = row["speedup"] / row["workers"] if base else None
    machine = f"{platform.processor() or platform.machine()}, {cores} cores"
    print(f"{args.n_trials} grid candidates of {args.space.name}, {args.trial_steps} steps each; {machine}")
    print("| workers | trials/hour | speedup | efficiency | wall s (with Ray start-up) |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        speedup = f"{row['speedup']:.2f}x" if row["speedup"] else "-"
        efficiency = f"{row['efficiency']:.0%}" if row["efficiency"] else "-"
        print(f"| {row['workers']} | {row['trials_per_hour']:.0f} | {speedup} | {efficiency} | {row['wall_s']:.0f} |")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"machine": machine, "space": args.space.name, "n_trials": args.n_trials, "trial_steps": args.trial_steps, "rows": rows},
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
