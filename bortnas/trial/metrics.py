"""What a model is worth: accuracy, sizes, FLOPs and latency, measured one way for trials and exports.

Torch layer. `measure` is the one function that scoring and export call, so a trial's stored
numbers and an exported model's `bortnas.json` are computed identically.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from bortnas.core.space import ArchSpec
from bortnas.cost import param_count
from bortnas.cost.bits import price, size_bits
from bortnas.data.encode import EncodedSplit
from bortnas.train.loop import evaluate
from bortnas.trial.context import Context
from bortnas.trial.deployed import measure_backend_latency

if TYPE_CHECKING:
    from transformers import PreTrainedModel

TRIAL_LATENCY_REPEATS = 30
EXPORT_LATENCY_REPEATS = 50


@dataclasses.dataclass(frozen=True)
class ModelMetrics:
    """A model's measured and analytic figures; test metrics only where the test split was read.

    `dev_score` / `test_score` are the task's headline metric (`metric`: accuracy, Pearson, micro
    F1, entity F1, ...); `dev_metrics` / `test_metrics` hold every metric of the task.
    """

    dev_score: float
    test_score: float | None
    params_total: int
    params_non_embedding: int
    size_bits_non_embedding: float  # W's p: stored bits without the embedding tables
    size_mib: float  # everything, as stored (docs/guides/quantization.md)
    flops: float  # W's i: FLOP-equivalents (binary operations at 1/64); FLOPs for fp32
    latency_ms: float
    latency_device: str  # the hardware that measured latency_ms (`Device.describe()`): only same-device latencies compare
    # True for a mode with no low-bit kernel (`QuantConfig.simulated`): latency_ms times the fp32
    # simulation of its arithmetic, not anything deployable, so budgets and W's latency cost refuse it
    latency_simulated: bool = False
    latency_backend: str = "torch"  # "torch" (eager) or "onnxruntime" (the mode's deployable graph)
    metric: str = "accuracy"
    dev_metrics: dict[str, float] = dataclasses.field(default_factory=dict)
    test_metrics: dict[str, float] | None = None

    @property
    def error(self) -> float:
        """W's error e (`bortnas.core.tasks.Task.error`): 1 - the headline score, clamped to [0, 1]."""
        return 1.0 - min(1.0, max(0.0, self.dev_score))

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def measure(
    model: PreTrainedModel, spec: ArchSpec, ctx: Context, test: bool = False, latency_repeats: int = TRIAL_LATENCY_REPEATS
) -> ModelMetrics:
    """The metrics of `model` (of shape `spec`, on the context's device, measured there).

    Dev accuracy always; test accuracy only with `test` (exports: trials never read the test split).

    Raises:
        TrialFailed: evaluation was not finite.
    """
    seq_len = ctx.settings.max_length
    dev = score_metrics(model, ctx, ctx.dev)
    test_metrics = score_metrics(model, ctx, ctx.test) if test else None
    params = param_count(spec, ctx.shape)
    cost = price(spec, ctx.shape, seq_len)
    latency = measure_backend_latency(
        model, seq_len, ctx.settings.latency_backend, repeats=latency_repeats, threads=ctx.settings.latency_threads, device=ctx.device
    )
    metric = ctx.task.metric
    return ModelMetrics(
        dev_score=dev[metric],
        test_score=test_metrics[metric] if test_metrics is not None else None,
        params_total=params.total,
        params_non_embedding=params.non_embedding,
        size_bits_non_embedding=cost.p,
        size_mib=size_bits(spec, ctx.shape).mib,
        flops=cost.i,
        latency_ms=latency.median_ms,
        latency_device=latency.device,
        latency_simulated=spec.quant.config.simulated,
        latency_backend=ctx.settings.latency_backend,
        metric=metric,
        dev_metrics=dev,
        test_metrics=test_metrics,
    )


def score_metrics(model: PreTrainedModel, ctx: Context, split: EncodedSplit) -> dict[str, float]:
    """Every metric of the context's task for `model` on `split` (one of the context's splits)."""
    return evaluate(model, split, device=ctx.device, objective=ctx.objective).metrics
