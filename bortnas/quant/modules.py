"""Quantized layers and the one module-swap call, `quantize_(model, mode)`.

Torch layer. Every quantized layer keeps a latent full-precision `weight` (and `bias`) under the
name of the layer it replaces, so a quantized model's state dict reads like the original and a
chain of modes (BiT's multi-step distillation) can re-quantize a trained student. Export via
`bortnas.quant.pack` stores the codes and scales and marks loaded layers `frozen` (their
`weight` already holds codes * scale).

What each mode quantizes (docs/guides/quantization.md; docs/algorithms.md §4):
- int8: every projection of every encoder layer: int8 weights per output channel, 8-bit
  activations per token, run on the int8 kernel outside training.
- bitnet158: every projection of every encoder layer (Q, K, V, attention output, FFN in, FFN out;
  fused or gated as the family has them, and DeBERTa's position projections):
  ternary weights, 8-bit activations, run on the int8 kernel outside training. Attention products, embeddings, pooler and classifier stay
  full precision.
- bit_w1aK: the same linears with binary (BWN) weights and K-bit elastic activations, signed
  into Q/K/V/O and FFN-in, unsigned into FFN-out (after ReLU, which replaces GELU); Q, K, V and
  the softmax probabilities are quantized before the attention products (signed / unsigned);
  the word embeddings are binarized.
- bibert: the same linears with row-scaled binary weights and sign activations; Bi-Attention;
  the word embeddings are binarized with the same rule.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, TypeVar

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from bortnas.families import family_of
from bortnas.modes import QuantConfig, QuantMode, get_config
from bortnas.quant import functional as Q
from bortnas.quant.attention import IMPLEMENTATION, quantize_attention_
from bortnas.quant.elastic import ElasticActivation

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class QuantLinear(nn.Linear):
    """An `nn.Linear` whose weight and input are quantized in the forward pass.

    Subclasses define `compute_codes` (the weight quantizer) and `quantize_input`. Those that set
    `int8_kernel` quantize their input to 8-bit absmax codes per token and have weight codes that
    fit int8, so outside autograd on the CPU they run the product on an int8 kernel
    (`torch._int_mm`, int32 accumulation) and rescale once: the same values as the simulation up to
    float rounding, at integer speed. Training (autograd on) always runs the simulation, whose
    straight-through gradients the recipe needs, and so does a graph being traced (torch.compile,
    ONNX export), which then holds the quantizers as float operations.
    """

    int8_kernel: ClassVar[bool] = False

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.frozen = False
        self._codes: tuple[torch.Tensor, torch.Tensor] | None = None  # a frozen layer's stored (codes, scale)
        self._kernel_weight: tuple[tuple[int, int, torch.device], torch.Tensor, torch.Tensor] | None = None

    def compute_codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer codes, scale) of `weight` under this layer's quantizer."""
        raise NotImplementedError

    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer codes, scale) with quantized weight = codes * scale; what export packs.

        A frozen layer returns the codes it was loaded with (re-deriving them from codes * scale
        would change a per-tensor absmean scale).
        """
        if self._codes is not None:
            return self._codes
        return self.compute_codes(self.weight.detach())

    def freeze_(self, codes: torch.Tensor, scale: torch.Tensor) -> None:
        """Hold exactly `codes * scale` from now on (a loaded export): no re-quantization, stored codes kept."""
        with torch.no_grad():
            self.weight.copy_(codes * scale)
        self._codes = (codes, scale)
        self.frozen = True

    def quantized_weight(self) -> torch.Tensor:
        codes, scale = self.weight_codes()
        return Q.straight_through(self.weight, codes * scale)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.int8_kernel and x.device.type == "cpu" and not torch.is_grad_enabled() and not torch.compiler.is_compiling():
            return self._int8_forward(x)
        weight = self.weight if self.frozen else self.quantized_weight()
        return F.linear(self.quantize_input(x), weight, self.bias)

    def _int8_weight(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(int8 codes transposed to (in, out), scale as a row of out) for the kernel, cached until the weight changes."""
        # a weight made under torch.inference_mode has no version counter: its storage identifies it
        version = -1 if self.weight.is_inference() else self.weight._version
        key = (version, self.weight.data_ptr(), self.weight.device)
        if self._kernel_weight is None or self._kernel_weight[0] != key:
            codes, scale = self.weight_codes()
            self._kernel_weight = (key, codes.to(torch.int8).t(), scale.detach().to(torch.float32).reshape(1, -1))
        return self._kernel_weight[1], self._kernel_weight[2]

    def _int8_forward(self, x: torch.Tensor) -> torch.Tensor:
        codes_t, weight_scale = self._int8_weight()
        x_codes, x_scale = Q.absmax_codes(x.reshape(-1, self.in_features).float(), 8)
        y = torch._int_mm(x_codes.to(torch.int8), codes_t).to(torch.float32)
        y = y.div_(x_scale).mul_(weight_scale)
        if self.bias is not None:
            y = y.add_(self.bias)
        return y.to(x.dtype).view(*x.shape[:-1], self.out_features)

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs: object) -> QuantLinear:
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, **kwargs)
        new.to(linear.weight.device)
        with torch.no_grad():
            new.weight.copy_(linear.weight)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
        return new


