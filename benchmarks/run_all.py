"""Every performance figure of the docs (docs/benchmarks/run-all.md) from one command, each printed with the device that measured it.

Not a test: it measures and prints; nothing passes or fails. Seeds are fixed, each figure has a
warm-up and repeats, and the median is reported with its range (min..max). In one run:

1. candidate evaluations per hour: `score_candidate` (extract, distil `--trial-steps` steps,
   dev accuracy, latency) of a small candidate on the default context (all-MiniLM-L6-v2 teacher
   fine-tuned on Rotten Tomatoes; fine-tuned once and cached, before any timing);
2. the distillation step of a BERT-base-shaped student (12 layers, hidden 768, 12 heads, FFN 3072)
   from a BERT-base-shaped teacher, both with random weights built from a config (no download),
   run through `bortnas.train.loop.train` itself: tokens/s, achieved TFLOP/s and model FLOPs
   utilisation (MFU) against the device's dense peak. FLOPs are analytic, from
   `bortnas.cost.flops` (matmul FLOPs only, the work tensor cores do): per sequence, 3 x the
   student's forward FLOPs (forward + backward) + 1 x the teacher's forward (no gradient).
   Every sequence is `--seq-len` tokens long (no padding), so every counted FLOP is useful work;
3. the exported model's latency against its teacher's (the architecture and weights of the
   teacher directory the export records, with a fresh head) at batch 1 and 32 and the export's
   sequence length; the two are measured alternately, round after round, so each ratio compares
   numbers taken moments apart;
4. summaries of benchmarks/results/search_efficiency_{reviews,boolq}.json and ray_scaling.json where they exist
   (they are written by the benchmarks of those names).

    python benchmarks/run_all.py [--device auto|cpu|cuda[:N]] [--quick] [--model out/minilm_quick] [--json run_all.json]

`--quick` shrinks every figure so the whole run takes a few minutes on a laptop CPU; the numbers
then show that the command works, not what the hardware can do.
"""

from __future__ import annotations

import argparse
import copy
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import transformers

from bortnas.core.settings import RunSettings, TrainConfig
from bortnas.core.space import REFERENCE_SHAPES, ArchSpec
from bortnas.cost import flops
from bortnas.data.encode import EncodedSplit
from bortnas.model.extract import Extraction
from bortnas.runtime.device import Device
from bortnas.runtime.latency import measure_latency
from bortnas.train.loop import train
from bortnas.trial.context import build_context
from bortnas.trial.scoring import Reference, score_candidate

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
SMALL_CANDIDATE = ArchSpec(layers=2, hidden=288, heads=12, ffn=384)  # the exported default of search_spaces/minilm_quick.yaml
BERT_BASE = REFERENCE_SHAPES["bert-base"]

# Dense (no 2:4 sparsity) peak tensor TFLOP/s per GPU as (bf16, fp32), from NVIDIA's data sheets.
# Matched in order against torch.cuda.get_device_name(): the first whose words all occur wins.
PEAK_TFLOPS: tuple[tuple[tuple[str, ...], str, float, float], ...] = (
    (("H100", "PCIe"), "H100 PCIe", 756.0, 51.2),
    (("H100",), "H100 SXM", 989.4, 66.9),
    (("H200",), "H200", 989.4, 66.9),
    (("A100",), "A100", 312.0, 19.5),
    (("L40S",), "L40S", 362.1, 91.6),
    (("L4",), "L4", 121.0, 30.3),
    (("A10",), "A10", 125.0, 31.2),
)


