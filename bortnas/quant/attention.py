"""Quantized self-attention on every family: the operands of both attention products low-bit.

Torch layer. BiT's elastic attention quantizes Q, K and V (signed) and the softmax probabilities
(unsigned) before the products; BiBERT's Bi-Attention multiplies sign(Q) sign(K)^T, replaces the
softmax by bool(S) = 1[S > 0] and multiplies by sign(V) (docs/algorithms.md §4). Two routes lead
there, chosen by the family adapter, and both keep the family's own attention module (its
quantizers are added to it as `query_act`, `key_act`, `value_act`, `probs_act`):

- families whose attention calls transformers' attention interface (`Family.attention_interface`:
  BERT, RoBERTa, XLM-R, ELECTRA, DistilBERT, ModernBERT) get the registered function
  `bortnas_quantized`, which receives Q, K and V split into heads (after ModernBERT's rotary
  positions, so the products see the quantized values);
- the others (MPNet's relative bias, DeBERTa's disentangled terms) keep their forward: forward
  hooks quantize the outputs of the Q, K, V projections (the quantizers are elementwise with one
  learned step per tensor, so quantizing before the head split is the same), and inside the
  attention module's forward the softmax is replaced (a `TorchFunctionMode` active for exactly
  that call). DeBERTa's position projections of the relative table go through the same Q / K
  hooks, so its content-to-position terms multiply quantized operands too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.overrides import TorchFunctionMode
from transformers import AttentionInterface, AttentionMaskInterface
from transformers.masking_utils import eager_mask

from bortnas.quant import functional as Q
from bortnas.quant.elastic import ElasticActivation

if TYPE_CHECKING:
    from bortnas.families import Family, LayerView
    from bortnas.modes import QuantConfig

IMPLEMENTATION = "bortnas_quantized"  # the name under which transformers finds the function below
PROJECTIONS = ("query", "key", "value")
_SOFTMAX = (F.softmax, torch.softmax, torch.Tensor.softmax)


def _quantizer(module: nn.Module, name: str) -> Callable[[torch.Tensor], torch.Tensor]:
    if module.bortnas_attention == "bi":
        return Q.bibert_activation
    quantize: Callable[[torch.Tensor], torch.Tensor] = getattr(module, f"{name}_act")
    return quantize


def _probabilities(module: nn.Module, scores: torch.Tensor) -> torch.Tensor:
    """The attention weights of quantized scores: bool(S) for Bi-Attention, else quantized softmax."""
    if module.bortnas_attention == "bi":
        return Q.BoolAttention.apply(scores)
    probs_act: Callable[[torch.Tensor], torch.Tensor] = getattr(module, "probs_act")  # noqa: B009  typed as a callable
    return probs_act(scores.softmax(-1, dtype=torch.float32).to(scores.dtype))


def quantized_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs: Any,
) -> tuple[torch.Tensor, None]:
    """transformers' eager attention with the operands quantized; (batch, heads, tokens, head_dim) in,
    (batch, tokens, heads, head_dim) out, as the interface expects."""
    scale = query.shape[-1] ** -0.5 if scaling is None else scaling
    scores = _quantizer(module, "query")(query) @ _quantizer(module, "key")(key).transpose(-1, -2) * scale
    if attention_mask is not None:
        scores = scores + attention_mask
    probs = F.dropout(_probabilities(module, scores), p=dropout, training=module.training)
    context = probs @ _quantizer(module, "value")(value)
    return context.transpose(1, 2).contiguous(), None


AttentionInterface.register(IMPLEMENTATION, quantized_attention)
AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)


class _SwapSoftmax(TorchFunctionMode):
    """Within one attention forward: every softmax over the scores becomes the quantized weights."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        if func in _SOFTMAX:
            return _probabilities(self.module, args[0])
        return func(*args, **(kwargs or {}))


def _hook_projections(view: LayerView) -> list[torch.utils.hooks.RemovableHandle]:
    attention = view.attention
    handles = []
    modes: list[_SwapSoftmax] = []

    def enter(module: nn.Module, args: Any) -> None:
        mode = _SwapSoftmax(module)
        mode.__enter__()
        modes.append(mode)

    def leave(module: nn.Module, args: Any, output: Any) -> None:
        modes.pop().__exit__(None, None, None)

    for name, slot in zip(PROJECTIONS, view.qkv, strict=True):

        def quantize(module: nn.Module, args: Any, output: torch.Tensor, name: str = name) -> torch.Tensor:
            return _quantizer(attention, name)(output)

        handles.append(slot.get().register_forward_hook(quantize))
    handles.append(attention.register_forward_pre_hook(enter))
    handles.append(attention.register_forward_hook(leave, always_call=True))
    return handles


def quantize_attention_(view: LayerView, family: Family, config: QuantConfig) -> None:
    """Make the attention of one layer quantized as `config.attention` says ("elastic" or "bi"), in place.

    Re-quantizing (a distillation chain's next mode) replaces the quantizers and the hooks.
    """
    attention = view.attention
    for handle in getattr(attention, "_bortnas_handles", []):
        handle.remove()
    attention.bortnas_attention = config.attention  # type: ignore[assignment]  # a plain attribute, read by the function
    if config.attention == "elastic":
        bits = int(config.attention_bits)
        device = view.attention_out.linear.weight.device
        for name, signed in (("query", True), ("key", True), ("value", True), ("probs", False)):
            # created on the CPU; follow the layer's device
            setattr(attention, f"{name}_act", ElasticActivation(bits, signed=signed).to(device))
    handles = [] if family.attention_interface else _hook_projections(view)
    attention._bortnas_handles = handles  # type: ignore[assignment]  # removed when re-quantized
