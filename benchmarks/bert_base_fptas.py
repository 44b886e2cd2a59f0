"""A BERT-base-scale FPTAS run: the whole space priced, then a full FPTAS search, timed, with the GPU's utilisation.

Not a test: it measures and prints. The teacher is BERT-base-shaped (12 layers, hidden 768, 12
heads, FFN 3072, the bundled MiniLM tokenizer's 30,522-token vocabulary) with random weights
built from a config, so nothing is downloaded; it is fine-tuned on the Rotten Tomatoes reviews as
any task teacher is. The space is Bort's grid scaled to BERT-base (search_spaces/bort_bert_base.yaml,
300 candidates). The run:

1. prices the whole space, p and i of every candidate, and partitions it (`arch_sampler`, pure
   Python), timed in this process;
2. runs `bortnas.search` with `FPTAS` in this process (what `bortnas search --strategy fptas`
   runs; a fresh SQLite study and teacher cache in the work directory), which fine-tunes the task
   teacher and evaluates every candidate of the plan; a thread samples the GPU's utilisation and
   memory through NVML every `--sample-s` seconds;
3. reads the study back: candidates evaluated, the teacher's fine-tuning time (the search's start
   to the first trial), the span of the trials, the argmax-W candidate, and the device every trial
   recorded for its latency.

    python benchmarks/bert_base_fptas.py [--device auto|cpu|cuda[:N]] [--epsilon 0.2] [--quick] [--json FILE]

`--quick` (a 32-token sequence, 4 teacher steps, epsilon 0.5 with n0 = 2) checks on a CPU that the
command runs end to end in minutes; its numbers say nothing about a GPU.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import optuna
from search_options import log_like_cli  # type: ignore[import-not-found]

from bortnas import FPTAS, BortnasError, Execution, RunSettings, search
from bortnas.algo import fptas
from bortnas.core.default_teacher import default_teacher_dir
from bortnas.core.space import REFERENCE_SHAPES, load_search_space
from bortnas.data.tasks import load_rotten_tomatoes
from bortnas.search.fptas_sampler import arch_sampler
from bortnas.trial.inputs import load_teacher_config, teacher_shape

REPO = Path(__file__).resolve().parents[1]
SPACE = REPO / "search_spaces" / "bort_bert_base.yaml"
TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def build_teacher(directory: Path, seed: int = 0, labels: Sequence[str] = (), quick: bool = False) -> Path:
    """A BERT-base-shaped teacher with random weights and the bundled MiniLM tokenizer (same vocabulary).

    Without `labels` a bare encoder, which a search fine-tunes on the task first; with them a
    sequence classifier whose head names them, which a search takes as fine-tuned and uses as it is.
    `quick`: a 2-layer, 64-wide stand-in with the same vocabulary, for smoke checks.
    """
    import torch
    import transformers
    from transformers import BertConfig, BertForSequenceClassification, BertModel

    transformers.utils.logging.disable_progress_bar()

    shape = REFERENCE_SHAPES["bert-base"]
    config = BertConfig(
        vocab_size=shape.vocab_size,
        hidden_size=64 if quick else shape.hidden,
        num_hidden_layers=2 if quick else shape.layers,
        num_attention_heads=4 if quick else shape.heads,
        intermediate_size=128 if quick else shape.ffn,
        max_position_embeddings=shape.max_positions,
    )
    torch.manual_seed(seed)
    if labels:
        config.id2label, config.label2id = dict(enumerate(labels)), {name: i for i, name in enumerate(labels)}
        BertForSequenceClassification(config).save_pretrained(directory)
    else:
        BertModel(config).save_pretrained(directory)
    for name in TOKENIZER_FILES:
        shutil.copy(default_teacher_dir() / name, directory / name)
    return directory


class GpuSampler:
    """Samples one GPU's utilisation (percent of time a kernel ran) and memory in a thread, through NVML."""

    def __init__(self, index: int, period_s: float) -> None:
        import pynvml

        pynvml.nvmlInit()
        self._nvml = pynvml
        self._handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        self.name = pynvml.nvmlDeviceGetName(self._handle)
        self._period = period_s
        self.samples: list[tuple[float, int, int]] = []  # (unix time, utilisation %, memory used bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            rates = self._nvml.nvmlDeviceGetUtilizationRates(self._handle)
            memory = self._nvml.nvmlDeviceGetMemoryInfo(self._handle)
            self.samples.append((time.time(), int(rates.gpu), int(memory.used)))
            self._stop.wait(self._period)

    def __enter__(self) -> GpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self._nvml.nvmlShutdown()

    def summary(self, start: float, end: float) -> dict[str, Any] | None:
        window = [s for s in self.samples if start <= s[0] <= end]
        if not window:
            return None
        util = [s[1] for s in window]
        return {
            "samples": len(window),
            "mean_util_percent": statistics.fmean(util),
            "median_util_percent": statistics.median(util),
            "max_memory_gib": max(s[2] for s in window) / 2**30,
        }


