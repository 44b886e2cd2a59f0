"""BERT: post-norm layers (`encoder.layer[i]`: `attention.self.{query,key,value}`, `attention.output`,
`intermediate`, `output`), learned absolute positions, token types, a pooler and a classifier.

The layer layout is shared by RoBERTa, XLM-RoBERTa, ELECTRA and DeBERTa-v2 (other projection
names), whose adapters subclass this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bortnas.families.base import EmbeddingView, Family, HeadView, LayerView, MaskedLMView, Slot

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class BertFamily(Family):
    name = "bert"
    model_types = ("bert",)
    classes = "BertModel and its task heads"
    projections = ("query", "key", "value")  # names in `attention.self`

    def layers(self, model: PreTrainedModel) -> list[LayerView]:
        views = []
        for layer in self.base(model).encoder.layer:
            attention = layer.attention.self
            views.append(
                LayerView(
                    layer=layer,
                    attention=attention,
                    qkv=tuple(Slot(attention, name) for name in self.projections),
                    attention_out=Slot(layer.attention.output, "dense"),
                    ffn_in=Slot(layer.intermediate, "dense"),
                    ffn_out=Slot(layer.output, "dense"),
                    activation=Slot(layer.intermediate, "intermediate_act_fn"),
                    norms=(layer.attention.output.LayerNorm, layer.output.LayerNorm),
                    # DeBERTa's separate position projections, where its config asks for them
                    position_query=Slot(attention, "pos_query_proj") if hasattr(attention, "pos_query_proj") else None,
                    position_key=Slot(attention, "pos_key_proj") if hasattr(attention, "pos_key_proj") else None,
                )
            )
        return views

    def embeddings(self, model: PreTrainedModel) -> EmbeddingView:
        table = self.base(model).embeddings
        names = ["word_embeddings", "position_embeddings"] + (["token_type_embeddings"] if self.token_types else [])
        return EmbeddingView(tables=tuple(Slot(table, name) for name in names), norm=table.LayerNorm)

    def head(self, model: PreTrainedModel) -> HeadView:
        bert: Any = model
        return HeadView(dense=bert.bert.pooler.dense, classifier=bert.classifier)

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        head: Any = model
        predictions = head.cls.predictions
        return MaskedLMView(predictions.transform.dense, predictions.transform.LayerNorm, predictions.decoder, head.cls)
