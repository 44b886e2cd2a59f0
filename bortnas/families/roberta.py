"""RoBERTa: BERT's layers and embeddings (positions offset past the padding index, one token type);
the head is `classifier.dense` then `classifier.out_proj` on the first token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bortnas.families.base import HeadView, MaskedLMView
from bortnas.families.bert import BertFamily

if TYPE_CHECKING:
    from transformers import PreTrainedModel


class RobertaFamily(BertFamily):
    name = "roberta"
    model_types = ("roberta",)
    classes = "RobertaModel and its task heads"

    def head(self, model: PreTrainedModel) -> HeadView:
        head: Any = model.classifier
        return HeadView(dense=head.dense, classifier=head.out_proj)

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        head: Any = model.lm_head
        return MaskedLMView(head.dense, head.layer_norm, head.decoder, head, head.bias)
