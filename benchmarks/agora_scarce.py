"""Agora in the scarce-data setting, with an ablation: plain fine-tuning, distillation (with and
without the unlabelled pool) and Agora with and without each of its parts, at 200 / 500 / 1000
labelled training reviews, same student, same compute.

For each training size n: the Rotten Tomatoes training split is cut to a fixed sample of n
reviews; the rest of the training split, without its labels, is the unlabelled pool; dev is a
fixed 500-review sample of the dev split, test is the whole test split. The task teacher is
fine-tuned on the n reviews only (cached per data set). Seeds vary the training (initial order,
hyperparameter-set seeds, Agora's generation), not the sample. The student is cut from that
teacher and trained these ways (--methods picks some):
- plain: cross-entropy on the n labels, for each theta of the grid; best on dev;
- distil: KD + hidden-state loss from the teacher on the n reviews, for each theta; best on dev;
- distil+pool: the same on the n reviews and the pool (the pool's examples learn from the
  teacher's probabilities only): the pool without Agora's loop;
- agora: Agora as it was first built: hard teacher labels, no filtering, no pool, one replay round;
- agora full: soft labels, confidence filtering (--min-confidence), the pool, one replay round;
- agora full -soft / -filter / -pool: the full one without that part; -replay: the full run's
  best student when the pruning loop ended (no extra compute);
- agora warm: soft labels and the pool's neighbours, no filter, and warm starts (each theta's
  fine-tune continues its student of the previous round, so compute freed by pruning goes to the
  survivors);
- agora warm pool-in-D: the same with the whole pool in D from the start (distil+pool's data,
  plus Agora's edits of the mistakes), warm starts;
- agora split-dev: agora warm pool-in-D generating from the mistakes on one half of dev and
  choosing students on the other half, so choosing does not reward chasing its own mistakes;
- agora pool-weighted: agora warm pool-in-D without the edits: each round, the nearest pool texts
  of each dev mistake join D once more (so the mistakes steer the weight of the pool, not new text).
Every Agora fine-tune runs `--steps` steps; plain and distil runs get as many steps in all as
Agora's loop runs when it drops one set per round (spread evenly over the grid), so the compute
budget is the same. Prints a Markdown table of test accuracy (mean and range over seeds) and
writes JSON (resumable: rows already in --json are kept).

    python benchmarks/agora_scarce.py --sizes 200 500 1000 --seeds 0 1 2 --json benchmarks/results/agora.json
    python benchmarks/agora_scarce.py --json benchmarks/results/agora.json --table-only
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bortnas.core.finetuning import AgoraSettings
from bortnas.core.settings import RunSettings
from bortnas.core.space import ArchSpec
from bortnas.model.extract import extract
from bortnas.train.loop import evaluate, train
from bortnas.trial.context import build_context
from bortnas.trial.finetune import run_agora
from bortnas.trial.inputs import load_task
from bortnas.trial.recipe import training_split

# Agora variants: which parts each uses. pool: "near" adds the mistakes' nearest pool texts,
# "all" puts the whole pool in D from the start; warm: warm starts; split: split dev.
SOFT, FILTER, WARM, SPLIT, WEIGHT = "soft", "filter", "warm", "split", "weight"
AGORA_VARIANTS: dict[str, tuple[set[str], str]] = {
    "agora": (set(), ""),
    "agora full": ({SOFT, FILTER}, "near"),
    "agora full -soft": ({FILTER}, "near"),
    "agora full -filter": ({SOFT}, "near"),
    "agora full -pool": ({SOFT, FILTER}, ""),
    "agora warm": ({SOFT, WARM}, "near"),
    "agora warm pool-in-D": ({SOFT, WARM}, "all"),
    "agora split-dev": ({SOFT, WARM, SPLIT}, "all"),
    "agora pool-weighted": ({SOFT, WARM, WEIGHT}, "all"),
}
METHODS = ("plain", "distil", "distil+pool", *AGORA_VARIANTS, "agora full -replay")


REPLAY = 1


def agora_budget(thetas: int, replay: int) -> int:
    """Agora's fine-tunes when the `ties` rule drops one set per round (no ties, the usual case):
    |Theta| + ... + 1 in the pruning loop, then 1 + ... + replay in the replayed last rounds. Fixed
    in advance, so baselines measured before any Agora run get the same budget."""
    replay = min(replay, thetas)
    return thetas * (thetas + 1) // 2 + replay * (replay + 1) // 2


def scarce_task(n: int, dev_size: int) -> tuple[Any, tuple[tuple[str, str | None], ...]]:
    """The task cut to n labelled training reviews, and the rest of the training split as (text, pair) without labels."""
    data = load_task(RunSettings())
    train_subset = tuple(random.Random(f"scarce:{n}").sample(data.train, n))
    dev_subset = tuple(random.Random("scarce-dev").sample(data.dev, min(dev_size, len(data.dev))))
    chosen = set(train_subset)
    pool = tuple((ex.text, ex.pair) for ex in data.train if ex not in chosen)
    task = dataclasses.replace(data, train=train_subset, dev=dev_subset, source=f"{data.source}; {n} train, {len(dev_subset)} dev")
    return task, pool


def grid_search(
    ctx: Any, spec: ArchSpec, thetas: list[dict[str, Any]], steps: int, distil: bool, pool: tuple[tuple[str, str | None], ...] = ()
) -> tuple[float, float]:
    """(dev, test) accuracy of the best-on-dev student over `thetas`; with a `pool`, its examples
    join the training data without labels (distillation only: the teacher's probabilities), as
    `bortnas export --unlabeled` adds them: duplicates, labelled inputs and dev/test texts dropped."""
    data = training_split(ctx, pool)
    best: tuple[float, float] | None = None
    for theta in thetas:
        student, extraction = extract(ctx.teacher.model, ctx.teacher.importance, spec)
        config = dataclasses.replace(ctx.settings.student_train_config(steps), **theta)
        train(student, data, config, teacher=ctx.teacher.model if distil else None, extraction=extraction)
        dev, test = evaluate(student, ctx.dev).accuracy, evaluate(student, ctx.test).accuracy
        if best is None or dev > best[0]:
            best = (dev, test)
    assert best is not None
    return best


def run_one(
    n: int,
    seed: int,
    args: argparse.Namespace,
    previous: dict[str, Any] | None,
    reference: dict[str, Any] | None,
    save: Callable[[dict[str, Any]], None],
) -> dict[str, Any]:
    """Every method of --methods not yet in `previous` (the row already measured for n and seed);
    `reference` is a row measured for n (any seed), whose teacher this run's must be; `save` gets
    the row after each method, so a killed run loses one method at most."""
    task, pool = scarce_task(n, args.dev_size)
    ctx = build_context(RunSettings(batch_size=args.batch_size), data=task)
    ctx.settings = dataclasses.replace(ctx.settings, seed=seed)
    spec = ArchSpec.from_dict(dict(zip(("layers", "hidden", "heads", "ffn"), map(int, args.student.split(",")), strict=False)))
    row: dict[str, Any] = dict(previous or {"n": n, "seed": seed, "pool_size": len(pool)})
    teacher = {"teacher_test": evaluate(ctx.teacher.model, ctx.test).accuracy, "teacher_dev": ctx.teacher.dev_score}
    if any((reference or {}).get(key, value) != value for key, value in teacher.items()):
        # the teacher is fine-tuned again when its cache is gone, and can come out different (another machine or version)
        sys.exit(f"the rows for n={n} in --json were measured with another task teacher: use a new --json")
    row.update(teacher)
    started = time.perf_counter()
    grid = {"lr": args.lrs, "seed": [seed, seed + 100]}
    for name, (parts, with_pool) in AGORA_VARIANTS.items():
        wanted = name in args.methods or (name == "agora full" and "agora full -replay" in args.methods)
        if not wanted or name in row:
            continue
        settings = AgoraSettings(
            grid=grid,
            replay=REPLAY,
            seed=seed,
            soft_labels=SOFT in parts,
            min_confidence=args.min_confidence if FILTER in parts else 0.0,
            warm_start=WARM in parts,
            pool_in_data=with_pool == "all",
            split_dev=SPLIT in parts,
            pool_weighting=WEIGHT in parts,
        )

        def report(it: Any, name: str = name) -> None:
            print(f"n={n} seed={seed} {name} round {it.to_dict()} after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True)

        result = run_agora(ctx, spec, args.steps, settings, on_iteration=report, pool=pool if with_pool else ())
        assert result.agora_log is not None and result.agora_before_replay is not None
        row[name] = evaluate(result.model, ctx.test).accuracy
        row[f"{name} log"] = [it.to_dict() for it in result.agora_log]
        if name == "agora full":
            row["agora full -replay"] = evaluate(result.agora_before_replay, ctx.test).accuracy
        save(row)
    thetas = AgoraSettings(grid=grid).thetas()
    row.setdefault("budget_steps", agora_budget(len(thetas), REPLAY) * args.steps)
    per_run = max(1, round(row["budget_steps"] / len(thetas)))
    for name, distil, with_pool in (("plain", False, False), ("distil", True, False), ("distil+pool", True, True)):
        if name in args.methods and name not in row:
            row[name] = grid_search(ctx, spec, thetas, per_run, distil, pool if with_pool else ())[1]
            save(row)
    row["seconds"] = row.get("seconds", 0.0) + time.perf_counter() - started
    print(json.dumps({k: v for k, v in row.items() if not k.endswith(" log")}), file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--student", default="2,288,12,384", help="layers,hidden,heads,ffn of the student")
    parser.add_argument("--steps", type=int, default=60, help="steps of every Agora fine-tune")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 5e-4])
    parser.add_argument("--min-confidence", type=float, default=0.8, help="Agora's confidence filter in the variants that filter")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dev-size", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--table-only", action="store_true", help="print the table of the rows in --json, measure nothing")
    args = parser.parse_args(argv)
    rows: list[dict[str, Any]] = []
    if args.json and args.json.is_file():
        rows = json.loads(args.json.read_text())
    for seed in args.seeds:  # every size gets a seed before any size gets the next one
        for n in args.sizes:
            previous = next((r for r in rows if (r["n"], r["seed"]) == (n, seed)), None)
            reference = next((r for r in rows if r["n"] == n), None)
            if args.table_only or (previous is not None and all(m in previous for m in args.methods)):
                continue

            def save(row: dict[str, Any], n: int = n, seed: int = seed) -> None:
                nonlocal rows
                rows = [r for r in rows if (r["n"], r["seed"]) != (n, seed)] + [row]
                if args.json:
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(rows, indent=1))

            save(run_one(n, seed, args, previous, reference, save))
    methods = [m for m in METHODS if any(m in r for r in rows)]
    print(f"student {args.student} (layers,hidden,heads,ffn); test accuracy, mean [min-max] over the seeds measured")
    print("| n | seeds | teacher | " + " | ".join(methods) + " | steps per method |")
    print("|---:|---:|---:|" + "---:|" * len(methods) + "---:|")
    for n in args.sizes:
        group = [r for r in rows if r["n"] == n and r["seed"] in args.seeds]
        if not group:
            continue

        def cell(key: str, group: list[dict[str, Any]] = group) -> str:
            values = [r[key] for r in group if key in r]
            if not values:
                return "-"
            return f"{statistics.mean(values):.4f} [{min(values):.3f}-{max(values):.3f}] ({len(values)})"

        steps = [r["budget_steps"] for r in group if "budget_steps" in r]
        print(
            f"| {n} | {len(group)} | {cell('teacher_test')} | "
            + " | ".join(cell(m) for m in methods)
            + f" | {round(statistics.mean(steps)) if steps else '-'} |"
        )


if __name__ == "__main__":
    main()
