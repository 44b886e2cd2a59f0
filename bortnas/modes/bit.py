"""bit_w1a1, bit_w1a2, bit_w1a4: BiT with binary weights and K-bit elastic activations (docs/algorithms.md §4.2).

BiT's "1-1-K": binary (BWN) weights and word embeddings, K-bit elastic activations into every
linear and both attention products, ReLU instead of GELU. Each linear learns a threshold per input
feature and a step; each attention block four steps, all kept in full precision.
"""

from bortnas.modes.base import QuantConfig, register


def _bit(bits: int) -> QuantConfig:
    return QuantConfig(
        name=f"bit_w1a{bits}",
        summary=f"BiT: binary weights, {bits}-bit elastic activations",
        weight_bits=1,
        activation_bits=bits,
        attention_bits=bits,
        word_embedding_bits=1,
        linear_extra_per_input=1,
        linear_extra=1,
        attention_extra=4,
        linear="bwn_elastic",
        attention="elastic",
        ffn_activation="relu",
        packing="binary1",
        kernel="simulated",
    )


BIT_W1A1 = register(_bit(1))
BIT_W1A2 = register(_bit(2))
BIT_W1A4 = register(_bit(4))
