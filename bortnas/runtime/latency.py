"""Measured inference latency: median time of repeated forward passes after warm-up, per device.

Torch layer. Threads are pinned for the measurement (and restored after) so numbers from
different trials and machines are comparable; on CUDA the GPU time is read from CUDA events.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import torch

from bortnas.runtime.device import CPU, Device

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclasses.dataclass(frozen=True)
class Latency:
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    batch_size: int
    seq_len: int
    threads: int
    device: str  # the hardware that measured it: `Device.describe()`, e.g. "cpu"

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)

    @classmethod
    def of(cls, times: list[float], batch_size: int, seq_len: int, threads: int, device: str) -> Latency:
        """The median and deciles of `times` (ms per pass)."""
        deciles = statistics.quantiles(times, n=10)
        return cls(statistics.median(times), deciles[0], deciles[-1], len(times), batch_size, seq_len, threads, device)


def wall_clock_ms(run: Callable[[], object], warmup: int, repeats: int) -> list[float]:
    """Milliseconds of each of `repeats` calls of `run`, after `warmup` untimed ones."""
    times = []
    for k in range(warmup + repeats):
        began = time.perf_counter()
        run()
        if k >= warmup:
            times.append((time.perf_counter() - began) * 1000.0)
    return times


@contextlib.contextmanager
def pinned_threads(threads: int) -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@torch.inference_mode()
def measure_latency(
    model: PreTrainedModel,
    seq_len: int,
    batch_size: int = 1,
    repeats: int = 30,
    warmup: int = 5,
    threads: int = 1,
    device: Device = CPU,
) -> Latency:
    """Latency of `model` (already on `device`) on random token ids of shape (batch_size, seq_len).

    On the CPU each pass is timed with the wall clock. On CUDA each pass is timed with CUDA
    events recorded around it on the stream (after warm-up, which also lets the allocator and
    cuBLAS settle), read after one synchronisation at the end: the host's time between passes
    does not count, its kernel launches within a pass do. Passes run under the device's
    autocast, as trials do. `Latency.device` names the hardware.
    """
    model.eval()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    inputs = device.put(
        {
            "input_ids": torch.randint(5, vocab, (batch_size, seq_len), generator=generator),
            "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
        }
    )
    times: list[float] = []
    with pinned_threads(threads), device.autocast():
        if device.is_cuda:
            for _ in range(warmup):
                model(**inputs)
            events = [(torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)) for _ in range(repeats)]
            for start, end in events:
                start.record()
                model(**inputs)
                end.record()
            device.synchronize()
            times = [start.elapsed_time(end) for start, end in events]
        else:
            times = wall_clock_ms(lambda: model(**inputs), warmup, repeats)
    return Latency.of(times, batch_size, seq_len, threads, device.describe())