class Int8Linear(QuantLinear):
    """int8: per-row absmax int8 weights, 8-bit absmax activations per token, on the int8 kernel."""

    int8_kernel = True

    def compute_codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return Q.int8_row_codes(weight)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return Q.absmax_activation(x, 8)


class BitLinear158(QuantLinear):
    """BitNet b1.58: ternary absmean weights (per tensor), 8-bit absmax activations (per token), on the int8 kernel."""

    int8_kernel = True

    def compute_codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return Q.ternary_codes(weight)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return Q.absmax_activation(x, 8)


class BiTLinear(QuantLinear):
    """BiT: BWN weights; input shifted by a learned per-feature threshold, then elastic-quantized."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 1, signed: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.move = nn.Parameter(torch.zeros(in_features))
        self.act = ElasticActivation(bits, signed)

    def compute_codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return Q.bwn_codes(weight)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.move)


class BiBERTLinear(QuantLinear):
    """BiBERT: row-scaled binary weights with the clamp STE, sign activations."""

    def compute_codes(self, weight: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return Q.bibert_codes(weight)

    def quantized_weight(self) -> torch.Tensor:
        return Q.bibert_weight(self.weight)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return Q.bibert_activation(x)


class QuantEmbedding(nn.Embedding):
    """A binarized lookup table: BWN per tensor (BiT) or per row (BiBERT); latent weight kept."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None = None, per_row: bool = False) -> None:
        super().__init__(num_embeddings, embedding_dim, padding_idx=padding_idx)
        self.per_row = per_row
        self.frozen = False
        self._codes: tuple[torch.Tensor, torch.Tensor] | None = None

    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._codes is not None:
            return self._codes
        weight = self.weight.detach()
        return Q.bibert_codes(weight) if self.per_row else Q.bwn_codes(weight)

    def freeze_(self, codes: torch.Tensor, scale: torch.Tensor) -> None:
        """Hold exactly `codes * scale` from now on (a loaded export), as `QuantLinear.freeze_`."""
        with torch.no_grad():
            self.weight.copy_(codes * scale)
        self._codes = (codes, scale)
        self.frozen = True

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        if self.frozen:
            weight = self.weight
        elif self.per_row:
            weight = Q.bibert_weight(self.weight)
        else:
            codes, scale = self.weight_codes()
            weight = Q.straight_through(self.weight, codes * scale)
        return F.embedding(ids, weight, self.padding_idx)

    @classmethod
    def from_embedding(cls, table: nn.Embedding, per_row: bool) -> QuantEmbedding:
        new = cls(table.num_embeddings, table.embedding_dim, table.padding_idx, per_row=per_row)
        new.to(table.weight.device)
        with torch.no_grad():
            new.weight.copy_(table.weight)
        return new


LinearHandler = Callable[[nn.Linear, QuantConfig, bool], QuantLinear]
# One handler per `QuantConfig.linear` kind: how an encoder linear is replaced. Filled at import
# time by `register_linear`, read-only after that.
LINEAR_HANDLERS: dict[str, LinearHandler] = {}


def register_linear(kind: str) -> Callable[[LinearHandler], LinearHandler]:
    """Bind the handler of a `QuantConfig.linear` kind (as torchao binds a handler to its config type)."""

    def bind(handler: LinearHandler) -> LinearHandler:
        if kind in LINEAR_HANDLERS:
            raise ValueError(f"linear kind {kind!r} has a handler already")
        LINEAR_HANDLERS[kind] = handler
        return handler

    return bind


