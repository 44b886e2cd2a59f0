"""MPNet: BERT-like post-norm layers (`attention.attn.{q,k,v,o}`, `attention.LayerNorm`,
`intermediate`, `output`); no token types; a relative-position bias table of
(buckets x heads) in `encoder.relative_attention_bias`, added to every layer's attention scores.

Because that table is shared by the layers, a student keeps the same heads in every layer (the
heads most important summed over layers) and the table keeps their columns. The head is
`classifier.dense` then `classifier.out_proj` on the first token.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bortnas.core.space import Structure
from bortnas.families.base import EmbeddingView, ExtraView, Family, HeadView, LayerView, MaskedLMView, Slot, field

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class MPNetFamily(Family):
    name = "mpnet"
    model_types = ("mpnet",)
    classes = "MPNetModel and its task heads"
    token_types = False
    shared_heads = True
    attention_interface = False

    def structure(self, config: Any) -> Structure:
        return Structure(family=self.name, relative_bias_buckets=int(field(config, "relative_attention_num_buckets", 32)))

    def layers(self, model: PreTrainedModel) -> list[LayerView]:
        views = []
        for layer in self.base(model).encoder.layer:
            attention = layer.attention.attn
            views.append(
                LayerView(
                    layer=layer,
                    attention=attention,
                    qkv=(Slot(attention, "q"), Slot(attention, "k"), Slot(attention, "v")),
                    attention_out=Slot(attention, "o"),
                    ffn_in=Slot(layer.intermediate, "dense"),
                    ffn_out=Slot(layer.output, "dense"),
                    activation=Slot(layer.intermediate, "intermediate_act_fn"),
                    norms=(layer.attention.LayerNorm, layer.output.LayerNorm),
                )
            )
        return views

    def embeddings(self, model: PreTrainedModel) -> EmbeddingView:
        table = self.base(model).embeddings
        return EmbeddingView(tables=(Slot(table, "word_embeddings"), Slot(table, "position_embeddings")), norm=table.LayerNorm)

    def head(self, model: PreTrainedModel) -> HeadView:
        head: Any = model.classifier
        return HeadView(dense=head.dense, classifier=head.out_proj)

    def extras(self, model: PreTrainedModel) -> ExtraView:
        return ExtraView(head_tables=(self.base(model).encoder.relative_attention_bias,))

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        head: Any = model.lm_head
        return MaskedLMView(head.dense, head.layer_norm, head.decoder, head, head.bias)
