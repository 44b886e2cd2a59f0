"""bortnas: extract small, fast sub-architectures of a BERT-family teacher (Bort-style NAS)."""

__version__ = "0.1.0"
