"""Quantized candidates through the real CLI: search a mixed space, export packed weights, reload."""

from __future__ import annotations

import json
from pathlib import Path

import optuna
import pytest
import torch
from conftest import bortnas, reload_exported, search_args

from bortnas.export.writer import ONNX_QUANT_RTOL
from bortnas.quant.pack import load

pytestmark = pytest.mark.integration


def test_mixed_precision_search_export_and_load(tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    space = tmp_path / "q.yaml"
    space.write_text("name: q\nlayers: [1]\nhidden: [32]\nheads: [4]\nffn: [64]\nquant: [fp32, int8, bitnet158, bit_w1a1, bibert]\n")
    bortnas(*search_args(tiny_bert, tiny_task, space, "--strategy", "grid", "--n-trials", "5"), cwd=tmp_path)
    trials = optuna.load_study(study_name="q", storage=f"sqlite:///{tmp_path / 'bortnas.db'}").get_trials()
    by_mode = {t.user_attrs["candidate"]["quant"]: t for t in trials}
    assert set(by_mode) == {"fp32", "int8", "bitnet158", "bit_w1a1", "bibert"}
    assert [m for m, t in sorted(by_mode.items()) if t.user_attrs["latency_simulated"]] == ["bibert", "bit_w1a1"]
    table = bortnas("trials", "--study", "q", cwd=tmp_path).stdout
    assert sum(" sim " in line for line in table.splitlines()) == 2  # the two binary rows, in both latency columns
    refused = bortnas("trials", "--study", "q", "--max-latency-ms", "100", cwd=tmp_path, check=False)
    assert (
        refused.returncode == 2
        and refused.stderr.count("\n") == 1
        and "holds bibert, bit_w1a1, which no low-bit kernel runs" in refused.stderr
    )
    fp, w1a1 = by_mode["fp32"].user_attrs, by_mode["bit_w1a1"].user_attrs
    # the same shape: equal parameter counts, far fewer bits and FLOP-equivalents for the binarized one
    assert fp["params_non_embedding"] == w1a1["params_non_embedding"]
    assert w1a1["size_bits_non_embedding"] < fp["size_bits_non_embedding"] / 3 and w1a1["flops"] < fp["flops"] / 3

    trial = by_mode["bit_w1a1"].number
    out = json.loads(
        bortnas(
            "export", "--study", "q", "--trial", str(trial), "--out", "w1a1", "--steps", "12", "--format", "json", "-q", cwd=tmp_path
        ).stdout
    )
    directory = tmp_path / "w1a1"
    meta = json.loads((directory / "bortnas.json").read_text())
    assert meta["candidate"]["quant"] == "bit_w1a1" and meta["training"]["bit_chain"] == "bit_w1a4,bit_w1a2,bit_w1a1"
    assert out["model"]["size_mib"] < out["teacher"]["size_mib"] / 3

    reloaded = reload_exported(directory, tiny_task, stock=False)  # bortnas.load in a fresh process
    assert reloaded["acc"] == pytest.approx(meta["metrics"]["dev_score"])


def test_bad_bit_chain_exits_2(tmp_path: Path, tiny_bert: Path, tiny_task: Path, tiny_space: Path) -> None:
    proc = bortnas(*search_args(tiny_bert, tiny_task, tiny_space, "--bit-chain", "bit_w1a3"), cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "--bit-chain='bit_w1a3' has an unknown mode" in proc.stderr
    assert not (tmp_path / "bortnas.db").exists()


@pytest.mark.slow  # four ONNX exports and their timing: about 95 s (tests/unit/test_onnx_runtime.py checks the graphs in the default suite)
def test_onnx_export_of_a_ternary_model_runs_in_onnxruntime(tmp_path: Path, tiny_bert: Path, tiny_task: Path) -> None:
    ort = pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    space = tmp_path / "t.yaml"
    space.write_text("name: t\nlayers: [1]\nhidden: [32]\nheads: [4]\nffn: [64]\nquant: [bitnet158, bit_w1a2]\n")
    refused = bortnas(*search_args(tiny_bert, tiny_task, space, "--cost", "latency"), cwd=tmp_path, check=False)
    assert refused.returncode == 2 and "cost='latency' compare measured latencies" in refused.stderr
    assert not (tmp_path / "bortnas.db").exists()
    bortnas(*search_args(tiny_bert, tiny_task, space, "--strategy", "grid", "--n-trials", "2"), cwd=tmp_path)
    by_mode = {
        t.user_attrs["candidate"]["quant"]: t.number
        for t in optuna.load_study(study_name="t", storage=f"sqlite:///{tmp_path / 'bortnas.db'}").trials
    }
    binary = bortnas("export", "--study", "t", "--trial", str(by_mode["bit_w1a2"]), "--out", "b", "--onnx", cwd=tmp_path, check=False)
    assert binary.returncode == 2 and "no onnxruntime kernel runs" in binary.stderr and not (tmp_path / "b").exists()

    args = ("export", "--study", "t", "--trial", str(by_mode["bitnet158"]), "--out", "m", "--steps", "8", "--onnx", "-q")
    out = json.loads(bortnas(*args, "--format", "json", cwd=tmp_path).stdout)
    directory = tmp_path / "m"
    record = json.loads((directory / "bortnas.json").read_text())["onnxruntime"]
    assert record == out["onnxruntime"] and record["teacher"]["model.onnx"]["latency_ms_b1"] > 0
    for graph in ("model.onnx", "model.int8.onnx"):
        assert (directory / graph).is_file() and 0 <= record[graph]["test_score"] <= 1 and record[graph]["latency_ms_b32"] > 0

    # the graphs, in a fresh onnxruntime session, against the PyTorch model bortnas.load gives back
    model = load(directory)
    ids = torch.randint(5, model.config.vocab_size, (3, 11), generator=torch.Generator().manual_seed(0))
    mask = torch.ones_like(ids)
    mask[1, 7:] = 0
    with torch.inference_mode():
        expected = model(input_ids=ids, attention_mask=mask).logits.numpy()
    feeds = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "token_type_ids": torch.zeros_like(ids).numpy()}
    faithful = ort.InferenceSession(str(directory / "model.onnx"), providers=["CPUExecutionProvider"])
    logits = faithful.run(["logits"], {i.name: feeds[i.name] for i in faithful.get_inputs()})[0]
    # the faithful graph is the simulation, up to activation codes that float rounding moves by one step
    assert abs(logits - expected).max() <= ONNX_QUANT_RTOL * max(1.0, abs(expected).max())
    assert (logits.argmax(-1) == expected.argmax(-1)).all()
    integer = ort.InferenceSession(str(directory / "model.int8.onnx"), providers=["CPUExecutionProvider"])
    assert any(
        node.op_type in ("MatMulInteger", "DynamicQuantizeMatMul") for node in onnx.load(str(directory / "model.int8.onnx")).graph.node
    )
    logits8 = integer.run(["logits"], {i.name: feeds[i.name] for i in integer.get_inputs()})[0]
    # per-tensor activations in onnxruntime against per-token ones in the model: close, not equal
    assert abs(logits8 - expected).max() < 0.1 * max(1.0, abs(expected).max())
