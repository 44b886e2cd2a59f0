"""Quantized layers and the one module-swap call, `quantize_(model, mode)`.

Torch layer. Every quantized layer keeps a latent full-precision `weight` (and `bias`) under the
name of the layer it replaces, so a quantized model's state dict reads like the original and a
chain of modes (BiT's multi-step distillation) can re-quantize a trained student. Export via
`bortnas.quant.pack` stores the codes and scales and marks loaded layers `frozen` (their
`weight` already holds codes * scale).

What each mode quantizes (README "Quantization modes"; docs/algorithms.md §4):
- bitnet158: every projection of every encoder layer (Q, K, V, attention output, FFN in, FFN out;
  fused or gated as the family has them, and DeBERTa's position projections):
  ternary weights, 8-bit activations. Attention products, embeddings, pooler and classifier stay
  full precision.
- bit_w1aK: the same linears with binary (BWN) weights and K-bit elastic activations, signed
  into Q/K/V/O and FFN-in, unsigned into FFN-out (after ReLU, which replaces GELU); Q, K, V and
  the softmax probabilities are quantized before the attention products (signed / unsigned);
  the word embeddings are binarized.
- bibert: the same linears with row-scaled binary weights and sign activations; Bi-Attention;
  the word embeddings are binarized with the same rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol, cast

import torch
import torch.nn.functional as F
from torch import nn
from transformers.activations import ACT2FN

from bortnas.families import check_modes, family_of
from bortnas.modes import QuantConfig, QuantMode, get_config
from bortnas.quant import functional as Q

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class SelfAttention(Protocol):
    """The self-attention of a BERT-layout family (`Family.replaceable_attention`), which QuantSelfAttention replaces."""

    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    num_attention_heads: int
    attention_head_size: int
    dropout: nn.Dropout


class ElasticActivation(nn.Module):
    """BiT's elastic activation quantizer: learned step `alpha`, set from the first batch it sees."""

    initialised: torch.Tensor  # a buffer

    def __init__(self, bits: int, signed: bool) -> None:
        super().__init__()
        self.bits, self.signed = bits, signed
        self.bounds = Q.elastic_bounds(bits, signed)
        self.alpha = nn.Parameter(torch.tensor(1.0))
        self.register_buffer("initialised", torch.tensor(False))
        # Host copy of `initialised` once it is known to be set: reading the buffer on a GPU waits
        # for the device to drain, and this runs in every forward pass of every quantized layer.
        self._initialised_seen = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self._initialised_seen:
            if not bool(self.initialised):
                with torch.no_grad():
                    self.alpha.copy_(Q.elastic_init(x, self.bits, self.signed))
                    self.initialised.fill_(True)
            self._initialised_seen = True
        return Q.ElasticQuant.apply(x, self.alpha, *self.bounds)

    def _load_from_state_dict(self, *args: object, **kwargs: object) -> None:
        super()._load_from_state_dict(*args, **kwargs)
        self._initialised_seen = False  # the loaded buffer decides again

    def extra_repr(self) -> str:
        return f"bits={self.bits}, signed={self.signed}"


