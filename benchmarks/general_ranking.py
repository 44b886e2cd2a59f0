"""Does Bort's premise hold here? How well a candidate's general trial error ranks what it becomes.

The general search ranks candidates by their held-out relation error after a short distillation
on unlabelled text (the trial). What a user gets is the candidate distilled for longer on that
text, then fine-tuned on a task. For the 12 candidates of `rank_fidelity.py` (a Latin square
over depth 1-4 and widths 96-384 cut from the bundled MiniLM), this

1. scores each one as a general trial does (`score_candidate` on the general context: the
   search's 60 steps), and as a task trial of today's task search does, on each task;
2. distils each one on the corpus for `--general-steps` steps (the general export's recipe,
   `distil_student`), then fine-tunes it on each task (`bortnas.finetune`, plain), and keeps the
   test score;
3. prints Kendall's tau-b between each predictor and the fine-tuned test scores, per task: the
   general trial error, the same trial trained on the relations alone (`hidden_weight=0`), the
   task trial error (what bortnas's task search ranks by), and the zero-cost proxy (more
   non-embedding parameters, better).

The tasks are the reviews and the VADER intensity regression; the corpus is `general.py`'s (no
document holds a dev or test text of a benchmark task). Results are written after every
candidate, and a rerun skips what the JSON holds.

    python benchmarks/general_ranking.py                    # about an hour on 2 CPU cores
    python benchmarks/general_ranking.py --report-only
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from general import held_out_texts, retrieval_fields, tasks, write_corpus  # type: ignore[import-not-found]
from rank_fidelity import CANDIDATES, kendall_tau_b  # type: ignore[import-not-found]

import bortnas

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
TASKS = ("reviews", "regression")


def spec_of(key: str) -> Any:
    from bortnas.core.space import ArchSpec

    match = re.fullmatch(r"L(\d+)-H(\d+)-A(\d+)-I(\d+)", key)
    assert match, key
    return ArchSpec(*map(int, match.groups()))


def predictors(results: dict[str, Any], task: str) -> dict[str, dict[str, float]]:
    """Each predictor's score per candidate, higher meaning predicted better."""
    rows = results["candidates"]
    return {
        "general trial (relation error)": {k: -r["general_error"] for k, r in rows.items()},
        "general trial, relation-only training": {
            k: -r["general_error_relation_only"] for k, r in rows.items() if "general_error_relation_only" in r
        },
        "task trial (task error)": {k: -r["task_error"][task] for k, r in rows.items() if task in r["task_error"]},
        "zero-cost proxy (non-embedding parameters)": {k: r["params_non_embedding"] for k, r in rows.items()},
    }


