"""Analytic cost models over `ArchSpec`: exact parameter counts (p) and FLOPs (i).

Pure layer: no torch, no I/O, so FPTAS and the CLI can price a whole space in milliseconds.
Measured latency lives in `bortnas.runtime.latency`, which needs torch.
"""

from bortnas.cost.flops import FlopCount, flops
from bortnas.cost.params import ParamCount, param_count

__all__ = ["FlopCount", "ParamCount", "flops", "param_count"]
