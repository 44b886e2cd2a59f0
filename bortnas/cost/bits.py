"""Size in bits and operations of a candidate under its quantization mode.

Pure layer. Every width comes from the mode's `QuantConfig` (`bortnas.modes`). The rules
(docs/guides/quantization.md; docs/algorithms.md §5):
- size: every stored value at its bit width: 1.58 (log2 3) per ternary weight, 1 per binary
  weight, 32 for everything that stays full precision (biases, LayerNorms, scales, learned
  activation steps and thresholds, and whatever the mode leaves unquantized);
- operations: a matrix product whose operands are both low-bit (at most 8 bits) costs
  2 * MACs * (bits_a * bits_b) / 64 FLOP-equivalents (binary operations at 1/64 FLOP, scaled by
  the operand widths); any other product costs 2 * MACs; elementwise work is counted at full
  precision exactly as in `bortnas.cost.flops` (conservative: ReLU and bool attention are
  cheaper than GELU and softmax, and the quantizers themselves cost a few operations per value).
"""

from __future__ import annotations

import dataclasses

from bortnas.core.space import ArchSpec, TeacherShape
from bortnas.cost.flops import flops
from bortnas.cost.params import layer_matrices, param_count
from bortnas.modes import FULL, QuantConfig, QuantMode

LOW_BIT = 8  # operands this narrow are integer / bit-serial arithmetic

# The convention of BiT's README table: every matrix (embedding tables and head included) at one
# bit; only biases, LayerNorms and scales stay full precision. Not a mode: a way to count.
BIT_TABLE_CONVENTION = {
    bits: dataclasses.replace(
        QuantMode(f"bit_w1a{bits}").config,
        name=f"bit_table_w1a{bits}",
        other_embedding_bits=1,
        head_bits=1,
        linear_extra_per_input=0,  # the table counts no learned thresholds or steps
        linear_extra=0,
        attention_extra=0,
    )
    for bits in (1, 2, 4)
}


@dataclasses.dataclass(frozen=True)
class SizeBits:
    """Stored bits of a candidate; `embedding` is the three lookup tables (with their scales)."""

    total: float
    embedding: float

    @property
    def non_embedding(self) -> float:
        return self.total - self.embedding

    @property
    def mib(self) -> float:
        return self.total / 8 / 2**20


def _scales(rows: int, kind: str, bits: float) -> float:
    if bits >= FULL:
        return 0.0
    return FULL * (rows if kind == "row" else 1)


def size_bits(spec: ArchSpec, shape: TeacherShape, scheme: QuantConfig | None = None) -> SizeBits:
    """Bits needed to store `spec` as a sequence classifier under `scheme` (default: its mode's)."""
    s = scheme or spec.quant.config
    h, f, n = spec.hidden, spec.ffn, spec.layers
    counts = param_count(spec, shape)
    width = shape.structure.embedding_size or h
    word = shape.vocab_size * width * s.word_embedding_bits + _scales(shape.vocab_size, s.word_embedding_scales, s.word_embedding_bits)
    others = counts.embedding - shape.vocab_size * width  # position, token-type and relative-position tables
    other = others * s.other_embedding_bits + 2 * _scales(1, "tensor", s.other_embedding_bits)
    embedding = word + other

    linears = layer_matrices(h, f, shape.structure)
    matrix_values = sum(i * o for i, o in linears)
    per_layer = matrix_values * s.weight_bits + sum(_scales(o, s.weight_scales, s.weight_bits) for _, o in linears)
    if s.quantized:
        per_layer += FULL * sum(s.linear_extra_per_input * i + s.linear_extra for i, _ in linears) + FULL * s.attention_extra
    head_matrices = shape.head_weights(h)
    head = head_matrices * s.head_bits + (2 * _scales(1, "tensor", s.head_bits) if head_matrices else 0)
    matrices = counts.embedding + n * matrix_values + head_matrices
    full_precision_rest = FULL * (counts.total - matrices)  # biases and LayerNorms
    total = embedding + n * per_layer + head + full_precision_rest
    return SizeBits(total=total, embedding=embedding)


def _product_cost(macs: float, bits_a: float, bits_b: float) -> float:
    if bits_a <= LOW_BIT and bits_b <= LOW_BIT:
        return 2 * macs * bits_a * bits_b / 64
    return 2 * macs


def operations(spec: ArchSpec, shape: TeacherShape, seq_len: int, scheme: QuantConfig | None = None) -> float:
    """FLOP-equivalents of one forward pass on `seq_len` tokens under `scheme` (default: its mode's)."""
    s = scheme or spec.quant.config
    L, h, f = seq_len, spec.hidden, spec.ffn
    ffn_in = 2 * f if shape.structure.gated_ffn else f
    linear_macs = L * (4 * h * h + h * ffn_in + f * h)
    attention_macs = 2 * L * L * h
    head_macs = shape.head_weights(h) * shape.head_tokens(L)
    count = flops(spec, shape, seq_len)
    # products no mode quantizes: an embedding projection, DeBERTa's relative-position terms
    other_macs = count.matmul // 2 - spec.layers * (linear_macs + attention_macs) - head_macs
    linear = _product_cost(linear_macs, s.weight_bits, s.activation_bits)
    attention = _product_cost(attention_macs, s.attention_bits, s.attention_bits)
    head = _product_cost(head_macs, s.head_bits, s.activation_bits)
    return spec.layers * (linear + attention) + head + 2 * other_macs + count.elementwise


@dataclasses.dataclass(frozen=True)
class Price:
    """What the W-coefficient and the Pareto front compare: p in bits (non-embedding), i in FLOP-equivalents."""

    p: float
    i: float


def price(spec: ArchSpec, shape: TeacherShape, seq_len: int) -> Price:
    """p and i of a candidate under its own mode. For fp32, p is 32 x the non-embedding parameter
    count and i the FLOPs, so every ratio p / p(T), i / i(T) is the full-precision one."""
    return Price(size_bits(spec, shape).non_embedding, operations(spec, shape, seq_len))
