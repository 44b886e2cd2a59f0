"""Analytic inference FLOPs of a candidate at a sequence length L, batch 1.

Pure layer. `matmul` counts 2 FLOPs per multiply-accumulate of every matrix product (what
`torch.utils.flop_counter` counts), following the family's layout (`TeacherShape.structure`):
a gated FFN's doubled input projection, an embedding projection, DeBERTa's relative-position
projections and content-to-position products. `elementwise` adds the "other operations" of the
W-coefficient's inference cost i with fixed per-element constants: softmax 5 (max, subtract,
exp, sum, divide) per attention score, LayerNorm 8 per element, GELU 8 per element, 1 per bias
add, residual add, gate product, relative-position term and attention-score scaling.
"""

from __future__ import annotations

import dataclasses

from bortnas.core.space import ArchSpec, TeacherShape

SOFTMAX_OPS = 5
LAYERNORM_OPS = 8
GELU_OPS = 8


@dataclasses.dataclass(frozen=True)
class FlopCount:
    matmul: int
    elementwise: int

    @property
    def total(self) -> int:
        return self.matmul + self.elementwise


def flops(spec: ArchSpec, shape: TeacherShape, seq_len: int) -> FlopCount:
    """FLOPs of one forward pass of `spec` on one sequence of `seq_len` tokens.

    The pooler / classification head only sees the first token, as in transformers.
    """
    s = shape.structure
    L, h, a, f = seq_len, spec.hidden, spec.heads, spec.ffn
    ffn_in = 2 * f if s.gated_ffn else f
    R = s.relative_embeddings
    per_layer_macs = 4 * L * h * h + 2 * L * L * h + L * h * ffn_in + L * f * h
    per_layer_macs += s.position_projection_runs * R * h * h + s.position_terms * L * R * h  # project the table; Q.P^T, K.P^T
    width = s.embedding_size or h
    embedding_macs = L * width * h if width != h else 0
    head_macs = shape.head_weights(h) * shape.head_tokens(L)
    matmul = 2 * (spec.layers * per_layer_macs + embedding_macs + head_macs)

    scores = a * L * L
    biases = (4 * L * h if s.attention_bias else 0) + (L * ffn_in + L * h if s.ffn_bias else 0)
    per_layer_elementwise = (
        scores * (SOFTMAX_OPS + 1 + s.position_terms + (1 if s.relative_bias_buckets else 0))
        + s.layer_norms * LAYERNORM_OPS * L * h
        + GELU_OPS * L * f
        + (L * f if s.gated_ffn else 0)
        + biases
        + 2 * L * h  # residual adds
    )
    table_width = width if s.embedding_size and s.embedding_norm_on_tables else 0
    embeddings = 2 * L * width + LAYERNORM_OPS * L * (table_width + h * s.hidden_norms_outside_layers)
    dense = h + h if shape.head == "sequence" or s.head_norm else 0  # dense bias + activation
    head_elementwise = 0 if shape.head == "none" else (dense + shape.num_labels) * shape.head_tokens(L)  # + classifier bias
    missing = s.first_layer_missing_norms * LAYERNORM_OPS * L * h
    elementwise = spec.layers * per_layer_elementwise - missing + embeddings + head_elementwise
    return FlopCount(matmul=matmul, elementwise=elementwise)