@register_linear("int8_absmax")
def _int8(linear: nn.Linear, config: QuantConfig, signed: bool) -> QuantLinear:
    return Int8Linear.from_linear(linear)


@register_linear("ternary_absmean")
def _ternary(linear: nn.Linear, config: QuantConfig, signed: bool) -> QuantLinear:
    return BitLinear158.from_linear(linear)


@register_linear("bwn_elastic")
def _bwn_elastic(linear: nn.Linear, config: QuantConfig, signed: bool) -> QuantLinear:
    return BiTLinear.from_linear(linear, bits=int(config.activation_bits), signed=signed)


@register_linear("bibert_sign")
def _bibert(linear: nn.Linear, config: QuantConfig, signed: bool) -> QuantLinear:
    return BiBERTLinear.from_linear(linear)


ModuleT = TypeVar("ModuleT", bound=nn.Module)


def quantize_(model: PreTrainedModel, mode: QuantConfig | QuantMode | str) -> PreTrainedModel:
    """Swap the modules of a classifier of any supported family in place for `mode`; returns the model.

    The family adapter names the modules. The mode's config decides everything: `linear` picks the
    handler of every encoder projection (Q, K, V or their fused matrix, DeBERTa's position
    projections, attention output, FFN in and out; the FFN output's input follows an activation,
    so it is quantized unsigned unless a gate multiplies it), `attention` whether the attention
    products are quantized (`bortnas.quant.attention`), `word_embedding_bits` whether the word table is
    binarized, `ffn_activation` what replaces GELU. Also works on an already-quantized model
    (re-quantizing its latent weights), which is how a distillation chain moves from one mode to
    the next. A full-precision mode leaves the model unchanged.

    Raises:
        ValueError: an unknown mode, or a config whose `linear` kind has no handler.
    """
    config = get_config(mode)
    if not config.quantized:
        return model
    if config.linear not in LINEAR_HANDLERS:
        raise ValueError(f"mode {config.name}: no handler for linear kind {config.linear!r} (known: {', '.join(LINEAR_HANDLERS)})")
    handler = LINEAR_HANDLERS[config.linear]
    family = family_of(model.config)
    for view in family.layers(model):
        for slot, signed in view.linears():
            slot.set(handler(slot.linear, config, signed))
        if config.attention != "softmax":
            quantize_attention_(view, family, config)
        if config.ffn_activation is not None:
            view.activation.set(ACT2FN[config.ffn_activation])
    if config.binary_word_embeddings:
        word = family.embeddings(model).word
        word.set(QuantEmbedding.from_embedding(word.table, per_row=config.word_embedding_scales == "row"))
    if config.ffn_activation is not None:
        setattr(model.config, family.activation_key, config.ffn_activation)
    if config.attention != "softmax" and family.attention_interface:
        model.config._attn_implementation = IMPLEMENTATION  # every attention module reads the model's config
    model.config.bortnas_quant = config.name
    return model


def dequantize_(model: ModuleT) -> ModuleT:
    """Swap every int8-kernel `QuantLinear` for an `nn.Linear` holding its quantized weight
    (codes * scale) and no activation quantizer; returns the model.

    The graph a runtime's own int8 quantizer takes (`bortnas.runtime.onnx.export_int8_onnx`): a
    per-channel absmax of these weights recovers the model's codes exactly, and the runtime
    quantizes activations its own way. Binary layers are left as they are (no int8 kernel runs them).
    """
    for name, module in list(model.named_modules()):
        if isinstance(module, QuantLinear) and module.int8_kernel:
            codes, scale = module.weight_codes()
            plain = nn.Linear(module.in_features, module.out_features, bias=module.bias is not None)
            with torch.no_grad():
                plain.weight.copy_(codes * scale)
                if module.bias is not None:
                    plain.bias.copy_(module.bias)
            parent, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent) if parent else model, child, plain)
    return model


def quantized_modules(model: nn.Module) -> dict[str, QuantLinear | QuantEmbedding]:
    """The modules whose weights are stored as codes and scales, by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (QuantLinear, QuantEmbedding))}
