"""bitnet158: BitNet b1.58 (docs/algorithms.md §4.1).

Ternary absmean weights (one scale per matrix) and 8-bit absmax activations per token in the six
linears of every encoder layer; embeddings, the attention products and the head stay full precision.
"""

from bortnas.modes.base import TERNARY, QuantConfig, register

BITNET158 = register(
    QuantConfig(
        name="bitnet158",
        summary="BitNet b1.58: ternary weights, 8-bit activations",
        weight_bits=TERNARY,
        activation_bits=8,
        linear="ternary_absmean",
        packing="ternary2",
        kernel="int8",
    )
)
