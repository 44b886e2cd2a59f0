"""Quantized candidates: quantizers (`functional`), layers and `quantize_` (`modules`), packed export (`pack`)."""

from bortnas.quant.modules import quantize_

__all__ = ["quantize_"]