def _spread(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _timed(device: Device, run: Callable[[], object]) -> float:
    """Wall seconds of `run`, with the device's queue drained before and after."""
    device.synchronize()
    started = time.perf_counter()
    run()
    device.synchronize()
    return time.perf_counter() - started


# ---------------------------------------------------------------------------------------------
# 1. candidate evaluations per hour


def evaluations_per_hour(device: Device, trial_steps: int, repeats: int) -> dict[str, Any]:
    ctx = build_context(RunSettings(trial_steps=trial_steps), device=device)
    reference = Reference.of(ctx.shape.as_spec(), ctx.shape, ctx.settings.max_length)

    def score() -> None:
        score_candidate(ctx, SMALL_CANDIDATE, reference, trial_steps, seed=0)

    score()  # warm-up: first-touch allocations, kernel selection
    seconds = [_timed(device, score) for _ in range(repeats)]
    return {
        "device": device.describe(),
        "candidate": SMALL_CANDIDATE.key,
        "trial_steps": trial_steps,
        "batch_size": ctx.settings.batch_size,
        "seq_len": ctx.settings.max_length,
        "seconds_per_evaluation": _spread(seconds),
        "evaluations_per_hour": 3600.0 / statistics.median(seconds),
    }


# ---------------------------------------------------------------------------------------------
# 2. throughput and MFU of the BERT-base distillation step


def peak_tflops(device: Device, override: float | None) -> tuple[float | None, str]:
    """The dense peak for the device's precision (bf16 under autocast, else fp32) and where it comes from."""
    if override is not None:
        return override, "--peak-tflops"
    if not device.is_cuda:
        return None, "no known peak for a CPU: pass --peak-tflops for an MFU"
    name = torch.cuda.get_device_name(device.torch_device)
    bf16 = device.autocast_dtype == torch.bfloat16
    for words, label, peak_bf16, peak_fp32 in PEAK_TFLOPS:
        if all(word in name for word in words):
            return (peak_bf16 if bf16 else peak_fp32), f"{label} dense {'bf16' if bf16 else 'fp32'} data-sheet peak"
    return None, f"{name} is not in PEAK_TFLOPS: pass --peak-tflops for an MFU"


def _random_split(examples: int, seq_len: int, vocab: int) -> EncodedSplit:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab, (examples, seq_len), generator=generator)
    labels = torch.randint(0, 2, (examples,), generator=generator)
    return EncodedSplit(input_ids=ids.tolist(), token_type_ids=None, labels=labels, pad_id=0)


def distillation_throughput(
    device: Device, batch_size: int, seq_len: int, steps: int, repeats: int, override_peak: float | None
) -> dict[str, Any]:
    from transformers import BertConfig, BertForSequenceClassification

    spec = BERT_BASE.as_spec()
    config = BertConfig(
        vocab_size=BERT_BASE.vocab_size,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.ffn,
        max_position_embeddings=BERT_BASE.max_positions,
        num_labels=BERT_BASE.num_labels,
    )
    torch.manual_seed(0)
    teacher = BertForSequenceClassification(config).to(device.torch_device).eval()
    student = copy.deepcopy(teacher)
    extraction = Extraction(layers=tuple(range(spec.layers)), hidden=torch.arange(spec.hidden, device=device.torch_device))
    data = _random_split(batch_size * max(steps, 2), seq_len, BERT_BASE.vocab_size)

    def run(n: int) -> None:
        train(student, data, TrainConfig(steps=n, batch_size=batch_size), teacher=teacher, extraction=extraction, device=device)

    run(2)  # warm-up: allocator, cuBLAS heuristics, compilation with --compile
    seconds = [_timed(device, lambda: run(steps)) for _ in range(repeats)]
    forward = flops(spec, BERT_BASE, seq_len).matmul  # per sequence
    step_flops = batch_size * (3 * forward + forward)  # student forward + backward, teacher forward
    tflops = [steps * step_flops / s / 1e12 for s in seconds]
    peak, peak_source = peak_tflops(device, override_peak)
    return {
        "device": device.describe(),
        "compile": device.compile,
        "model": spec.key,
        "batch_size": batch_size,
        "seq_len": seq_len,
        "steps": steps,
        "flops_per_step": step_flops,
        "flops_source": "analytic matmul FLOPs: 3 x student forward + teacher forward",
        "tokens_per_s": _spread([steps * batch_size * seq_len / s for s in seconds]),
        "tflops": _spread(tflops),
        "peak_tflops": peak,
        "peak_source": peak_source,
        "mfu": None if peak is None else statistics.median(tflops) / peak,
    }


# ---------------------------------------------------------------------------------------------
# 3. exported model against its teacher


