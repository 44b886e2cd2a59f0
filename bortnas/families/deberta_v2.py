"""DeBERTa-v2 and v3: post-norm layers (`attention.self.{query,key,value}_proj`, `attention.output`,
`intermediate`, `output`) with disentangled attention: a relative-position table
`encoder.rel_embeddings` (optionally normed by `encoder.LayerNorm`) projected per layer by the
query and key projections (or by separate `pos_query_proj` / `pos_key_proj`), adding
content-to-position and position-to-content terms to the scores. The tables may be narrower than
the hidden width (`embed_proj`, bias-free, then the embedding norm); v3 has no absolute position
table and no token types. The head is `pooler.dense` then `classifier` on the first token.

The relative table lives in the residual width, so it is cut like the stream. Rescaling the
query keeps every score term at the teacher's scale when the head size changes: the content and
content-to-position terms carry the query, the position-to-content term carries the query
projection of the table (or `pos_query_proj`, rescaled alike). DeBERTa-v2-xlarge's convolution
layer (`conv_kernel_size` > 0) is not supported.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bortnas.core.errors import UnsupportedArchitectureError
from bortnas.core.space import ArchSpec, Structure
from bortnas.families.base import EmbeddingView, ExtraView, HeadView, MaskedLMView, Slot, field
from bortnas.families.bert import BertFamily

if TYPE_CHECKING:
    import torch
    from transformers import PreTrainedConfig, PreTrainedModel


def _terms(config: Any) -> list[str]:
    kinds = field(config, "pos_att_type", [])
    if isinstance(kinds, str):
        kinds = [k.strip() for k in kinds.lower().split("|")]
    return [k for k in kinds if k in ("c2p", "p2c")] if field(config, "relative_attention", False) else []


def _relative_rows(config: Any) -> int:
    if not field(config, "relative_attention", False):
        return 0
    buckets = int(field(config, "position_buckets", -1))
    if buckets > 0:
        return 2 * buckets
    span = int(field(config, "max_relative_positions", -1))
    return 2 * (span if span >= 1 else int(field(config, "max_position_embeddings")))


class DebertaV2Family(BertFamily):
    name = "deberta-v2"
    model_types = ("deberta-v2",)
    classes = "DebertaV2Model and its task heads (DeBERTa-v2 and v3)"
    attention_interface = False
    projections = ("query_proj", "key_proj", "value_proj")

    def check(self, config: Any, source: str) -> None:
        if int(field(config, "conv_kernel_size", 0)) > 0:
            raise UnsupportedArchitectureError(
                f"conv_kernel_size={field(config, 'conv_kernel_size')} in {source} is unsupported: "
                "bortnas cuts DeBERTa-v2/v3 without the convolution layer (v3 and v2 base/large have none)."
            )
        hidden, heads = int(field(config, "hidden_size")), int(field(config, "num_attention_heads"))
        head_size = field(config, "attention_head_size", hidden // heads)
        if int(head_size) * heads != hidden:
            raise UnsupportedArchitectureError(
                f"attention_head_size={head_size} x {heads} heads != hidden_size={hidden} in {source}: "
                "bortnas cuts DeBERTa whose heads tile the hidden width."
            )

    def structure(self, config: Any) -> Structure:
        hidden = int(field(config, "hidden_size"))
        embedding = int(field(config, "embedding_size", hidden))
        terms = _terms(config)
        shared = bool(field(config, "share_att_key", False))
        rows = _relative_rows(config)
        return Structure(
            family=self.name,
            embedding_size=embedding if embedding != hidden else None,
            embedding_projection_bias=False,
            relative_embeddings=rows,
            relative_embedding_norm=rows > 0 and "layer_norm" in str(field(config, "norm_rel_ebd", "none")).lower(),
            position_terms=len(terms),
            position_projection_runs=(2 if shared else len(terms)) if rows else 0,
            position_projections=0 if shared else len(terms),
        )

    def position_rows(self, config: Any) -> int:
        return int(field(config, "max_position_embeddings")) if field(config, "position_biased_input", True) else 0

    def type_rows(self, config: Any) -> int:
        return int(field(config, "type_vocab_size", 0))

    def student_config(self, config: PreTrainedConfig, spec: ArchSpec, layers: Sequence[int]) -> PreTrainedConfig:
        student = super().student_config(config, spec, layers)
        student.pooler_hidden_size = spec.hidden
        if getattr(config, "embedding_size", None) in (None, config.hidden_size):
            student.embedding_size = spec.hidden
        if getattr(config, "attention_head_size", None) is not None:
            student.attention_head_size = spec.head_size
        return student

    def embeddings(self, model: PreTrainedModel) -> EmbeddingView:
        table = self.base(model).embeddings
        names = [n for n in ("word_embeddings", "position_embeddings", "token_type_embeddings") if getattr(table, n, None) is not None]
        return EmbeddingView(
            tables=tuple(Slot(table, n) for n in names), norm=table.LayerNorm, projection=getattr(table, "embed_proj", None)
        )

    def head(self, model: PreTrainedModel) -> HeadView:
        classifier: Any = model
        return HeadView(dense=classifier.pooler.dense, classifier=classifier.classifier)

    def extras(self, model: PreTrainedModel) -> ExtraView:
        encoder = self.base(model).encoder
        tables = (encoder.rel_embeddings,) if getattr(encoder, "relative_attention", False) else ()
        norms = (encoder.LayerNorm,) if getattr(encoder, "LayerNorm", None) is not None else ()
        return ExtraView(hidden_tables=tables, hidden_norms=norms)

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        m: Any = model
        if m.legacy:
            predictions = m.cls.predictions
            return MaskedLMView(predictions.transform.dense, predictions.transform.LayerNorm, predictions.decoder, m.cls, predictions.bias)
        head, words = m.lm_predictions.lm_head, m.deberta.embeddings.word_embeddings

        def logits(states: torch.Tensor) -> torch.Tensor:
            out: torch.Tensor = m.lm_predictions(states, words)
            return out

        return MaskedLMView(head.dense, head.LayerNorm, None, logits, head.bias)
