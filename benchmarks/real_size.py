"""Where the time goes when a user runs the default search and export on a 12-layer, 768-wide teacher.

Not a test: it measures and prints. The teacher is BERT-base-shaped with random weights (no real
teacher of that size ships offline), saved as a sequence classifier whose head names the reviews'
labels, so the search takes it as a fine-tuned teacher and uses it as it is; `--headless` saves
a bare encoder instead, which the search fine-tunes first (`--teacher-steps`, default 250). The
run is what a user types, through the API in this process:

    bortnas search --space search_spaces/bort_bert_base.yaml --teacher DIR
    bortnas export --study bort_bert_base --out OUT

Each phase is timed from the command's own log lines (the latency table, the task teacher and
its importance, the FPTAS's trials, the export's training, its measurements and writing), and the
export's figures beside the teacher's are printed. A random teacher says nothing about accuracy:
this benchmark measures time only.

    python benchmarks/real_size.py [--work DIR] [--headless] [--teacher-steps N] [--json FILE] [--quick]

`--quick` runs the same on a 2-layer, 64-wide stand-in with 8 export steps: a smoke check.
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sys
import time
from pathlib import Path
from typing import Any

from bert_base_fptas import SPACE, build_teacher  # type: ignore[import-not-found]
from search_options import log_like_cli  # type: ignore[import-not-found]

import bortnas
from bortnas import Distil, Execution, RunSettings

REVIEW_LABELS = ("rotten", "fresh")  # the default task's labels, in its order
# log lines that end a phase: (the message's start, a part it holds), in the order they come
MARKS = {
    "latency table": ("latency table: ", " measured on "),
    "task teacher": ("task teacher (", ""),
    "exported": ("exported trial", ""),
}


class Clock(logging.Handler):
    """Every bortnas log message with the time it was emitted."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((time.perf_counter(), record.getMessage()))

    def first(self, mark: tuple[str, str], after: float = 0.0) -> float | None:
        """When the first message after `after` that starts with `mark[0]` and holds `mark[1]` came."""
        prefix, part = mark
        return next((t for t, m in self.lines if t >= after and m.startswith(prefix) and part in m), None)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path("real_size_work"), help="teacher, cache, study and export (default ./real_size_work)"
    )
    parser.add_argument("--headless", action="store_true", help="a bare encoder teacher, fine-tuned on the reviews first")
    parser.add_argument("--teacher-steps", type=int, default=None, help="fine-tuning steps of a --headless teacher (default 250)")
    parser.add_argument("--quick", action="store_true", help="a tiny stand-in teacher and 8 export steps: checks the script runs")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    work = args.work.resolve()
    if (work / "study.db").exists():
        sys.exit(f"real_size.py: error: {work / 'study.db'} exists; a fresh run needs a new --work directory.")
    work.mkdir(parents=True, exist_ok=True)
    log_like_cli(quiet=False)
    clock = Clock()
    logging.getLogger("bortnas").addHandler(clock)

    started = time.perf_counter()
    teacher = build_teacher(work / "teacher", labels=() if args.headless else REVIEW_LABELS, quick=args.quick)
    space = SPACE if not args.quick else work / "quick.yaml"
    if args.quick:
        space.write_text("name: bort_bert_base\nlayers: [1, 2]\nhidden: [32, 64]\nheads: [4]\nffn: [64, 128]\n")
    storage = f"sqlite:///{work / 'study.db'}"
    settings = RunSettings(teacher=str(teacher), teacher_steps=args.teacher_steps)
    execution = Execution(device="cpu", cache_dir=work / "cache")
    search_start = time.perf_counter()
    result = bortnas.search(space, storage=storage, settings=settings, execution=execution)
    search_end = time.perf_counter()
    finetune = Distil(steps=8) if args.quick else Distil()
    report = bortnas.export(result.study, work / "export", storage=storage, finetune=finetune, overwrite=True, execution=execution)
    export_end = time.perf_counter()

    table = clock.first(MARKS["latency table"], search_start) or search_start
    teacher_ready = clock.first(MARKS["task teacher"], search_start) or table
    export_teacher = clock.first(MARKS["task teacher"], search_end) or search_end
    exported = clock.first(MARKS["exported"], search_end) or export_end
    meta = json.loads((work / "export" / "bortnas.json").read_text())
    phases = {
        "build the random teacher (not a user's step)": search_start - started,
        "search: latency table": table - search_start,
        "search: task teacher (load, fine-tune if headless, dev/test metrics, importance)": teacher_ready - table,
        f"search: FPTAS trials ({sum(t.state == 'COMPLETE' for t in bortnas.trials(result.study, storage=storage))})": search_end
        - teacher_ready,
        "export: open the study, load the teacher": export_teacher - search_end,
        f"export: {len(meta['attempts']) or 1} x {meta['training']['steps']} distillation steps (with the dev check and "
        "climbs), metrics, latency, write, reload check": exported - export_teacher,
    }
    record: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "python": platform.python_version()},
        "teacher": "headless, fine-tuned first" if args.headless else "with a head, used as it is",
        "quick": args.quick,
        "phases_s": phases,
        "search_s": search_end - search_start,
        "export_s": export_end - search_end,
        "total_user_s": export_end - search_start,
        "search": result.to_dict(),
        "export": {
            "candidate": report.spec.key,
            "attempts": meta["attempts"],
            "ratios": report.ratios(),
            "model": report.model.to_dict(),
            "teacher": report.teacher.to_dict(),
        },
    }
    print(f"\n{'phase':<92}{'seconds':>10}")
    for name, seconds in phases.items():
        print(f"{name:<92}{seconds:>10.1f}")
    print(f"{'search + export (what the user waits for)':<92}{record['total_user_s']:>10.1f}")
    for attempt in meta["attempts"]:
        trained = f"trained trial {attempt['trial']} ({attempt['candidate']})"
        print(f"{trained}: dev {attempt['dev_score']:.4f}, {attempt['dev_drop_points']:+.2f} points below the teacher")
    print(f"exported {report.spec.key}: {report.ratios()['latency']:.1f}x the teacher's speed at batch 1")
    if args.json:
        args.json.write_text(json.dumps(record, indent=2))


if __name__ == "__main__":
    main()
