from __future__ import annotations

import pytest

from bortnas.core.space import ArchSpec, TeacherShape
from bortnas.cost import param_count

BERT_BASE = TeacherShape(layers=12, hidden=768, heads=12, ffn=3072, vocab_size=30522, max_positions=512, type_vocab_size=2)
BERT_LARGE = TeacherShape(layers=24, hidden=1024, heads=16, ffn=4096, vocab_size=30522, max_positions=512, type_vocab_size=2)


def test_bert_base_and_large_match_the_published_sizes() -> None:
    base = param_count(BERT_BASE.as_spec(), BERT_BASE)
    # BertModel (with pooler) has 109,482,240 parameters; the classifier adds 768 * 2 + 2.
    assert base.total == 109_482_240 + 1_538
    assert base.encoder == 85_054_464
    assert base.embedding == (30522 + 512 + 2) * 768
    large = param_count(BERT_LARGE.as_spec(), BERT_LARGE)
    assert round(large.total / 1e6) == 335


@pytest.mark.parametrize("family", ["bert", "roberta"])
@pytest.mark.parametrize("spec", [ArchSpec(1, 16, 2, 32), ArchSpec(2, 32, 4, 64), ArchSpec(3, 24, 8, 40)])
def test_formula_equals_the_real_module(family: str, spec: ArchSpec) -> None:
    from transformers import BertConfig, BertForSequenceClassification, RobertaConfig, RobertaForSequenceClassification

    common = dict(
        vocab_size=50,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.ffn,
        max_position_embeddings=40,
        num_labels=3,
    )
    if family == "bert":
        model = BertForSequenceClassification(BertConfig(**common, type_vocab_size=2))
    else:
        model = RobertaForSequenceClassification(RobertaConfig(**common, type_vocab_size=1, pad_token_id=0))
    shape = TeacherShape(spec.layers, spec.hidden, spec.heads, spec.ffn, 50, 40, model.config.type_vocab_size, num_labels=3)
    counted = param_count(spec, shape)
    assert counted.total == sum(p.numel() for p in model.parameters())
    tables = sum(m.weight.numel() for m in model.modules() if m.__class__.__name__ == "Embedding")
    assert counted.embedding == tables
    assert counted.encoder == sum(p.numel() for p in model.base_model.encoder.parameters())


@pytest.mark.parametrize("family", ["bert", "roberta"])
def test_a_token_heads_parameters_equal_the_real_module(family: str) -> None:
    from transformers import BertConfig, BertForTokenClassification, RobertaConfig, RobertaForTokenClassification

    spec = ArchSpec(2, 32, 4, 64)
    common = dict(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=40
    )
    if family == "bert":
        model = BertForTokenClassification(BertConfig(**common, type_vocab_size=2, num_labels=7))
    else:
        model = RobertaForTokenClassification(RobertaConfig(**common, type_vocab_size=1, pad_token_id=0, num_labels=7))
    shape = TeacherShape(2, 32, 4, 64, 50, 40, model.config.type_vocab_size, num_labels=7, head="token")
    assert param_count(spec, shape).total == sum(p.numel() for p in model.parameters())  # no pooler, no dense: 32 * 7 + 7
