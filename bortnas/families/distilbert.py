"""DistilBERT: `transformer.layer[i]` with `attention.{q,k,v,out}_lin`, `sa_layer_norm`, `ffn.lin1/lin2`,
`output_layer_norm` (post-norm); no token types; config widths named `n_layers`, `dim`, `n_heads`,
`hidden_dim`; the head is `pre_classifier` then `classifier` on the first token.

A student of a teacher with fixed sinusoidal positions gets a learned table cut from the
teacher's (a fresh sinusoidal table of a narrower width would not be a slice of it).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bortnas.core.space import ArchSpec
from bortnas.families.base import EmbeddingView, Family, HeadView, LayerView, MaskedLMView, Slot

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedConfig, PreTrainedModel


class DistilBertFamily(Family):
    name = "distilbert"
    model_types = ("distilbert",)
    classes = "DistilBertModel and its task heads"
    token_types = False
    activation_key = "activation"
    body_prefixes = ("embeddings.", "transformer.")
    keys = (("layers", "n_layers"), ("hidden", "dim"), ("heads", "n_heads"), ("ffn", "hidden_dim"))

    def student_config(self, config: PreTrainedConfig, spec: ArchSpec, layers: Sequence[int]) -> PreTrainedConfig:
        student = super().student_config(config, spec, layers)
        student.sinusoidal_pos_embds = False
        return student

    def layers(self, model: PreTrainedModel) -> list[LayerView]:
        views = []
        for layer in self.base(model).transformer.layer:
            attention = layer.attention
            views.append(
                LayerView(
                    layer=layer,
                    attention=attention,
                    qkv=(Slot(attention, "q_lin"), Slot(attention, "k_lin"), Slot(attention, "v_lin")),
                    attention_out=Slot(attention, "out_lin"),
                    ffn_in=Slot(layer.ffn, "lin1"),
                    ffn_out=Slot(layer.ffn, "lin2"),
                    activation=Slot(layer.ffn, "activation"),
                    norms=(layer.sa_layer_norm, layer.output_layer_norm),
                )
            )
        return views

    def embeddings(self, model: PreTrainedModel) -> EmbeddingView:
        table = self.base(model).embeddings
        return EmbeddingView(tables=(Slot(table, "word_embeddings"), Slot(table, "position_embeddings")), norm=table.LayerNorm)

    def head(self, model: PreTrainedModel) -> HeadView:
        classifier: Any = model
        return HeadView(dense=classifier.pre_classifier, classifier=classifier.classifier)

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        m: Any = model

        def logits(states: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = m.vocab_projector(m.vocab_layer_norm(m.activation(m.vocab_transform(states))))
            return out

        return MaskedLMView(m.vocab_transform, m.vocab_layer_norm, m.vocab_projector, logits)
