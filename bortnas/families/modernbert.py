"""ModernBERT: pre-norm layers (`layers[i]`: `attn_norm`, `attn.Wqkv` fused [query; key; value],
`attn.Wo`, `mlp_norm`, `mlp.Wi` gated [up; gate], `mlp.Wo`), the first layer without an attention
norm, a final norm; rotary positions (no position table, no token types); layers alternating
between sliding-window and global attention (`config.layer_types`); biases and norm biases
optional; the head is `head.dense`, `head.norm`, then `classifier` on the pooled tokens.

A student keeps the attention type of each teacher layer it was cut from. Rotary positions rotate
pairs of a head's dimensions (i, i + d/2), so a head's dimensions are kept in pairs; a student
head size other than the teacher's changes the pairs' frequencies, so such a cut starts from an
approximation of the teacher, and so does a student whose first layer is cut from a later teacher
layer (ModernBERT's first layer has no attention norm).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bortnas.core.space import ArchSpec, Structure
from bortnas.families.base import EmbeddingView, ExtraView, Family, HeadView, LayerView, MaskedLMView, Slot, field

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedConfig, PreTrainedModel


class ModernBertFamily(Family):
    name = "modernbert"
    model_types = ("modernbert",)
    classes = "ModernBertModel and its task heads"
    token_types = False
    rotary = True
    activation_key = "hidden_activation"
    body_prefixes = ("embeddings.", "layers.", "final_norm.")

    def structure(self, config: Any) -> Structure:
        return Structure(
            family=self.name,
            attention_bias=bool(field(config, "attention_bias", False)),
            ffn_bias=bool(field(config, "mlp_bias", False)),
            norm_bias=bool(field(config, "norm_bias", False)),
            gated_ffn=True,
            hidden_norms_outside_layers=2,
            first_layer_missing_norms=1,
            head_bias=bool(field(config, "classifier_bias", False)),
            head_norm=True,
        )

    def position_rows(self, config: Any) -> int:
        return 0

    def student_config(self, config: PreTrainedConfig, spec: ArchSpec, layers: Sequence[int]) -> PreTrainedConfig:
        student = super().student_config(config, spec, layers)
        student.layer_types = [config.layer_types[i] for i in layers]
        return student

    def layers(self, model: PreTrainedModel) -> list[LayerView]:
        views = []
        for layer in self.base(model).layers:
            norms = tuple(n for n in (layer.attn_norm, layer.mlp_norm) if hasattr(n, "weight"))  # layer 0: Identity
            views.append(
                LayerView(
                    layer=layer,
                    attention=layer.attn,
                    qkv=(Slot(layer.attn, "Wqkv"),),
                    attention_out=Slot(layer.attn, "Wo"),
                    ffn_in=Slot(layer.mlp, "Wi"),
                    ffn_out=Slot(layer.mlp, "Wo"),
                    activation=Slot(layer.mlp, "act"),
                    norms=norms,
                )
            )
        return views

    def embeddings(self, model: PreTrainedModel) -> EmbeddingView:
        table = self.base(model).embeddings
        return EmbeddingView(tables=(Slot(table, "tok_embeddings"),), norm=table.norm)

    def head(self, model: PreTrainedModel) -> HeadView:
        classifier: Any = model
        return HeadView(dense=classifier.head.dense, classifier=classifier.classifier, norm=classifier.head.norm)

    def token_head(self, model: PreTrainedModel) -> HeadView:
        return self.head(model)  # the same dense, norm and classifier, applied to every token

    def extras(self, model: PreTrainedModel) -> ExtraView:
        return ExtraView(hidden_norms=(self.base(model).final_norm,))

    def residual_writers(self, model: PreTrainedModel) -> list[nn.Module]:
        """Pre-norm: the stream is the embedding output plus every attention and FFN output."""
        writers: list[nn.Module] = [self.base(model).embeddings.norm]
        for layer in self.layers(model):
            writers += [layer.attention_out.get(), layer.ffn_out.get()]
        return [*writers, self.base(model).final_norm]

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        m: Any = model

        def logits(states: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = m.decoder(m.head(states))
            return out

        return MaskedLMView(m.head.dense, m.head.norm, m.decoder, logits)
