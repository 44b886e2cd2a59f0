"""The package root: what `__all__` promises exists, is documented, and stays what it is."""

from __future__ import annotations

import inspect
import subprocess
import sys

import bortnas


def test_every_public_name_exists_and_has_a_docstring() -> None:
    for name in bortnas.__all__:
        if name == "__version__":
            continue
        value = getattr(bortnas, name)
        assert inspect.getdoc(value), f"bortnas.{name} has no docstring"


def test_search_and_export_stay_functions_after_their_layers_load() -> None:
    # the layers bortnas/search/ and bortnas/export/ share the functions' names; loading a module of
    # theirs later must not rebind bortnas.search or bortnas.export to the subpackage
    code = (
        "import bortnas, bortnas.export.writer, bortnas.search.fptas_sampler, inspect; "
        "print(inspect.isfunction(bortnas.export), inspect.isfunction(bortnas.search), bortnas.ExportReport.__name__)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "True", "ExportReport"]


def test_public_signatures_carry_no_any() -> None:
    for fn in (bortnas.search, bortnas.export, bortnas.trials, bortnas.load, bortnas.save):
        hints = inspect.signature(fn)
        assert "Any" not in str(hints), f"{fn.__name__}{hints}"
