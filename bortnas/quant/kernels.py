"""The int8 x int8 linear that runs int8-kernel modes (int8, bitnet158) outside training.

Torch layer. `int8_linear` is the definition: activations quantized per token exactly as the
simulation quantizes them (`functional.absmax_codes`), the product on `torch._int_mm` (int8
operands, int32 accumulation), one rescale by the activation and weight scales, the bias.

Run eagerly, the elementwise passes around the product cost more than the product saves on a
memory-bound CPU core: for a 2048 x 1536 by 1536 x 384 product on one core, quantizing the input
took 10 ms against 6 ms for `_int_mm` and 23 ms for the fp32 product. `fast_int8_linear` runs the
same function through `torch.compile` (dynamic shapes, compiled once per process, about 30 s
cold, cached on disk by inductor), which fuses those passes: 1.6-2.6x faster than fp32 on such
products, with outputs identical to the eager function. A compiled call costs about 0.1 ms of
guards, more than it saves on a batch-1 product of 64 rows, so products of fewer than
`COMPILE_MIN_ROWS` rows run eagerly (README "Low-bit kernels and ONNX Runtime" has the model-level
figures). Without a working compiler (inductor needs a C++ toolchain), or with
BORTNAS_INT8_COMPILE=0, every product runs eagerly, with one warning on a failed compile.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

import torch

from bortnas.quant import functional as Q

__all__ = ["fast_int8_linear", "int8_linear"]

_logger = logging.getLogger(__name__)
Kernel = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def int8_linear(x: torch.Tensor, codes_t: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """x (rows, in) float -> (rows, out): int8 codes of x per row times `codes_t` (int8, (in, out)),
    rescaled by the rows' activation scales and `weight_scale` ((1, out) or (1, 1)), plus `bias`."""
    x_codes, x_scale = Q.absmax_codes(x, 8)
    y = torch._int_mm(x_codes.to(torch.int8), codes_t).to(torch.float32) / x_scale * weight_scale
    return y + bias if bias is not None else y


COMPILE_MIN_ROWS = 1024
_compiled: Kernel | None = None
_eager_only = os.environ.get("BORTNAS_INT8_COMPILE", "1") == "0"


def fast_int8_linear(x: torch.Tensor, codes_t: torch.Tensor, weight_scale: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """`int8_linear`, compiled where a compiler works (module docstring), else eager."""
    global _compiled, _eager_only
    if _eager_only or x.shape[0] < COMPILE_MIN_ROWS:
        return int8_linear(x, codes_t, weight_scale, bias)
    if _compiled is None:
        _compiled = torch.compile(int8_linear, dynamic=True)
    try:
        return _compiled(x, codes_t, weight_scale, bias)
    except Exception as e:  # inductor's failures have no common type: a missing compiler, an unsupported platform
        _eager_only = True
        _logger.warning("the int8 kernel runs eagerly (slower): torch.compile failed (%s: %s)", type(e).__name__, str(e).splitlines()[0])
        return int8_linear(x, codes_t, weight_scale, bias)
