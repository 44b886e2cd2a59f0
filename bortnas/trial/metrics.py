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
from bortnas.train.loop import evaluate
from bortnas.trial.context import Context
from bortnas.trial.deployed import measure_backend_latency

if TYPE_CHECKING:
    from transformers import PreTrainedModel

TRIAL_LATENCY_REPEATS = 30
EXPORT_LATENCY_REPEATS = 50


@dataclasses.dataclass(frozen=True)
class ModelMetrics:
    """A model's measured and analytic figures; `test_accuracy` only where the test split was read."""

    dev_accuracy: float
    test_accuracy: float | None
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

    @property
    def error(self) -> float:
        return 1.0 - self.dev_accuracy

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
    dev = evaluate(model, ctx.dev, device=ctx.device).accuracy
    params = param_count(spec, ctx.shape)
    cost = price(spec, ctx.shape, seq_len)
    latency = measure_backend_latency(
        model, seq_len, ctx.settings.latency_backend, repeats=latency_repeats, threads=ctx.settings.latency_threads, device=ctx.device
    )
    return ModelMetrics(
        dev_accuracy=dev,
        test_accuracy=evaluate(model, ctx.test, device=ctx.device).accuracy if test else None,
        params_total=params.total,
        params_non_embedding=params.non_embedding,
        size_bits_non_embedding=cost.p,
        size_mib=size_bits(spec, ctx.shape).mib,
        flops=cost.i,
        latency_ms=latency.median_ms,
        latency_device=latency.device,
        latency_simulated=spec.quant.config.simulated,
        latency_backend=ctx.settings.latency_backend,
    )
