"""The latency table of a space: every candidate's batch-1 latency, measured with random weights before any training.

Torch layer. Latency depends on the shape and the quantization mode, not on the weights' values,
so a candidate is built from the teacher's config alone (no fine-tuned teacher needed) and timed
on the device and with the threads its trials would use. A forward pass costs milliseconds, so a
whole space is priced in seconds to minutes (README "Budgets"). The table is stored with the
study (`bortnas.search.study`) and never measured twice for it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from bortnas.core.budget import LatencyTable
from bortnas.core.space import ArchSpec
from bortnas.model.extract import student_config
from bortnas.quant import quantize_
from bortnas.runtime.device import CPU, Device
from bortnas.runtime.latency import measure_latency

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

_logger = logging.getLogger(__name__)

TABLE_REPEATS = 10  # per candidate, after TABLE_WARMUP passes: the median of 10 is stable to a few percent on a quiet CPU
TABLE_WARMUP = 3


def random_model(teacher_config: PreTrainedConfig, spec: ArchSpec, num_labels: int, device: Device = CPU) -> PreTrainedModel:
    """A sequence classifier of the teacher's family shaped as `spec` (quantized to its mode), random weights, on `device`."""
    from transformers import AutoModelForSequenceClassification

    config = student_config(teacher_config, spec)
    config.num_labels = num_labels
    model = AutoModelForSequenceClassification.from_config(config)
    quantize_(model, spec.quant)
    return model.to(device.torch_device).eval()


def measure_table(
    teacher_config: PreTrainedConfig,
    candidates: Sequence[ArchSpec],
    maximum_point: ArchSpec,
    teacher: ArchSpec,
    num_labels: int,
    seq_len: int,
    threads: int = 1,
    device: Device = CPU,
    repeats: int = TABLE_REPEATS,
    on_candidate: Callable[[int, int], None] | None = None,
) -> LatencyTable:
    """Time every candidate (and T and the teacher's shape) at batch 1 and `seq_len` tokens.

    The maximum point T need not be a valid candidate (its hidden size may not split into its
    heads); then the largest measured latency stands in for it, so every candidate keeps
    1 - latency / latency(T) >= 0. `on_candidate(done, total)` reports progress.
    """
    began = time.perf_counter()
    torch.manual_seed(0)

    def time_one(spec: ArchSpec) -> float:
        model = random_model(teacher_config, spec, num_labels, device)
        return measure_latency(model, seq_len, repeats=repeats, warmup=TABLE_WARMUP, threads=threads, device=device).median_ms

    ms: dict[str, float] = {}
    unique = list(dict.fromkeys(candidates))
    for k, spec in enumerate(unique):
        ms[spec.key] = time_one(spec)
        if on_candidate is not None:
            on_candidate(k + 1, len(unique))
    top = time_one(maximum_point) if maximum_point.is_valid else max(ms.values())
    teacher_ms = time_one(teacher)
    seconds = time.perf_counter() - began
    _logger.info("latency table: %d candidates measured on %s in %.1f s (teacher %.2f ms)", len(ms), device.describe(), seconds, teacher_ms)
    return LatencyTable(
        ms=ms,
        maximum_point_ms=max(top, *ms.values()),
        teacher_ms=teacher_ms,
        device=device.describe(),
        threads=threads,
        seq_len=seq_len,
        repeats=repeats,
        seconds=seconds,
    )
