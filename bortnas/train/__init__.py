"""Training: the one loop (`loop`) with its losses. Torch."""
