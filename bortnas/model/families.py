"""The BERT-family encoders bortnas can cut, and uniform access to their parts.

Torch layer. BERT and RoBERTa share the encoder layout (`encoder.layer[i]` with
`attention.self.{query,key,value}`, `attention.output`, `intermediate`, `output`); they differ in
the classification head, which `head_linears` hides.

transformers does not type these attributes (a module's attribute reads as `Tensor | Module`),
so the classes below describe the parts bortnas reads and replaces, and the accessors are the
one place that casts a model to them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Protocol, cast

import torch
from torch import nn

from bortnas.core.teachers import SUPPORTED_MODEL_TYPES, check_supported, teacher_shape

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "Attention",
    "DenseNorm",
    "Embeddings",
    "EncoderLayer",
    "Intermediate",
    "SelfAttention",
    "check_supported",
    "embeddings",
    "encoder_layers",
    "head_linears",
    "layer_norms",
    "teacher_shape",
]


class SelfAttention(Protocol):
    """`attention.self`: BertSelfAttention, RobertaSelfAttention or bortnas's QuantSelfAttention."""

    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    num_attention_heads: int
    attention_head_size: int
    dropout: nn.Dropout


class DenseNorm(Protocol):
    """`attention.output` and `output`: the projection back to the residual stream, then its LayerNorm."""

    dense: nn.Linear
    LayerNorm: nn.LayerNorm


class Attention(Protocol):
    self: SelfAttention
    output: DenseNorm


class Intermediate(Protocol):
    dense: nn.Linear
    intermediate_act_fn: Callable[[torch.Tensor], torch.Tensor]


class EncoderLayer(nn.Module):
    """`encoder.layer[i]` (BertLayer, RobertaLayer): a module (bortnas hooks it) with these parts.

    A type for the checker only, never instantiated: the accessors cast transformers' layers to it.
    """

    attention: Attention
    intermediate: Intermediate
    output: DenseNorm


class Embeddings(Protocol):
    word_embeddings: nn.Embedding
    position_embeddings: nn.Embedding
    token_type_embeddings: nn.Embedding
    LayerNorm: nn.LayerNorm


class _Encoder(Protocol):
    layer: Sequence[EncoderLayer]  # an nn.ModuleList


class _BaseModel(Protocol):
    """`model.base_model`: BertModel or RobertaModel."""

    embeddings: Embeddings
    encoder: _Encoder


class _Pooler(Protocol):
    dense: nn.Linear


class _BertBase(Protocol):
    pooler: _Pooler


class _BertClassifier(Protocol):
    """BertForSequenceClassification."""

    bert: _BertBase
    classifier: nn.Linear


class _RobertaHead(Protocol):
    dense: nn.Linear
    out_proj: nn.Linear


class _RobertaClassifier(Protocol):
    """RobertaForSequenceClassification."""

    classifier: _RobertaHead


def _base(model: PreTrainedModel) -> _BaseModel:
    return cast(_BaseModel, model.base_model)


def encoder_layers(model: PreTrainedModel) -> Sequence[EncoderLayer]:
    return _base(model).encoder.layer


def embeddings(model: PreTrainedModel) -> Embeddings:
    return _base(model).embeddings


def head_linears(model: PreTrainedModel) -> tuple[nn.Linear, nn.Linear]:
    """(hidden -> hidden dense applied to the first token, hidden -> labels classifier)."""
    if model.config.model_type == "roberta":
        head = cast(_RobertaClassifier, model).classifier
        return head.dense, head.out_proj
    bert = cast(_BertClassifier, model)
    return bert.bert.pooler.dense, bert.classifier


def layer_norms(model: PreTrainedModel) -> list[nn.LayerNorm]:
    """Every LayerNorm on the residual stream, embeddings first."""
    norms = [embeddings(model).LayerNorm]
    for layer in encoder_layers(model):
        norms += [layer.attention.output.LayerNorm, layer.output.LayerNorm]
    return norms
