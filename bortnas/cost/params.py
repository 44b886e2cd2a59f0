"""Exact parameter counts of a candidate as its family's transformers sequence classifier.

Pure layer. The family's layout enters through `TeacherShape.structure` (`bortnas.core.space.Structure`).
"""

from __future__ import annotations

import dataclasses

from bortnas.core.space import ArchSpec, Structure, TeacherShape


@dataclasses.dataclass(frozen=True)
class ParamCount:
    """Trainable parameters of a candidate.

    `embedding` is every lookup table (word, position, token type, and the relative-position
    tables of MPNet and DeBERTa); `encoder` the encoder layers alone; `non_embedding` everything
    but the tables: Bort's "effective" size, and the p of the W-coefficient.
    """

    total: int
    embedding: int
    encoder: int

    @property
    def non_embedding(self) -> int:
        return self.total - self.embedding


def layer_matrices(hidden: int, ffn: int, structure: Structure = Structure()) -> list[tuple[int, int]]:
    """(in, out) of the matrices of one encoder layer: Q, K, V, O, any position projections, FFN in, FFN out."""
    ffn_rows = 2 * ffn if structure.gated_ffn else ffn
    attention = [(hidden, hidden)] * (4 + structure.position_projections)
    return [*attention, (hidden, ffn_rows), (ffn, hidden)]


def encoder_layer_params(hidden: int, ffn: int, structure: Structure = Structure()) -> int:
    """One encoder layer: its projections with their biases, and its norms."""
    s = structure
    ffn_rows = 2 * ffn if s.gated_ffn else ffn
    weights = sum(i * o for i, o in layer_matrices(hidden, ffn, s))
    biases = (4 * hidden if s.attention_bias else 0) + hidden * s.position_projections  # DeBERTa's always have one
    biases += ffn_rows + hidden if s.ffn_bias else 0
    norms = s.layer_norms * hidden * (2 if s.norm_bias else 1)
    return weights + biases + norms


def param_count(spec: ArchSpec, shape: TeacherShape) -> ParamCount:
    """Parameters of the teacher family's sequence classifier shaped as `spec`.

    Vocabulary, positions, token types and labels come from the teacher; so does the layout
    (`shape.structure`): embedding projection, gated FFN, biases, norms, relative positions, head.
    """
    s, h = shape.structure, spec.hidden
    norm = 2 if s.norm_bias else 1
    width = s.embedding_size or h
    tables = (shape.vocab_size + shape.max_positions + shape.type_vocab_size) * width
    relative = s.relative_bias_buckets * spec.heads + s.relative_embeddings * h
    table_norm = norm * width if s.embedding_size and s.embedding_norm_on_tables else 0
    # transformers builds the projection only where the widths differ (a student as narrow as the tables has none)
    projection = width * h + (h if s.embedding_projection_bias else 0) if width != h else 0
    hidden_norms = norm * h * s.hidden_norms_outside_layers + (2 * h if s.relative_embedding_norm else 0)
    encoder = spec.layers * encoder_layer_params(h, spec.ffn, s) - s.first_layer_missing_norms * norm * h
    dense = h * h + (h if s.head_bias else 0) + (norm * h if s.head_norm else 0) if shape.head == "sequence" or s.head_norm else 0
    head = 0 if shape.head == "none" else dense + h * shape.num_labels + shape.num_labels
    total = tables + relative + table_norm + projection + hidden_norms + encoder + head
    return ParamCount(total=total, embedding=tables + relative, encoder=encoder)
