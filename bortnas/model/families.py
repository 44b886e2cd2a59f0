"""The BERT-family encoders bortnas can cut, and uniform access to their parts.

Torch layer. BERT and RoBERTa share the encoder layout (`encoder.layer[i]` with
`attention.self.{query,key,value}`, `attention.output`, `intermediate`, `output`); they differ in
the classification head, which `head_linears` hides.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from bortnas.core.errors import UnsupportedArchitectureError
from bortnas.core.space import TeacherShape

SUPPORTED_MODEL_TYPES = ("bert", "roberta")


def check_supported(config: Any, source: str) -> None:
    """Raise `UnsupportedArchitectureError` unless `config` is a BERT or RoBERTa encoder."""
    model_type = getattr(config, "model_type", None)
    if model_type not in SUPPORTED_MODEL_TYPES:
        archs = ",".join(getattr(config, "architectures", None) or [str(model_type)])
        raise UnsupportedArchitectureError(
            f"unsupported architecture {archs} (model_type={model_type!r}) in {source}: "
            f"supported: {', '.join(SUPPORTED_MODEL_TYPES)} (BertModel, RobertaModel and their task heads)."
        )
    if getattr(config, "position_embedding_type", "absolute") != "absolute":
        raise UnsupportedArchitectureError(
            f"position_embedding_type={config.position_embedding_type!r} in {source} is unsupported: only 'absolute' is."
        )


def teacher_shape(config: Any, num_labels: int) -> TeacherShape:
    return TeacherShape(
        layers=config.num_hidden_layers,
        hidden=config.hidden_size,
        heads=config.num_attention_heads,
        ffn=config.intermediate_size,
        vocab_size=config.vocab_size,
        max_positions=config.max_position_embeddings,
        type_vocab_size=config.type_vocab_size,
        num_labels=num_labels,
    )


def encoder_layers(model: nn.Module) -> nn.ModuleList:
    return model.base_model.encoder.layer  # type: ignore[union-attr, return-value]


def embeddings(model: nn.Module) -> nn.Module:
    return model.base_model.embeddings  # type: ignore[union-attr, return-value]


def head_linears(model: nn.Module) -> tuple[nn.Linear, nn.Linear]:
    """(hidden -> hidden dense applied to the first token, hidden -> labels classifier)."""
    if model.config.model_type == "roberta":  # type: ignore[union-attr]
        return model.classifier.dense, model.classifier.out_proj  # type: ignore[union-attr, return-value]
    return model.bert.pooler.dense, model.classifier  # type: ignore[union-attr, return-value]


def layer_norms(model: nn.Module) -> list[nn.LayerNorm]:
    """Every LayerNorm on the residual stream, embeddings first."""
    norms = [embeddings(model).LayerNorm]
    for layer in encoder_layers(model):
        norms += [layer.attention.output.LayerNorm, layer.output.LayerNorm]
    return norms  # type: ignore[return-value]
