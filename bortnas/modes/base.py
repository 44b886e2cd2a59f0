"""`QuantConfig`: everything bortnas knows about one quantization mode, as data.

Pure layer. The cost model (`bortnas.cost.bits`), the module swap (`bortnas.quant.modules.quantize_`),
the packer (`bortnas.quant.pack`) and the training recipe all read a mode's facts from its config
and nowhere else. The torch side looks up its handlers by the config's `linear`, `attention` and
`packing` kinds, so a mode built from existing quantizers is one file in this package.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Literal

FULL = 32.0
TERNARY = math.log2(3)  # bits of information in a {-1, 0, 1} weight

LinearKind = Literal["none", "int8_absmax", "ternary_absmean", "bwn_elastic", "bibert_sign"]
AttentionKind = Literal["softmax", "elastic", "bi"]
PackingKind = Literal["none", "int8", "ternary2", "binary1"]
KernelKind = Literal["float", "int8", "simulated"]
Scales = Literal["tensor", "row"]


@dataclasses.dataclass(frozen=True)
class QuantConfig:
    """One quantization mode (docs/algorithms.md §4, §5).

    Bits (the cost model): `weight_bits` / `activation_bits` of the encoder's six linears per
    layer and their inputs; `attention_bits` of the operands of Q K^T and A V;
    `word_embedding_bits`, `other_embedding_bits` (position and token-type tables) and
    `head_bits` (pooler and classifier). `weight_scales` / `word_embedding_scales`: one scale per
    matrix ("tensor") or per output row ("row"). `linear_extra_per_input`, `linear_extra` and
    `attention_extra`: full-precision learned values per linear (a multiple of its input width
    plus a constant) and per attention block (BiT's thresholds and steps).

    Kinds (the module swap and the packer): `linear` is the quantizer of the encoder linears,
    `attention` how self-attention runs, `ffn_activation` what replaces GELU (None: GELU stays),
    `packing` how quantized weights are stored, `kernel` what arithmetic runs it at inference:
    "float" (the full-precision model), "int8" (integer matrix products: codes fit int8 and
    activations are 8-bit per token) or "simulated" (no low-bit kernel: the low-bit values run
    through fp32 arithmetic, so a measured latency describes the simulation, not a deployment).

    Training: `dmd_weight`, the weight of BiBERT's direction-matching loss for this mode.
    """

    name: str
    summary: str = ""
    weight_bits: float = FULL
    activation_bits: float = FULL
    attention_bits: float = FULL
    word_embedding_bits: float = FULL
    other_embedding_bits: float = FULL
    head_bits: float = FULL
    weight_scales: Scales = "tensor"
    word_embedding_scales: Scales = "tensor"
    linear_extra_per_input: int = 0
    linear_extra: int = 0
    attention_extra: int = 0
    linear: LinearKind = "none"
    attention: AttentionKind = "softmax"
    ffn_activation: str | None = None
    packing: PackingKind = "none"
    kernel: KernelKind = "float"
    dmd_weight: float = 0.0
    version: int = 1

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").isalnum() or self.name != self.name.lower():
            raise ValueError(f"mode name {self.name!r} must be lower-case letters, digits and underscores")
        if (self.linear == "none") != (self.weight_bits >= FULL):
            raise ValueError(f"mode {self.name}: a linear quantizer goes with weight_bits below {FULL:g}, and only then")
        if (self.packing == "none") != (self.linear == "none"):
            raise ValueError(f"mode {self.name}: quantized weights need a packing, and full-precision ones none")
        if (self.kernel == "float") != (self.linear == "none"):
            raise ValueError(f"mode {self.name}: a quantized mode runs on an int8 kernel or is simulated, a full-precision one on float")

    @property
    def quantized(self) -> bool:
        return self.weight_bits < FULL

    @property
    def simulated(self) -> bool:
        """True when no kernel runs this mode's arithmetic: its measured latency is of an fp32 simulation."""
        return self.kernel == "simulated"

    @property
    def binary_word_embeddings(self) -> bool:
        return self.word_embedding_bits < FULL

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> QuantConfig:
        """The inverse of `to_dict`.

        Raises:
            ValueError: unknown keys, or a config of a newer version than this bortnas knows.
        """
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown QuantConfig keys {unknown}")
        if int(data.get("version", 1)) > 1:
            raise ValueError(f"QuantConfig version {data['version']} is newer than this bortnas (1)")
        if "kernel" not in data:  # written before kernels were recorded: every quantized mode was simulated then
            data = {**data, "kernel": "float" if data.get("linear", "none") == "none" else "simulated"}
        return cls(**data)


_REGISTRY: dict[str, QuantConfig] = {}


def register(config: QuantConfig) -> QuantConfig:
    """Add a mode to the registry (at import time of its module); returns it.

    Raises:
        ValueError: a mode of that name is registered already.
    """
    if config.name in _REGISTRY:
        raise ValueError(f"quantization mode {config.name!r} is registered twice")
    _REGISTRY[config.name] = config
    return config


def registry() -> dict[str, QuantConfig]:
    """The registered modes by name (a copy)."""
    return dict(_REGISTRY)
