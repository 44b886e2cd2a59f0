"""score_candidate on a tiny task context: the trial attributes, and which device measured the latency."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import tiny_settings

from bortnas.core.space import ArchSpec, QuantMode
from bortnas.runtime.device import Device
from bortnas.trial.context import build_context
from bortnas.trial.scoring import Reference, score_candidate


def _score(tmp_path: Path, tiny_bert: Path, tiny_task: Path, device: Device, quant: str) -> dict[str, Any]:
    settings = tiny_settings(tiny_bert, tiny_task, teacher_steps=5, trial_steps=3, max_length=16, batch_size=16)
    ctx = build_context(settings, cache_dir=tmp_path / "cache", device=device)
    assert {p.device for p in ctx.teacher.model.parameters()} == {device.torch_device}
    spec = ArchSpec(2, 16, 2, 32, QuantMode(quant))
    reference = Reference.of(ArchSpec(2, 32, 4, 64), ctx.shape, settings.max_length)
    return score_candidate(ctx, spec, reference, steps=3, seed=0).attrs()


@pytest.mark.parametrize("quant", ["fp32", "bit_w1a1"])
def test_a_cpu_trial_records_that_the_cpu_measured_its_latency(tmp_path: Path, tiny_bert: Path, tiny_task: Path, quant: str) -> None:
    attrs = _score(tmp_path, tiny_bert, tiny_task, Device.from_name("cpu"), quant)
    assert attrs["latency_device"] == "cpu" and attrs["latency_ms"] > 0
    assert attrs["key"] == f"L2-H16-A2-I32-{quant}" and 0.0 <= attrs["error"] <= 1.0


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_cuda_trial_trains_and_measures_on_the_gpu(tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    device = Device.from_name("cuda")
    attrs = _score(tmp_path, tiny_bert, tiny_task, device, "bit_w1a1")
    assert attrs["latency_device"] == device.describe() and attrs["latency_ms"] > 0
