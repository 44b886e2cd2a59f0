from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bortnas.data import load_table
from bortnas.encode import encode
from bortnas.errors import TrialFailed
from bortnas.extract import extract
from bortnas.importance import compute_importance
from bortnas.space import ArchSpec
from bortnas.train import TrainConfig, distillation_loss, evaluate, train


@pytest.fixture()
def setup(tiny_bert: Path, tiny_task: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task = load_table(tiny_task, "sentence", "sentiment")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2)
    return model, encode(task.train, tokenizer, 32), encode(task.dev, tokenizer, 32)


def test_fine_tuning_learns_the_task(setup) -> None:  # type: ignore[no-untyped-def]
    model, train_split, dev_split = setup
    before = evaluate(model, dev_split)
    result = train(model, train_split, TrainConfig(steps=60, lr=3e-3, batch_size=16))
    after = evaluate(model, dev_split)
    assert result.steps == 60
    assert after.loss < before.loss and after.accuracy >= 0.9


def test_distillation_loss_is_zero_for_an_exact_copy(setup) -> None:  # type: ignore[no-untyped-def]
    model, train_split, _ = setup
    model.eval()
    c = model.config
    importance = compute_importance(model, train_split.batches(32))
    student, extraction = extract(model, importance, ArchSpec(2, c.hidden_size, c.num_attention_heads, c.intermediate_size))
    batch = train_split.batch(list(range(8)))
    inputs = {k: v for k, v in batch.items() if k != "labels"}
    with torch.no_grad():
        t_out = model(**inputs, output_hidden_states=True)
        s_out = student(**inputs, output_hidden_states=True)
    config = TrainConfig(steps=1, kd_weight=1.0, hidden_weight=1.0)
    assert distillation_loss(s_out, t_out, batch, config, extraction).item() == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        student.bert.encoder.layer[0].output.dense.weight.add_(0.1 * torch.randn_like(student.bert.encoder.layer[0].output.dense.weight))
        s_out = student(**inputs, output_hidden_states=True)
    assert distillation_loss(s_out, t_out, batch, config, extraction).item() > 1e-4


def test_divergence_is_a_trial_failure(setup) -> None:  # type: ignore[no-untyped-def]
    model, train_split, _ = setup
    with torch.no_grad():
        model.classifier.weight.fill_(float("nan"))
    with pytest.raises(TrialFailed, match="diverged: loss is nan at step 1"):
        train(model, train_split, TrainConfig(steps=5))


def test_weight_clipping_bounds_every_weight(setup) -> None:  # type: ignore[no-untyped-def]
    model, train_split, _ = setup
    train(model, train_split, TrainConfig(steps=3, optimizer="sgd", lr=0.1, clip_weights=0.05))
    assert max(p.abs().max().item() for p in model.parameters()) <= 0.05 + 1e-7
