"""Measured inference latency: median wall time of repeated forward passes after warm-up.

Torch layer. Threads are pinned for the measurement (and restored after) so numbers from
different trials and machines are comparable.
"""

from __future__ import annotations

import contextlib
import dataclasses
import statistics
import time
from typing import Iterator

import torch
from torch import nn


@dataclasses.dataclass(frozen=True)
class Latency:
    median_ms: float
    p10_ms: float
    p90_ms: float
    repeats: int
    batch_size: int
    seq_len: int
    threads: int
    device: str

    def to_dict(self) -> dict[str, object]:
        return dataclasses.asdict(self)


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
    model: nn.Module,
    seq_len: int,
    batch_size: int = 1,
    repeats: int = 30,
    warmup: int = 5,
    threads: int = 1,
) -> Latency:
    """Latency of `model` on random token ids of shape (batch_size, seq_len) on the CPU."""
    model.eval()
    vocab = model.config.vocab_size  # type: ignore[union-attr]
    generator = torch.Generator().manual_seed(0)
    inputs = {
        "input_ids": torch.randint(5, vocab, (batch_size, seq_len), generator=generator),
        "attention_mask": torch.ones(batch_size, seq_len, dtype=torch.long),
    }
    times = []
    with pinned_threads(threads):
        for k in range(warmup + repeats):
            start = time.perf_counter()
            model(**inputs)
            if k >= warmup:
                times.append((time.perf_counter() - start) * 1000.0)
    deciles = statistics.quantiles(times, n=10)
    return Latency(
        median_ms=statistics.median(times),
        p10_ms=deciles[0],
        p90_ms=deciles[-1],
        repeats=repeats,
        batch_size=batch_size,
        seq_len=seq_len,
        threads=threads,
        device="cpu",
    )