def latency_against_teacher(
    device: Device, model_dir: Path, batch_sizes: tuple[int, ...], rounds: int, repeats: int, threads: int
) -> dict[str, Any]:
    from transformers import AutoModelForSequenceClassification

    from bortnas import load

    meta = json.loads((model_dir / "bortnas.json").read_text())
    seq_len = meta["seq_len"]
    model = load(str(model_dir))
    # transformers wraps PreTrainedModel.to in functools.wraps, whose typeshed type does not bind self
    model.to(device.torch_device)  # type: ignore[arg-type]
    teacher = (
        AutoModelForSequenceClassification.from_pretrained(
            meta["provenance"]["teacher"], num_labels=len(meta["labels"]), local_files_only=True
        )
        .to(device.torch_device)
        .eval()
    )
    rows = []
    for batch_size in batch_sizes:
        ours, theirs = [], []
        for _ in range(rounds):
            ours.append(measure_latency(model, seq_len, batch_size, repeats=repeats, threads=threads, device=device).median_ms)
            theirs.append(measure_latency(teacher, seq_len, batch_size, repeats=repeats, threads=threads, device=device).median_ms)
        rows.append(
            {
                "batch_size": batch_size,
                "model_ms": _spread(ours),
                "teacher_ms": _spread(theirs),
                "speedup": _spread([t / o for t, o in zip(theirs, ours, strict=True)]),
            }
        )
    return {
        "device": device.describe(),
        "threads": threads,
        "model": str(model_dir),
        "candidate": meta["candidate"],
        "seq_len": seq_len,
        "rounds": rounds,
        "repeats": repeats,
        "rows": rows,
        "test_points": meta.get("ratios", {}).get("test_points"),
    }


# ---------------------------------------------------------------------------------------------
# 4. stored results of the search benchmarks


SEARCH_TABLES = ("reviews", "boolq")  # benchmarks/search_efficiency.py all writes search_efficiency_<table>.json


def stored_results() -> dict[str, Any]:
    def read(path: Path) -> Any:
        return json.loads(path.read_text()) if path.is_file() else None

    tables = {name: read(RESULTS / f"search_efficiency_{name}.json") for name in SEARCH_TABLES}
    return {
        "search_efficiency": {name: report for name, report in tables.items() if report is not None} or None,
        "ray_scaling": read(RESULTS / "ray_scaling.json"),
    }


# ---------------------------------------------------------------------------------------------
# printing


def _fmt(spread: dict[str, float], spec: str) -> str:
    return f"{spread['median']:{spec}} ({spread['min']:{spec}}..{spread['max']:{spec}})"


