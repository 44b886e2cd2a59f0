from __future__ import annotations

import pytest

from bortnas.core.space import ArchSpec, TeacherShape
from bortnas.cost import flops

BERT_BASE = TeacherShape(layers=12, hidden=768, heads=12, ffn=3072, vocab_size=30522, max_positions=512, type_vocab_size=2)


def test_bert_base_at_128_tokens() -> None:
    count = flops(BERT_BASE.as_spec(), BERT_BASE, 128)
    # 2 * 12 * (4*128*768^2 + 2*128^2*768 + 2*128*768*3072) = 22.347 G, plus pooler and classifier
    assert count.matmul == 2 * 12 * (4 * 128 * 768**2 + 2 * 128**2 * 768 + 2 * 128 * 768 * 3072) + 2 * (768**2 + 768 * 2)
    assert 22.4e9 < count.total < 22.6e9  # "22.5 GFLOPs" in the BiT table


def test_flops_grow_in_every_dimension() -> None:
    base = flops(ArchSpec(2, 64, 4, 128), BERT_BASE, 32).total
    for bigger in (ArchSpec(3, 64, 4, 128), ArchSpec(2, 128, 4, 128), ArchSpec(2, 64, 8, 128), ArchSpec(2, 64, 4, 256)):
        assert flops(bigger, BERT_BASE, 32).total > base


@pytest.mark.parametrize("spec", [ArchSpec(1, 16, 2, 32), ArchSpec(2, 32, 4, 64), ArchSpec(2, 24, 3, 48)])
@pytest.mark.parametrize("seq_len", [7, 32])
def test_matmul_flops_equal_torch_flop_counter(spec: ArchSpec, seq_len: int) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=50,
        hidden_size=spec.hidden,
        num_hidden_layers=spec.layers,
        num_attention_heads=spec.heads,
        intermediate_size=spec.ffn,
        max_position_embeddings=64,
        num_labels=2,
        attn_implementation="eager",
    )
    model = BertForSequenceClassification(config).eval()
    shape = TeacherShape(spec.layers, spec.hidden, spec.heads, spec.ffn, 50, 64, 2)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=torch.randint(0, 50, (1, seq_len)))
    assert counter.get_total_flops() == flops(spec, shape, seq_len).matmul


@pytest.mark.parametrize("seq_len", [7, 32])
def test_a_token_head_runs_on_every_token(seq_len: int) -> None:
    """A token classifier's classifier multiplies every position; there is no pooler or dense layer (torch's counter agrees)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode
    from transformers import BertConfig, BertForTokenClassification

    spec = ArchSpec(2, 32, 4, 64)
    config = BertConfig(
        vocab_size=50, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64, max_position_embeddings=64
    )
    model = BertForTokenClassification(BertConfig(**config.to_dict(), num_labels=5, attn_implementation="eager")).eval()
    shape = TeacherShape(2, 32, 4, 64, 50, 64, 2, num_labels=5, head="token")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(input_ids=torch.randint(0, 50, (1, seq_len)))
    assert counter.get_total_flops() == flops(spec, shape, seq_len).matmul
    sequence = flops(spec, TeacherShape(2, 32, 4, 64, 50, 64, 2, num_labels=5), seq_len).matmul
    assert flops(spec, shape, seq_len).matmul - sequence == 2 * (seq_len * 32 * 5 - (32 * 32 + 32 * 5))  # hand count
