"""Teacher directories without loading them: which families are supported and the shape that
bounds a search space.

Imports no torch: `config.json` is read as JSON, so `bortnas space` and the checks that run
before anything is written need neither torch nor transformers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bortnas.core.errors import UnsupportedArchitectureError, UserInputError
from bortnas.core.space import TeacherShape
from bortnas.families import SUPPORTED_MODEL_TYPES, family_of


def check_supported(config: Any, source: str) -> None:
    """Raise `UnsupportedArchitectureError` unless `config` (object or dict) is a family bortnas can cut."""
    family_of(config, source)


def teacher_shape(config: Any, num_labels: int, head: str = "sequence") -> TeacherShape:
    """The dimensions and layout of a teacher config (object or dict) that bound a space and enter the
    costs, with its task `head` ("sequence", "token" or "none": `TeacherShape.head`)."""
    return family_of(config).shape(config, num_labels, head)


def read_teacher_config(directory: Path) -> dict[str, Any]:
    """The `config.json` of a teacher directory as a dict, checked to be a supported family.

    Raises:
        UserInputError: no readable config.json.
        UnsupportedArchitectureError: a family bortnas cannot cut.
    """
    path = directory / "config.json"
    if not path.is_file():
        raise UserInputError(
            f"teacher directory {directory} has no config.json: pass the directory of a transformers model (save_pretrained writes one)."
        )
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:  # a damaged copy, not an unsupported model
        raise UserInputError(f"teacher directory {directory}: {path.name} is not a valid JSON file ({e}); copy it again.") from None
    except OSError as e:
        raise UserInputError(f"cannot read {path} ({e}).") from e
    if not isinstance(config, dict):
        raise UnsupportedArchitectureError(f"{path} is not a JSON object; supported: {', '.join(SUPPORTED_MODEL_TYPES)}.")
    check_supported(config, str(directory))
    return config
