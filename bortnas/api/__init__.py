"""The public Python API: search, trials, export, and the result types they return.

API layer, above everything but the CLI (`bortnas.app`), which is a thin translation of flags
into these calls. Users import it from the package root (`bortnas.search`, `bortnas.export`, ...).
"""
