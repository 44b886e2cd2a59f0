"""Packed low-bit weights in safetensors, and `load(DIR)` that rebuilds a quantized model.

Torch layer. A quantized layer `<name>` is stored as `<name>.weight.packed` (uint8: 1 bit per
binary weight, 2 bits per ternary weight, little-end first within a byte, 8 bits per int8 weight) and
`<name>.weight.scale` (float32: one per tensor, or one per row); every other tensor is stored
as is. The header metadata names the format and the mode, so a file read with another mode or
with shapes that do not match its config is refused with one clear line.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import nn

from bortnas.core.errors import ExportError
from bortnas.modes import QuantConfig, QuantMode, get_config
from bortnas.quant.modules import QuantEmbedding, QuantLinear, quantize_, quantized_modules

if TYPE_CHECKING:
    from transformers import PreTrainedModel

FORMAT = "bortnas-packed-1"
WEIGHTS_NAME = "model.safetensors"
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


def save_quantized(model: PreTrainedModel, mode: QuantMode, directory: Path) -> None:
    """Write config.json and the packed model.safetensors of a quantized model into `directory`."""
    from safetensors.torch import save_file

    model.config.save_pretrained(directory)
    save_file(quantized_state_dict(model, mode), str(directory / WEIGHTS_NAME), metadata={"format": FORMAT, "bortnas_quant": mode.value})


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


def load(directory: str | Path) -> PreTrainedModel:
    """Rebuild an exported bortnas model (any mode) in eval mode, offline.

    Full-precision exports are stock transformers directories; quantized ones are rebuilt from
    config.json, the mode in bortnas.json and the packed weights, and run exactly the arithmetic
    of the model that was exported.

    Raises:
        ExportError: the directory is not a bortnas export, or its weights do not match its config or mode.
    """
    from safetensors import safe_open
    from transformers import AutoConfig, AutoModelForSequenceClassification

    directory = Path(directory)
    meta_path = directory / "bortnas.json"
    if not meta_path.is_file():
        raise ExportError(f"{directory} has no bortnas.json: pass a directory written by `bortnas export`.")
    mode = QuantMode(json.loads(meta_path.read_text())["candidate"].get("quant", "fp32"))
    if mode is QuantMode.FP32:
        return AutoModelForSequenceClassification.from_pretrained(directory, local_files_only=True).eval()
    weights = directory / WEIGHTS_NAME
    with safe_open(str(weights), framework="pt") as f:
        meta = f.metadata() or {}
        if meta.get("format") != FORMAT or meta.get("bortnas_quant") != mode.value:
            raise ExportError(
                f"{weights} holds format={meta.get('format')!r} mode={meta.get('bortnas_quant')!r}, "
                f"but bortnas.json says {mode.value}: the files do not belong together."
            )
        tensors = {k: f.get_tensor(k) for k in f.keys()}
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    model = quantize_(AutoModelForSequenceClassification.from_config(config), mode)
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