def print_report(report: dict[str, Any]) -> None:
    env = report["environment"]
    print(
        f"bortnas benchmarks: torch {env['torch']}, transformers {env['transformers']}, {env['platform']}, "
        f"{env['cpu_threads']} CPU threads{' (quick)' if env['quick'] else ''}"
    )
    e = report["evaluations"]
    print(f"\n[1] candidate evaluations per hour on {e['device']}: {e['evaluations_per_hour']:.0f}")
    print(
        f"    {e['candidate']}, {e['trial_steps']} distillation steps at batch {e['batch_size']} x {e['seq_len']} tokens + dev accuracy + "
        f"latency; seconds per evaluation {_fmt(e['seconds_per_evaluation'], '.2f')}"
    )
    d = report["distillation"]
    print(
        f"\n[2] BERT-base distillation step on {d['device']}{' (torch.compile)' if d['compile'] else ''}: "
        f"batch {d['batch_size']} x {d['seq_len']} tokens, {d['steps']} steps per repeat"
    )
    print(
        f"    tokens/s {_fmt(d['tokens_per_s'], ',.0f')};  achieved TFLOP/s {_fmt(d['tflops'], '.3f')} "
        f"({d['flops_per_step'] / 1e12:.3f} TFLOP per step, {d['flops_source']})"
    )
    if d["mfu"] is None:
        print(f"    MFU: not defined ({d['peak_source']})")
    else:
        print(f"    MFU {100 * d['mfu']:.1f} % of {d['peak_tflops']:.1f} TFLOP/s ({d['peak_source']})")
    lat = report["latency"]
    if "skipped" in lat:
        print(f"\n[3] exported model vs teacher: skipped ({lat['skipped']})")
    else:
        accuracy = lat["test_points"]
        print(
            f"\n[3] exported {lat['model']} vs its teacher on {lat['device']} ({lat['threads']} thread(s) for CPU work), "
            f"{lat['seq_len']} tokens, {lat['rounds']} alternating rounds of {lat['repeats']} passes"
            + (f"; test accuracy {accuracy:+.2f} points at export" if accuracy is not None else "")
        )
        for row in lat["rows"]:
            print(
                f"    batch {row['batch_size']:>3}: model {_fmt(row['model_ms'], '.2f')} ms, teacher {_fmt(row['teacher_ms'], '.2f')} ms, "
                f"teacher/model {_fmt(row['speedup'], '.2f')}x"
            )
    stored = report["stored"]
    if stored["search_efficiency"] is None:
        print(f"\n[4] search efficiency: no {RESULTS / 'search_efficiency_*.json'} (run benchmarks/search_efficiency.py all)")
    for efficiency in (stored["search_efficiency"] or {}).values():
        table, budgets = efficiency["table"], efficiency["budgets"]
        print(
            f"\n[4] search efficiency (stored; device-independent: W regret over the recorded trials of study {table['study']}, "
            f"{table['candidates']} candidates, {efficiency['seeds']} seeds): median regret at budget {', '.join(map(str, budgets))}"
        )
        for strategy, figures in efficiency["strategies"].items():
            regret = figures.get("regret", {})
            reach = figures.get("evaluations_to", {}).get("1%", {}).get("median")
            print(
                f"    {strategy:<7} "
                + "  ".join(f"{regret[str(b)]['median']:.3f}" if str(b) in regret else "  -  " for b in budgets)
                + (f"   evaluations to within 1 %: {reach:g}" if reach is not None else "")
            )
    scaling = stored["ray_scaling"]
    if scaling is None:
        print(f"    ray scaling: {RESULTS / 'ray_scaling.json'} does not exist (run benchmarks/ray_scaling.py)")
    else:
        print(
            f"    ray scaling (stored; measured on {scaling.get('machine', 'an unrecorded machine')}, {scaling.get('n_trials')} trials of "
            f"{scaling.get('trial_steps')} steps): "
            + ", ".join(
                f"{r['workers']} worker(s) {r['trials_per_hour']:.0f}/h (x{r['speedup']:.2f}, efficiency {r['efficiency']:.2f})"
                for r in scaling["rows"]
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N (default auto: a GPU if one is visible)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the models of the distillation step")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and few repeats: checks the command runs in minutes on a CPU")
    parser.add_argument(
        "--model", type=Path, default=REPO / "out" / "minilm_quick", help="an exported model directory (bortnas export --out)"
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="distillation step batch (default 64 on CUDA, 8 on a CPU, 2 with --quick)"
    )
    parser.add_argument("--seq-len", type=int, default=None, help="distillation step tokens per sequence (default 128, 64 with --quick)")
    parser.add_argument(
        "--steps", type=int, default=None, help="distillation steps per timed repeat (default 20 on CUDA, 5 on a CPU, 2 with --quick)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed repeats of the distillation step (default 5 on CUDA, 3 on a CPU, 2 with --quick)"
    )
    parser.add_argument(
        "--peak-tflops", type=float, default=None, help="the device's peak TFLOP/s for the MFU (default: PEAK_TFLOPS by GPU name)"
    )
    parser.add_argument("--threads", type=int, default=1, help="CPU threads of the latency measurements (default 1, as in trials)")
    parser.add_argument("--json", type=Path, default=None, help="also write every figure to this JSON file")
    args = parser.parse_args()
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    device = Device.from_name(args.device, compile=args.compile)
    quick = args.quick
    batch_size = args.batch_size or (2 if quick else 64 if device.is_cuda else 8)
    seq_len = args.seq_len or (64 if quick else 128)
    report: dict[str, Any] = {
        "environment": {
            "device": device.describe(),
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "platform": platform.platform(),
            "cpu_threads": torch.get_num_threads(),
            "quick": quick,
            "precision": str(device.autocast_dtype or torch.float32).removeprefix("torch."),
        }
    }
    report["evaluations"] = evaluations_per_hour(device, trial_steps=10 if quick else 60, repeats=2 if quick else 5)
    steps = args.steps or (2 if quick else 20 if device.is_cuda else 5)
    repeats = args.repeats or (2 if quick else 5 if device.is_cuda else 3)
    report["distillation"] = distillation_throughput(
        device, batch_size, seq_len, steps=steps, repeats=repeats, override_peak=args.peak_tflops
    )
    if (args.model / "bortnas.json").is_file():
        report["latency"] = latency_against_teacher(
            device, args.model, (1, 32), rounds=2 if quick else 5, repeats=5 if quick else 30, threads=args.threads
        )
    else:
        report["latency"] = {"skipped": f"{args.model} is not an exported model: pass --model DIR (bortnas export --out DIR)"}
    report["stored"] = stored_results()
    print_report(report)
    if args.json is not None:
        args.json.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
