"""Exact parameter counts of a candidate as a transformers sequence classifier."""

from __future__ import annotations

import dataclasses

from bortnas.core.space import ArchSpec, TeacherShape


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """Trainable parameters of a candidate.

    `embedding` is the three lookup tables (word, position, token type); `encoder` the encoder
    layers alone; `non_embedding` everything but the tables (encoder, embedding LayerNorm, pooler,
    classifier): Bort's "effective" size, and the p of the W-coefficient.
    """

    total: int
    embedding: int
    encoder: int

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding


def encoder_layer_params(hidden: int, ffn: int) -> int:
    """One encoder layer: Q, K, V, O projections, the FFN and two LayerNorms."""
    attention = 4 * (hidden * hidden + hidden)
    feed_forward = hidden * ffn + ffn + ffn * hidden + hidden
    layer_norms = 2 * 2 * hidden
    return attention + feed_forward + layer_norms


def param_count(spec: ArchSpec, shape: TeacherShape) -> ParamCount:
    """Parameters of `BertForSequenceClassification` (or Roberta's equivalent) for `spec`.

    Vocabulary, positions, token types and labels come from the teacher; BERT's pooler and
    RoBERTa's classification head have the same size (H^2 + H, then H*C + C).
    """
    h = spec.hidden
    tables = (shape.vocab_size + shape.max_positions + shape.type_vocab_size) * h
    embedding_norm = 2 * h
    encoder = spec.layers * encoder_layer_params(h, spec.ffn)
    head = (h * h + h) + (h * shape.num_labels + shape.num_labels)
    return ParamCount(total=tables + embedding_norm + encoder + head, embedding=tables, encoder=encoder)
