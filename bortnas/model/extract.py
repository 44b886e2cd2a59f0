"""Cut a candidate out of a (task-fine-tuned) teacher: keep its most important units.

Torch layer. The selection rule (README "Extraction"):
- layers: the `layers` layers of highest importance, in their original order (or the teacher
  layers the caller names: truncation baselines such as DistilBERT's every-other-layer start);
- hidden dimensions: the `hidden` residual-stream dimensions of highest importance, sliced
  consistently from the embeddings, every LayerNorm, every projection and the head;
- heads: per kept layer the `heads` heads of highest importance;
- head size: the candidate's head size is hidden // heads. If it is smaller than the teacher's,
  each kept head keeps the dimensions with the largest |W_q row| * |W_k row| (their share of the
  attention logits); if larger, the head is padded with zero dimensions, which changes nothing.
  Queries are rescaled by sqrt(new / old head size) so the logits keep the teacher's scale;
- FFN neurons: per kept layer the `ffn` neurons of highest importance;
- the pooler (or RoBERTa head dense) keeps the outputs the classifier weighs most.
With init="scratch" the same config is built with fresh random weights (Bort's setting).
The result is an ordinary transformers model of the teacher's class with a smaller config, on
the teacher's device (importance scores may live on the CPU).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from bortnas.core.space import ArchSpec
from bortnas.model.families import SelfAttention, embeddings, encoder_layers, head_linears
from bortnas.model.importance import Importance

if TYPE_CHECKING:
    from transformers import PreTrainedConfig, PreTrainedModel

Init = Literal["inherit", "scratch"]


@dataclasses.dataclass(frozen=True)
class Extraction:
    """Where the student's units come from in the teacher (used by the hidden-state loss)."""

    layers: tuple[int, ...]  # teacher layer of each student layer
    hidden: torch.Tensor  # teacher residual dimension of each student dimension


def _top(scores: torch.Tensor, k: int) -> torch.Tensor:
    return torch.topk(scores, k).indices.sort().values


def _take(tensor: torch.Tensor, dim: int, index: torch.Tensor) -> torch.Tensor:
    """index_select where index -1 yields zeros (padding)."""
    out = tensor.index_select(dim, index.clamp(min=0))
    mask_shape = [1] * tensor.dim()
    mask_shape[dim] = -1
    return out * (index >= 0).to(out.dtype).view(mask_shape)


def _copy_linear(target: nn.Linear, source: nn.Linear, rows: torch.Tensor, cols: torch.Tensor) -> None:
    weight = _take(_take(source.weight.detach(), 0, rows), 1, cols)
    if weight.shape != target.weight.shape:
        raise RuntimeError(f"extracted weight {tuple(weight.shape)} does not fit {tuple(target.weight.shape)}")
    target.weight.data.copy_(weight)
    target.bias.data.copy_(_take(source.bias.detach(), 0, rows))


def _copy_norm(target: nn.LayerNorm, source: nn.LayerNorm, index: torch.Tensor) -> None:
    target.weight.data.copy_(source.weight.detach()[index])
    target.bias.data.copy_(source.bias.detach()[index])


def _attention_index(attn: SelfAttention, heads: torch.Tensor, old_size: int, new_size: int) -> torch.Tensor:
    """Teacher Q/K/V rows for each student attention dimension (-1 = zero padding)."""
    salience = attn.query.weight.detach().norm(dim=1) * attn.key.weight.detach().norm(dim=1)
    device = salience.device
    parts = []
    for head in heads.tolist():
        rows = torch.arange(head * old_size, (head + 1) * old_size, device=device)
        if new_size <= old_size:
            parts.append(rows[_top(salience[rows], new_size)])
        else:
            parts.append(torch.cat([rows, torch.full((new_size - old_size,), -1, dtype=torch.long, device=device)]))
    return torch.cat(parts)


def student_config(teacher_config: PreTrainedConfig, spec: ArchSpec) -> PreTrainedConfig:
    config = copy.deepcopy(teacher_config)
    config.num_hidden_layers = spec.layers
    config.hidden_size = spec.hidden
    config.num_attention_heads = spec.heads
    config.intermediate_size = spec.ffn
    return config


