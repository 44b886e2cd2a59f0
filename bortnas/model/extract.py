"""Cut a candidate out of a (task-fine-tuned) teacher of any supported family: keep its most important units.

Torch layer; the family adapter (`bortnas.families`) shows the teacher's modules as one view. The
selection rule (docs/guides/search.md, "Extraction"):
- layers: the `layers` layers of highest importance, in their original order (or the teacher
  layers the caller names: truncation baselines such as DistilBERT's every-other-layer start);
- hidden dimensions: the `hidden` residual-stream dimensions of highest importance, sliced
  consistently from the embeddings (or the projection that lifts narrower tables), every norm on
  the stream, every projection, the relative-position tables that live in it, and the head;
- heads: per kept layer the `heads` heads of highest importance (one set for all layers where the
  family shares a per-head table across layers, as MPNet does);
- head size: the candidate's head size is hidden // heads. If it is smaller than the teacher's,
  each kept head keeps the dimensions with the largest |W_q row| * |W_k row| (their share of the
  attention logits; rotary families keep rotation pairs); if larger, the head is padded with zero
  dimensions, which changes nothing. Queries are rescaled by sqrt(new / old head size) so the
  logits keep the teacher's scale;
- FFN neurons: per kept layer the `ffn` neurons of highest importance (both halves of a gated FFN);
- the head's dense layer keeps the outputs the classifier weighs most; a token head without one
  keeps the classifier's columns of the kept residual dimensions; a masked-language-model head
  keeps its inputs' kept residual dimensions, and its outputs are cut as the word table is (the
  decoder is that table in most families); a bare encoder (an embedding model) has no head.
With init="scratch" the same config is built with fresh random weights (Bort's setting).
The result is an ordinary transformers model of the teacher's class with a smaller config, on
the teacher's device (importance scores may live on the CPU).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

import torch
from torch import nn

from bortnas.core.space import ArchSpec
from bortnas.families import EmbeddingView, LayerView, MaskedLMView, family_of
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
    if target.bias is not None and source.bias is not None:
        target.bias.data.copy_(_take(source.bias.detach(), 0, rows))


def _copy_norm(target: nn.Module, source: nn.Module, index: torch.Tensor | None) -> None:
    """Copy a LayerNorm's affine parameters (those it has), restricted to `index` (None: all)."""
    for name in ("weight", "bias"):
        t, s = getattr(target, name, None), getattr(source, name, None)
        if isinstance(t, torch.Tensor) and isinstance(s, torch.Tensor):
            t.data.copy_(s.detach() if index is None else s.detach()[index])


def _blocks(index: torch.Tensor, block: int, count: int) -> torch.Tensor:
    """`index` repeated for each of `count` stacked blocks of `block` rows (fused QKV, gated FFN); -1 stays padding."""
    return torch.cat([torch.where(index >= 0, index + i * block, index) for i in range(count)])


def _attention_index(
    query: torch.Tensor, key: torch.Tensor, heads: torch.Tensor, old_size: int, new_size: int, rotary: bool
) -> torch.Tensor:
    """Teacher Q/K/V rows for each student attention dimension (-1 = zero padding).

    `query`, `key` are the teacher's weights. With rotary positions a head's dimensions i and
    i + d/2 form a rotation pair, so they are kept, dropped and padded together; a smaller head
    keeps the most salient pairs (which then rotate at the student's frequencies, an
    approximation), a larger one spreads the teacher's pairs to the slots of equal frequency.
    """
    salience = query.detach().norm(dim=1) * key.detach().norm(dim=1)
    device = salience.device
    if rotary and (old_size % 2 or new_size % 2):
        raise ValueError(f"rotary positions need even head sizes; the teacher's is {old_size}, the candidate's {new_size}.")
    parts = []
    for head in heads.tolist():
        rows = torch.arange(head * old_size, (head + 1) * old_size, device=device)
        if rotary:
            half, new_half = old_size // 2, new_size // 2
            first, second = rows[:half], rows[half:]
            if new_half <= half:
                pairs = _top(salience[first] + salience[second], new_half)
                parts += [first[pairs], second[pairs]]
            else:
                # teacher pair j rotates at base^(-2j / old); slot j * new / old rotates at the same
                # frequency in the student, exactly so when the sizes divide
                slots = torch.arange(half, device=device) * new_half // half
                spread = torch.full((2, new_half), -1, dtype=torch.long, device=device)
                spread[0, slots], spread[1, slots] = first, second
                parts += [spread[0], spread[1]]
        elif new_size <= old_size:
            parts.append(rows[_top(salience[rows], new_size)])
        else:
            parts.append(torch.cat([rows, torch.full((new_size - old_size,), -1, dtype=torch.long, device=device)]))
    return torch.cat(parts)


