import subprocess
import sys

PURE_MODULES = [
    "bortnas.core.errors",
    "bortnas.core.space",
    "bortnas.core.settings",
    "bortnas.core.finetuning",
    "bortnas.families.teacher_dirs",
    "bortnas.core.progress",
    "bortnas.modes",
    "bortnas.cost",
    "bortnas.cost.bits",
    "bortnas.algo",
    "bortnas.algo.agora",
    "bortnas.algo.fptas",
]
SEARCH_MODULES = [
    "bortnas.search",
    "bortnas.search.runner",
    "bortnas.search.study",
    "bortnas.search.claims",
    "bortnas.search.records",
    "bortnas.search.strategies",
    "bortnas.search.storage",
    "bortnas.search.pricing",
]


def loaded_after(modules: list[str]) -> list[str]:
    code = (
        f"import sys; [__import__(m) for m in {modules!r}]; "
        "print('torch' in sys.modules, 'transformers' in sys.modules, 'optuna' in sys.modules)"
    )
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()


def test_pure_folders_import_no_torch() -> None:
    # the package root loads Optuna (its public API holds Optuna samplers, bortnas.FPTASSampler), and every
    # module import runs it first; that the pure folders' own code imports no Optuna, test_layers checks.
    # torch and transformers load only with the calls that train or load models
    assert loaded_after(PURE_MODULES) == ["False", "False", "True"]


def test_the_package_root_loads_neither_torch_nor_transformers() -> None:
    assert loaded_after(["bortnas"])[:2] == ["False", "False"]


def test_the_search_layer_imports_optuna_but_not_torch() -> None:
    assert loaded_after(SEARCH_MODULES) == ["False", "False", "True"]


def test_the_input_checks_import_neither_torch_nor_transformers() -> None:
    # a bad data file, label or flag is refused before the command's heavy imports (about a second, not five)
    assert loaded_after(["bortnas.trial.inputs"])[:2] == ["False", "False"]
