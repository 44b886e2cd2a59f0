"""Saving and loading a model of any mode: `save(model, DIR)` and `load(DIR)`, with packed low-bit weights.

Torch layer. A directory holds config.json, model.safetensors and bortnas.json (`manifest`). In a
quantized model's weights file, layer `<name>` is stored as `<name>.weight.packed` (uint8: 1 bit per
binary weight, 2 bits per ternary weight, little-end first within a byte, 8 bits per int8 weight) and
`<name>.weight.scale` (float32: one per tensor, or one per row); every other tensor is stored
as is. The mode is recorded in config.json, which `load` trusts, and repeated in the weights'
metadata and bortnas.json, which must agree with it: a directory whose records differ, or whose
shapes do not match its config, is refused with one clear line.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from bortnas import __version__
from bortnas.core.errors import ExportError
from bortnas.modes import QuantConfig, QuantMode, get_config
from bortnas.quant.modules import QuantEmbedding, QuantLinear, quantize_, quantized_modules

if TYPE_CHECKING:
    from transformers import PreTrainedModel

FORMAT = "bortnas-packed-1"
WEIGHTS_NAME = "model.safetensors"
MANIFEST_NAME = "bortnas.json"
AUTO_CLASS = "AutoModelForSequenceClassification"  # the class of studies made before tasks, and the default
# the transformers auto classes `load` rebuilds a model with, by the model's task head, and their mappings
AUTO_CLASSES = {
    "AutoModelForSequenceClassification": "MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING",
    "AutoModelForTokenClassification": "MODEL_FOR_TOKEN_CLASSIFICATION_MAPPING",
    "AutoModelForMaskedLM": "MODEL_FOR_MASKED_LM_MAPPING",
    "AutoModel": "MODEL_MAPPING",
}
_BINARY_PLACES = 2 ** torch.arange(8, dtype=torch.uint8)


def pack_binary(codes: torch.Tensor) -> torch.Tensor:
    """{-1, 1} codes -> uint8, 8 per byte (bit k of byte j is code 8j + k; 1 means +1)."""
    bits = (codes.flatten() > 0).to(torch.uint8)
    bits = torch.cat([bits, bits.new_zeros(-len(bits) % 8)]).view(-1, 8)
    return (bits * _BINARY_PLACES).sum(dim=1, dtype=torch.uint8)


def unpack_binary(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    bits = (packed.view(-1, 1) & _BINARY_PLACES) > 0
    return (bits.flatten()[: shape.numel()].to(torch.float32) * 2 - 1).view(shape)


def pack_ternary(codes: torch.Tensor) -> torch.Tensor:
    """{-1, 0, 1} codes -> uint8, 4 per byte (2 bits each: code + 1, code 4j + k at bits 2k)."""
    values = (codes.flatten() + 1).to(torch.uint8)
    values = torch.cat([values, values.new_ones(-len(values) % 4)]).view(-1, 4)
    return (values << torch.tensor([0, 2, 4, 6], dtype=torch.uint8)).sum(dim=1, dtype=torch.uint8)


def unpack_ternary(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    values = (packed.view(-1, 1) >> torch.tensor([0, 2, 4, 6], dtype=torch.uint8)) & 3
    if bool((values == 3).any()):
        raise ValueError("2-bit value 3 is not a ternary code")
    return (values.flatten()[: shape.numel()].to(torch.float32) - 1).view(shape)


def pack_int8(codes: torch.Tensor) -> torch.Tensor:
    """Codes in [-127, 127] -> uint8, one per byte (the two's-complement byte of the int8 code)."""
    return codes.flatten().to(torch.int8).view(torch.uint8)


def unpack_int8(packed: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    values = packed.flatten()[: shape.numel()].view(torch.int8)
    if bool((values == -128).any()):
        raise ValueError("byte 0x80 (-128) is not a symmetric int8 code")
    return values.to(torch.float32).view(shape)


# One codec per `QuantConfig.packing` kind: (pack, unpack, codes per byte).
PackFn = Callable[[torch.Tensor], torch.Tensor]
UnpackFn = Callable[[torch.Tensor, torch.Size], torch.Tensor]
CODECS: dict[str, tuple[PackFn, UnpackFn, int]] = {
    "int8": (pack_int8, unpack_int8, 1),
    "ternary2": (pack_ternary, unpack_ternary, 4),
    "binary1": (pack_binary, unpack_binary, 8),
}


def _codec(mode: QuantConfig | QuantMode | str) -> tuple[PackFn, UnpackFn, int]:
    config = get_config(mode)
    if config.packing not in CODECS:
        raise ExportError(f"mode {config.name} stores no packed weights (packing={config.packing!r}).")
    return CODECS[config.packing]


def packed_bytes(numel: int, mode: QuantConfig | QuantMode | str) -> int:
    return -(-numel // _codec(mode)[2])


def quantized_state_dict(model: nn.Module, mode: QuantMode) -> dict[str, torch.Tensor]:
    """The model's tensors with every quantized layer's weight replaced by packed codes and scales."""
    pack = _codec(mode)[0]
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    for name, module in quantized_modules(model).items():
        codes, scale = module.weight_codes()
        del state[f"{name}.weight"]
        state[f"{name}.weight.packed"] = pack(codes)
        state[f"{name}.weight.scale"] = scale.detach().to(torch.float32).reshape(-1).contiguous()
    return state


def model_mode(model: PreTrainedModel) -> QuantMode:
    """The mode `model` runs: its config's `bortnas_quant` (set by `quantize_`), fp32 where there is none.

    Raises:
        ExportError: the config names no registered mode.
    """
    name = getattr(model.config, "bortnas_quant", QuantMode.FP32.value)
    try:
        return QuantMode(name)
    except ValueError as e:
        raise ExportError(f"the model's config has bortnas_quant={name!r}: {e}.") from e


def auto_class_of(model: PreTrainedModel) -> str | None:
    """The transformers auto class that builds exactly `model`'s class from its config, or None.

    `load` rebuilds every mode through that class (fp32 by `from_pretrained`, a quantized mode by
    `from_config` and `quantize_`), so a model of any other class could not be read back.
    """
    from transformers.models.auto import modeling_auto

    for name, mapping in AUTO_CLASSES.items():
        try:
            if getattr(modeling_auto, mapping)[type(model.config)] is type(model):
                return name
        except KeyError:
            continue
    return None


def manifest(mode: QuantMode, model_class: str = AUTO_CLASS) -> dict[str, Any]:
    """What `save` writes to bortnas.json for a model of `mode` built by `model_class` (the keys of `MANIFEST_KEYS`).

    `transformers_loadable` says whether stock transformers alone reads the directory back:
    true for full precision, whose directory `save_pretrained` writes and `load` itself reads with
    `<model_class>.from_pretrained` (so whatever `load` reproduces, stock transformers reproduces;
    `bortnas export` checks the outputs along that very route before it keeps an export); false for
    a quantized mode, whose packed weights only `load` unpacks.
    """
    stock = not mode.config.quantized
    return {
        "bortnas_version": __version__,
        "quant": mode.value,
        "model_class": model_class,
        "transformers_loadable": stock,
        "auto_class": model_class if stock else None,
        "load_with": f"transformers.{model_class}.from_pretrained" if stock else "bortnas.load",
    }


MANIFEST_KEYS = frozenset(manifest(QuantMode.FP32))


def save(model: PreTrainedModel, directory: str | Path) -> None:
    """Write `model` (any mode) into `directory` so that `load(directory)` rebuilds it: the one writer of bortnas models.

    The directory gets config.json, model.safetensors and bortnas.json (`manifest`). A
    full-precision model is written by `save_pretrained` as it is, a stock transformers directory;
    a quantized one gets its config and its packed weights (module docstring), which only `load`
    reads. The mode is the one `model_mode` reads, so it lands in config.json, where `load` takes
    it from. No tokenizer is written: a caller that has one saves it beside the model.
    `directory` is created if missing and same-named files in it are replaced; `model` is not changed.

    Raises:
        ExportError: `model` is not a class one of `AUTO_CLASSES` builds for its config (`load`
            could not rebuild it), or its layers are not those of the mode its config names.

    Example:
        >>> from transformers import BertConfig, BertForSequenceClassification
        >>> shape = BertConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64)
        >>> save(quantize_(BertForSequenceClassification(shape), "bitnet158"), "tiny-ternary")
        >>> load("tiny-ternary").config.bortnas_quant
        'bitnet158'
    """
    from safetensors.torch import save_file

    mode = model_mode(model)
    model_class = auto_class_of(model)
    if model_class is None:
        raise ExportError(
            f"{type(model).__name__} is not a class that {', '.join(AUTO_CLASSES)} builds for a {type(model.config).__name__}, "
            "so `load` could not rebuild it: save a sequence or token classifier, or a base model, of a supported family."
        )
    layers = quantized_modules(model)
    if bool(layers) != mode.config.quantized:
        found = f"{len(layers)} quantized layers" if layers else "no quantized layer"
        raise ExportError(
            f"the model's config says bortnas_quant={mode.value!r} but it has {found}: quantize it with "
            "`quantize_(model, mode)`, which sets both."
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if mode.config.quantized:
        model.config.save_pretrained(directory)
        save_file(
            quantized_state_dict(model, mode), str(directory / WEIGHTS_NAME), metadata={"format": FORMAT, "bortnas_quant": mode.value}
        )
    else:
        model.save_pretrained(directory)
    (directory / MANIFEST_NAME).write_text(json.dumps(manifest(mode, model_class), indent=2))


def save_quantized(model: PreTrainedModel, mode: QuantMode, directory: Path) -> None:
    """`save` for a caller that names the mode it expects `model` to run (benchmarks/deploy.py).

    Raises:
        ExportError: `model` runs another mode, or `save` refuses it.
    """
    if model_mode(model) is not QuantMode(mode):
        raise ExportError(f"asked to save a {QuantMode(mode).value} model, but the model runs {model_mode(model).value}.")
    save(model, directory)


def add_metadata(directory: str | Path, extra: Mapping[str, Any]) -> None:
    """Add `extra` to the bortnas.json that `save` wrote in `directory` (an export's metrics and provenance), in place.

    Raises:
        ExportError: `directory` has no bortnas.json.
        ValueError: `extra` names a key of `MANIFEST_KEYS`: those are `save`'s to write, from the model itself.
    """
    path = Path(directory) / MANIFEST_NAME
    if not path.is_file():
        raise ExportError(f"{directory} has no {MANIFEST_NAME}: write the model with `save` first.")
    clash = sorted(MANIFEST_KEYS & set(extra))
    if clash:
        raise ValueError(f"{', '.join(clash)} in bortnas.json are written by `save` from the model, not added by its caller.")
    path.write_text(json.dumps({**json.loads(path.read_text()), **extra}, indent=2))


def _restore(
    module: QuantLinear | QuantEmbedding, name: str, packed: torch.Tensor, scale: torch.Tensor, mode: QuantMode, source: str
) -> None:
    shape = module.weight.shape
    expected = packed_bytes(shape.numel(), mode)
    if packed.dtype != torch.uint8 or packed.numel() != expected:
        raise ExportError(
            f"{source}: {name}.weight.packed has {packed.numel()} {packed.dtype} values, but a {tuple(shape)} {mode.value} "
            f"weight needs {expected} uint8 bytes: the file does not match its config."
        )
    per_row = scale.numel() == shape[0] and scale.numel() != 1
    if scale.numel() != 1 and not per_row:
        raise ExportError(f"{source}: {name}.weight.scale has {scale.numel()} values; expected 1 or {shape[0]}.")
    try:
        codes = _codec(mode)[1](packed, shape)
    except ValueError as e:
        raise ExportError(f"{source}: {name}.weight.packed is not a {mode.value} weight ({e}).") from e
    module.freeze_(codes, scale.view(-1, 1) if per_row else scale.reshape(()))


def _stored_mode(weights: Path) -> str | None:
    """The mode a safetensors file's metadata records: `bortnas_quant` if it holds packed weights, else fp32."""
    from safetensors import safe_open

    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata() or {}
    if meta.get("format") == FORMAT:
        return meta.get("bortnas_quant")
    return QuantMode.FP32.value


def load(directory: str | Path) -> PreTrainedModel:
    """Rebuild a model that `save` (or `bortnas export`, which writes through it) wrote, in eval mode, offline.

    The mode is read from config.json (`bortnas_quant`, absent for fp32), the one record `load`
    trusts: the model is rebuilt from its config and the mode is part of it (which layers are
    swapped, the activation, the attention), and `quantize_` sets it on the model itself, so every
    writer carries it. The other records must agree with it, or the directory is refused as files
    that do not belong together: bortnas.json's `quant` (and an export's `candidate.quant`), for
    people and tools that read the mode without transformers, and the weights file's metadata,
    which says how its bytes are to be read. A full-precision directory is read by
    its auto class's `from_pretrained`, as stock transformers reads it; a quantized
    one is rebuilt from its config and its packed weights, and runs exactly the arithmetic of the
    model that was saved. The class is bortnas.json's `model_class` (a sequence classifier for
    directories written before it existed).

    Raises:
        ExportError: the directory has no bortnas.json, its records of the mode disagree, or its
            weights do not match its config or mode.

    Example:
        >>> model = load("tiny-ternary")  # a directory written by `save`
        >>> model.config.bortnas_quant
        'bitnet158'
    """
    import transformers
    from safetensors import safe_open
    from transformers import AutoConfig

    directory = Path(directory)
    meta_path = directory / MANIFEST_NAME
    if not meta_path.is_file():
        raise ExportError(f"{directory} has no {MANIFEST_NAME}: pass a directory written by `bortnas.quant.pack.save` or `bortnas export`.")
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    name = getattr(config, "bortnas_quant", QuantMode.FP32.value)
    try:
        mode = QuantMode(name)
    except ValueError as e:
        raise ExportError(f"{directory}/config.json has bortnas_quant={name!r}: {e}.") from e
    meta = json.loads(meta_path.read_text())
    candidate = meta.get("candidate")
    weights = directory / WEIGHTS_NAME
    if mode.config.quantized and not weights.is_file():
        raise ExportError(f"{directory} has no {WEIGHTS_NAME}: a {mode.value} model's packed weights are stored there.")
    records = {
        f"{MANIFEST_NAME} quant": meta.get("quant"),
        f"{MANIFEST_NAME} candidate.quant": candidate.get("quant") if isinstance(candidate, dict) else None,
        # fp32 weights may be sharded by save_pretrained, with no single file to read
        f"{WEIGHTS_NAME} metadata": _stored_mode(weights) if weights.is_file() else None,
    }
    for where, recorded in records.items():
        if recorded is not None and recorded != mode.value:
            raise ExportError(
                f"{directory}: config.json says bortnas_quant={mode.value!r} but {where} says {recorded!r}: "
                "the files do not belong together; write the directory again with `save`."
            )
    model_class = meta.get("model_class", AUTO_CLASS)
    if model_class not in AUTO_CLASSES:
        raise ExportError(f"{meta_path} says model_class={model_class!r}; bortnas writes one of {', '.join(AUTO_CLASSES)}.")
    auto = getattr(transformers, model_class)
    if not mode.config.quantized:
        return auto.from_pretrained(directory, local_files_only=True).eval()
    with safe_open(str(weights), framework="pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    model = quantize_(auto.from_config(config), mode)
    for name, module in quantized_modules(model).items():
        try:
            packed, scale = tensors.pop(f"{name}.weight.packed"), tensors.pop(f"{name}.weight.scale")
        except KeyError:
            raise ExportError(f"{weights} has no packed weight for {name}: it was not written for this {mode.value} model.") from None
        _restore(module, name, packed, scale, mode, str(weights))
    try:
        missing, unexpected = model.load_state_dict(tensors, strict=False)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1].strip()
        raise ExportError(f"{weights} does not match its config: {first}") from None
    missing = [k for k in missing if not k.endswith(".weight") or k[: -len(".weight")] not in quantized_modules(model)]
    if missing or unexpected:
        raise ExportError(f"{weights} does not match its config: missing {missing[:3]}, unexpected {unexpected[:3]}.")
    return model.eval()
