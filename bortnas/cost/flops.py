"""Analytic inference FLOPs of a candidate at a sequence length L, batch 1.

`matmul` counts 2 FLOPs per multiply-accumulate of every matrix product (what
`torch.utils.flop_counter` counts); `elementwise` adds the "other operations" of the
W-coefficient's inference cost i with fixed per-element constants:
softmax 5 (max, subtract, exp, sum, divide) per attention score, LayerNorm 8 per element,
GELU 8 per element, 1 per bias add and residual add, 1 per attention score for the scaling.
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
    L, h, a, f = seq_len, spec.hidden, spec.heads, spec.ffn
    per_layer_matmul = 2 * (4 * L * h * h + 2 * L * L * h + 2 * L * h * f)
    head_matmul = 2 * (h * h + h * shape.num_labels)
    matmul = spec.layers * per_layer_matmul + head_matmul

    scores = a * L * L
    per_layer_elementwise = (
        scores * (SOFTMAX_OPS + 1)  # softmax and the 1/sqrt(d) scaling
        + 2 * LAYERNORM_OPS * L * h  # two LayerNorms
        + GELU_OPS * L * f
        + (4 * L * h + L * f + L * h)  # bias adds
        + 2 * L * h  # residual adds
    )
    embeddings = 2 * L * h + LAYERNORM_OPS * L * h
    head_elementwise = h + h + shape.num_labels  # pooler bias + tanh, classifier bias
    elementwise = spec.layers * per_layer_elementwise + embeddings + head_elementwise
    return FlopCount(matmul=matmul, elementwise=elementwise)
