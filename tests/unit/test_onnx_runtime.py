"""ONNX graphs in onnxruntime: the faithful fp32 graph against PyTorch, the integer graph of a
ternary model, and latency timed under onnxruntime (`--latency-backend onnxruntime`)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from transformers import BertConfig, BertForSequenceClassification

from bortnas.core.errors import MissingDependencyError
from bortnas.core.space import QuantMode
from bortnas.export.writer import ONNX_ATOL
from bortnas.quant.modules import quantize_
from bortnas.runtime.onnx import OnnxModel, export_onnx, require_onnxruntime
from bortnas.trial.deployed import measure_backend_latency, write_deployable_onnx


def test_without_onnxruntime_one_line_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # an import of it now fails, as when it is not installed
    with pytest.raises(MissingDependencyError, match=r"^--onnx needs onnxruntime, onnx and onnxscript.*: pip install 'bortnas\[onnx\]'\.$"):
        require_onnxruntime("--onnx")


def tiny() -> BertForSequenceClassification:
    torch.manual_seed(0)
    config = BertConfig(vocab_size=120, hidden_size=32, num_hidden_layers=1, num_attention_heads=4, intermediate_size=64)
    return BertForSequenceClassification(config).eval()


def batch() -> dict[str, torch.Tensor]:
    ids = torch.randint(5, 120, (3, 9), generator=torch.Generator().manual_seed(1))
    mask = torch.ones_like(ids)
    mask[2, 5:] = 0
    types = torch.zeros_like(ids)
    types[0, 4:] = 1  # a pair: token types reach the graph
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "labels": torch.tensor([0, 1, 1])}


def ops(path: Path) -> set[str]:
    onnx = pytest.importorskip("onnx")
    return {node.op_type for node in onnx.load(str(path)).graph.node}


def test_fp32_graph_matches_pytorch_at_other_shapes(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    model = tiny()
    path = export_onnx(model, tmp_path / "model.onnx", seq_len=16)
    b = batch()
    with torch.inference_mode():
        expected = model(**{k: v for k, v in b.items() if k != "labels"}).logits
    graph = OnnxModel(path)
    assert graph.inputs == ["input_ids", "attention_mask", "token_type_ids"]
    torch.testing.assert_close(graph.logits(b), expected, rtol=0, atol=ONNX_ATOL)  # batch 3 x 9 tokens, exported at 2 x 16
    assert graph.accuracy([b]) == pytest.approx(float((expected.argmax(-1) == b["labels"]).float().mean()))
    assert "MatMulInteger" not in ops(path) and "DynamicQuantizeLinear" not in ops(path)


def test_a_ternary_model_deploys_as_an_integer_graph_and_is_timed_there(tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    model = quantize_(tiny(), QuantMode.BITNET158).eval()
    path = write_deployable_onnx(model, tmp_path / "model.onnx", seq_len=16)
    assert {"DynamicQuantizeLinear", "MatMulInteger"} <= ops(path)
    assert isinstance(model.bert.encoder.layer[0].output.dense, torch.nn.Linear) and hasattr(
        model.bert.encoder.layer[0].output.dense, "int8_kernel"
    )
    b = batch()
    with torch.inference_mode():
        expected = model(**{k: v for k, v in b.items() if k != "labels"}).logits
    # per-tensor activations in onnxruntime against per-token ones in the model: close, not equal
    assert (OnnxModel(path).logits(b) - expected).abs().max() < 0.1 * max(1.0, expected.abs().max().item())
    latency = measure_backend_latency(model, 16, "onnxruntime", repeats=5, warmup=1)
    assert latency.device == "cpu (onnxruntime)" and latency.median_ms > 0 and latency.seq_len == 16
    with pytest.raises(ValueError, match="unknown latency backend"):
        measure_backend_latency(model, 16, "tensorrt")
