"""The quantization figure: the best candidate of each mode of one search, exported and tested.

1. `bortnas.search` with `Grid` (what `bortnas search --strategy grid` runs) evaluates every
   candidate of a space with quantization modes (resumable: the same command continues a killed run);
2. for each mode, the argmax-W trial of that mode is exported with `bortnas.export(trial=N)`
   (`bortnas export --trial N`; an export already on disk for the same trial is reused);
3. prints a Markdown table (test accuracy, gap to the task teacher, stored MiB, GFLOP-equivalents
   at the study's sequence length) and writes it as JSON.

    python benchmarks/quant_table.py --storage sqlite:///benchmarks/results/quant.db --out benchmarks/results/quant
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from search_options import log_like_cli, search_options  # type: ignore[import-not-found]

import bortnas
from bortnas import export as export_study
from bortnas.search import load_study
from bortnas.search.records import load_records
from bortnas.search.storage import open_storage

REPO = Path(__file__).resolve().parents[1]


def best_per_mode(storage: str, study_name: str) -> dict[str, dict[str, Any]]:
    study, _, _ = load_study(open_storage(storage), study_name)
    best: dict[str, dict[str, Any]] = {}
    for record in load_records(study):
        if record.scored and record.spec is not None:
            mode = record.spec.quant.value
            if mode not in best or record.attrs["w"] > best[mode]["w"]:
                best[mode] = {**record.attrs, "trial": record.number}
    return best


def export(storage: str, study: str, trial: int, out: Path, steps: int, execution: bortnas.Execution) -> dict[str, Any]:
    meta_path = out / "bortnas.json"
    if meta_path.is_file():
        meta = json.loads(meta_path.read_text())
        if meta["trial"] == trial and meta["training"]["steps"] == steps:
            return {"model": meta["metrics"], "teacher": meta["teacher_metrics"]}
    # the search's device and teacher cache, as its flags after -- gave them
    execution = bortnas.Execution(device=execution.device, compile=execution.compile, cache_dir=execution.cache_dir)
    print(f"+ bortnas.export({study!r}, {str(out)!r}, trial={trial}, steps={steps})", file=sys.stderr)
    report = export_study(
        study, out, storage=storage, trial=trial, finetune=bortnas.Distil(steps=steps), overwrite=True, execution=execution
    )
    return {"model": report.model.to_dict(), "teacher": report.teacher.to_dict()}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", type=Path, default=REPO / "search_spaces" / "minilm_quant.yaml")
    parser.add_argument("--storage", default="sqlite:///benchmarks/results/quant.db")
    parser.add_argument("--study", default="minilm_quant")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/quant"))
    parser.add_argument("--trial-steps", type=int, default=120)
    parser.add_argument("--export-steps", type=int, default=300)
    parser.add_argument("--json", type=Path, default=None, help="write the rows here (default OUT/table.json)")
    parser.add_argument("extra", nargs="*", help="more `bortnas search` flags of run settings, budget or execution, after --")
    args = parser.parse_args(argv)

    options = search_options(args.extra, trial_steps=args.trial_steps)
    log_like_cli(quiet=True)
    print(f"+ bortnas.search({str(args.space)!r}, study={args.study!r}, strategy=Grid, settings={options.settings})", file=sys.stderr)
    bortnas.search(
        args.space,
        storage=args.storage,
        study=args.study,
        settings=options.settings,
        strategy=bortnas.Grid(n_trials=100000),
        execution=options.execution,
    )
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for mode, attrs in best_per_mode(args.storage, args.study).items():
        report = export(args.storage, args.study, attrs["trial"], args.out / mode, args.export_steps, options.execution)
        model, teacher = report["model"], report["teacher"]
        rows.append(
            {
                "mode": mode,
                "candidate": attrs["key"],
                "trial": attrs["trial"],
                "search_dev_accuracy": attrs["dev_score"],
                "w": attrs["w"],
                "test_accuracy": model["test_score"],
                "teacher_test_accuracy": teacher["test_score"],
                "gap_points": 100 * (teacher["test_score"] - model["test_score"]),
                "size_mib": model["size_mib"],
                "teacher_size_mib": teacher["size_mib"],
                "gflops": model["flops"] / 1e9,
                "teacher_gflops": teacher["flops"] / 1e9,
            }
        )
    print("| mode | best candidate (argmax W) | test acc | gap to teacher | size MiB | GFLOP-eq | search W |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['candidate']} | {r['test_accuracy']:.4f} | {r['gap_points']:+.2f} pt | {r['size_mib']:.2f} | "
            f"{r['gflops']:.4f} | {r['w']:.3f} |"
        )
    if rows:
        r = rows[0]
        print(
            f"| teacher | all-MiniLM-L6-v2, fine-tuned | {r['teacher_test_accuracy']:.4f} | | {r['teacher_size_mib']:.2f} | "
            f"{r['teacher_gflops']:.4f} | |"
        )
    (args.json or args.out / "table.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