def _layer_index(importance: Importance, spec: ArchSpec, num_layers: int, layers: Sequence[int] | None) -> torch.Tensor:
    """The teacher layer of each student layer: the most important ones, or `layers` as given."""
    if layers is None:
        return _top(importance.layers, spec.layers)
    chosen = list(layers)
    if len(chosen) != spec.layers or len(set(chosen)) != len(chosen) or not all(0 <= layer < num_layers for layer in chosen):
        raise ValueError(
            f"layers={chosen} does not fit candidate {spec.key}: give {spec.layers} distinct teacher layer indices "
            f"in 0..{num_layers - 1}, or None for the most important layers."
        )
    return torch.tensor(chosen, dtype=torch.long)


@torch.no_grad()
def extract(
    teacher: PreTrainedModel,
    importance: Importance,
    spec: ArchSpec,
    init: Init = "inherit",
    layers: Sequence[int] | None = None,
) -> tuple[PreTrainedModel, Extraction]:
    """A new model of the teacher's class shaped as `spec`; the teacher is not modified.

    `layers` names the teacher layer of each student layer, in the student's order, instead of
    the most important ones; baselines use it to cut the first k layers or k evenly spread ones.

    Raises:
        ValueError: `spec` asks for more of a dimension than the teacher has, or `layers` is not
            `spec.layers` distinct indices of teacher layers.
    """
    config = teacher.config
    limits = {
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "heads": config.num_attention_heads,
        "ffn": config.intermediate_size,
    }
    for key, limit in limits.items():
        if getattr(spec, key) > limit:
            raise ValueError(f"candidate {spec.key} has {key}={getattr(spec, key)} but the teacher only {limit}.")
    device = next(teacher.parameters()).device
    layer_index = _layer_index(importance, spec, config.num_hidden_layers, layers)
    hidden_index = _top(importance.hidden, spec.hidden).to(device)
    mapping = Extraction(layers=tuple(layer_index.tolist()), hidden=hidden_index)

    # built on the CPU (the same random initialisation whatever the device), then moved
    student = type(teacher)(student_config(config, spec))
    # transformers wraps PreTrainedModel.to in functools.wraps, whose typeshed type does not bind self
    student.to(device)  # type: ignore[arg-type]
    if init == "scratch":
        return student.eval(), mapping

    t_emb, s_emb = embeddings(teacher), embeddings(student)
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings"):
        getattr(s_emb, name).weight.data.copy_(getattr(t_emb, name).weight.detach()[:, hidden_index])
    _copy_norm(s_emb.LayerNorm, t_emb.LayerNorm, hidden_index)

    old_size = config.hidden_size // config.num_attention_heads
    new_size = spec.head_size
    query_scale = math.sqrt(new_size / old_size)
    for s_layer, t_pos in zip(encoder_layers(student), layer_index.tolist(), strict=True):
        t_layer = encoder_layers(teacher)[t_pos]
        t_attn, s_attn = t_layer.attention.self, s_layer.attention.self
        attn_index = _attention_index(t_attn, _top(importance.heads[t_pos], spec.heads), old_size, new_size)
        for name in ("query", "key", "value"):
            _copy_linear(getattr(s_attn, name), getattr(t_attn, name), attn_index, hidden_index)
        s_attn.query.weight.data.mul_(query_scale)
        s_attn.query.bias.data.mul_(query_scale)
        _copy_linear(s_layer.attention.output.dense, t_layer.attention.output.dense, hidden_index, attn_index)
        _copy_norm(s_layer.attention.output.LayerNorm, t_layer.attention.output.LayerNorm, hidden_index)
        neurons = _top(importance.neurons[t_pos], spec.ffn).to(device)
        _copy_linear(s_layer.intermediate.dense, t_layer.intermediate.dense, neurons, hidden_index)
        _copy_linear(s_layer.output.dense, t_layer.output.dense, hidden_index, neurons)
        _copy_norm(s_layer.output.LayerNorm, t_layer.output.LayerNorm, hidden_index)

    t_dense, t_classifier = head_linears(teacher)
    s_dense, s_classifier = head_linears(student)
    pooled = _top(t_classifier.weight.detach().norm(dim=0), spec.hidden)
    _copy_linear(s_dense, t_dense, pooled, hidden_index)
    all_labels = torch.arange(t_classifier.out_features, device=device)
    _copy_linear(s_classifier, t_classifier, all_labels, pooled)
    return student.eval(), mapping
