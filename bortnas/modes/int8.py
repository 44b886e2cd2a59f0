"""int8: 8-bit weights per output channel and 8-bit activations per token, on integer kernels.

The cheapest real speed-up on a CPU. Weights are absmax-quantized per row (one scale per output
channel), activations absmax-quantized per token at run time, so every encoder projection is an
int8 x int8 product with an int32 accumulator, rescaled once; embeddings, the attention products
and the head stay full precision.
"""

from bortnas.modes.base import QuantConfig, register

INT8 = register(
    QuantConfig(
        name="int8",
        summary="int8 weights per channel, int8 activations per token",
        weight_bits=8,
        activation_bits=8,
        weight_scales="row",
        linear="int8_absmax",
        packing="int8",
        kernel="int8",
    )
)
