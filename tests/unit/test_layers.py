"""Each folder of the package imports only the layers below it (and pure folders never torch).

The layer of a file shows in its path; this test holds every folder to the bortnas folders and
the heavy third-party packages it may import, read from the source with `ast` (imports inside
functions count too: a lazy import is still a dependency). An import under `if TYPE_CHECKING:`
never runs: it may name a heavy package's types (a transformers model, say) outside a pure
folder, but it still counts against the layering of bortnas folders.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "bortnas"
PURE = {"core", "modes", "cost", "algo"}
# `families` imports no heavy package at run time either (the cost model and the CLI's checks read
# it before torch loads), but names torch and transformers types for the checker
# folder -> the bortnas folders it may import (besides itself and the package root's __version__)
ALLOWED: dict[str, set[str]] = {
    "modes": set(),
    "algo": set(),
    "core": {"modes", "algo"},
    "families": {"core", "modes"},
    "cost": {"core", "modes"},
    "data": {"core"},
    "runtime": {"core", "families"},
    "model": {"core", "families", "modes"},
    "quant": {"core", "families", "modes", "model"},
    "train": {"core", "families", "modes", "data", "runtime", "model", "quant"},
    "trial": {"core", "families", "modes", "cost", "algo", "data", "runtime", "model", "quant", "train"},
    "search": {"core", "modes", "cost", "algo"},
    "ray": {"core", "families", "modes", "cost", "algo", "data", "runtime", "model", "quant", "train", "trial", "search"},
    "export": {"core", "families", "modes", "cost", "algo", "data", "runtime", "model", "quant", "train", "trial", "search"},
    "api": {"core", "families", "modes", "cost", "algo", "data", "runtime", "model", "quant", "train", "trial", "search", "ray", "export"},
    "app": {
        "core",
        "families",
        "modes",
        "cost",
        "algo",
        "data",
        "runtime",
        "model",
        "quant",
        "train",
        "trial",
        "search",
        "ray",
        "export",
        "api",
    },
}
HEAVY = {
    "torch",
    "transformers",
    "safetensors",
    "ray",
    "optuna",
    "sqlalchemy",
    "matplotlib",
    "plotly",
    "optuna_dashboard",
    "onnx",
    "onnxruntime",
    "onnxscript",
}
# folder -> the heavy packages it may import
HEAVY_ALLOWED: dict[str, set[str]] = {
    **{folder: set() for folder in PURE},
    "families": set(),
    "data": {"torch"},
    "runtime": {"torch", "onnx", "onnxruntime", "onnxscript"},
    "model": {"torch", "transformers"},
    "quant": {"torch", "transformers", "safetensors"},
    "train": {"torch", "transformers"},
    "trial": {"torch", "transformers", "safetensors"},
    "search": {"optuna", "sqlalchemy"},
    "ray": {"ray", "torch", "optuna"},
    "export": {"torch", "optuna", "transformers", "safetensors"},
    "api": {"optuna"},
    "app": HEAVY,
}


def _is_type_checking(node: ast.stmt) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _imported(nodes: list[ast.AST]) -> set[str]:
    names: set[str] = set()
    for root in nodes:
        for node in ast.walk(root):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
    return names


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(modules imported when the file runs, modules imported only under `if TYPE_CHECKING:`)."""
    tree = ast.parse(path.read_text())
    type_only = [node for node in ast.walk(tree) if isinstance(node, ast.If) and _is_type_checking(node)]
    typing_names = _imported([stmt for node in type_only for stmt in node.body])
    for node in type_only:
        node.body = []  # what is left runs
    return _imported([tree]), typing_names


def test_every_folder_is_declared() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == set(ALLOWED)


@pytest.mark.parametrize("folder", sorted(ALLOWED))
def test_folder_imports_only_lower_layers(folder: str) -> None:
    wrong = []
    for path in sorted((PACKAGE / folder).rglob("*.py")):
        runtime, typing_only = imports_of(path)
        for name in sorted(runtime | typing_only):
            parts = name.split(".")
            if parts[0] == "bortnas" and len(parts) > 1 and parts[1] in ALLOWED:
                if parts[1] != folder and parts[1] not in ALLOWED[folder]:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
            elif parts[0] in HEAVY and parts[0] not in HEAVY_ALLOWED[folder]:
                if name in runtime or folder in PURE:
                    wrong.append(f"{path.relative_to(PACKAGE)} imports {name}")
    assert wrong == []
