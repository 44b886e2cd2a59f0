"""BiT's elastic activation quantizer, shared by the quantized linears and the quantized attention.

Torch layer.
"""

from __future__ import annotations

import torch
from torch import nn

from bortnas.quant import functional as Q


class ElasticActivation(nn.Module):
    """BiT's elastic activation quantizer: learned step `alpha`, set from the first batch it sees."""

    initialised: torch.Tensor  # a buffer

    def __init__(self, bits: int, signed: bool) -> None:
        super().__init__()
        self.bits, self.signed = bits, signed
        self.bounds = Q.elastic_bounds(bits, signed)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialised", torch.tensor(False))
        # Host copy of `initialised` once it is known to be set: reading the buffer on a GPU waits
        # for the device to drain, and this runs in every forward pass of every quantized layer.
        self._initialised_seen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._initialised_seen:
            if not bool(self.initialised):
                with torch.no_grad():
                    self.alpha.copy_(Q.elastic_init(x, self.bits, self.signed))
                    self.initialised.fill_(True)
            self._initialised_seen = True
        return Q.ElasticQuant.apply(x, self.alpha, *self.bounds)

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._initialised_seen = False  # the loaded buffer decides again

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"