def student_config(teacher_config: PreTrainedConfig, spec: ArchSpec, layers: Sequence[int] | None = None) -> PreTrainedConfig:
    """The teacher's config shaped as `spec`; `layers` are the teacher layers kept (default: the first ones)."""
    kept = list(range(spec.layers)) if layers is None else list(layers)
    return family_of(teacher_config).student_config(teacher_config, spec, kept)


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


def _query_key(view: LayerView) -> tuple[torch.Tensor, torch.Tensor]:
    if view.fused_qkv:
        weight = view.qkv[0].linear.weight
        size = weight.shape[0] // 3
        return weight[:size], weight[size : 2 * size]
    return view.qkv[0].linear.weight, view.qkv[1].linear.weight


def _scale_rows(linear: nn.Linear, rows: int, factor: float) -> None:
    linear.weight.data[:rows].mul_(factor)
    if linear.bias is not None:
        linear.bias.data[:rows].mul_(factor)


def _copy_layer(
    s: LayerView, t: LayerView, heads: torch.Tensor, neurons: torch.Tensor, hidden: torch.Tensor, sizes: tuple[int, int], rotary: bool
) -> None:
    """Copy one teacher layer's kept units into a student layer (see the module docstring)."""
    old_size, new_size = sizes
    attn_index = _attention_index(*_query_key(t), heads, old_size, new_size, rotary)
    if t.fused_qkv:
        block = t.qkv[0].linear.out_features // 3
        _copy_linear(s.qkv[0].linear, t.qkv[0].linear, _blocks(attn_index, block, 3), hidden)
    else:
        for s_slot, t_slot in zip(s.qkv, t.qkv, strict=True):
            _copy_linear(s_slot.linear, t_slot.linear, attn_index, hidden)
    for s_position, t_position in ((s.position_query, t.position_query), (s.position_key, t.position_key)):
        if s_position is not None and t_position is not None:
            _copy_linear(s_position.linear, t_position.linear, attn_index, hidden)
    # the query side of every score term is rescaled so the logits keep the teacher's scale
    query_scale = math.sqrt(new_size / old_size)
    _scale_rows(s.qkv[0].linear, len(attn_index), query_scale)
    if s.position_query is not None:
        _scale_rows(s.position_query.linear, len(attn_index), query_scale)
    _copy_linear(s.attention_out.linear, t.attention_out.linear, hidden, attn_index)
    # zipped from the end: a pre-norm family's first layer lacks the attention norm the others have
    for s_norm, t_norm in zip(reversed(s.norms), reversed(t.norms), strict=False):
        _copy_norm(s_norm, t_norm, hidden)
    t_in = t.ffn_in.linear
    gated = t_in.out_features // t.ffn_out.linear.in_features
    _copy_linear(s.ffn_in.linear, t_in, _blocks(neurons, t.ffn_out.linear.in_features, gated), hidden)
    _copy_linear(s.ffn_out.linear, t.ffn_out.linear, hidden, neurons)


def _copy_embeddings(s: EmbeddingView, t: EmbeddingView, hidden: torch.Tensor) -> None:
    """Tables and norm in the residual space lose the dropped dimensions; behind a projection they are
    kept whole and the projection loses its dropped outputs."""
    device = hidden.device
    if t.projection is None or s.projection is None:
        # without a projection in the student (a width equal to the tables'), the tables start as the teacher's, uncut
        cut = hidden if t.projection is None else None
        for s_slot, t_slot in zip(s.tables, t.tables, strict=True):
            weight = t_slot.table.weight.detach()
            s_slot.table.weight.data.copy_(weight if cut is None else weight[:, cut])
        if s.norm is not None and t.norm is not None:
            _copy_norm(s.norm, t.norm, None if t.projection is not None and t.norm_on_tables else hidden)
        return
    for s_slot, t_slot in zip(s.tables, t.tables, strict=True):
        s_slot.table.weight.data.copy_(t_slot.table.weight.detach())
    _copy_linear(s.projection, t.projection, hidden, torch.arange(t.projection.in_features, device=device))
    if s.norm is not None and t.norm is not None:
        _copy_norm(s.norm, t.norm, None if t.norm_on_tables else hidden)