class QuantLinear(nn.Linear):
    """An `nn.Linear` whose weight and input are quantized in the forward pass."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.frozen = False

    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        """(integer codes, scale) with quantized weight = codes * scale; what export packs."""
        raise NotImplementedError

    def quantized_weight(self) -> torch.Tensor:
        codes, scale = self.weight_codes()
        return Q.straight_through(self.weight, codes * scale)

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight if self.frozen else self.quantized_weight()
        return F.linear(self.quantize_input(x), weight, self.bias)

    @classmethod
    def from_linear(cls, linear: nn.Linear, **kwargs: object) -> QuantLinear:
        new = cls(linear.in_features, linear.out_features, bias=linear.bias is not None, **kwargs)
        new.to(linear.weight.device)
        with torch.no_grad():
            new.weight.copy_(linear.weight)
            if linear.bias is not None:
                new.bias.copy_(linear.bias)
        return new


class BitLinear158(QuantLinear):
    """BitNet b1.58: ternary absmean weights (per tensor), 8-bit absmax activations (per token)."""

    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        return Q.ternary_codes(self.weight.detach())

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return Q.absmax_activation(x, 8)


class BiTLinear(QuantLinear):
    """BiT: BWN weights; input shifted by a learned per-feature threshold, then elastic-quantized."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, bits: int = 1, signed: bool = True) -> None:
        super().__init__(in_features, out_features, bias=bias)
        self.move = nn.Parameter(torch.zeros(in_features))
        self.act = ElasticActivation(bits, signed)

    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        return Q.bwn_codes(self.weight.detach())

    def quantize_input(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(x + self.move)


class BiBERTLinear(QuantLinear):
    """BiBERT: row-scaled binary weights with the clamp STE, sign activations."""

    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        return Q.bibert_codes(self.weight.detach())

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

    def weight_codes(self) -> tuple[torch.Tensor, torch.Tensor]:
        weight = self.weight.detach()
        return Q.bibert_codes(weight) if self.per_row else Q.bwn_codes(weight)

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


def _additive(mask: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    """transformers passes a bool keep-mask, an additive float mask or None; make it additive."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(~mask, -10000.0)


class QuantSelfAttention(nn.Module):
    """Drop-in for BERT/RoBERTa self-attention: BiT (quantized operands) or BiBERT Bi-Attention.

    Keeps `query`, `key`, `value` under their names; returns (context, None) as transformers expects.
    """

    def __init__(self, source: SelfAttention, config: QuantConfig) -> None:
        super().__init__()
        self.kind = config.attention
        self.num_attention_heads = source.num_attention_heads
        self.attention_head_size = source.attention_head_size
        self.query, self.key, self.value = source.query, source.key, source.value
        self.dropout = source.dropout
        if self.kind == "elastic":
            bits = int(config.attention_bits)
            self.query_act = ElasticActivation(bits, signed=True)
            self.key_act = ElasticActivation(bits, signed=True)
            self.value_act = ElasticActivation(bits, signed=True)
            self.probs_act = ElasticActivation(bits, signed=False)

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        return x.view(*x.shape[:-1], -1, self.attention_head_size).transpose(1, 2)

    def forward(
        self, hidden_states: torch.Tensor, attention_mask: torch.Tensor | None = None, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, None]:
        query, key, value = (self._heads(m(hidden_states)) for m in (self.query, self.key, self.value))
        mask = _additive(attention_mask, query.dtype)
        if self.kind == "bi":
            context = Q.bi_attention(query, key, value, mask)
        else:
            scores = self.query_act(query) @ self.key_act(key).transpose(-1, -2) / math.sqrt(self.attention_head_size)
            if mask is not None:
                scores = scores + mask
            probs = self.dropout(self.probs_act(scores.softmax(-1)))
            context = probs @ self.value_act(value)
        context = context.transpose(1, 2).reshape(*hidden_states.shape[:-1], -1)
        return context, None


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


@register_linear("ternary_absmean")
def _ternary(linear: nn.Linear, config: QuantConfig, signed: bool) -> QuantLinear:
    return BitLinear158.from_linear(linear)


@register_linear("bwn_elastic")
def _bwn_elastic(linear: nn.Linear, config: QuantConfig, signed: bool) -> QuantLinear:
    return BiTLinear.from_linear(linear, bits=int(config.activation_bits), signed=signed)


@register_linear("bibert_sign")
def _bibert(linear: nn.Linear, config: QuantConfig, signed: bool) -> QuantLinear:
    return BiBERTLinear.from_linear(linear)


def quantize_(model: PreTrainedModel, mode: QuantConfig | QuantMode | str) -> PreTrainedModel:
    """Swap the modules of a classifier of any supported family in place for `mode`; returns the model.

    The family adapter names the modules. The mode's config decides everything: `linear` picks the
    handler of every encoder projection (Q, K, V or their fused matrix, DeBERTa's position
    projections, attention output, FFN in and out)
    (the FFN output's input follows an activation, so it is quantized unsigned), `attention`
    whether self-attention is replaced, `word_embedding_bits` whether the word table is
    binarized, `ffn_activation` what replaces GELU. Also works on an already-quantized model
    (re-quantizing its latent weights), which is how a distillation chain moves from one mode to
    the next. A full-precision mode leaves the model unchanged.

    Raises:
        ValueError: an unknown mode, or a config whose `linear` kind has no handler.
        UnsupportedArchitectureError: a mode that replaces self-attention on a family whose
            attention is not BERT's.
    """
    config = get_config(mode)
    if not config.quantized:
        return model
    if config.linear not in LINEAR_HANDLERS:
        raise ValueError(f"mode {config.name}: no handler for linear kind {config.linear!r} (known: {', '.join(LINEAR_HANDLERS)})")
    handler = LINEAR_HANDLERS[config.linear]
    family = family_of(model.config)
    if config.attention != "softmax":
        check_modes(family, [config.name], "quantize_")
    for view in family.layers(model):
        for slot, signed in view.linears():
            slot.set(handler(slot.linear, config, signed))
        if config.attention != "softmax" and view.attention_slot is not None:
            # its new activation quantizers are created on the CPU; follow the layer's device
            source = cast(SelfAttention, view.attention_slot.get())
            view.attention_slot.set(QuantSelfAttention(source, config).to(source.query.weight.device))
        if config.ffn_activation is not None:
            view.activation.set(ACT2FN[config.ffn_activation])
    if config.binary_word_embeddings:
        word = family.embeddings(model).word
        word.set(QuantEmbedding.from_embedding(word.table, per_row=config.word_embedding_scales == "row"))
    if config.ffn_activation is not None:
        setattr(model.config, family.activation_key, config.ffn_activation)
    model.config.bortnas_quant = config.name
    return model


def quantized_modules(model: nn.Module) -> dict[str, QuantLinear | QuantEmbedding]:
    """The modules whose weights are stored as codes and scales, by qualified name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, (QuantLinear, QuantEmbedding))}
