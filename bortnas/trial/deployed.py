"""Latency where a model will run: PyTorch eager, or onnxruntime on the graph its mode deploys.

Torch layer. `measure` (trials, exports) and the latency table time through
`measure_backend_latency`, so `--latency-backend` changes every latency a study records at once.
Under onnxruntime a model of a mode with an int8 kernel (int8, bitnet158) is timed as its integer
graph, any other as its faithful graph (`bortnas.runtime.onnx`): fp32 runs in fp32, and a mode
with no low-bit kernel stays a simulation there too, flagged as such by its metrics.
"""

from __future__ import annotations

import copy
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from bortnas.modes import get_config
from bortnas.quant.modules import dequantize_
from bortnas.runtime.device import CPU, Device
from bortnas.runtime.latency import Latency, measure_latency
from bortnas.runtime.onnx import export_int8_onnx, export_onnx, measure_onnx_latency

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def write_deployable_onnx(model: PreTrainedModel, path: Path, seq_len: int) -> Path:
    """The onnxruntime graph `model`'s mode deploys, written to `path`: the integer graph for a mode
    with an int8 kernel, the faithful graph otherwise. `model` is left as it was."""
    if get_config(getattr(model.config, "bortnas_quant", "fp32")).kernel == "int8":
        return export_int8_onnx(dequantize_(copy.deepcopy(model).cpu()), path, seq_len)
    return export_onnx(model, path, seq_len)


def measure_backend_latency(
    model: PreTrainedModel,
    seq_len: int,
    backend: str = "torch",
    batch_size: int = 1,
    repeats: int = 30,
    warmup: int = 5,
    threads: int = 1,
    device: Device = CPU,
) -> Latency:
    """Latency of `model` under `backend`: "torch" (`measure_latency`, on `device`) or "onnxruntime"
    (the deployable graph, exported to a temporary file, on the CPU)."""
    if backend == "torch":
        return measure_latency(model, seq_len, batch_size, repeats, warmup, threads, device)
    if backend != "onnxruntime":
        raise ValueError(f"unknown latency backend {backend!r}")
    assert not device.is_cuda, "onnxruntime latency is CPU latency (checked where the settings are read)"
    training = model.training
    with tempfile.TemporaryDirectory(prefix="bortnas-onnx-") as tmp:
        path = write_deployable_onnx(model.cpu(), Path(tmp) / "model.onnx", seq_len)
        model.train(training)
        return measure_onnx_latency(path, model.config.vocab_size, seq_len, batch_size, repeats, warmup, threads)
