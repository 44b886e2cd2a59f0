"""ONNX export and onnxruntime inference: where CPU users deploy a model.

Torch layer; onnx, onnxscript and onnxruntime are an optional extra (`pip install 'bortnas[onnx]'`)
and their absence is one line (`require_onnxruntime`). Two graphs per model:

- `model.onnx`, the faithful graph: the model as bortnas runs it, quantizers included as float
  operations (absmax, round, rescale), so its logits match PyTorch's to float rounding.
- `model.int8.onnx`, the deployable integer graph, for every mode with an int8 kernel and for
  fp32: the quantized linears become plain linears holding their quantized weights, and
  onnxruntime's own dynamic quantization (`quantize_dynamic`, per output channel int8 weights,
  per-tensor uint8 activations) turns every one into an integer product. For int8 and ternary
  weights the per-channel absmax recovers exactly the model's codes (a ternary row's absmax is its
  scale), so only the activation scheme differs from the simulation: per tensor here, per token
  there; the export measures the test accuracy that costs. For fp32 it is post-training int8.

Why onnxruntime's quantizer: it is maintained (torch.ao's `quantize_dynamic` is deprecated in
torch 2.13), it runs on integer kernels (MLAS) in the runtime CPU users ship with, and on the
MiniLM teacher it was the fastest path measured: 1.8x its fp32 graph and 2.2x fp32 PyTorch eager
at batch 1 (docs/guides/export.md, "ONNX Runtime").
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

import numpy as np
import torch

from bortnas.core.errors import MissingDependencyError
from bortnas.runtime.latency import Latency, wall_clock_ms

if TYPE_CHECKING:
    from collections.abc import Iterable

    from transformers import PreTrainedModel

__all__ = [
    "OnnxModel",
    "export_onnx",
    "export_int8_onnx",
    "measure_onnx_latency",
    "onnx_logits",
    "require_onnxruntime",
]

OPSET = 18
_INSTALL = "pip install 'bortnas[onnx]'"


def require_onnxruntime(what: str = "this") -> ModuleType:
    """onnxruntime, or one clear line naming the extra.

    Raises:
        MissingDependencyError: onnxruntime, onnx or onnxscript is not installed.
    """
    try:
        import onnx  # noqa: F401  (the exporter needs both)
        import onnxruntime
        import onnxscript  # noqa: F401
    except ImportError as e:
        raise MissingDependencyError(f"{what} needs onnxruntime, onnx and onnxscript ({e}): {_INSTALL}.") from e
    return onnxruntime


def input_names(model: PreTrainedModel) -> list[str]:
    """The graph's inputs: ids and mask, and token types where the family's forward takes them (pair tasks need them)."""
    from bortnas.families import family_of

    return ["input_ids", "attention_mask"] + (["token_type_ids"] if family_of(model.config).token_types else [])


def _example(model: PreTrainedModel, seq_len: int, batch_size: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, model.config.vocab_size, (batch_size, seq_len), generator=generator)
    example = {"input_ids": ids, "attention_mask": torch.ones_like(ids), "token_type_ids": torch.zeros_like(ids)}
    return {name: example[name] for name in input_names(model)}


def _feeds(batch: dict[str, torch.Tensor], names: list[str]) -> dict[str, np.ndarray]:
    ids = batch["input_ids"]
    return {n: (batch[n] if n in batch else torch.zeros_like(ids)).cpu().numpy().astype(np.int64) for n in names}


def output_name(model: PreTrainedModel) -> str:
    """The graph's output: a task head's `logits`, or a bare encoder's `last_hidden_state` (an
    embedding model, pooled by its user as sentence-transformers' ONNX backend pools it)."""
    return "logits" if type(model).__name__.endswith(("ForSequenceClassification", "ForTokenClassification")) else "last_hidden_state"


