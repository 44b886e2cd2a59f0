"""Search spaces: YAML files parsed into frozen, validated candidates (`ArchSpec`).

Pure layer: stdlib and PyYAML only. `load_search_space` is the one place YAML is read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from bortnas.core.errors import SearchSpaceError
from bortnas.modes import QuantMode

__all__ = [
    "ArchSpec",
    "QuantMode",
    "SearchSpace",
    "Structure",
    "TeacherShape",
    "load_search_space",
]

DIMENSIONS = ("layers", "hidden", "heads", "ffn")
_OPTIONAL_KEYS = ("name", "description", "quant", "reference", "highlight")


@dataclasses.dataclass(frozen=True)
class ArchSpec:
    """One candidate architecture: a uniform encoder of the teacher's family.

    The attention of a candidate has `heads` heads of size `hidden // heads`, so every
    candidate is a stock transformers config of that family.
    """

    layers: int
    hidden: int
    heads: int
    ffn: int
    quant: QuantMode = QuantMode.FP32

    def __post_init__(self) -> None:
        for key in DIMENSIONS:
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SearchSpaceError(f"ArchSpec {key}={value!r} is invalid: it must be a positive integer.")
        if not isinstance(self.quant, QuantMode):
            object.__setattr__(self, "quant", _parse_quant(self.quant, "ArchSpec"))

    @property
    def is_valid(self) -> bool:
        """Whether the heads split the hidden width evenly (the BERT constraint)."""
        return self.hidden % self.heads == 0

    @property
    def head_size(self) -> int:
        return self.hidden // self.heads

    @property
    def key(self) -> str:
        """A short readable name, e.g. ``L4-H256-A8-I768-fp32``."""
        return f"L{self.layers}-H{self.hidden}-A{self.heads}-I{self.ffn}-{self.quant.value}"

    @property
    def arch_id(self) -> str:
        """Hash of the canonical JSON: dedupes trials across processes and resumes."""
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha1(payload).hexdigest()[:12]

    def to_dict(self) -> dict[str, Any]:
        return {"layers": self.layers, "hidden": self.hidden, "heads": self.heads, "ffn": self.ffn, "quant": self.quant.value}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ArchSpec:
        return cls(
            layers=int(data["layers"]),
            hidden=int(data["hidden"]),
            heads=int(data["heads"]),
            ffn=int(data["ffn"]),
            quant=_parse_quant(data.get("quant", "fp32"), "candidate"),
        )


@dataclasses.dataclass(frozen=True)
class Structure:
    """What a family's layout adds to the cost formulas beyond the four searched widths.

    The defaults describe BERT (and RoBERTa, XLM-RoBERTa): learned absolute positions, biases
    everywhere, post-norm LayerNorms with a bias, an ungated GELU feed-forward, a dense head.
    Each family adapter (`bortnas.families`) fills it from a teacher's config.
    """

    family: str = "bert"
    embedding_size: int | None = None  # width of the lookup tables when a projection lifts them to hidden (ELECTRA, DeBERTa)
    embedding_projection_bias: bool = True
    embedding_norm_on_tables: bool = False  # with a projection, the embedding norm has the tables' width (ELECTRA), not hidden (DeBERTa)
    attention_bias: bool = True
    ffn_bias: bool = True
    norm_bias: bool = True
    gated_ffn: bool = False  # the FFN input projection has 2 x ffn rows, an up and a gate half (ModernBERT)
    layer_norms: int = 2  # norms on the residual stream per layer
    hidden_norms_outside_layers: int = 1  # hidden-wide norms outside the layers: the embedding norm (unless it has the
    # tables' width), ModernBERT's final norm
    first_layer_missing_norms: int = 0  # ModernBERT's first layer has no attention norm
    head_bias: bool = True  # the head's hidden -> hidden dense
    head_norm: bool = False  # a LayerNorm after the head's dense (ModernBERT)
    relative_bias_buckets: int = 0  # a (buckets x heads) table of attention biases shared by every layer (MPNet)
    relative_embeddings: int = 0  # rows of a (rows x hidden) relative-position table (DeBERTa), and its LayerNorm
    relative_embedding_norm: bool = False
    position_terms: int = 0  # DeBERTa's content-to-position and position-to-content products (0, 1 or 2)
    position_projection_runs: int = 0  # projections of the relative table per layer (2 when shared with Q and K)
    position_projections: int = 0  # separate position projection matrices per layer (DeBERTa with share_att_key off)


@dataclasses.dataclass(frozen=True)
class TeacherShape:
    """The dimensions of a teacher that bound a search space and enter the cost formulas.

    `max_positions` and `type_vocab_size` are the rows of the position and token-type tables,
    0 where the family has none (rotary or relative positions; no token types).
    """

    layers: int
    hidden: int
    heads: int
    ffn: int
    vocab_size: int
    max_positions: int
    type_vocab_size: int
    num_labels: int = 2
    structure: Structure = Structure()
    # the task head (`bortnas.core.tasks`): "sequence" (dense and classifier on one token), "token"
    # (a classifier on every token; ModernBERT's also has the dense and norm) or "none" (an embedding model)
    head: str = "sequence"

    def head_weights(self, hidden: int) -> int:
        """Weights of the head's matrices at width `hidden` (also its multiply-adds per position it runs on)."""
        if self.head == "none":
            return 0
        dense = hidden * hidden if self.head == "sequence" or self.structure.head_norm else 0
        return dense + hidden * self.num_labels

    def head_tokens(self, seq_len: int) -> int:
        """How many positions the head runs on: one for a sequence head, every token for a token head."""
        return seq_len if self.head == "token" else 1

    def as_spec(self) -> ArchSpec:
        return ArchSpec(self.layers, self.hidden, self.heads, self.ffn)