def taus(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """tau-b of every predictor against each task's fine-tuned test score, over the candidates both cover."""
    report: dict[str, dict[str, Any]] = {}
    for task in TASKS:
        finetuned = {k: r["finetuned"][task]["test"] for k, r in results["candidates"].items() if task in r.get("finetuned", {})}
        for name, scores in predictors(results, task).items():
            keys = [k for k in CANDIDATES if k in finetuned and k in scores]
            if len(keys) < 2:
                continue
            best = max(keys, key=lambda k: scores[k])
            report.setdefault(task, {})[name] = {
                "tau": kendall_tau_b([scores[k] for k in keys], [finetuned[k] for k in keys]),
                "candidates": len(keys),
                "top_pick": best,
                "top_pick_finetuned": finetuned[best],
                "best_finetuned": max(finetuned[k] for k in keys),
            }
    return report


def print_report(results: dict[str, Any]) -> None:
    print(f"general distillation {results['general_steps']} steps, fine-tuning {results['finetune_steps']} steps (plain)")
    print(f"{'task':<11} {'predictor':<44} {'tau-b':>6} {'n':>3}  top pick (its fine-tuned test score; best)")
    for task, rows in taus(results).items():
        for name, row in rows.items():
            print(
                f"{task:<11} {name:<44} {row['tau']:>6.3f} {row['candidates']:>3}  "
                f"{row['top_pick']} ({row['top_pick_finetuned']:.4f}; {row['best_finetuned']:.4f})"
            )


def run(args: argparse.Namespace) -> dict[str, Any]:
    from bortnas.trial.context import build_context
    from bortnas.trial.recipe import distil_student
    from bortnas.trial.scoring import Reference, score_candidate

    results: dict[str, Any] = json.loads(args.json.read_text()) if args.json.exists() else {}
    results.update(general_steps=args.general_steps, finetune_steps=args.finetune_steps, trial_steps=args.trial_steps)
    rows = results.setdefault("candidates", {})

    def save() -> None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=1) + "\n")

    data_dir = args.out / "data"
    fields = {name: make() for name, make in tasks(data_dir).items() if name in TASKS}
    corpus = args.out / "corpus.txt"
    if not corpus.is_file():  # general.py's corpus: every benchmark task's dev and test texts dropped
        all_fields = [make() for make in tasks(data_dir).values()] + [retrieval_fields(data_dir)]
        results["corpus"] = write_corpus(corpus, set().union(*(held_out_texts(f) for f in all_fields)))
    contexts: dict[str, Any] = {}  # built when first needed: a task's fine-tunes its teacher, a general one encodes the corpus
    settings = {
        "general": bortnas.RunSettings(task="general", corpus=(str(corpus),)),
        "general_relation_only": bortnas.RunSettings(task="general", corpus=(str(corpus),), hidden_weight=0.0),
        **{name: bortnas.RunSettings(**f) for name, f in fields.items()},
    }

    def context(name: str) -> Any:
        if name not in contexts:
            contexts[name] = build_context(settings[name], args.cache_dir)
        return contexts[name]

    seed = settings["general"].seed
    for key in CANDIDATES[: args.limit]:
        row = rows.setdefault(key, {"task_error": {}, "finetuned": {}})
        spec = spec_of(key)
        started = time.perf_counter()
        if "general_error" not in row:
            general = context("general")
            reference = Reference.of(general.shape.as_spec(), general.shape, general.settings.max_length)
            score = score_candidate(general, spec, reference, args.trial_steps, seed)
            row.update(general_error=score.error, params_non_embedding=score.metrics.params_non_embedding)
            save()
        if "general_error_relation_only" not in row:  # the same trial without the hidden-state term
            relation_only = context("general_relation_only")
            reference = Reference.of(relation_only.shape.as_spec(), relation_only.shape, relation_only.settings.max_length)
            row["general_error_relation_only"] = score_candidate(relation_only, spec, reference, args.trial_steps, seed).error
            save()
        for name in fields:
            if name not in row["task_error"]:
                ctx = context(name)
                reference = Reference.of(ctx.shape.as_spec(), ctx.shape, ctx.settings.max_length)
                row["task_error"][name] = score_candidate(ctx, spec, reference, args.trial_steps, seed).error
                save()
        if not all(name in row["finetuned"] for name in TASKS):
            pipeline_started = time.perf_counter()
            student, _, _ = distil_student(context("general"), spec, args.general_steps, seed)
            with tempfile.TemporaryDirectory() as tmp:
                encoder = Path(tmp) / "encoder"
                student.save_pretrained(encoder)
                context("general").teacher.tokenizer.save_pretrained(encoder)
                for name, f in fields.items():
                    report = bortnas.finetune(
                        encoder,
                        Path(tmp) / name,
                        settings=bortnas.RunSettings(**f),
                        method=bortnas.Plain(steps=args.finetune_steps),
                        execution=bortnas.Execution(cache_dir=args.cache_dir),
                    )
                    row["finetuned"][name] = {"dev": report.model.dev_score, "test": report.model.test_score}
            row["pipeline_s"] = time.perf_counter() - pipeline_started
            save()
        row["wall_s"] = row.get("wall_s", 0.0) + time.perf_counter() - started
        save()
        print(f"[ranking] {key}: general error {row['general_error']:.4f}, {row['finetuned']}", file=sys.stderr)
    return results


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--general-steps", type=int, default=300, help="general distillation steps before fine-tuning (default 300)")
    parser.add_argument("--finetune-steps", type=int, default=200, help="plain fine-tuning steps per task (default 200)")
    parser.add_argument("--trial-steps", type=int, default=60, help="a trial's steps (default 60, the search's)")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "general", help="general.py's directory (its corpus and data)")
    parser.add_argument("--cache-dir", type=Path, default=None, help="teacher cache (default OUT/cache)")
    parser.add_argument("--json", type=Path, default=RESULTS / "general_ranking_cpu.json")
    parser.add_argument("--limit", type=int, default=None, help="the first N candidates only (a smoke run)")
    parser.add_argument("--report-only", action="store_true", help="print the JSON's figures; train nothing")
    args = parser.parse_args(argv)
    if args.report_only:
        print_report(json.loads(args.json.read_text()))
        return
    args.cache_dir = args.cache_dir or args.out / "cache"
    logging.basicConfig(level=logging.INFO, format="[bortnas] %(message)s")
    print_report(run(args))


if __name__ == "__main__":
    main()
