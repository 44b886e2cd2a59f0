"""fp32: full precision, the teacher's own arithmetic."""

from bortnas.modes.base import QuantConfig, register

FP32 = register(QuantConfig(name="fp32", summary="full precision"))