# Shapes of well-known teachers of every family, so a space can be priced without the weights
# (`bortnas space`). Data only: tests/unit/test_references.py checks each against its family
# adapter reading the model's published config.json values.
REFERENCE_SHAPES = {
    "bert-base": TeacherShape(12, 768, 12, 3072, vocab_size=30522, max_positions=512, type_vocab_size=2),
    "bert-large": TeacherShape(24, 1024, 16, 4096, vocab_size=30522, max_positions=512, type_vocab_size=2),
    "roberta-large": TeacherShape(
        24, 1024, 16, 4096, vocab_size=50265, max_positions=514, type_vocab_size=1, structure=Structure(family="roberta")
    ),
    "minilm-l6": TeacherShape(6, 384, 12, 1536, vocab_size=30522, max_positions=512, type_vocab_size=2),
    "distilbert-base": TeacherShape(
        6, 768, 12, 3072, vocab_size=30522, max_positions=512, type_vocab_size=0, structure=Structure(family="distilbert")
    ),
    "electra-small": TeacherShape(
        12,
        256,
        4,
        1024,
        vocab_size=30522,
        max_positions=512,
        type_vocab_size=2,
        structure=Structure(family="electra", embedding_size=128, embedding_norm_on_tables=True, hidden_norms_outside_layers=0),
    ),
    "electra-base": TeacherShape(
        12, 768, 12, 3072, vocab_size=30522, max_positions=512, type_vocab_size=2, structure=Structure(family="electra")
    ),
    "xlm-roberta-base": TeacherShape(
        12, 768, 12, 3072, vocab_size=250002, max_positions=514, type_vocab_size=1, structure=Structure(family="xlm-roberta")
    ),
    "mpnet-base": TeacherShape(
        12,
        768,
        12,
        3072,
        vocab_size=30527,
        max_positions=514,
        type_vocab_size=0,
        structure=Structure(family="mpnet", relative_bias_buckets=32),
    ),
    "deberta-v3-base": TeacherShape(
        12,
        768,
        12,
        3072,
        vocab_size=128100,
        max_positions=0,
        type_vocab_size=0,
        structure=Structure(
            family="deberta-v2",
            embedding_projection_bias=False,
            relative_embeddings=512,
            relative_embedding_norm=True,
            position_terms=2,
            position_projection_runs=2,
        ),
    ),
    "modernbert-base": TeacherShape(
        22,
        768,
        12,
        1152,
        vocab_size=50368,
        max_positions=0,
        type_vocab_size=0,
        structure=Structure(
            family="modernbert",
            attention_bias=False,
            ffn_bias=False,
            norm_bias=False,
            gated_ffn=True,
            hidden_norms_outside_layers=2,
            first_layer_missing_norms=1,
            head_bias=False,
            head_norm=True,
        ),
    ),
}


