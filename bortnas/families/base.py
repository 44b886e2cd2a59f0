"""The contract every encoder family meets: read a teacher's config, shape a student's, and show its modules as one view.

Imports no torch: the config side is plain data (the cost model and the CLI's checks use it
before anything heavy loads) and the model side only reads attributes. Extraction, importance,
distillation and quantization (`bortnas.model`, `bortnas.quant`) work on the views alone, so no
code outside `bortnas.families` branches on the family.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from bortnas.core.errors import UnsupportedArchitectureError
from bortnas.core.space import ArchSpec, Structure, TeacherShape

if TYPE_CHECKING:
    import torch
    from torch import nn
    from transformers import PreTrainedConfig, PreTrainedModel


def field(config: Any, key: str, default: Any = None) -> Any:
    """A field of a transformers config object or of its `config.json` dict."""
    if isinstance(config, Mapping):
        value = config.get(key, default)
    else:
        value = getattr(config, key, default)
    return default if value is None else value


@dataclasses.dataclass
class Slot:
    """A submodule named by its parent and attribute, so a module swap can replace it in place."""

    parent: nn.Module
    name: str

    def get(self) -> nn.Module:
        module: nn.Module = getattr(self.parent, self.name)
        return module

    def set(self, module: nn.Module) -> None:
        setattr(self.parent, self.name, module)

    @property
    def linear(self) -> nn.Linear:
        """The slot's module as the linear layer (or quantized linear) it holds."""
        module: Any = self.get()
        return module

    @property
    def table(self) -> nn.Embedding:
        """The slot's module as the lookup table it holds."""
        module: Any = self.get()
        return module


@dataclasses.dataclass
class LayerView:
    """One encoder layer as extraction, importance, distillation and quantization see it.

    `qkv` holds the query, key and value projections, or one fused projection whose output rows
    are [query; key; value] (ModernBERT). `ffn_in`'s rows are [up; gate] when the family's FFN is
    gated. `position_query` / `position_key` are DeBERTa's separate position projections. Every
    projection's input is the residual stream except `ffn_out`'s (the FFN neurons) and
    `attention_out`'s (the heads' outputs, head after head).
    """

    layer: nn.Module
    attention: nn.Module  # owns the projections; the binary modes add their attention quantizers to it
    qkv: tuple[Slot, ...]
    attention_out: Slot
    ffn_in: Slot
    ffn_out: Slot
    activation: Slot  # the FFN's activation function (binary modes replace GELU by ReLU)
    norms: tuple[nn.Module, ...]  # this layer's norms over the residual width
    position_query: Slot | None = None
    position_key: Slot | None = None

    @property
    def fused_qkv(self) -> bool:
        return len(self.qkv) == 1

    def linears(self) -> list[tuple[Slot, bool]]:
        """(slot, whether its input is signed) for every projection a quantized mode replaces."""
        slots = [*self.qkv, *(s for s in (self.position_query, self.position_key) if s is not None)]
        # the FFN output's input is an activation's (unsigned after ReLU) unless a gate multiplies it
        gated = self.ffn_in.linear.out_features != self.ffn_out.linear.in_features
        return [(s, True) for s in slots] + [(self.attention_out, True), (self.ffn_in, True), (self.ffn_out, gated)]


@dataclasses.dataclass
class EmbeddingView:
    """The lookup tables (word first), their norm and the projection that lifts them to the residual width, if any.

    Without a projection the tables and the norm are in the residual space. With one, the tables
    keep their own width; the norm is on the tables' side (ELECTRA) or after the projection (DeBERTa).
    """

    tables: tuple[Slot, ...]
    norm: nn.Module | None
    projection: nn.Linear | None = None
    norm_on_tables: bool = False

    @property
    def word(self) -> Slot:
        return self.tables[0]


@dataclasses.dataclass
class HeadView:
    """A task head: a sequence head on the first token (or the pooled tokens) has a dense layer,
    optionally a norm, then the classifier; a token head is the classifier on every token
    (`dense` None), or the same three parts per token (ModernBERT)."""

    dense: nn.Linear | None
    classifier: nn.Linear
    norm: nn.Module | None = None


@dataclasses.dataclass
class MaskedLMView:
    """A masked-language-model head: `dense` from the residual stream to the word embeddings' width,
    its activation and `norm`, then `decoder` to the vocabulary (tied to the word table in most
    families; None where the family multiplies by the table itself, as DeBERTa-v2 does) plus
    `bias`. `logits(states)` runs the whole head on the final hidden states it is given (any
    leading shape), so a caller can run it on the masked positions alone."""

    dense: nn.Linear
    norm: nn.Module
    decoder: nn.Linear | None
    logits: Callable[[torch.Tensor], torch.Tensor]
    bias: nn.Parameter | None = None  # a vocabulary bias outside the decoder


@dataclasses.dataclass
class ExtraView:
    """Parts outside the layers that live in the residual width or are indexed by head."""

    hidden_tables: tuple[nn.Embedding, ...] = ()  # columns are residual dimensions (DeBERTa's relative embeddings)
    hidden_norms: tuple[nn.Module, ...] = ()  # norms over the residual width outside the layers (ModernBERT's final norm)
    head_tables: tuple[nn.Embedding, ...] = ()  # columns are heads, shared by every layer (MPNet's relative bias)