def _gpu_index(device: str) -> int | None:
    """The NVML index of the GPU `device` names (None for the CPU); auto is GPU 0 when torch sees one."""
    name = device.strip().lower()
    if name == "cpu":
        return None
    if name == "auto":
        import torch

        return 0 if torch.cuda.is_available() else None
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    index = int(name.partition(":")[2] or 0)
    return int(visible.split(",")[index]) if visible else index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto: a GPU if one is visible)")
    parser.add_argument(
        "--epsilon", type=float, default=None, help="FPTAS epsilon (default 0.2: 11 candidates of 30 steps; 0.5 with --quick)"
    )
    parser.add_argument("--max-length", type=int, default=None, help="tokens per example (default 128, 32 with --quick)")
    parser.add_argument(
        "--teacher-steps", type=int, default=None, help="fine-tuning steps of the random teacher (default 250, 4 with --quick)"
    )
    parser.add_argument("--batch-size", type=int, default=32, help="training batch of the teacher and the candidates (default 32)")
    parser.add_argument("--quick", action="store_true", help="a small run that checks the command end to end on a CPU")
    parser.add_argument("--sample-s", type=float, default=0.5, help="seconds between GPU utilisation samples (default 0.5)")
    parser.add_argument(
        "--work", type=Path, default=None, help="directory for the teacher, cache and study (default: a temporary one, removed)"
    )
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    quick = args.quick
    epsilon = args.epsilon or (0.5 if quick else 0.2)
    n0 = 2.0 if quick else 6.0
    max_length = args.max_length or (32 if quick else 128)
    teacher_steps = args.teacher_steps or (4 if quick else 250)
    work = args.work or Path(tempfile.mkdtemp(prefix="bortnas-bert-base-"))
    if (work / "study.db").exists():
        sys.exit(f"bert_base_fptas.py: error: {work / 'study.db'} exists; a fresh run needs a new --work directory.")
    work.mkdir(parents=True, exist_ok=True)
    try:
        teacher = build_teacher(work / "teacher")
        space = load_search_space(SPACE)
        shape = teacher_shape(load_teacher_config(teacher), load_rotten_tomatoes().num_labels)
        started = time.perf_counter()
        plan = arch_sampler(space, shape, max_length, epsilon)
        price_s = time.perf_counter() - started
        storage = f"sqlite:///{work / 'study.db'}"
        settings = RunSettings(
            teacher=str(teacher.resolve()), teacher_steps=teacher_steps, max_length=max_length, batch_size=args.batch_size
        )
        strategy = FPTAS(epsilon=epsilon, n0=n0)
        execution = Execution(device=args.device, cache_dir=work / "cache")
        index = _gpu_index(args.device)
        sampler, no_sampler = None, "no GPU"
        if index is not None:
            try:
                sampler = GpuSampler(index, args.sample_s)
            except ImportError:
                no_sampler = "pynvml is missing: pip install nvidia-ml-py"
        print(
            f"searching {SPACE.name} (FPTAS epsilon {epsilon:g}: {len(plan.representatives)} of {len(space)} candidates, "
            f"{fptas.steps_for(epsilon, n0, 1.0)} steps each) on {args.device}: bortnas.search({strategy}, {settings}, {execution})",
            flush=True,
        )
        log_like_cli(quiet=True)  # warnings only, as the command's -q
        run_start = time.time()
        with sampler if sampler is not None else contextlib.nullcontext():
            try:
                result = search(SPACE, storage=storage, settings=settings, strategy=strategy, execution=execution).to_dict()
            except BortnasError as e:
                sys.exit(f"bert_base_fptas.py: error: the search failed: {e}")
        run_end = time.time()
        trials = [
            t for t in optuna.load_study(study_name=space.name, storage=storage).get_trials() if t.state == optuna.trial.TrialState.COMPLETE
        ]
        first = min(t.datetime_start.timestamp() for t in trials)
        last = max(t.datetime_complete.timestamp() for t in trials)
        report = {
            "environment": {"platform": platform.platform(), "python": platform.python_version(), "quick": quick},
            "device_requested": args.device,
            "latency_devices": sorted({t.user_attrs.get("latency_device", "?") for t in trials}),
            "gpu": None if sampler is None else sampler.name,
            "space": {
                "file": str(SPACE.relative_to(REPO)),
                "candidates": len(space),
                "price_and_partition_s": price_s,
                "buckets": len(plan.buckets),
            },
            "fptas": {"epsilon": epsilon, "n0": n0, "steps": fptas.steps_for(epsilon, n0, 1.0), "planned": len(plan.representatives)},
            "settings": {"max_length": max_length, "teacher_steps": teacher_steps, "batch_size": args.batch_size},
            "candidates_evaluated": len(trials),
            "wall_s": run_end - run_start,
            "teacher_and_startup_s": first - run_start,
            "trials_s": last - first,
            "seconds_per_candidate": (last - first) / len(trials),
            "best": {"candidate": result["candidate"], "W": result["W"]},
            "gpu_util_trials": None if sampler is None else sampler.summary(first, last),
            "gpu_util_whole_run": None if sampler is None else sampler.summary(run_start, run_end),
        }
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print(
        f"device: {args.device} -> trials measured on {', '.join(report['latency_devices'])}"
        + (f" (NVML: {report['gpu']})" if report["gpu"] else "")
    )
    print(f"whole space priced and partitioned: {report['space']['candidates']} candidates in {price_s * 1000:.1f} ms")
    print(
        f"FPTAS epsilon {epsilon:g}: {len(trials)} candidates evaluated of {report['fptas']['planned']} planned, "
        f"{report['fptas']['steps']} steps each, batch {args.batch_size} x {max_length} tokens"
    )
    print(
        f"wall time {report['wall_s']:.1f} s = teacher fine-tuning ({teacher_steps} steps)"
        f" and start-up {report['teacher_and_startup_s']:.1f} s"
        f" + trials {report['trials_s']:.1f} s ({report['seconds_per_candidate']:.2f} s per candidate)"
    )
    print(f"best: {result['candidate']} W {result['W']:.3f}")
    for label in ("gpu_util_trials", "gpu_util_whole_run"):
        util = report[label]
        if util is not None:
            print(
                f"GPU utilisation during {label.removeprefix('gpu_util_').replace('_', ' ')}: mean {util['mean_util_percent']:.0f} %, "
                f"median {util['median_util_percent']:.0f} % ({util['samples']} samples), peak memory {util['max_memory_gib']:.1f} GiB"
            )
    if sampler is None:
        print(f"GPU utilisation: not measured ({no_sampler})")
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
