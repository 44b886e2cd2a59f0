"""The general objective: relation distillation of the last hidden states, its held-out metric, and
the windows a corpus is read in; against values computed by hand."""

from __future__ import annotations

import math

import pytest
import torch

from bortnas.core.tasks import TASKS
from bortnas.data.encode import EncodedSplit
from bortnas.train.objectives import Objective, relation_heads, relation_kl

GENERAL = Objective(TASKS["general"])
E = math.e


def test_relation_heads_are_the_most_up_to_12_that_divide_both_widths() -> None:
    assert relation_heads(288, 384) == 12
    assert relation_heads(192, 768) == 12
    assert relation_heads(100, 64) == 4
    assert relation_heads(7, 5) == 1


def _kl_by_hand() -> float:
    # teacher states of 2 tokens, width 1: 1 and 0. Scores h_i h_j / sqrt(1): row 0 (1, 0), row 1 (0, 0).
    # teacher relations: row 0 (e/(1+e), 1/(1+e)), row 1 uniform. A student of zeros relates uniformly:
    # KL row 0 = p ln(2p) + q ln(2q); row 1 = 0; mean over the 2 query tokens
    p, q = E / (1 + E), 1 / (1 + E)
    return (p * math.log(2 * p) + q * math.log(2 * q)) / 2


def test_relation_kl_is_the_teachers_kl_from_the_student_over_real_query_tokens() -> None:
    teacher = torch.tensor([[[1.0], [0.0]]])
    student = torch.zeros(1, 2, 3)  # another width: relations do not depend on it (one relation head: 1 and 3)
    mask = torch.ones(1, 2, dtype=torch.long)
    assert float(relation_kl(student, teacher, mask)) == pytest.approx(_kl_by_hand())
    assert float(relation_kl(teacher, teacher, mask)) == pytest.approx(0.0, abs=1e-7)


def test_relation_kl_ignores_padding_as_keys_and_as_queries() -> None:
    teacher = torch.tensor([[[1.0], [0.0], [9.0]]])
    student = torch.tensor([[[0.0], [0.0], [-4.0]]])
    mask = torch.tensor([[1, 1, 0]])
    assert float(relation_kl(student, teacher, mask)) == pytest.approx(_kl_by_hand())
    # per example: the same value, one row per example
    assert relation_kl(student, teacher, mask, reduce=False).tolist() == pytest.approx([_kl_by_hand()])


def test_general_distillation_loss_is_the_relation_kl_and_its_gradient_is_finite_with_padding() -> None:
    student = torch.tensor([[[0.0], [0.0], [3.0]]], requires_grad=True)
    teacher = torch.tensor([[[1.0], [0.0], [0.0]]])
    mask = torch.tensor([[1, 1, 0]])
    loss = GENERAL.distillation_loss(student, teacher, mask, 2.0)
    assert float(loss.detach()) == pytest.approx(_kl_by_hand())
    loss.backward()
    assert student.grad is not None and torch.isfinite(student.grad).all()
    assert float(student.grad[0, 2].abs().sum()) == 0.0  # a padded token learns nothing


def test_general_metrics_read_the_teachers_padded_states() -> None:
    split = EncodedSplit(input_ids=[[1, 2], [1, 2, 3]], token_type_ids=None, labels=torch.zeros(2), pad_id=0)
    split.reference = torch.tensor([[[1.0], [0.0], [0.0]], [[1.0], [0.0], [2.0]]])  # the first padded to 3 tokens
    # the first a uniform student; the second relates its tokens as the teacher does: width 4, each state the
    # teacher's times sqrt(2) in its first unit, so that h.h' / sqrt(4) is the teacher's h.h' / sqrt(1)
    second = torch.zeros(3, 4)
    second[:, 0] = split.reference[1, :, 0] * math.sqrt(2)
    outputs = [torch.zeros(2, 4), second]
    metrics = GENERAL.metrics(outputs, split)
    kl = _kl_by_hand() / 2  # mean over the two windows
    assert metrics["relation_kl"] == pytest.approx(kl)
    assert metrics["relation_agreement"] == pytest.approx(math.exp(-kl))
    assert TASKS["general"].error(metrics["relation_agreement"]) == pytest.approx(1 - math.exp(-kl))


def test_bort_masked_token_loss_by_hand() -> None:
    from bortnas.data.encode import IGNORE

    # one masked token over a vocabulary of 2. The teacher's logits (2 ln 3, 0) soften at T = 2 to
    # (3/4, 1/4); a student of zeros is uniform. KD = T^2 KL = 4 (3/4 ln 1.5 + 1/4 ln 0.5); its
    # cross-entropy against the original token 0 is ln 2. Bort weighs them 0.5 and 0.1
    student, teacher = torch.zeros(1, 2), torch.tensor([[2 * math.log(3), 0.0]])
    labels = torch.tensor([[IGNORE, 0, IGNORE]])
    kd = 4 * (0.75 * math.log(1.5) + 0.25 * math.log(0.5))
    loss = Objective(TASKS["general"], mask_token_id=4).masked_token_loss(student, teacher, labels)
    assert float(loss) == pytest.approx(0.5 * kd + 0.1 * math.log(2))
    empty = Objective(TASKS["general"], mask_token_id=4).masked_token_loss(torch.zeros(0, 2), torch.zeros(0, 2), labels[:, :1])
    assert float(empty) == 0.0  # a batch without masked tokens adds nothing


def test_a_masked_lm_student_learns_the_teachers_masked_tokens() -> None:
    """Through the real loop: the MLM head runs on the masked positions only, and distillation lowers Bort's loss."""
    from conftest import VOCAB, tiny_config
    from transformers import AutoModelForMaskedLM

    from bortnas.core.settings import TrainConfig
    from bortnas.data.masking import mask_tokens
    from bortnas.model.extract import Extraction
    from bortnas.train.loop import train
    from bortnas.train.objectives import MaskedTokens

    torch.manual_seed(0)
    teacher = AutoModelForMaskedLM.from_config(tiny_config("bert")).eval()
    torch.manual_seed(1)
    student = AutoModelForMaskedLM.from_config(tiny_config("bert", num_hidden_layers=1)).eval()
    generator = torch.Generator().manual_seed(0)
    windows = [[2, *torch.randint(5, len(VOCAB), (14,), generator=generator).tolist(), 3] for _ in range(64)]
    split = mask_tokens(EncodedSplit(windows, None, torch.zeros(64, dtype=torch.long), 0), 4, [0, 2, 3], seed=0)
    objective = Objective(TASKS["general"], mask_token_id=4)
    batch = split.batch(list(range(64)))
    inputs = {k: v for k, v in batch.items() if k != "labels"}

    def bort_loss() -> float:
        with torch.no_grad():
            s_out, t_out = MaskedTokens(student, 4)(**inputs), MaskedTokens(teacher, 4)(**inputs)
        assert s_out.masked_logits.shape == (int((batch["input_ids"] == 4).sum()), len(VOCAB))
        return float(objective.masked_token_loss(s_out.masked_logits, t_out.masked_logits, batch["labels"]))

    before = bort_loss()
    config = TrainConfig(steps=60, batch_size=16, lr=3e-3, seed=0, hidden_weight=0.0)
    train(student, split, config, teacher=teacher, extraction=Extraction((), torch.arange(0)), objective=objective)
    assert bort_loss() < 0.7 * before
