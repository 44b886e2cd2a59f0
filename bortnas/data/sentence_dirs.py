"""Sentence-transformers model directories without sentence-transformers: read a teacher's pooling, write a student's.

Data layer, standard library only: the checks that run before anything is loaded need neither torch nor
sentence-transformers, and `bortnas.model.pooling` pools with what `read_pooling` found.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bortnas.core.errors import ParameterError, UnsupportedArchitectureError, UserInputError

__all__ = [
    "MODES",
    "Pooling",
    "is_sentence_transformers_dir",
    "read_max_seq_length",
    "read_pooling",
    "write_sentence_files",
]

# sentence-transformers' own mode names (its Pooling.POOLING_MODES), so a config reads and writes without a table
MODES = ("mean", "cls", "max", "lasttoken", "weightedmean", "mean_sqrt_len_tokens")
# the config.json flags of sentence-transformers < 6, which 6.x still reads; written so that 2.x to 6.x all load a student
_MODE_FLAGS = {
    "cls": "pooling_mode_cls_token",
    "max": "pooling_mode_max_tokens",
    "mean": "pooling_mode_mean_tokens",
    "mean_sqrt_len_tokens": "pooling_mode_mean_sqrt_len_tokens",
    "weightedmean": "pooling_mode_weightedmean_tokens",
    "lasttoken": "pooling_mode_lasttoken",
}
_MODULE_TYPES = {
    "Transformer": "sentence_transformers.models.Transformer",
    "Pooling": "sentence_transformers.models.Pooling",
    "Normalize": "sentence_transformers.models.Normalize",
}
_POOLING_DIR = "1_Pooling"
_NORMALIZE_DIR = "2_Normalize"
_SUPPORTED_LAYOUT = "a Transformer at the directory root, then Pooling, then optionally Normalize"


@dataclasses.dataclass(frozen=True)
class Pooling:
    """How a sentence-transformers model turns token states into one sentence embedding.

    Args:
        mode: one of `MODES`, as sentence-transformers names it.
        normalize: whether a Normalize module L2-normalizes the pooled vector.
        include_prompt: whether prompt tokens count in the pool (only matters where a prompt is prepended,
            which bortnas never does).
        dense: whether a Dense projection follows the pool; `read_pooling` refuses such a directory, so only a
            caller that builds a `Pooling` by hand sets it, and `write_sentence_files` refuses it.

    Raises:
        ParameterError: `mode` is not one of `MODES`.
    """

    mode: str
    normalize: bool
    include_prompt: bool = True
    dense: bool = False

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ParameterError("mode", f"={self.mode!r} is not a pooling mode bortnas supports: use one of {', '.join(MODES)}.")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Pooling:
        """The inverse of `to_dict`; unknown keys are refused, so a typo never passes as a default.

        Raises:
            ParameterError: an unknown key, or a bad mode.
        """
        unknown = sorted(set(data) - {field.name for field in dataclasses.fields(cls)})
        if unknown:
            raise ParameterError("pooling", f" has unknown keys {', '.join(unknown)}: use mode, normalize, include_prompt, dense.")
        return cls(
            mode=str(data["mode"]),
            normalize=bool(data["normalize"]),
            include_prompt=bool(data.get("include_prompt", True)),
            dense=bool(data.get("dense", False)),
        )


def is_sentence_transformers_dir(directory: Path) -> bool:
    """Whether `directory` was saved by sentence-transformers (it holds modules.json), so it pools as `read_pooling` says."""
    return (directory / "modules.json").is_file()


def read_pooling(directory: Path) -> Pooling:
    """The pooling of the sentence-transformers model in `directory`, read from its JSON files.

    Only layouts bortnas can reproduce exactly pass: the encoder's weights at the directory root (where
    transformers' `from_pretrained` finds them), one Pooling module of one mode, optionally Normalize,
    no Dense projection, no default prompt and no lowercasing the tokenizer does not do itself. Anything
    else would make a student distilled on our pool differ from what `SentenceTransformer(directory)` encodes.

    Raises:
        UserInputError: modules.json, the pooling config or config_sentence_transformers.json is
            unreadable or asks for something bortnas does not reproduce.
        UnsupportedArchitectureError: a module other than Transformer, Pooling and Normalize (a Dense
            projection, say).
    """
    modules_path = directory / "modules.json"
    modules = _read_modules(modules_path)
    kinds = [_module_kind(modules_path, directory, module) for module in modules]
    if "Pooling" not in kinds:
        raise UserInputError(
            f"{modules_path} lists no Pooling module: bortnas needs the sentence embedding's pooling; copy modules.json "
            f"and {_POOLING_DIR}/ from the original model."
        )
    if kinds not in (["Transformer", "Pooling"], ["Transformer", "Pooling", "Normalize"]):
        raise UserInputError(
            f"{modules_path} lists the modules {', '.join(kinds)}: bortnas reproduces only {_SUPPORTED_LAYOUT}; pass a "
            "model of that layout."
        )
    transformer_path = str(modules[0]["path"])
    if transformer_path not in ("", "."):
        raise UserInputError(
            f"{modules_path} puts the Transformer's files in {transformer_path}/, but bortnas loads the encoder from "
            f'{directory} itself: move the files of {transformer_path}/ to the directory root and set its path to "".'
        )
    mode, include_prompt = _read_pooling_config(directory / str(modules[1]["path"]) / "config.json")
    _check_no_default_prompt(directory / "config_sentence_transformers.json")
    _check_lowercasing(directory)
    return Pooling(mode=mode, normalize=len(kinds) == 3, include_prompt=include_prompt)


def read_max_seq_length(directory: Path) -> int | None:
    """The `max_seq_length` of `directory`'s sentence_bert_config.json (the length sentence-transformers truncates to),
    or None where the file or the key is absent (it then truncates to the tokenizer's `model_max_length`).

    Raises:
        UserInputError: the file is unreadable, or the value is not a positive integer.
    """
    path = directory / "sentence_bert_config.json"
    if not path.is_file():
        return None
    config = _read_object(path, "copy sentence_bert_config.json from the original model")
    value = config.get("max_seq_length")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserInputError(
            f"{path} has max_seq_length={value!r}: it must be a positive integer; fix it or copy the file from the original model."
        )
    return value


def write_sentence_files(directory: Path, pooling: Pooling, hidden_size: int, max_seq_length: int) -> None:
    """Write the sentence-transformers files next to a model saved with `save_pretrained`, so that
    `SentenceTransformer(directory)` encodes exactly as `bortnas.model.pooling.pool` does.

    Writes modules.json, 1_Pooling/config.json, 2_Normalize/ (empty: Normalize has no parameters, and
    sentence-transformers reads no file there) where `pooling.normalize`, sentence_bert_config.json and
    config_sentence_transformers.json; overwrites those and nothing else. The files use the layout of
    sentence-transformers 2.x, which 3.x to 6.x read too.

    Args:
        hidden_size: the student's hidden size, the width of its token states (and so of the pool).
        max_seq_length: the number of tokens sentence-transformers truncates each text to.

    Raises:
        ParameterError: `pooling.dense`, or a size that is not a positive integer.
    """
    if pooling.dense:
        raise ParameterError("pooling", ".dense=True cannot be written: bortnas cannot export a Dense projection yet; export without it.")
    for name, value in (("hidden_size", hidden_size), ("max_seq_length", max_seq_length)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ParameterError(name, f"={value!r} must be a positive integer.")
    directory.mkdir(parents=True, exist_ok=True)
    modules: list[dict[str, Any]] = [
        {"idx": 0, "name": "0", "path": "", "type": _MODULE_TYPES["Transformer"]},
        {"idx": 1, "name": "1", "path": _POOLING_DIR, "type": _MODULE_TYPES["Pooling"]},
    ]
    if pooling.normalize:
        modules.append({"idx": 2, "name": "2", "path": _NORMALIZE_DIR, "type": _MODULE_TYPES["Normalize"]})
        (directory / _NORMALIZE_DIR).mkdir(exist_ok=True)
    _write_json(directory / "modules.json", modules)
    (directory / _POOLING_DIR).mkdir(exist_ok=True)
    pooling_config: dict[str, Any] = {"word_embedding_dimension": hidden_size}
    pooling_config.update({flag: mode == pooling.mode for mode, flag in _MODE_FLAGS.items()})
    pooling_config["include_prompt"] = pooling.include_prompt
    _write_json(directory / _POOLING_DIR / "config.json", pooling_config)
    _write_json(directory / "sentence_bert_config.json", {"max_seq_length": max_seq_length, "do_lower_case": False})
    # no "__version__": sentence-transformers warns when a file names a newer version than its own
    _write_json(
        directory / "config_sentence_transformers.json", {"prompts": {}, "default_prompt_name": None, "similarity_fn_name": "cosine"}
    )


# Reading -----------------------------------------------------------------------------------------------------------


def _read_json(path: Path, fix: str) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserInputError(f"cannot read {path} ({e}): {fix}.") from e


def _read_object(path: Path, fix: str) -> dict[str, Any]:
    data = _read_json(path, fix)
    if not isinstance(data, dict):
        raise UserInputError(f"{path} is not a JSON object: {fix}.")
    return data


def _read_modules(path: Path) -> list[dict[str, Any]]:
    fix = "a sentence-transformers directory lists its modules there as a JSON list; copy modules.json from the original model"
    modules = _read_json(path, fix)
    if (
        not isinstance(modules, list)
        or not modules
        or not all(isinstance(m, dict) and isinstance(m.get("path"), str) and isinstance(m.get("type"), str) for m in modules)
    ):
        raise UserInputError(f'{path} is not a JSON list of modules with a "path" and a "type" each: {fix}.')
    # sentence-transformers runs the modules in the file's order (its idx only restates it)
    return modules


def _module_kind(modules_path: Path, directory: Path, module: Mapping[str, Any]) -> str:
    """Transformer, Pooling or Normalize, from a modules.json entry's class path (2.x's `sentence_transformers.models.X`
    and 6.x's `sentence_transformers.<package>.modules.<file>.X` alike)."""
    type_name = str(module["type"])
    kind = type_name.rsplit(".", 1)[-1]
    if type_name.startswith("sentence_transformers.") and kind in _MODULE_TYPES:
        return kind
    where = f"{directory / module['path']}" if module["path"] else str(directory)
    if kind == "Dense":
        raise UnsupportedArchitectureError(
            f"{modules_path} lists a Dense module ({where}): bortnas cannot cut a Dense projection yet; pass a model of "
            f"{_SUPPORTED_LAYOUT}."
        )
    raise UnsupportedArchitectureError(
        f"{modules_path} lists a {type_name} module ({where}), which bortnas does not reproduce; pass a model of {_SUPPORTED_LAYOUT}."
    )


def _read_pooling_config(path: Path) -> tuple[str, bool]:
    """(mode, include_prompt) of a Pooling module's config.json, read as sentence-transformers 6.x reads it:
    `pooling_mode` wins over the older per-mode flags, and a file that turns no flag on means mean pooling."""
    if not path.is_file():
        raise UserInputError(
            f"{path} is missing: a sentence-transformers directory needs its pooling config; copy it from the original model."
        )
    config = _read_object(path, "copy the pooling config from the original model")
    raw = config.get("pooling_mode")
    if raw is None:
        raw = [mode for mode, flag in _MODE_FLAGS.items() if config.get(flag) is True] or "mean"
    modes = [raw] if isinstance(raw, str) else raw
    if not isinstance(modes, list) or not all(isinstance(m, str) for m in modes) or not modes:
        raise UserInputError(
            f"{path} has pooling_mode={raw!r}: it must name one of {', '.join(MODES)}; copy the file from the original model."
        )
    if len(modes) > 1:
        raise UserInputError(
            f"{path} turns on {len(modes)} pooling modes ({', '.join(modes)}), whose vectors sentence-transformers concatenates: "
            "bortnas pools with exactly one; pass a model that pools with one mode."
        )
    if modes[0] not in MODES:
        raise UserInputError(f"{path} asks for pooling mode {modes[0]!r}: bortnas supports {', '.join(MODES)}; pass a model pooled so.")
    include_prompt = config.get("include_prompt", True)
    if not isinstance(include_prompt, bool):
        raise UserInputError(
            f"{path} has include_prompt={include_prompt!r}: it must be true or false; fix it or copy the file from the original model."
        )
    return modes[0], include_prompt


def _check_no_default_prompt(path: Path) -> None:
    """Refuse a default prompt: sentence-transformers prepends it to every text, and bortnas embeds texts as they are."""
    if not path.is_file():
        return
    config = _read_object(path, "copy config_sentence_transformers.json from the original model")
    name = config.get("default_prompt_name")
    prompts = config.get("prompts") or {}
    if name is not None and isinstance(prompts, dict) and prompts.get(name):
        raise UserInputError(
            f"{path} sets default_prompt_name={name!r}, so sentence-transformers prepends {prompts[name]!r} to every text, "
            "but bortnas embeds texts without prompts: set default_prompt_name to null there to distil the unprompted embedding."
        )


def _check_lowercasing(directory: Path) -> None:
    """Refuse do_lower_case=true unless the tokenizer lowercases anyway: sentence-transformers lowercases texts before its
    tokenizer sees them, and bortnas gives texts to the tokenizer as they are."""
    path = directory / "sentence_bert_config.json"
    if not path.is_file():
        return
    if _read_object(path, "copy sentence_bert_config.json from the original model").get("do_lower_case") is not True:
        return
    tokenizer_config = directory / "tokenizer_config.json"
    if tokenizer_config.is_file():
        data = _read_json(tokenizer_config, "save the tokenizer again with save_pretrained")
        if isinstance(data, dict) and data.get("do_lower_case") is True:
            return
    raise UserInputError(
        f"{path} sets do_lower_case=true, but the tokenizer in {directory} does not lowercase (its tokenizer_config.json "
        "has no do_lower_case=true), so bortnas would see other tokens: save a lowercasing tokenizer there, or set "
        "do_lower_case to false."
    )


def _write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
