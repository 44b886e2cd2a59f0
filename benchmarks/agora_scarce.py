"""Agora in the scarce-data setting: plain fine-tuning, plain distillation and Agora (with and
without replay) at 200 / 500 / 1000 labelled training reviews, same student, same compute.

For each training size n: the Rotten Tomatoes training split is cut to a fixed sample of n
reviews; dev is a fixed 500-review sample of the dev split, test is the whole test split. The
task teacher is fine-tuned on the n reviews only (cached per data set). Seeds vary the
training (initial order, hyperparameter-set seeds, Agora's generation), not the sample, so
three teachers serve every seed. The student is cut
from that teacher and trained four ways:
- plain: cross-entropy on the n labels, for each theta of the grid; best on dev;
- distil: KD + hidden-state loss from the teacher on the n reviews, for each theta; best on dev;
- agora: Agora with the same grid (`bortnas.trial.finetune.run_agora`), "ties" pruning, one replay
  round; "agora (no replay)" is its best student when the pruning loop ended.
Every Agora fine-tune runs `--steps` steps; plain and distil runs get as many steps in all as
Agora used (spread evenly over the grid), so the compute budget is the same. Prints a Markdown
table of test accuracy (mean and range over seeds) and writes JSON.

    python benchmarks/agora_scarce.py --sizes 200 500 1000 --seeds 0 1 2 --json benchmarks/results/agora.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bortnas.core.settings import RunSettings
from bortnas.core.space import ArchSpec
from bortnas.model.extract import extract
from bortnas.train.loop import evaluate, train
from bortnas.trial.context import build_context, load_task
from bortnas.trial.finetune import AgoraSettings, run_agora

METHODS = ("plain", "distil", "agora (no replay)", "agora")


def scarce_task(n: int, dev_size: int) -> Any:
    data = load_task(RunSettings())
    train_subset = tuple(random.Random(f"scarce:{n}").sample(data.train, n))
    dev_subset = tuple(random.Random("scarce-dev").sample(data.dev, min(dev_size, len(data.dev))))
    return dataclasses.replace(data, train=train_subset, dev=dev_subset, source=f"{data.source}; {n} train, {len(dev_subset)} dev")


def grid_search(ctx: Any, spec: ArchSpec, thetas: list[dict[str, Any]], steps: int, distil: bool) -> tuple[float, float]:
    """(dev, test) accuracy of the best-on-dev student over `thetas`."""
    best: tuple[float, float] | None = None
    for theta in thetas:
        student, extraction = extract(ctx.teacher.model, ctx.teacher.importance, spec)
        config = dataclasses.replace(ctx.settings.student_train_config(steps), **theta)
        train(student, ctx.train, config, teacher=ctx.teacher.model if distil else None, extraction=extraction)
        dev, test = evaluate(student, ctx.dev).accuracy, evaluate(student, ctx.test).accuracy
        if best is None or dev > best[0]:
            best = (dev, test)
    assert best is not None
    return best


def run_one(n: int, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    ctx = build_context(RunSettings(batch_size=args.batch_size), data=scarce_task(n, args.dev_size))
    ctx.settings = dataclasses.replace(ctx.settings, seed=seed)
    spec = ArchSpec.from_dict(dict(zip(("layers", "hidden", "heads", "ffn"), map(int, args.student.split(",")), strict=False)))
    agora_settings = AgoraSettings(grid={"lr": args.lrs, "seed": [seed, seed + 100]}, replay=1, seed=seed)
    started = time.perf_counter()
    result = run_agora(
        ctx,
        spec,
        args.steps,
        agora_settings,
        on_iteration=lambda it: print(
            f"n={n} seed={seed} agora round {it.to_dict()} after {time.perf_counter() - started:.0f} s", file=sys.stderr, flush=True
        ),
    )
    assert result.agora_log is not None and result.agora_before_replay is not None
    fine_tunes = sum(len(it.accuracies) for it in result.agora_log)
    budget = fine_tunes * args.steps
    thetas = agora_settings.thetas()
    per_run = max(1, round(budget / len(thetas)))
    row = {
        "n": n,
        "seed": seed,
        "teacher_test": evaluate(ctx.teacher.model, ctx.test).accuracy,
        "teacher_dev": ctx.teacher.dev_accuracy,
        "budget_steps": budget,
        "agora_fine_tunes": fine_tunes,
        "agora_final_train_size": result.agora_train_size,
        "agora": evaluate(result.model, ctx.test).accuracy,
        "agora (no replay)": evaluate(result.agora_before_replay, ctx.test).accuracy,
    }
    row["plain"] = grid_search(ctx, spec, thetas, per_run, distil=False)[1]
    row["distil"] = grid_search(ctx, spec, thetas, per_run, distil=True)[1]
    row["seconds"] = time.perf_counter() - started
    print(json.dumps(row), file=sys.stderr)
    return row


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[200, 500, 1000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--student", default="2,288,12,384", help="layers,hidden,heads,ffn of the student")
    parser.add_argument("--steps", type=int, default=60, help="steps of every Agora fine-tune")
    parser.add_argument("--lrs", type=float, nargs="+", default=[1e-4, 5e-4])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--dev-size", type=int, default=500)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = []
    if args.json and args.json.is_file():
        rows = [r for r in json.loads(args.json.read_text()) if r["n"] in args.sizes and r["seed"] in args.seeds]
    done = {(r["n"], r["seed"]) for r in rows}
    for seed in args.seeds:  # every size gets a seed before any size gets the next one
        for n in args.sizes:
            if (n, seed) not in done:
                rows.append(run_one(n, seed, args))
                if args.json:
                    args.json.parent.mkdir(parents=True, exist_ok=True)
                    args.json.write_text(json.dumps(rows, indent=1))
    print(f"student {args.student} (layers,hidden,heads,ffn); test accuracy, mean [min-max] over seeds {args.seeds}")
    print("| n | teacher | " + " | ".join(METHODS) + " | steps per method |")
    print("|---:|---:|" + "---:|" * len(METHODS) + "---:|")
    for n in args.sizes:
        group = [r for r in rows if r["n"] == n]

        def cell(key: str, group: list[dict[str, Any]] = group) -> str:
            values = [r[key] for r in group]
            return f"{statistics.mean(values):.4f} [{min(values):.3f}-{max(values):.3f}]"

        print(
            f"| {n} | {cell('teacher_test')} | "
            + " | ".join(cell(m) for m in METHODS)
            + f" | {round(statistics.mean(r['budget_steps'] for r in group))} |"
        )


if __name__ == "__main__":
    main()
