"""Deployable speed: fp32, int8 and ternary models under PyTorch and onnxruntime, side by side.

For one student shape (default: the default run's pick, L2-H192-A6-I768) and the task teacher:

1. the student is trained as `bortnas export` trains it (the distillation recipe, 1500 steps) in
   fp32, int8 and bitnet158, written as an export directory and read back with `bortnas.load`
   (kept in --out: a rerun reuses them);
2. every deployable form is built: PyTorch eager (fp32; int8 and bitnet158 on the int8 kernel),
   onnxruntime fp32 (`model.onnx`) and onnxruntime int8 (`model.int8.onnx`: the int8 and ternary
   models' own codes; post-training dynamic int8 for the fp32 ones); the teacher also as
   post-training int8 on bortnas's int8 kernel (the `int8` mode's layers without training);
3. test accuracy of each form on the reviews; latency at batch 1 and 32 on 1 thread and 64
   tokens, every form timed in turn in each of --rounds rounds (median of the rounds' medians),
   so load drift of a shared machine hits all forms alike;
4. a table with ratios against the same shape in fp32 under PyTorch, against the teacher under
   PyTorch, and against the teacher in the same runtime and precision.

    python benchmarks/deploy.py --out out/deploy --json benchmarks/results/deploy_cpu.json
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import platform
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import onnxruntime
import torch
import transformers

from bortnas import load
from bortnas.core.finetuning import DEFAULT_STEPS
from bortnas.core.settings import RunSettings
from bortnas.core.space import ArchSpec, QuantMode
from bortnas.quant.modules import dequantize_, quantize_
from bortnas.quant.pack import save_quantized
from bortnas.runtime.latency import measure_latency
from bortnas.runtime.onnx import OnnxModel, export_int8_onnx, export_onnx, measure_onnx_latency
from bortnas.train.loop import evaluate
from bortnas.trial.context import Context, build_context
from bortnas.trial.finetune import finetune_candidate

_STARTED = time.perf_counter()
BATCH_SIZES = (1, 32)


def progress(message: str) -> None:
    print(f"[{time.perf_counter() - _STARTED:6.0f} s] {message}", file=sys.stderr, flush=True)


@dataclasses.dataclass
class Form:
    """One model in one runtime: how to time it and how to score it."""

    model: str  # "student" or "teacher"
    mode: str  # fp32, int8, bitnet158 (the model's training mode)
    runtime: str  # "torch" or "onnxruntime"
    precision: str  # the arithmetic that runs: fp32 or int8
    how: str  # one phrase: what this form is
    latency: Callable[[int, int, int], float]  # (batch size, warm-up, repeats) -> median ms
    accuracy: Callable[[], float]
    ms: dict[int, list[float]] = dataclasses.field(default_factory=dict)
    test_accuracy: float = 0.0

    @property
    def label(self) -> str:
        return f"{self.model} {self.mode} {self.runtime} {self.precision}"


def train_student(ctx: Context, spec: ArchSpec, out: Path, steps: int) -> torch.nn.Module:
    """The export of `spec` after `steps` distillation steps, read back as a user loads it (reused when on disk)."""
    directory = out / spec.key
    stamp = directory / "bortnas.json"
    if stamp.is_file() and json.loads(stamp.read_text()).get("steps") == steps:
        progress(f"reusing {directory}")
        return load(directory)
    shutil.rmtree(directory, ignore_errors=True)  # graphs of an earlier model go with it
    progress(f"training {spec.key} for {steps} steps")
    began = time.perf_counter()
    model = finetune_candidate(ctx, spec, steps, "distil").model.cpu().eval()
    directory.mkdir(parents=True, exist_ok=True)
    if spec.quant is QuantMode.FP32:
        model.save_pretrained(directory)
    else:
        save_quantized(model, spec.quant, directory)
    stamp.write_text(json.dumps({"candidate": spec.to_dict(), "steps": steps, "seconds": time.perf_counter() - began}))
    return load(directory)


def torch_form(model_name: str, mode: str, model: torch.nn.Module, ctx: Context, threads: int, how: str) -> Form:
    seq_len = ctx.settings.max_length

    def latency(batch_size: int, warmup: int, repeats: int) -> float:
        return measure_latency(model, seq_len, batch_size, repeats=repeats, warmup=warmup, threads=threads).median_ms  # type: ignore[arg-type]

    precision = "fp32" if mode == "fp32" else "int8"
    return Form(model_name, mode, "torch", precision, how, latency, lambda: evaluate(model, ctx.test).accuracy)  # type: ignore[arg-type]


def onnx_form(model_name: str, mode: str, path: Path, precision: str, ctx: Context, threads: int, how: str) -> Form:
    vocab = ctx.teacher.model.config.vocab_size
    seq_len = ctx.settings.max_length

    def latency(batch_size: int, warmup: int, repeats: int) -> float:
        return measure_onnx_latency(path, vocab, seq_len, batch_size, repeats, warmup, threads).median_ms

    return Form(model_name, mode, "onnxruntime", precision, how, latency, lambda: OnnxModel(path, threads).accuracy(ctx.test.batches(64)))


def optimized_int8(faithful: Path, heads: int, hidden: int) -> Path:
    """onnxruntime's transformer optimizer (model type bert: fused LayerNorm, GELU, attention where it
    finds the pattern) on a model's fp32 graph, then dynamic int8 as `export_int8_onnx` does."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from onnxruntime.transformers.optimizer import optimize_model

    fused, out = faithful.with_name("model.opt.onnx"), faithful.with_name("model.opt.int8.onnx")
    if not out.is_file():
        optimize_model(str(faithful), model_type="bert", num_heads=heads, hidden_size=hidden).save_model_to_file(str(fused))
        quantize_dynamic(str(fused), str(out), per_channel=True, weight_type=QuantType.QInt8)
    return out