def export_onnx(model: PreTrainedModel, path: Path, seq_len: int) -> Path:
    """Write `model` (on the CPU) as an ONNX graph with dynamic batch and sequence axes; inputs
    `input_names(model)`, output `output_name(model)`. Returns `path`.

    The weights are embedded (one self-contained file: small models are the point).
    """
    require_onnxruntime("ONNX export")
    from torch.export import Dim

    model = model.eval()
    batch, seq = Dim("batch", min=1, max=4096), Dim("seq", min=2, max=max(seq_len, model.config.max_position_embeddings))
    names = input_names(model)
    exporter_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = exporter_log.level
    exporter_log.setLevel(logging.ERROR)  # "torchvision is not installed": its operators are not ours
    try:
        with torch.no_grad(), warnings.catch_warnings():
            # the exporter's own notes: the inputs share their axes on purpose, and a pytree deprecation inside torch
            warnings.filterwarnings("ignore", message=r".*axis name.*|.*LeafSpec.*")
            program = torch.onnx.export(
                model,
                (),
                kwargs=_example(model, seq_len),
                input_names=names,
                output_names=[output_name(model)],
                dynamic_shapes={name: {0: batch, 1: seq} for name in names},
                opset_version=OPSET,
                dynamo=True,
                optimize=True,
                external_data=False,
                verbose=False,
            )
    finally:
        exporter_log.setLevel(level)
    assert program is not None
    program.save(str(path), external_data=False)
    return path


def export_int8_onnx(plain: PreTrainedModel, path: Path, seq_len: int) -> Path:
    """Write the deployable integer graph of `plain` (module docstring) to `path`: export, then
    onnxruntime's dynamic int8 quantization. Returns `path`.

    `plain` holds plain linears: an fp32 model, or a quantized one after
    `bortnas.quant.modules.dequantize_` (its quantized weights in plain linears).
    """
    require_onnxruntime("ONNX int8 export")
    from onnxruntime.quantization import QuantType, quantize_dynamic

    float_path = path.with_name(path.stem + ".float.onnx")
    try:
        export_onnx(plain, float_path, seq_len)
        quantize_dynamic(str(float_path), str(path), per_channel=True, weight_type=QuantType.QInt8)
    finally:
        float_path.unlink(missing_ok=True)
    return path


class OnnxModel:
    """A graph written by this module, in an onnxruntime CPU session with `threads` intra-op threads."""

    def __init__(self, path: Path, threads: int = 1) -> None:
        ort = require_onnxruntime("onnxruntime inference")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.output = self.session.get_outputs()[0].name  # `output_name` of the model it was exported from

    def logits(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The graph's output (logits, or an encoder's last hidden state) for a batch as
        `EncodedSplit.batch` makes it (missing token types are zeros)."""
        return torch.from_numpy(self.session.run([self.output], _feeds(batch, self.inputs))[0])

    def accuracy(self, batches: Iterable[dict[str, torch.Tensor]]) -> float:
        """Accuracy over labelled batches (e.g. `EncodedSplit.batches`)."""
        correct = total = 0
        for b in batches:
            correct += int((self.logits(b).argmax(-1) == b["labels"]).sum())
            total += len(b["labels"])
        return correct / total


def onnx_logits(path: Path, batches: list[dict[str, torch.Tensor]], threads: int = 1) -> list[torch.Tensor]:
    """Logits of the graph at `path` on each batch."""
    model = OnnxModel(path, threads)
    return [model.logits(b) for b in batches]


def measure_onnx_latency(
    path: Path, vocab_size: int, seq_len: int, batch_size: int = 1, repeats: int = 30, warmup: int = 5, threads: int = 1
) -> Latency:
    """Latency of the graph at `path` under onnxruntime on the CPU, timed as `measure_latency` times
    PyTorch (same random ids, wall clock, median after warm-up), with `threads` intra-op threads."""
    model = OnnxModel(path, threads)
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(5, vocab_size, (batch_size, seq_len), generator=generator)
    feeds = _feeds({"input_ids": ids, "attention_mask": torch.ones_like(ids)}, model.inputs)
    times = wall_clock_ms(lambda: model.session.run([model.output], feeds), warmup, repeats)
    return Latency.of(times, batch_size, seq_len, threads, "cpu (onnxruntime)")
