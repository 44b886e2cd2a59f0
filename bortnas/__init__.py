"""bortnas: extract small, fast sub-architectures of a BERT-family teacher (Bort-style NAS)."""

__version__ = "0.1.0"


def load(directory: str) -> object:
    """Rebuild an exported model (full precision or quantized) from its directory; see `bortnas.quant.pack.load`."""
    from bortnas.quant.pack import load as load_export

    return load_export(directory)
