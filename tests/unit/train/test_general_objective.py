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
