"""bortnas: extract small, fast sub-architectures of a transformer encoder teacher (Bort-style NAS)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__version__ = "0.1.0"


def load(directory: str) -> PreTrainedModel:
    """Rebuild an exported model (full precision or quantized) from its directory; see `bortnas.quant.pack.load`."""
    from bortnas.quant.pack import load as load_export

    return load_export(directory)
