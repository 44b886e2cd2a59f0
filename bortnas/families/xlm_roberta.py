"""XLM-RoBERTa: RoBERTa's modules under its own classes; its 250k-token vocabulary makes the word
table most of the model, which the cost model counts as embedding (outside p)."""

from __future__ import annotations

from bortnas.families.roberta import RobertaFamily


class XLMRobertaFamily(RobertaFamily):
    name = "xlm-roberta"
    model_types = ("xlm-roberta",)
    classes = "XLMRobertaModel and its task heads"
