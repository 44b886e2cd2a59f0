"""BiBERT's direction-matching distillation (DMD; docs/algorithms.md §4.3): match Q, K, V self-relations.

Torch layer. For each matched (student layer, teacher layer) and each F in {Q, K, V}, computed on
the full-precision projections (before any binarization):

    P_F = F F^T / sqrt(d)      L_DMD = sum_l sum_F || P_F^S / ||P_F^S|| - P_F^T / ||P_F^T|| ||

with Frobenius norms over the whole tensor (batch included), as BiBERT's code does. [R] BiBERT
matches per head with equal head counts; a candidate may have fewer heads than its teacher, so
F here is the whole projection (all heads, width d), which gives (batch, tokens, tokens)
relations whatever the widths. Padding tokens are zeroed before the product. Student layer k is
matched to the teacher layer it was cut from (BiBERT's (l + 1) L_T / L_S - 1 when layers are
spread evenly).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING

import torch
from torch import nn

from bortnas.families import family_of

if TYPE_CHECKING:
    from transformers import PreTrainedModel

PROJECTIONS = ("query", "key", "value")


class ProjectionRecorder:
    """Context manager that records the Q, K, V projection outputs of every encoder layer."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model = model
        self.outputs: list[dict[str, torch.Tensor]] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> ProjectionRecorder:
        views = family_of(self.model.config).layers(self.model)
        self.outputs = [{} for _ in views]
        for index, view in enumerate(views):

            def start(module: nn.Module, args: object, index: int = index) -> None:
                self.outputs[index] = {}

            # the first call of a projection in a layer's forward is on the tokens; DeBERTa calls
            # its query and key projections again on the relative-position table
            self._handles.append(view.layer.register_forward_pre_hook(start))
            if view.fused_qkv:

                def split(module: nn.Module, args: object, output: torch.Tensor, index: int = index) -> None:
                    for name, part in zip(PROJECTIONS, output.chunk(3, dim=-1), strict=True):
                        self.outputs[index].setdefault(name, part)

                self._handles.append(view.qkv[0].get().register_forward_hook(split))
                continue
            for name, slot in zip(PROJECTIONS, view.qkv, strict=True):

                def hook(module: nn.Module, args: object, output: torch.Tensor, index: int = index, name: str = name) -> None:
                    self.outputs[index].setdefault(name, output)

                self._handles.append(slot.get().register_forward_hook(hook))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def relation(x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """P = X X^T / sqrt(d) over the token axis of a (batch, tokens, d) tensor; padding rows zeroed."""
    if mask is not None:
        x = x * mask.unsqueeze(-1).to(x.dtype)
    return x @ x.transpose(-1, -2) / math.sqrt(x.shape[-1])


def direction_matching_loss(
    student: Sequence[dict[str, torch.Tensor]],
    teacher: Sequence[dict[str, torch.Tensor]],
    pairs: Sequence[tuple[int, int]],
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_DMD over the (student layer, teacher layer) `pairs`; see the module docstring."""
    total = torch.zeros(())
    for s, t in pairs:
        for name in PROJECTIONS:
            p_s = relation(student[s][name], mask)
            p_t = relation(teacher[t][name].detach(), mask)
            total = total + (p_s / p_s.norm().clamp(min=1e-12) - p_t / p_t.norm().clamp(min=1e-12)).norm()
    return total
