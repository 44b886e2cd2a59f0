"""Packed low-bit export: bit layouts by hand, exact round trips, size against the accounting, refusals."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import BertConfig, BertForSequenceClassification

import bortnas
from bortnas.core.errors import ExportError
from bortnas.core.space import ArchSpec, QuantMode, TeacherShape
from bortnas.cost.bits import size_bits
from bortnas.quant.modules import quantize_
from bortnas.quant.pack import pack_binary, pack_int8, pack_ternary, save_quantized, unpack_binary, unpack_int8, unpack_ternary

QUANTIZED = [m for m in QuantMode if m is not QuantMode.FP32]


def test_binary_layout_by_hand() -> None:
    codes = torch.tensor([1, -1, -1, 1, 1, 1, -1, -1, 1], dtype=torch.float32)
    packed = pack_binary(codes)
    assert packed.dtype == torch.uint8 and packed.tolist() == [1 + 8 + 16 + 32, 1]
    assert unpack_binary(packed, torch.Size([9])).tolist() == codes.tolist()


def test_ternary_layout_by_hand() -> None:
    codes = torch.tensor([-1, 0, 1, 1, 0], dtype=torch.float32)
    packed = pack_ternary(codes)  # code + 1 in 2 bits: [0, 1, 2, 2] -> 0 + 1*4 + 2*16 + 2*64; [1, pad 1, 1, 1]
    assert packed.tolist() == [4 + 32 + 128, 1 + 4 + 16 + 64]
    assert unpack_ternary(packed, torch.Size([5])).tolist() == codes.tolist()
    with pytest.raises(ValueError):
        unpack_ternary(torch.tensor([3], dtype=torch.uint8), torch.Size([1]))


def test_int8_layout_by_hand() -> None:
    codes = torch.tensor([-127, -1, 0, 1, 127], dtype=torch.float32)
    packed = pack_int8(codes)  # two's complement bytes
    assert packed.dtype == torch.uint8 and packed.tolist() == [129, 255, 0, 1, 127]
    assert unpack_int8(packed, torch.Size([5])).tolist() == codes.tolist()
    with pytest.raises(ValueError, match="-128"):
        unpack_int8(torch.tensor([128], dtype=torch.uint8), torch.Size([1]))


def test_random_round_trips() -> None:
    g = torch.Generator().manual_seed(0)
    binary = torch.randint(0, 2, (37, 5), generator=g).float() * 2 - 1
    ternary = torch.randint(-1, 2, (13, 7), generator=g).float()
    assert torch.equal(unpack_binary(pack_binary(binary), binary.shape), binary)
    assert torch.equal(unpack_ternary(pack_ternary(ternary), ternary.shape), ternary)
    int8 = torch.randint(-127, 128, (11, 3), generator=g).float()
    assert torch.equal(unpack_int8(pack_int8(int8), int8.shape), int8)


SHAPE = dict(
    vocab_size=4000,
    hidden_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=256,
    max_position_embeddings=64,
    hidden_dropout_prob=0.0,
    attention_probs_dropout_prob=0.0,
)


def export(tmp_path: Path, mode: QuantMode) -> tuple[torch.nn.Module, Path, dict[str, torch.Tensor]]:
    torch.manual_seed(0)
    model = quantize_(BertForSequenceClassification(BertConfig(**SHAPE)), mode)
    inputs = {"input_ids": torch.randint(0, 4000, (2, 9)), "attention_mask": torch.tensor([[1] * 9, [1] * 6 + [0] * 3])}
    model.train()
    model(**inputs)  # BiT's steps are set from the first batch
    model.eval()
    directory = tmp_path / mode.value
    directory.mkdir()
    save_quantized(model, mode, directory)
    (directory / "bortnas.json").write_text(json.dumps({"candidate": {"quant": mode.value}}))
    return model, directory, inputs


@pytest.mark.parametrize("mode", QUANTIZED)
def test_export_reloads_identical_logits_and_matches_the_accounting(tmp_path: Path, mode: QuantMode) -> None:
    model, directory, inputs = export(tmp_path, mode)
    with torch.no_grad():
        before = model(**inputs).logits
        after = bortnas.load(directory)(**inputs).logits
    assert torch.equal(before, after)
    spec = ArchSpec(2, 128, 4, 256, mode)
    shape = TeacherShape(2, 128, 4, 256, vocab_size=4000, max_positions=64, type_vocab_size=2)
    predicted = size_bits(spec, shape).total / 8
    raw = (directory / "model.safetensors").read_bytes()
    header = 8 + struct.unpack("<Q", raw[:8])[0]  # the JSON index: about 100 bytes per tensor
    # ternary weights take 2 bits on disk against log2(3) in the accounting
    assert len(raw) - header == pytest.approx(predicted, rel=0.03)
    assert header < 12_000


def test_mismatched_files_are_refused(tmp_path: Path) -> None:
    _, directory, _ = export(tmp_path, QuantMode.BIT_W1A1)
    meta = directory / "bortnas.json"
    meta.write_text(json.dumps({"candidate": {"quant": "bibert"}}))
    with pytest.raises(ExportError, match="bortnas.json says bibert"):
        bortnas.load(directory)
    meta.write_text(json.dumps({"candidate": {"quant": "bit_w1a1"}}))
    weights = directory / "model.safetensors"
    tensors = load_file(str(weights))
    key = "bert.encoder.layer.0.attention.self.query.weight.packed"
    tensors[key] = tensors[key][:-1].clone()
    save_file(tensors, str(weights), metadata={"format": "bortnas-packed-1", "bortnas_quant": "bit_w1a1"})
    with pytest.raises(ExportError, match=r"query.weight.packed has 2047 .* needs 2048 uint8 bytes"):
        bortnas.load(directory)
    with pytest.raises(ExportError, match="no bortnas.json"):
        bortnas.load(tmp_path)
