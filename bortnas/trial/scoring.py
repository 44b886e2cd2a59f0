"""Scoring one candidate (one trial): extract, quantize, distil n steps, dev error, costs, latency, W.

Torch layer; the trial's numbers come back as a plain frozen record that the search layer stores.
`train_candidate` is the one recipe that scoring and export share.
"""

from __future__ import annotations

import copy
import dataclasses
import time
from typing import Any, Callable, Sequence

import torch
from torch import nn

from bortnas.algo.objective import w_coefficient
from bortnas.trial.context import Context
from bortnas.cost import param_count
from bortnas.cost.bits import price, size_bits
from bortnas.model.extract import Extraction, extract
from bortnas.runtime.latency import measure_latency
from bortnas.quant import quantize_
from bortnas.core.space import ArchSpec, QuantMode, TeacherShape
from bortnas.train.loop import evaluate, train


@dataclasses.dataclass(frozen=True)
class Reference:
    """p (bits) and i (FLOP-equivalents) of the maximum point T, the normalisers of W."""

    params: float
    flops: float

    @classmethod
    def of(cls, spec: ArchSpec, shape: TeacherShape, seq_len: int) -> Reference:
        top = price(spec, shape, seq_len)
        return cls(top.p, top.i)


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    spec: ArchSpec
    params_total: int
    params_non_embedding: int
    size_bits_non_embedding: float  # W's p: stored bits without the embedding tables
    size_mib: float  # everything, as stored (README "Quantization modes")
    flops: float  # W's i: FLOP-equivalents (binary operations at 1/64); FLOPs for fp32
    latency_ms: float
    latency_device: str  # the hardware that measured latency_ms (`Device.describe()`): only same-device latencies compare
    dev_accuracy: float
    error: float
    w: float
    steps: int
    seed: int
    seconds: float

    def attrs(self) -> dict[str, Any]:
        """The trial attributes (JSON values) this score is stored as."""
        out = dataclasses.asdict(self)
        out["candidate"] = self.spec.to_dict()
        out["arch_id"] = self.spec.arch_id
        out["key"] = self.spec.key
        del out["spec"]
        return out


def chain_stages(mode: QuantMode, chain: Sequence[QuantMode], steps: int) -> list[tuple[QuantMode, int]]:
    """The (mode, steps) stages that train a `mode` candidate in `steps` steps in all.

    A mode in `chain` is reached through every mode before it (BiT's multi-step distillation);
    the steps are shared out evenly, the remainder to the last stage; with fewer steps than
    stages the earliest stages are dropped.
    """
    modes = list(chain[: chain.index(mode) + 1]) if mode in chain else [mode]
    modes = modes[-steps:] if steps < len(modes) else modes
    share = steps // len(modes)
    return [(m, share + (steps - share * len(modes) if k == len(modes) - 1 else 0)) for k, m in enumerate(modes)]


def train_candidate(
    ctx: Context,
    spec: ArchSpec,
    steps: int,
    seed: int,
    show_progress_bar: bool = False,
    on_step: Callable[[nn.Module, int, int], None] | None = None,
) -> tuple[nn.Module, Extraction]:
    """Cut `spec` from the task teacher, quantize it, and distil it through its chain.

    The first stage learns from the task teacher; every later stage from the previous stage's
    student, a model of the same shape (so its units map one to one). `on_step(student, step,
    steps)` is called after every step of the last stage (the candidate's own mode). The student
    is trained on, and returned on, the context's device.
    """
    student, extraction = extract(ctx.teacher.model, ctx.teacher.importance, spec, init=ctx.settings.init)
    teacher, mapping = ctx.teacher.model, extraction
    stages = chain_stages(spec.quant, ctx.settings.chain(), steps)
    for k, (mode, n) in enumerate(stages):
        if k:
            teacher = copy.deepcopy(student).eval()
            mapping = Extraction(layers=tuple(range(spec.layers)), hidden=torch.arange(spec.hidden, device=ctx.device.torch_device))
        quantize_(student, mode)
        config = ctx.settings.student_train_config(n, seed, mode)
        last = k == len(stages) - 1
        hook = (lambda step, total=n: on_step(student, step, total)) if on_step is not None and last else None
        train(student, ctx.train, config, teacher=teacher, extraction=mapping, show_progress_bar=show_progress_bar,
              description=f"{spec.key} {mode.value} ({k + 1}/{len(stages)})", on_step=hook, device=ctx.device)
    return student, extraction


def score_candidate(
    ctx: Context,
    spec: ArchSpec,
    reference: Reference,
    steps: int,
    seed: int,
    on_checkpoint: Callable[[int, float, float], None] | None = None,
    checkpoints: int = 1,
) -> CandidateScore:
    """Train `spec` cut from the task teacher for `steps` distillation steps and score it.

    With `on_checkpoint`, the student is also scored on dev at `checkpoints - 1` evenly spaced
    steps before the end, and `on_checkpoint(step, W, error)` is called with W at that point:
    what an early-stopping scheduler (ASHA) compares. It may raise to stop the trial.

    Raises:
        TrialFailed: training diverged or evaluation was not finite.
    """
    started = time.perf_counter()
    seq_len = ctx.settings.max_length
    cost = price(spec, ctx.shape, seq_len)
    hook = None
    if on_checkpoint is not None and checkpoints > 1:

        def hook(student: nn.Module, step: int, total: int) -> None:
            if step < total and step * checkpoints // total != (step - 1) * checkpoints // total:
                error = evaluate(student, ctx.dev, device=ctx.device).error
                student.train()
                on_checkpoint(step, w_coefficient(cost.p, cost.i, error, reference.params, reference.flops), error)

    student, _ = train_candidate(ctx, spec, steps, seed, on_step=hook)
    result = evaluate(student, ctx.dev, device=ctx.device)
    params = param_count(spec, ctx.shape)
    latency = measure_latency(student, seq_len, threads=ctx.settings.latency_threads, device=ctx.device)
    return CandidateScore(
        spec=spec,
        params_total=params.total,
        params_non_embedding=params.non_embedding,
        size_bits_non_embedding=cost.p,
        size_mib=size_bits(spec, ctx.shape).mib,
        flops=cost.i,
        latency_ms=latency.median_ms,
        latency_device=latency.device,
        dev_accuracy=result.accuracy,
        error=result.error,
        w=w_coefficient(cost.p, cost.i, result.error, reference.params, reference.flops),
        steps=steps,
        seed=seed,
        seconds=time.perf_counter() - started,
    )