@dataclasses.dataclass(frozen=True)
class SearchSpace:
    """The values each dimension may take; candidates are the valid combinations.

    A combination whose hidden width is not divisible by its head count is skipped, as Bort's
    grid did, but every value must take part in at least one valid combination.
    """

    layers: tuple[int, ...]
    hidden: tuple[int, ...]
    heads: tuple[int, ...]
    ffn: tuple[int, ...]
    quant: tuple[QuantMode, ...] = (QuantMode.FP32,)
    name: str = "space"
    source: str = "<memory>"
    reference: str | None = None  # a key of REFERENCE_SHAPES the space is meant to be cut from
    highlight: tuple[ArchSpec, ...] = ()  # candidates `bortnas space` ranks (e.g. the published Bort)

    def __post_init__(self) -> None:
        for key in DIMENSIONS:
            values = getattr(self, key)
            if not values:
                raise SearchSpaceError(f"{key} in {self.source} is empty: list at least one positive integer.")
            for value in values:
                if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                    raise SearchSpaceError(
                        f"{key} in {self.source} has {value!r}: every value must be a positive integer (e.g. {key}: [2, 4])."
                    )
            object.__setattr__(self, key, tuple(sorted(set(values))))
        if not self.quant:
            raise SearchSpaceError(f"quant in {self.source} is empty: list at least one mode, e.g. quant: [fp32].")
        object.__setattr__(self, "quant", tuple(dict.fromkeys(_parse_quant(q, self.source) for q in self.quant)))
        if self.reference is not None and self.reference not in REFERENCE_SHAPES:
            raise SearchSpaceError(f"reference={self.reference!r} in {self.source} is unknown: use one of {', '.join(REFERENCE_SHAPES)}.")
        for h in self.hidden:
            if not any(h % a == 0 for a in self.heads):
                raise SearchSpaceError(
                    f"hidden={h} in {self.source} is divisible by none of heads={list(self.heads)}: "
                    "pick hidden sizes that are multiples of some head count."
                )
        for a in self.heads:
            if not any(h % a == 0 for h in self.hidden):
                raise SearchSpaceError(
                    f"heads={a} in {self.source} divides none of hidden={list(self.hidden)}: pick head counts that divide some hidden size."
                )

    def candidates(self) -> Iterator[ArchSpec]:
        """All valid candidates, in a fixed order (small to large)."""
        for layers, hidden, heads, ffn, quant in itertools.product(self.layers, self.hidden, self.heads, self.ffn, self.quant):
            if hidden % heads == 0:
                yield ArchSpec(layers, hidden, heads, ffn, quant)

    def __len__(self) -> int:
        return sum(1 for _ in self.candidates())

    def __contains__(self, spec: object) -> bool:
        return (
            isinstance(spec, ArchSpec)
            and spec.is_valid
            and spec.layers in self.layers
            and spec.hidden in self.hidden
            and spec.heads in self.heads
            and spec.ffn in self.ffn
            and spec.quant in self.quant
        )

    @property
    def maximum_point(self) -> ArchSpec:
        """The maximum point T: the largest value of every dimension.

        p and i grow in every dimension, so T bounds them over the whole space; it is the
        normalisation point of the W-coefficient (it need not be a valid candidate itself).
        """
        return ArchSpec(self.layers[-1], self.hidden[-1], self.heads[-1], self.ffn[-1])

    def check_fits(self, teacher: TeacherShape) -> None:
        """Raise `SearchSpaceError` when a value exceeds what the teacher has to cut from."""
        for key in DIMENSIONS:
            limit = getattr(teacher, key)
            too_big = [v for v in getattr(self, key) if v > limit]
            if too_big:
                raise SearchSpaceError(
                    f"{key}={too_big} in {self.source} is larger than the teacher's {key}={limit}: use values of at most {limit}."
                )

    def fingerprint(self) -> str:
        """A hash of the candidate set, stored with a study to refuse resuming with another space."""
        payload = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha1(payload).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {
            "layers": list(self.layers),
            "hidden": list(self.hidden),
            "heads": list(self.heads),
            "ffn": list(self.ffn),
            "quant": [q.value for q in self.quant],
        }

    def to_yaml(self) -> str:
        return yaml.safe_dump({"name": self.name, **self.to_dict()}, sort_keys=False)