class Family:
    """One encoder family. Subclasses set the class attributes and override what differs from BERT.

    `model_types` are the `model_type` values of the family's configs; `classes` names its
    transformers classes for messages. `token_types`: the forward pass takes `token_type_ids`.
    `shared_heads`: a per-head table shared by every layer forces one head set for all layers.
    `rotary`: positions are rotations of query / key dimension pairs, so a head's dimensions are
    kept in pairs. `attention_interface`: the family's attention computes its products in
    transformers' attention interface, where the binary modes' quantized attention is a registered
    function; otherwise (MPNet's and DeBERTa's position terms) hooks quantize it in place
    (`bortnas.quant.attention`).
    """

    name: str = ""
    model_types: tuple[str, ...] = ()
    classes: str = ""
    token_types: bool = True
    shared_heads: bool = False
    rotary: bool = False
    attention_interface: bool = True  # its attention calls transformers' attention interface (quantized by a function)
    activation_key: str = "hidden_act"  # the config field naming the FFN activation
    body_prefixes: tuple[str, ...] = ("embeddings.", "encoder.")  # the encoder's weights, relative to the base model
    # config keys of the searched widths, where the family names them differently
    keys: tuple[tuple[str, str], ...] = (
        ("layers", "num_hidden_layers"),
        ("hidden", "hidden_size"),
        ("heads", "num_attention_heads"),
        ("ffn", "intermediate_size"),
    )

    # --- config side (plain data) ---------------------------------------------------------

    def check(self, config: Any, source: str) -> None:
        """Refuse a configuration of this family that bortnas cannot cut (one line naming the field)."""
        position = field(config, "position_embedding_type", "absolute")
        if position != "absolute":
            raise UnsupportedArchitectureError(f"position_embedding_type={position!r} in {source} is unsupported: only 'absolute' is.")

    def width(self, config: Any, dimension: str) -> int:
        return int(field(config, dict(self.keys)[dimension]))

    def structure(self, config: Any) -> Structure:
        return Structure(family=self.name)

    def position_rows(self, config: Any) -> int:
        return int(field(config, "max_position_embeddings"))

    def type_rows(self, config: Any) -> int:
        return int(field(config, "type_vocab_size", 2))

    def shape(self, config: Any, num_labels: int, head: str = "sequence") -> TeacherShape:
        """The dimensions of a teacher config (object or dict) that bound a space and enter the costs,
        with a task `head` of `num_labels` outputs (`TeacherShape.head`)."""
        return TeacherShape(
            layers=self.width(config, "layers"),
            hidden=self.width(config, "hidden"),
            heads=self.width(config, "heads"),
            ffn=self.width(config, "ffn"),
            vocab_size=int(field(config, "vocab_size")),
            max_positions=self.position_rows(config),
            type_vocab_size=self.type_rows(config) if self.token_types else 0,
            num_labels=num_labels,
            structure=self.structure(config),
            head=head,
        )

    def student_config(self, config: PreTrainedConfig, spec: ArchSpec, layers: Sequence[int]) -> PreTrainedConfig:
        """A copy of the teacher's config shaped as `spec`; `layers` are the teacher layers kept, in order."""
        student = copy.deepcopy(config)
        for dimension, key in self.keys:
            setattr(student, key, getattr(spec, dimension))
        return student

    # --- model side (attribute reads only) ------------------------------------------------

    def base(self, model: PreTrainedModel) -> Any:
        return model.base_model

    def layers(self, model: PreTrainedModel) -> list[LayerView]:
        raise NotImplementedError

    def embeddings(self, model: PreTrainedModel) -> EmbeddingView:
        raise NotImplementedError

    def head(self, model: PreTrainedModel) -> HeadView:
        """The sequence classification head."""
        raise NotImplementedError

    def token_head(self, model: PreTrainedModel) -> HeadView:
        """The token classification head: in every supported family but ModernBERT a linear `classifier` on each token."""
        classifier: Any = model
        return HeadView(dense=None, classifier=classifier.classifier)

    def task_head(self, model: PreTrainedModel) -> HeadView | None:
        """The head of `model` by its class: a sequence or token classifier's, or None for a bare encoder (embeddings)."""
        name = type(model).__name__
        if name.endswith("ForSequenceClassification"):
            return self.head(model)
        if name.endswith("ForTokenClassification"):
            return self.token_head(model)
        return None

    def masked_lm(self, model: PreTrainedModel) -> MaskedLMView | None:
        """The masked-language-model head of a `...ForMaskedLM` model, or None for any other class."""
        if not type(model).__name__.endswith("ForMaskedLM"):
            return None
        return self._masked_lm(model)

    def _masked_lm(self, model: PreTrainedModel) -> MaskedLMView:
        raise NotImplementedError

    def extras(self, model: PreTrainedModel) -> ExtraView:
        return ExtraView()

    def residual_writers(self, model: PreTrainedModel) -> list[nn.Module]:
        """Modules whose outputs make up the residual stream; scaling one residual dimension in all of
        them removes that dimension everywhere (post-norm: every norm on the stream)."""
        view = self.embeddings(model)
        first = view.projection if view.norm_on_tables else view.norm
        writers = [] if first is None else [first]
        for layer in self.layers(model):
            writers += layer.norms
        return writers + list(self.extras(model).hidden_norms)
