"""The BERT-family encoders bortnas can cut, and uniform access to their parts.

Torch layer. BERT and RoBERTa share the encoder layout (`encoder.layer[i]` with
`attention.self.{query,key,value}`, `attention.output`, `intermediate`, `output`); they differ in
the classification head, which `head_linears` hides.
"""

from __future__ import annotations

from torch import nn

from bortnas.core.teachers import SUPPORTED_MODEL_TYPES, check_supported, teacher_shape

__all__ = ["SUPPORTED_MODEL_TYPES", "check_supported", "embeddings", "encoder_layers", "head_linears", "layer_norms", "teacher_shape"]

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
