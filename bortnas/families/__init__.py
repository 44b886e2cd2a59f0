"""The encoder families bortnas can cut: one adapter module each, found by a config's `model_type`.

Imports no torch. `family_of(config)` is the one place a family is chosen; everything else
reads a teacher through the adapter's views (`bortnas.families.base`).
"""

from __future__ import annotations

from typing import Any

from bortnas.core.errors import UnsupportedArchitectureError
from bortnas.families.base import EmbeddingView, ExtraView, Family, HeadView, LayerView, MaskedLMView, Slot, field
from bortnas.families.bert import BertFamily
from bortnas.families.deberta_v2 import DebertaV2Family
from bortnas.families.distilbert import DistilBertFamily
from bortnas.families.electra import ElectraFamily
from bortnas.families.modernbert import ModernBertFamily
from bortnas.families.mpnet import MPNetFamily
from bortnas.families.roberta import RobertaFamily
from bortnas.families.xlm_roberta import XLMRobertaFamily

__all__ = [
    "FAMILIES",
    "SUPPORTED_MODEL_TYPES",
    "EmbeddingView",
    "ExtraView",
    "Family",
    "HeadView",
    "LayerView",
    "MaskedLMView",
    "Slot",
    "family_of",
]

FAMILIES: dict[str, Family] = {
    model_type: family
    for family in (
        BertFamily(),
        RobertaFamily(),
        XLMRobertaFamily(),
        ElectraFamily(),
        DistilBertFamily(),
        MPNetFamily(),
        DebertaV2Family(),
        ModernBertFamily(),
    )
    for model_type in family.model_types
}
SUPPORTED_MODEL_TYPES = tuple(FAMILIES)


def family_of(config: Any, source: str = "the teacher") -> Family:
    """The adapter of a config (transformers object or `config.json` dict), checked to be cuttable.

    Raises:
        UnsupportedArchitectureError: a model type bortnas has no adapter for (ALBERT's shared
            layers, Funnel, encoder-decoder and decoder-only models), or a configuration of a
            supported family that it cannot cut.
    """
    model_type = field(config, "model_type")
    family = FAMILIES.get(str(model_type))
    if family is None:
        archs = ",".join(field(config, "architectures", None) or [str(model_type)])
        raise UnsupportedArchitectureError(
            f"unsupported architecture {archs} (model_type={model_type!r}) in {source}: "
            f"supported families: {', '.join(SUPPORTED_MODEL_TYPES)}."
        )
    family.check(config, source)
    return family
