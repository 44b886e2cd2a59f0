"""The latency table of a space: every candidate's batch-1 latency, measured with random weights before any training.

Torch layer. Latency depends on the shape and the quantization mode, not on the weights' values,
so a candidate is built from the teacher's config alone (no fine-tuned teacher needed) and timed
on the device and with the threads its trials would use. A forward pass costs milliseconds, so a
whole space is priced in seconds to minutes (docs/guides/budgets.md). The table is stored with the
study (`bortnas.search.study`) and never measured twice for it.
"""

from __future__ import annotations

import logging
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from bortnas.core.budget import LatencyTable
from bortnas.core.space import ArchSpec
from bortnas.model.extract import student_config
from bortnas.quant import quantize_
from bortnas.runtime.device import CPU, Device
from bortnas.trial.deployed import measure_backend_latency

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

    from bortnas.core.space import SearchSpace
    from bortnas.trial.inputs import Inputs

_logger = logging.getLogger(__name__)

TABLE_REPEATS = 10  # per candidate, after TABLE_WARMUP passes: the median of 10 is stable to a few percent on a quiet CPU
TABLE_WARMUP = 3
RETIME_ROUNDS = 3  # an export's re-timing: few candidates, so rounds side by side with the teacher are cheap


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
    maximum_point: ArchSpec | None,
    teacher: ArchSpec,
    num_labels: int,
    seq_len: int,
    threads: int = 1,
    device: Device = CPU,
    repeats: int = TABLE_REPEATS,
    rounds: int = 1,
    on_candidate: Callable[[int, int], None] | None = None,
    backend: str = "torch",
) -> LatencyTable:
    """Time every candidate (and T and the teacher's shape) at batch 1 and `seq_len` tokens.

    The maximum point T need not be a valid candidate (its hidden size may not split into its
    heads; None: no T), then the largest measured latency stands in for it, so every candidate
    keeps 1 - latency / latency(T) >= 0. With `rounds` > 1 every model is built once and timed
    round after round in turn, the teacher among them, and each keeps the median of its rounds:
    load that comes and goes then weighs on all of them alike, so ratios to the teacher hold
    (the export's re-timing, `retime`). `on_candidate(done, total)` reports
    progress over the candidates' measurements. `backend`: where to time
    (`bortnas.runtime.latency.measure_backend_latency`); onnxruntime exports every model first,
    seconds per candidate.
    """
    began = time.perf_counter()
    torch.manual_seed(0)
    unique = list(dict.fromkeys(candidates))
    extra = [teacher] + ([maximum_point] if maximum_point is not None and maximum_point.is_valid else [])
    specs = unique + [s for s in extra if s not in unique]
    models = {s: random_model(teacher_config, s, num_labels, device) for s in specs} if rounds > 1 else None
    times: dict[ArchSpec, list[float]] = {s: [] for s in specs}
    for r in range(rounds):
        for k, spec in enumerate(specs):
            model = models[spec] if models is not None else random_model(teacher_config, spec, num_labels, device)
            latency = measure_backend_latency(model, seq_len, backend, repeats=repeats, warmup=TABLE_WARMUP, threads=threads, device=device)
            times[spec].append(latency.median_ms)
            if on_candidate is not None and k < len(unique):
                on_candidate(r * len(unique) + k + 1, rounds * len(unique))
    ms = {s: statistics.median(t) for s, t in times.items()}
    top = ms[maximum_point] if maximum_point is not None and maximum_point.is_valid else max(ms[s] for s in unique)
    seconds = time.perf_counter() - began
    _logger.info(
        "latency table: %d candidates measured on %s (%s) in %.1f s (teacher %.2f ms)",
        len(unique),
        device.describe(),
        backend,
        seconds,
        ms[teacher],
    )
    return LatencyTable(
        ms={s.key: ms[s] for s in unique},
        maximum_point_ms=max(top, *(ms[s] for s in unique)),
        teacher_ms=ms[teacher],
        device=device.describe(),
        threads=threads,
        seq_len=seq_len,
        repeats=repeats,
        seconds=seconds,
        backend=backend,
    )


def measure_space(
    space: SearchSpace,
    inputs: Inputs,
    device: Device,
    show_progress_bar: bool = False,
    on_candidate: Callable[[int, int], None] | None = None,
) -> LatencyTable:
    """The latency table of every candidate of `space` cut from the command's teacher (random weights,
    batch 1, the settings' sequence length and threads, on `device`), with progress."""
    from bortnas.core.progress import progress_bar

    settings = inputs.settings
    candidates = list(space.candidates())
    bar = progress_bar(len(candidates), "latency table", show_progress_bar, leave=False, unit="candidates")

    def step(done: int, total: int) -> None:
        bar.update(1)
        if on_candidate is not None:
            on_candidate(done, total)

    try:
        return measure_table(
            inputs.config,
            candidates,
            space.maximum_point,
            inputs.shape.as_spec(),
            inputs.shape.num_labels,
            settings.max_length,
            threads=settings.latency_threads,
            device=device,
            on_candidate=step,
            backend=settings.latency_backend,
        )
    finally:
        bar.close()


def retime(specs: Sequence[ArchSpec], inputs: Inputs, device: Device) -> LatencyTable:
    """`specs` and the teacher's shape timed again side by side (random weights, batch 1, the
    settings' sequence length and threads, interleaved rounds): what an export's latency budget is
    applied to (`bortnas.search.selection.retimed`)."""
    settings = inputs.settings
    _logger.info("timing %d candidate(s) and the teacher again, side by side, for the latency budget", len(specs))
    return measure_table(
        inputs.config,
        specs,
        None,
        inputs.shape.as_spec(),
        inputs.shape.num_labels,
        settings.max_length,
        settings.latency_threads,
        device,
        rounds=RETIME_ROUNDS,
        backend=settings.latency_backend,
    )
