"""Benchmark: candidate evaluations per minute, and exported-model CPU latency vs the teacher.

Not a test: it measures and prints JSON; nothing passes or fails. Both latencies are measured
side by side in the same process, interleaved, so the ratio is fair on a noisy machine.

    python benchmarks/bench_search.py --model out/minilm_quick [--trials 4] [--threads 1 2]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch
import transformers

from bortnas.context import RunSettings, build_context
from bortnas.latency import measure_latency
from bortnas.scoring import Reference, score_candidate
from bortnas.space import load_search_space


def trials_per_minute(space_path: Path, trials: int, settings: RunSettings) -> dict[str, object]:
    ctx = build_context(settings)
    space = load_search_space(space_path)
    reference = Reference.of(space.maximum_point, ctx.shape, settings.max_length)
    candidates = list(space.candidates())
    picks = [candidates[round(k * (len(candidates) - 1) / max(1, trials - 1))] for k in range(trials)]
    seconds = []
    for spec in picks:
        started = time.perf_counter()
        score_candidate(ctx, spec, reference, settings.trial_steps, settings.seed)
        seconds.append(time.perf_counter() - started)
    return {
        "candidates": [s.key for s in picks],
        "trial_steps": settings.trial_steps,
        "seconds_per_trial_median": statistics.median(seconds),
        "seconds_per_trial": seconds,
        "trials_per_minute": 60.0 / statistics.median(seconds),
        "teacher_model": ctx.teacher.model,
    }


def latency_vs_teacher(model_dir: Path, teacher: torch.nn.Module, seq_len: int, threads: int, rounds: int = 5) -> dict[str, float]:
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir).eval()
    ours, theirs = [], []
    for _ in range(rounds):
        ours.append(measure_latency(model, seq_len, repeats=20, threads=threads).median_ms)
        theirs.append(measure_latency(teacher, seq_len, repeats=20, threads=threads).median_ms)
    return {
        "threads": threads,
        "model_ms": statistics.median(ours),
        "teacher_ms": statistics.median(theirs),
        "speedup": statistics.median(theirs) / statistics.median(ours),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, required=True, help="an exported model directory (bortnas export --out)")
    parser.add_argument("--space", type=Path, default=Path(__file__).resolve().parents[1] / "search_spaces" / "minilm_quick.yaml")
    parser.add_argument("--trials", type=int, default=4)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    meta = json.loads((args.model / "bortnas.json").read_text())
    settings = RunSettings.from_dict(meta["provenance"]["settings"])
    search = trials_per_minute(args.space, args.trials, settings)
    teacher = search.pop("teacher_model")
    report = {
        "machine": {"platform": platform.platform(), "processor": platform.processor(), "cpus": torch.get_num_threads(),
                    "torch": torch.__version__, "transformers": transformers.__version__, "dtype": "float32"},
        "search": search,
        "latency": [latency_vs_teacher(args.model, teacher, meta["seq_len"], threads) for threads in args.threads],
        "batch_size": 1,
        "seq_len": meta["seq_len"],
        "model": meta["candidate"],
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
