"""bortnas: extract small, fast sub-architectures of a transformer encoder teacher (Bort-style NAS).

The public API is what `__all__` lists: search a space into an Optuna study (`search`), read its
trials (`trials`), export the chosen candidate (`export`), fine-tune an exported general encoder
on a task (`finetune`), read a model back (`load`), and the FPTAS as an Optuna sampler for any
finite candidate set (`FPTASSampler`). Importing the package loads
neither torch nor transformers; the calls that train or load models do.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# The layers `bortnas/search/` and `bortnas/export/` share their names with the functions `search` and
# `export`. Python binds a subpackage to its parent's attribute when it first loads it, so both load
# here, before the functions are bound: a later `import bortnas.export.writer` then leaves
# `bortnas.export` the function (tests/unit/test_public_api.py).
import bortnas.export
import bortnas.search  # noqa: F401
from bortnas.api.adapt import finetune
from bortnas.api.export import export
from bortnas.api.finetune import Agora, Distil, Finetune, Plain
from bortnas.api.results import SearchResult, TrialSummary
from bortnas.api.search import search, trials
from bortnas.core.budget import Budget
from bortnas.core.errors import (
    BortnasError,
    ExportError,
    InfeasibleBudgetError,
    MissingDependencyError,
    ParameterError,
    StudyMismatchError,
    UserInputError,
)
from bortnas.core.finetuning import AgoraSettings
from bortnas.core.settings import Execution, RaySettings, RunSettings
from bortnas.search.fptas_sampler import FPTASResult, FPTASSampler
from bortnas.search.strategies import FPTAS, NSGA2, TPE, Grid, RandomSearch, Strategy

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from bortnas.export.writer import ExportReport

__all__ = [
    "FPTAS",
    "NSGA2",
    "TPE",
    "Agora",
    "AgoraSettings",
    "BortnasError",
    "Budget",
    "Distil",
    "Execution",
    "ExportError",
    "ExportReport",
    "FPTASResult",
    "FPTASSampler",
    "Finetune",
    "Grid",
    "InfeasibleBudgetError",
    "MissingDependencyError",
    "ParameterError",
    "Plain",
    "RandomSearch",
    "RaySettings",
    "RunSettings",
    "SearchResult",
    "Strategy",
    "StudyMismatchError",
    "TrialSummary",
    "UserInputError",
    "__version__",
    "export",
    "finetune",
    "load",
    "save",
    "search",
    "trials",
]

# names whose modules import torch: resolved on first use, so `import bortnas` stays light
_LAZY = {"ExportReport": "bortnas.export.writer"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'bortnas' has no attribute {name!r}")


def load(directory: str) -> PreTrainedModel:
    """Rebuild a model that bortnas wrote (`export` or `save`; full precision or quantized) from its directory.

    Raises:
        IncompatibleCheckpointError: the directory was not written by bortnas, or its records disagree.
    """
    from bortnas.quant.pack import load as load_model

    return load_model(directory)


def save(model: PreTrainedModel, directory: str) -> None:
    """Write a model (full precision or quantized by bortnas) so that `load` reads it back; low-bit
    weights are packed. See `bortnas.quant.pack.save`."""
    from bortnas.quant.pack import save as save_model

    save_model(model, directory)
