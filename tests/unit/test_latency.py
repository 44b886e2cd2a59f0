"""measure_latency: the shape it measures, the device it records, CUDA-event timing on a GPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

from bortnas.runtime.device import Device
from bortnas.runtime.latency import measure_latency


def tiny() -> nn.Module:
    torch.manual_seed(0)
    return BertForSequenceClassification(
        BertConfig(
            vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32, max_position_embeddings=32
        )
    ).eval()


def test_cpu_latency_records_the_cpu_and_the_shape() -> None:
    threads = torch.get_num_threads()
    latency = measure_latency(tiny(), seq_len=12, batch_size=3, repeats=10, warmup=2)
    assert (latency.device, latency.batch_size, latency.seq_len, latency.repeats, latency.threads) == ("cpu", 3, 12, 10, 1)
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms
    assert torch.get_num_threads() == threads


def test_an_explicit_cpu_device_is_the_default() -> None:
    assert measure_latency(tiny(), seq_len=8, repeats=4, warmup=1, device=Device.from_name("cpu")).device == "cpu"


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_latency_is_timed_with_events_and_names_the_gpu() -> None:
    device = Device.from_name("cuda")
    model = tiny().to(device.torch_device)
    latency = measure_latency(model, seq_len=64, batch_size=32, repeats=20, warmup=5, device=device)
    assert latency.device == device.describe() and torch.cuda.get_device_name(0) in latency.device
    assert (latency.batch_size, latency.seq_len) == (32, 64)
    assert 0 < latency.p10_ms <= latency.median_ms <= latency.p90_ms < 1000
