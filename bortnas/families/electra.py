"""ELECTRA: BERT's layers; tables of their own `embedding_size`, normed at that width and lifted to
the hidden width by `embeddings_project` when the two differ; the head is `classifier.dense`
then `classifier.out_proj` on the first token."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bortnas.core.space import ArchSpec, Structure
from bortnas.families.base import EmbeddingView, HeadView, MaskedLMView, field
from bortnas.families.bert import BertFamily

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedConfig, PreTrainedModel


def _projected(config: Any) -> bool:
    return int(field(config, "embedding_size", field(config, "hidden_size"))) != int(field(config, "hidden_size"))


class ElectraFamily(BertFamily):
    name = "electra"
    model_types = ("electra",)
    classes = "ElectraModel and its task heads"
    body_prefixes = ("embeddings.", "embeddings_project.", "encoder.")

    def structure(self, config: Any) -> Structure:
        if not _projected(config):
            return Structure(family=self.name)
        return Structure(
            family=self.name,
            embedding_size=int(field(config, "embedding_size")),
            embedding_norm_on_tables=True,
            hidden_norms_outside_layers=0,
        )

    def student_config(self, config: PreTrainedConfig, spec: ArchSpec, layers: Sequence[int]) -> PreTrainedConfig:
        student = super().student_config(config, spec, layers)
        if not _projected(config):
            student.embedding_size = spec.hidden  # the tables are the residual stream: they shrink with it
        return student

    def embeddings(self, model: PreTrainedModel) -> EmbeddingView:
        view = super().embeddings(model)
        projection = getattr(self.base(model), "embeddings_project", None)
        if projection is not None:
            view.projection, view.norm_on_tables = projection, True
        return view

    def head(self, model: PreTrainedModel) -> HeadView:
        head: Any = model.classifier
        return HeadView(dense=head.dense, classifier=head.out_proj)

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        m: Any = model  # ELECTRA's generator

        def logits(states: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = m.generator_lm_head(m.generator_predictions(states))
            return out

        predictions = m.generator_predictions
        return MaskedLMView(predictions.dense, predictions.LayerNorm, m.generator_lm_head, logits)