def graphs(model: torch.nn.Module, directory: Path, seq_len: int, fp32: bool) -> tuple[Path | None, Path]:
    """(the fp32 graph for an fp32 model, else None; the int8 graph), written once."""
    directory.mkdir(parents=True, exist_ok=True)
    faithful, integer = directory / "model.onnx", directory / "model.int8.onnx"
    if fp32 and not faithful.is_file():
        export_onnx(model, faithful, seq_len)  # type: ignore[arg-type]
    if not integer.is_file():
        export_int8_onnx(dequantize_(copy.deepcopy(model)), integer, seq_len)  # type: ignore[arg-type]
    return (faithful if fp32 else None), integer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shape", default="2,192,6,768", help="layers,hidden,heads,ffn of the student")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS["distil"], help="distillation steps (bortnas export's default)")
    parser.add_argument("--out", type=Path, default=Path("out/deploy"))
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=30, help="timed passes per round at batch 1 (a quarter of them at 32)")
    parser.add_argument(
        "--ort-optimizer", action="store_true", help="also time the fp32 models through onnxruntime's transformer optimizer, then int8"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(2)  # training; latency pins its own threads
    layers, hidden, heads, ffn = (int(v) for v in args.shape.split(","))
    settings = RunSettings()
    ctx = build_context(settings, show_progress_bar=False)
    seq_len = settings.max_length
    forms: list[Form] = []
    for mode in ("fp32", "int8", "bitnet158"):
        spec = ArchSpec(layers, hidden, heads, ffn, QuantMode(mode))
        model = train_student(ctx, spec, args.out, args.steps)
        fp32 = mode == "fp32"
        faithful, integer = graphs(model, args.out / spec.key / "onnx", seq_len, fp32)
        kernel = "eager" if fp32 else "eager, int8 kernel (torch._int_mm)"
        forms.append(torch_form("student", mode, model, ctx, args.threads, kernel))
        if faithful is not None:
            forms.append(onnx_form("student", mode, faithful, "fp32", ctx, args.threads, "model.onnx"))
        how = "model.int8.onnx, post-training dynamic int8" if fp32 else "model.int8.onnx, the model's own codes"
        forms.append(onnx_form("student", mode, integer, "int8", ctx, args.threads, how))
        if faithful is not None and args.ort_optimizer:
            path = optimized_int8(faithful, heads, hidden)
            forms.append(onnx_form("student", mode, path, "int8", ctx, args.threads, "transformer optimizer, then dynamic int8"))
    teacher = ctx.teacher.model.cpu().eval()
    faithful, integer = graphs(teacher, args.out / "teacher" / "onnx", seq_len, True)
    forms.append(torch_form("teacher", "fp32", teacher, ctx, args.threads, "eager"))
    ptq = quantize_(copy.deepcopy(teacher), QuantMode.INT8).eval()
    forms.append(torch_form("teacher", "int8", ptq, ctx, args.threads, "eager, int8 kernel, post-training (no QAT)"))
    assert faithful is not None
    forms.append(onnx_form("teacher", "fp32", faithful, "fp32", ctx, args.threads, "model.onnx"))
    forms.append(onnx_form("teacher", "fp32", integer, "int8", ctx, args.threads, "model.int8.onnx, post-training dynamic int8"))
    if args.ort_optimizer:
        config = teacher.config
        path = optimized_int8(faithful, config.num_attention_heads, config.hidden_size)
        forms.append(onnx_form("teacher", "fp32", path, "int8", ctx, args.threads, "transformer optimizer, then dynamic int8"))

    for form in forms:
        form.test_accuracy = form.accuracy()
        progress(f"{form.label}: test accuracy {form.test_accuracy:.4f}")
    for r in range(args.rounds):
        for batch_size in BATCH_SIZES:
            warmup, repeats = (5, args.repeats) if batch_size == 1 else (2, max(3, args.repeats // 4))
            for form in forms:
                form.ms.setdefault(batch_size, []).append(form.latency(batch_size, warmup, repeats))
        progress(f"latency round {r + 1} of {args.rounds}")
    report(forms, args, layers, hidden, heads, ffn)


def report(forms: list[Form], args: argparse.Namespace, *shape: int) -> None:
    def ms(form: Form, b: int) -> float:
        return statistics.median(form.ms[b])

    base = next(f for f in forms if (f.model, f.mode, f.runtime) == ("student", "fp32", "torch"))
    teacher = next(f for f in forms if (f.model, f.mode, f.runtime) == ("teacher", "fp32", "torch"))

    def same(form: Form) -> Form:
        """The teacher in the same runtime and precision."""
        optimized = form.how.startswith("transformer optimizer")
        return next(
            f
            for f in forms
            if f.model == "teacher"
            and (f.runtime, f.precision) == (form.runtime, form.precision)
            and f.how.startswith("transformer optimizer") == optimized
        )

    cpu = platform.processor() or platform.machine()
    print(
        f"deploy: student L{shape[0]}-H{shape[1]}-A{shape[2]}-I{shape[3]} ({args.steps} distillation steps) and the teacher; "
        f"torch {torch.__version__}, onnxruntime {onnxruntime.__version__}, transformers {transformers.__version__}, {cpu}, "
        f"{args.threads} thread(s), 64 tokens, median of {args.rounds} interleaved rounds"
    )
    head = (
        f"{'model':<8} {'mode':<10} {'runtime':<12} {'prec':<5} {'test acc':>8} {'pts':>6} {'b1 ms':>8} {'b32 ms':>8} "
        f"{'vs fp32 shape b1/b32':>21} {'vs teacher eager b1/b32':>24} {'vs teacher same b1/b32':>23}  form"
    )
    print(head)
    print("-" * len(head))
    rows = []
    for f in forms:
        s = same(f)
        ratios = {
            "vs_shape_fp32_torch": [ms(base, b) / ms(f, b) for b in BATCH_SIZES],
            "vs_teacher_torch": [ms(teacher, b) / ms(f, b) for b in BATCH_SIZES],
            "vs_teacher_same_runtime": [ms(s, b) / ms(f, b) for b in BATCH_SIZES],
        }
        points = 100 * (f.test_accuracy - teacher.test_accuracy)
        print(
            f"{f.model:<8} {f.mode:<10} {f.runtime:<12} {f.precision:<5} {f.test_accuracy:>8.4f} {points:>+6.2f} "
            f"{ms(f, 1):>8.2f} {ms(f, 32):>8.1f} "
            + "".join(f"{'/'.join(f'{v:.2f}x' for v in ratios[k]):>{w}} " for k, w in zip(ratios, (21, 24, 23), strict=True))
            + f" {f.how}"
        )
        rows.append(
            {
                "model": f.model,
                "mode": f.mode,
                "runtime": f.runtime,
                "precision": f.precision,
                "how": f.how,
                "test_accuracy": f.test_accuracy,
                "points_vs_teacher": points,
                "ms": {str(b): f.ms[b] for b in BATCH_SIZES},
                "median_ms": {str(b): ms(f, b) for b in BATCH_SIZES},
                **ratios,
            }
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        meta: dict[str, Any] = {
            "shape": list(shape),
            "steps": args.steps,
            "threads": args.threads,
            "rounds": args.rounds,
            "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__,
            "machine": cpu,
            "rows": rows,
        }
        args.json.write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    main()
