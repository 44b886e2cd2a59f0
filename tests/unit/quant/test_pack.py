"""save and load: bit layouts by hand, round trips of every mode, size against the accounting, bortnas.json, refusals."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from conftest import tiny_config
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification, BertConfig, BertForQuestionAnswering, BertForSequenceClassification

import bortnas
from bortnas.core.errors import ExportError
from bortnas.core.space import ArchSpec, QuantMode, TeacherShape
from bortnas.cost.bits import size_bits
from bortnas.quant.modules import quantize_
from bortnas.quant.pack import (
    add_metadata,
    load,
    pack_binary,
    pack_int8,
    pack_ternary,
    save,
    save_quantized,
    unpack_binary,
    unpack_int8,
    unpack_ternary,
)

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
    save(model, directory)
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


ROUND_TRIP_ATOL = 1e-6  # the same weights and the same arithmetic: only float rounding may differ (none does today)


def tiny_classifier(mode: QuantMode) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
    """A random 2-layer hidden-32 BERT classifier (`tiny_config`) in `mode`, run once in training (BiT sets its steps from
    the first batch), in eval mode, with a padded batch."""
    torch.manual_seed(0)
    model = quantize_(BertForSequenceClassification(tiny_config("bert")), mode)  # type: ignore[arg-type]
    inputs = {"input_ids": torch.randint(5, 30, (3, 7)), "attention_mask": torch.tensor([[1] * 7, [1] * 4 + [0] * 3, [1] * 2 + [0] * 5])}
    model.train()
    model(**inputs)
    return model.eval(), inputs


@pytest.mark.parametrize("mode", list(QuantMode))
def test_save_then_load_reproduces_the_logits_of_every_mode(tmp_path: Path, mode: QuantMode) -> None:
    model, inputs = tiny_classifier(mode)
    save(model, tmp_path)
    reloaded = load(tmp_path)
    assert type(reloaded) is BertForSequenceClassification and not reloaded.training
    assert getattr(reloaded.config, "bortnas_quant", "fp32") == mode.value
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).logits, model(**inputs).logits, atol=ROUND_TRIP_ATOL, rtol=0)
    manifest = json.loads((tmp_path / "bortnas.json").read_text())
    assert manifest["quant"] == mode.value and manifest["bortnas_version"] == bortnas.__version__
    if mode is QuantMode.FP32:
        assert manifest["transformers_loadable"] is True and manifest["auto_class"] == "AutoModelForSequenceClassification"
        assert manifest["load_with"] == "transformers.AutoModelForSequenceClassification.from_pretrained"
    else:
        assert manifest["transformers_loadable"] is False and manifest["auto_class"] is None
        assert manifest["load_with"] == "bortnas.load"


def test_a_full_precision_save_is_a_stock_transformers_directory(tmp_path: Path) -> None:
    model, inputs = tiny_classifier(QuantMode.FP32)
    save(model, tmp_path)
    stock = AutoModelForSequenceClassification.from_pretrained(tmp_path, local_files_only=True).eval()
    assert not hasattr(stock.config, "bortnas_quant")
    with torch.no_grad():
        torch.testing.assert_close(stock(**inputs).logits, model(**inputs).logits, atol=ROUND_TRIP_ATOL, rtol=0)


def test_stock_transformers_does_not_reproduce_a_quantized_save(tmp_path: Path) -> None:
    # what transformers_loadable: false warns of: the packed weights are not read, so the layers stay random
    model, inputs = tiny_classifier(QuantMode.BITNET158)
    save(model, tmp_path)
    stock = AutoModelForSequenceClassification.from_pretrained(tmp_path, local_files_only=True).eval()
    with torch.no_grad():
        assert (stock(**inputs).logits - model(**inputs).logits).abs().max() > 1e-2


def test_a_directory_stamped_by_another_writer_still_loads(tmp_path: Path) -> None:
    # benchmarks/deploy.py replaces bortnas.json with its own stamp; the mode load trusts is in config.json
    model, inputs = tiny_classifier(QuantMode.INT8)
    save_quantized(model, QuantMode.INT8, tmp_path)
    (tmp_path / "bortnas.json").write_text(json.dumps({"candidate": {"quant": "int8"}, "steps": 3}))
    with torch.no_grad():
        assert torch.equal(load(tmp_path)(**inputs).logits, model(**inputs).logits)
    with pytest.raises(ExportError, match="asked to save a bibert model, but the model runs int8"):
        save_quantized(model, QuantMode.BIBERT, tmp_path)


def test_save_refuses_what_load_could_not_rebuild(tmp_path: Path) -> None:
    with pytest.raises(
        ExportError, match="BertForQuestionAnswering is not a class that AutoModelForSequenceClassification, .* builds for a BertConfig"
    ):
        save(BertForQuestionAnswering(tiny_config("bert")), tmp_path)  # type: ignore[arg-type]
    model, _ = tiny_classifier(QuantMode.FP32)
    model.config.bortnas_quant = "bitnet158"
    with pytest.raises(ExportError, match="says bortnas_quant='bitnet158' but it has no quantized layer"):
        save(model, tmp_path)
    model.config.bortnas_quant = "ternary"
    with pytest.raises(ExportError, match="bortnas_quant='ternary': 'ternary' is not a quantization mode"):
        save(model, tmp_path)
    assert not (tmp_path / "config.json").exists()


def test_add_metadata_keeps_what_save_wrote(tmp_path: Path) -> None:
    model, _ = tiny_classifier(QuantMode.BIBERT)
    with pytest.raises(ExportError, match="has no bortnas.json: write the model with `save` first"):
        add_metadata(tmp_path, {"trial": 3})
    save(model, tmp_path)
    add_metadata(tmp_path, {"trial": 3, "candidate": {"quant": "bibert"}})
    add_metadata(tmp_path, {"onnxruntime": None})
    manifest = json.loads((tmp_path / "bortnas.json").read_text())
    assert manifest["trial"] == 3 and manifest["quant"] == "bibert" and "onnxruntime" in manifest
    with pytest.raises(ValueError, match="quant, transformers_loadable in bortnas.json are written by `save`"):
        add_metadata(tmp_path, {"transformers_loadable": True, "quant": "fp32"})
    assert json.loads((tmp_path / "bortnas.json").read_text()) == manifest


def test_mismatched_files_are_refused(tmp_path: Path) -> None:
    _, directory, _ = export(tmp_path, QuantMode.BIT_W1A1)
    meta = directory / "bortnas.json"
    written = meta.read_text()
    meta.write_text(json.dumps({**json.loads(written), "quant": "bibert"}))
    with pytest.raises(
        ExportError, match=r"config.json says bortnas_quant='bit_w1a1' but bortnas.json quant says 'bibert': the files do not"
    ):
        bortnas.load(directory)
    meta.write_text(json.dumps({**json.loads(written), "candidate": {"quant": "int8"}}))
    with pytest.raises(ExportError, match=r"but bortnas.json candidate.quant says 'int8'"):
        bortnas.load(directory)
    meta.write_text(written)
    weights = directory / "model.safetensors"
    tensors = load_file(str(weights))
    save_file(tensors, str(weights), metadata={"format": "bortnas-packed-1", "bortnas_quant": "bit_w1a2"})
    with pytest.raises(ExportError, match=r"but model.safetensors metadata says 'bit_w1a2'"):
        bortnas.load(directory)
    key = "bert.encoder.layer.0.attention.self.query.weight.packed"
    tensors[key] = tensors[key][:-1].clone()
    save_file(tensors, str(weights), metadata={"format": "bortnas-packed-1", "bortnas_quant": "bit_w1a1"})
    with pytest.raises(ExportError, match=r"query.weight.packed has 2047 .* needs 2048 uint8 bytes"):
        bortnas.load(directory)
    with pytest.raises(ExportError, match="no bortnas.json"):
        bortnas.load(tmp_path)


def test_a_quantized_config_over_full_precision_weights_is_refused(tmp_path: Path) -> None:
    model, _ = tiny_classifier(QuantMode.FP32)
    save(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**config, "bortnas_quant": "bitnet158"}))
    (tmp_path / "bortnas.json").write_text(json.dumps({"quant": "bitnet158"}))
    with pytest.raises(ExportError, match=r"says bortnas_quant='bitnet158' but model.safetensors metadata says 'fp32'"):
        load(tmp_path)
