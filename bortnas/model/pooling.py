"""Sentence embeddings from token states, pooled exactly as sentence-transformers pools them.

Torch layer. Students are distilled and evaluated on the very vector `SentenceTransformer(teacher).encode`
returns, so each mode restates sentence-transformers 6.x's `Pooling._forward_padded` (and `Normalize`)
rather than a textbook formula: the clamp of mean's token count, the -inf of max's padding, where
lasttoken and weightedmean start and end under left or right padding.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F

from bortnas.core.errors import ParameterError

__all__ = ["PoolingSpec", "pool"]


class PoolingSpec(Protocol):
    """What `pool` reads of a pooling: `bortnas.data.sentence_dirs.Pooling` is one (the model layer may not import
    the data layer, so the type is named by its shape)."""

    @property
    def mode(self) -> str: ...

    @property
    def normalize(self) -> bool: ...

    @property
    def dense(self) -> bool: ...


def pool(last_hidden: torch.Tensor, attention_mask: torch.Tensor, pooling: PoolingSpec) -> torch.Tensor:
    """One embedding per sequence from an encoder's last hidden state, then L2-normalized where `pooling.normalize`.

    Args:
        last_hidden: (batch, seq_len, hidden) token states (`AutoModel(...).last_hidden_state`).
        attention_mask: (batch, seq_len), 1 on tokens and 0 on padding, left or right.
        pooling: the mode and normalization (`bortnas.data.sentence_dirs.read_pooling` reads a teacher's).

    Returns:
        (batch, hidden), in `last_hidden`'s dtype (sums of half-precision states accumulate in float32).
        Mutates nothing; gradients flow through, so a student can train on it.

    Raises:
        ParameterError: `pooling.dense` (a Dense projection is not applied here), or an unknown mode.
    """
    if pooling.dense:
        raise ParameterError("pooling", ".dense=True cannot be pooled: bortnas cannot apply a Dense projection yet.")
    if attention_mask.shape != last_hidden.shape[:2]:
        raise ParameterError(
            "attention_mask", f" has shape {tuple(attention_mask.shape)}: expected {tuple(last_hidden.shape[:2])}, one flag per token."
        )
    pooled = _pool(last_hidden, attention_mask, pooling.mode)
    return F.normalize(pooled, p=2, dim=-1) if pooling.normalize else pooled


def _pool(states: torch.Tensor, attention_mask: torch.Tensor, mode: str) -> torch.Tensor:
    batch, seq_len, hidden = states.shape
    accumulate = torch.float32 if states.dtype in (torch.float16, torch.bfloat16) else states.dtype
    if mode == "cls":
        # the first token that is not padding: index 0 under right padding
        first = attention_mask.to(torch.int).argmax(dim=1)
        return states.gather(1, first.view(batch, 1, 1).expand(-1, 1, hidden)).squeeze(1)
    if mode == "max":
        return states.masked_fill(attention_mask.unsqueeze(-1) == 0, float("-inf")).max(dim=1).values
    if mode in ("mean", "mean_sqrt_len_tokens"):
        mask = attention_mask.unsqueeze(-1).to(states.dtype)
        total = (states * mask).sum(dim=1, dtype=accumulate)
        count = torch.clamp(mask.sum(dim=1, dtype=accumulate), min=1e-9)
        return (total / (count if mode == "mean" else count.sqrt())).to(states.dtype)
    if mode == "weightedmean":
        # token i of a sequence weighs i + 1, counted from its first non-padding position
        mask = attention_mask.unsqueeze(-1).to(accumulate)
        positions = torch.arange(1, seq_len + 1, device=states.device, dtype=accumulate).view(1, -1, 1)
        weights = mask * (positions - attention_mask.to(torch.int32).argmax(dim=1).view(-1, 1, 1))
        return ((states * weights).sum(dim=1) / torch.clamp(weights.sum(dim=1), min=1e-9)).to(states.dtype)
    if mode == "lasttoken":
        # the last token that is not padding: seq_len - 1 under left padding (and for an all-padding row)
        found, from_end = attention_mask.flip(1).max(dim=1)
        from_end = torch.where(found == 0, seq_len - 1, from_end)
        last = (seq_len - from_end - 1).view(batch, 1, 1).expand(-1, 1, hidden)
        return (states * attention_mask.unsqueeze(-1).to(states.dtype)).gather(1, last).squeeze(1)
    raise ParameterError(
        "pooling",
        f".mode={mode!r} is not a pooling mode bortnas supports: use mean, cls, max, lasttoken, weightedmean or mean_sqrt_len_tokens.",
    )
