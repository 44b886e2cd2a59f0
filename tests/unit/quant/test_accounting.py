"""Size and operation accounting of quantized candidates (pure: no torch)."""

from __future__ import annotations

import math

import pytest

from bortnas.core.space import REFERENCE_SHAPES, ArchSpec, QuantMode, TeacherShape
from bortnas.cost import flops, param_count
from bortnas.cost.bits import BIT_TABLE_CONVENTION, operations, price, size_bits

BERT_BASE = ArchSpec(12, 768, 12, 3072)


def test_full_precision_is_32_bits_per_parameter_and_flops() -> None:
    shape = REFERENCE_SHAPES["bert-base"]
    counts = param_count(BERT_BASE, shape)
    size = size_bits(BERT_BASE, shape)
    assert size.total == 32 * counts.total and size.non_embedding == 32 * counts.non_embedding
    assert operations(BERT_BASE, shape, 128) == flops(BERT_BASE, shape, 128).total
    # the BiT table's full-precision row: 418 MiB, 22.5 GFLOPs
    assert round(size.mib) == 418
    assert operations(BERT_BASE, shape, 128) / 1e9 == pytest.approx(22.5, abs=0.1)


@pytest.mark.parametrize(("bits", "gflops"), [(1, 0.4), (2, 0.8), (4, 1.5)])
def test_bit_table_convention(bits: int, gflops: float) -> None:
    """BiT's 1-1-1 / 1-1-2 / 1-1-4 rows: 13.4 MiB and 0.4 / 0.8 / 1.5 GFLOPs.

    Ours: 13.50 MiB (every matrix at one bit plus full-precision biases and LayerNorms) and
    0.43 / 0.80 / 1.60 G, because elementwise work stays full precision (0.085 G) and the
    attention products cost bits x bits / 64; BiT's figures are 22.5 x bits / 64 rounded up.
    """
    shape = REFERENCE_SHAPES["bert-base"]
    scheme = BIT_TABLE_CONVENTION[bits]
    assert size_bits(BERT_BASE, shape, scheme).mib == pytest.approx(13.4, abs=0.15)
    ops = operations(BERT_BASE, shape, 128, scheme) / 1e9
    assert ops == pytest.approx(gflops, abs=0.1)
    # exactly: linears at bits/64, attention at bits^2/64, pooler+classifier at bits/64, elementwise at 1
    L, h, f = 128, 768, 3072
    expected = 12 * (2 * L * (4 * h * h + 2 * h * f) * bits / 64 + 2 * 2 * L * L * h * bits * bits / 64)
    expected += 2 * (h * h + 2 * h) * bits / 64 + flops(BERT_BASE, shape, 128).elementwise
    assert ops * 1e9 == pytest.approx(expected)


def test_tiny_bitnet_by_hand() -> None:
    shape = TeacherShape(layers=1, hidden=4, heads=2, ffn=8, vocab_size=10, max_positions=6, type_vocab_size=2)
    spec = ArchSpec(1, 4, 2, 8, QuantMode.BITNET158)
    size = size_bits(spec, shape)
    # tables (10 + 6 + 2) x 4 at 32 bits; six matrices 4x4 x4 + 4x8 + 8x4 = 128 values at log2 3 bits
    # plus six per-tensor scales; biases 4*4 + 8 + 4 and LayerNorms 2*2*4 + 2*4; pooler 16 + 4, classifier 8 + 2
    assert size.embedding == 18 * 4 * 32
    expected = 18 * 4 * 32 + 128 * math.log2(3) + 6 * 32 + 32 * (28 + 16 + 8) + 32 * (20 + 10)
    assert size.total == pytest.approx(expected)
    # seq 3: linears 3 * 128 MACs at 1.58 x 8 / 64; attention 2 * 9 * 4 MACs and the head in full precision
    ops = operations(spec, shape, 3)
    expected_ops = 2 * 384 * math.log2(3) * 8 / 64 + 2 * 72 + 2 * 24 + flops(spec, shape, 3).elementwise
    assert ops == pytest.approx(expected_ops)


def test_tiny_int8_by_hand() -> None:
    shape = TeacherShape(layers=1, hidden=4, heads=2, ffn=8, vocab_size=10, max_positions=6, type_vocab_size=2)
    spec = ArchSpec(1, 4, 2, 8, QuantMode.INT8)
    size = size_bits(spec, shape)
    # as the ternary case, with 128 weights at 8 bits and one scale per output row: 4 + 4 + 4 + 4 + 8 + 4
    expected = 18 * 4 * 32 + 128 * 8 + 28 * 32 + 32 * (28 + 16 + 8) + 32 * (20 + 10)
    assert size.total == pytest.approx(expected)
    # 8 x 8 bit products cost 64 / 64: one FLOP-equivalent per operation, as in full precision, so
    # int8 competes on size in W; its speed shows in measured latency
    assert operations(spec, shape, 3) == pytest.approx(flops(spec, shape, 3).total)


def test_binary_modes_count_scales_and_learned_values() -> None:
    shape = TeacherShape(layers=1, hidden=4, heads=2, ffn=8, vocab_size=10, max_positions=6, type_vocab_size=2)
    bit = size_bits(ArchSpec(1, 4, 2, 8, QuantMode.BIT_W1A2), shape)
    bibert = size_bits(ArchSpec(1, 4, 2, 8, QuantMode.BIBERT), shape)
    fp = size_bits(ArchSpec(1, 4, 2, 8), shape)
    rest = fp.total - 32 * (18 * 4 + 128 + 24)  # biases and LayerNorms
    # BiT: word table at 1 bit + 1 scale; 128 binary weights + 6 scales; per linear a threshold per input + a step; 4 attention steps
    thresholds = 4 * 4 + 4 + 8 + 6
    assert bit.total == pytest.approx(40 + 32 + 8 * 4 * 32 + 128 + 6 * 32 + 32 * thresholds + 32 * 4 + 32 * 24 + rest)
    # BiBERT: per-row scales (10 table rows; 4+4+4+4+8+4 linear rows), no learned activation values
    assert bibert.total == pytest.approx(40 + 32 * 10 + 8 * 4 * 32 + 128 + 32 * 28 + 32 * 24 + rest)


def test_w_inputs_make_binarized_candidates_cheaper() -> None:
    shape = REFERENCE_SHAPES["minilm-l6"]
    fp, w1a1 = price(ArchSpec(2, 384, 12, 768), shape, 64), price(ArchSpec(2, 384, 12, 768, QuantMode.BIT_W1A1), shape, 64)
    assert fp.p == 32 * param_count(ArchSpec(2, 384, 12, 768), shape).non_embedding
    assert w1a1.p < fp.p / 4 and w1a1.i < fp.i / 4