def _copy_masked_lm(s: MaskedLMView, t: MaskedLMView, hidden: torch.Tensor, cut_words: bool) -> None:
    """The MLM head reads the residual stream and writes into the word table's space (the decoder is
    that table, tied, in most families): its inputs lose the dropped residual dimensions, and its
    outputs, norm and decoder columns lose them too where the word table does (no projection)."""
    words = hidden if cut_words else torch.arange(t.dense.out_features, device=hidden.device)
    _copy_linear(s.dense, t.dense, words, hidden)
    _copy_norm(s.norm, t.norm, words if cut_words else None)
    if s.decoder is not None and t.decoder is not None:
        _copy_linear(s.decoder, t.decoder, torch.arange(t.decoder.out_features, device=hidden.device), words)
    if s.bias is not None and t.bias is not None:
        s.bias.data.copy_(t.bias.detach())


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
    family = family_of(teacher.config)
    shape = family.shape(teacher.config, num_labels=2)
    limits = {"layers": shape.layers, "hidden": shape.hidden, "heads": shape.heads, "ffn": shape.ffn}
    for key, limit in limits.items():
        if getattr(spec, key) > limit:
            raise ValueError(f"candidate {spec.key} has {key}={getattr(spec, key)} but the teacher only {limit}.")
    device = next(teacher.parameters()).device
    layer_index = _layer_index(importance, spec, shape.layers, layers)
    hidden_index = _top(importance.hidden, spec.hidden).to(device)
    mapping = Extraction(layers=tuple(layer_index.tolist()), hidden=hidden_index)

    # built on the CPU (the same random initialisation whatever the device), then moved
    student = type(teacher)(family.student_config(teacher.config, spec, mapping.layers))
    # transformers wraps PreTrainedModel.to in functools.wraps, whose typeshed type does not bind self
    student.to(device)  # type: ignore[arg-type]
    if init == "scratch":
        return student.eval(), mapping

    _copy_embeddings(family.embeddings(student), family.embeddings(teacher), hidden_index)
    shared = _top(importance.heads.sum(0), spec.heads) if family.shared_heads else None
    t_layers = family.layers(teacher)
    sizes = (shape.hidden // shape.heads, spec.head_size)
    for s_view, t_pos in zip(family.layers(student), mapping.layers, strict=True):
        heads = shared if shared is not None else _top(importance.heads[t_pos], spec.heads)
        neurons = _top(importance.neurons[t_pos], spec.ffn).to(device)
        _copy_layer(s_view, t_layers[t_pos], heads, neurons, hidden_index, sizes, family.rotary)

    s_extra, t_extra = family.extras(student), family.extras(teacher)
    for s_table, t_table in zip(s_extra.hidden_tables, t_extra.hidden_tables, strict=True):
        s_table.weight.data.copy_(t_table.weight.detach()[:, hidden_index])
    for s_norm, t_norm in zip(s_extra.hidden_norms, t_extra.hidden_norms, strict=True):
        _copy_norm(s_norm, t_norm, hidden_index)
    for s_table, t_table in zip(s_extra.head_tables, t_extra.head_tables, strict=True):
        assert shared is not None  # a per-head table shared by the layers implies one head set
        s_table.weight.data.copy_(t_table.weight.detach()[:, shared.to(device)])

    t_mlm, s_mlm = family.masked_lm(teacher), family.masked_lm(student)
    if t_mlm is not None and s_mlm is not None:
        _copy_masked_lm(s_mlm, t_mlm, hidden_index, cut_words=family.embeddings(teacher).projection is None)
        return student.eval(), mapping
    t_head, s_head = family.task_head(teacher), family.task_head(student)
    if t_head is None or s_head is None:  # a bare encoder (embeddings): no head
        return student.eval(), mapping
    all_labels = torch.arange(t_head.classifier.out_features, device=device)
    if t_head.dense is None or s_head.dense is None:  # the classifier reads the residual stream itself
        _copy_linear(s_head.classifier, t_head.classifier, all_labels, hidden_index)
        return student.eval(), mapping
    pooled = _top(t_head.classifier.weight.detach().norm(dim=0), spec.hidden)
    _copy_linear(s_head.dense, t_head.dense, pooled, hidden_index)
    if s_head.norm is not None and t_head.norm is not None:
        _copy_norm(s_head.norm, t_head.norm, pooled)
    _copy_linear(s_head.classifier, t_head.classifier, all_labels, pooled)
    return student.eval(), mapping