def _parse_quant(value: Any, source: str) -> QuantMode:
    if isinstance(value, QuantMode):
        return value
    try:
        return QuantMode(value)
    except ValueError:
        supported = ", ".join(QuantMode.names())
        raise SearchSpaceError(f"quant={value!r} in {source} is unknown: supported modes are {supported}.") from None


def parse_search_space(data: Any, source: str, default_name: str = "space") -> SearchSpace:
    """Validate an already-parsed YAML document into a `SearchSpace`."""
    if not isinstance(data, dict):
        raise SearchSpaceError(f"{source} must be a YAML mapping with keys {', '.join(DIMENSIONS)} (found {type(data).__name__}).")
    unknown = sorted(set(data) - set(DIMENSIONS) - set(_OPTIONAL_KEYS))
    if unknown:
        allowed = ", ".join(DIMENSIONS + _OPTIONAL_KEYS)
        raise SearchSpaceError(f"unknown key {unknown[0]!r} in {source}: allowed keys are {allowed}.")
    missing = [k for k in DIMENSIONS if k not in data]
    if missing:
        raise SearchSpaceError(f"key {missing[0]!r} is missing in {source}: add e.g. `{missing[0]}: [2, 4]`.")
    values: dict[str, tuple[Any, ...]] = {}
    for key in DIMENSIONS + ("quant",):
        raw = data.get(key, ["fp32"] if key == "quant" else None)
        items = raw if isinstance(raw, list) else [raw]
        values[key] = tuple(items)
    name = data.get("name", default_name)
    if not isinstance(name, str) or not name:
        raise SearchSpaceError(f"name in {source} must be a non-empty string.")
    description = data.get("description", "")
    if not isinstance(description, str):
        found = _yaml_kind(description)
        raise SearchSpaceError(
            f"description in {source} must be a string (found {found} {description!r}): "
            'write one line of text, quoted if needed, e.g. description: "quick search on MiniLM".'
        )
    highlight = tuple(_parse_key(key, source) for key in data.get("highlight") or ())
    return SearchSpace(
        layers=values["layers"],
        hidden=values["hidden"],
        heads=values["heads"],
        ffn=values["ffn"],
        quant=values["quant"],
        name=name,
        source=source,
        reference=data.get("reference"),
        highlight=highlight,
    )


def _yaml_kind(value: Any) -> str:
    """How a parsed YAML value reads to a user: 'a number', 'a list', ..."""
    if value is None:
        return "an empty value"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return f"a {type(value).__name__}"


def _parse_key(key: Any, source: str) -> ArchSpec:
    """`L4-H1024-A8-I768[-fp32]` -> ArchSpec."""
    parts = str(key).split("-")
    try:
        dims = {p[0]: int(p[1:]) for p in parts[:4]}
        return ArchSpec(dims["L"], dims["H"], dims["A"], dims["I"], _parse_quant(parts[4] if len(parts) > 4 else "fp32", source))
    except (KeyError, ValueError, IndexError):
        raise SearchSpaceError(f"highlight {key!r} in {source} is not a candidate key like L4-H1024-A8-I768.") from None


def load_search_space(path: str | Path) -> SearchSpace:
    """Read and validate a search-space YAML file.

    Raises:
        SearchSpaceError: the file is missing, is not YAML, has unknown keys or invalid values.
    """
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as e:
        raise SearchSpaceError(f"cannot read search space {path}: {e.strerror}; pass an existing YAML file.") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise SearchSpaceError(f"{path} is not valid YAML{where}: fix the syntax (see search_spaces/minilm_quick.yaml).") from e
    return parse_search_space(data, str(path), default_name=path.stem)
