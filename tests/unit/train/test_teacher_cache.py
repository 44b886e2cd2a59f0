"""The teacher-output cache: the same training as without it, the teacher run once per example, bounded memory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from bortnas.core.settings import TrainConfig
from bortnas.core.space import ArchSpec
from bortnas.data.encode import EncodedSplit, encode
from bortnas.data.tasks import load_table
from bortnas.model.extract import extract
from bortnas.model.importance import compute_importance
from bortnas.train.loop import train
from bortnas.train.teacher_cache import TeacherCache


@pytest.fixture()
def teacher_and_split(tiny_bert: Path, tiny_task: Path) -> tuple[torch.nn.Module, EncodedSplit]:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task = load_table(tiny_task, "sentence", "sentiment")
    teacher = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2).eval()
    return teacher, encode(task.train, tokenizer, 32)


def _distil(teacher: torch.nn.Module, split: EncodedSplit, steps: int, cache: TeacherCache | None) -> torch.nn.Module:
    importance = compute_importance(teacher, split.batches(16))
    student, extraction = extract(teacher, importance, ArchSpec(1, 16, 2, 32))
    train(student, split, TrainConfig(steps=steps, lr=3e-3, batch_size=16), teacher=teacher, extraction=extraction, teacher_cache=cache)
    return student


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    """Equal weights up to float noise: a batch assembled from the cache is padded differently from the one the teacher
    ran on, which moves the last bits, and AdamW turns the noise-only gradient of the key biases into steps of about
    1e-5 (softmax ignores a bias shared by every key)."""
    return all(torch.allclose(x, y, atol=1e-4) for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True))


def test_cached_outputs_train_the_same_student(teacher_and_split: tuple[torch.nn.Module, EncodedSplit]) -> None:
    teacher, split = teacher_and_split
    batches_per_epoch = -(-len(split) // 16)
    steps = batches_per_epoch + 4  # a second epoch's batches are all cached examples, in new combinations
    plain = _distil(teacher, split, steps, None)
    cache = TeacherCache(teacher, split)
    first = _distil(teacher, split, steps, cache)
    assert (cache.misses, cache.hits) == (batches_per_epoch, 4)
    second = _distil(teacher, split, steps, cache)  # a second student (the next trial): the teacher never runs
    assert (cache.misses, cache.hits) == (batches_per_epoch, 4 + steps)
    assert _same(plain, first) and _same(plain, second)


def test_a_cache_of_the_students_layers_trains_the_same_student_in_less_memory(
    teacher_and_split: tuple[torch.nn.Module, EncodedSplit],
) -> None:
    teacher, split = teacher_and_split
    steps = -(-len(split) // 16) + 4
    full = TeacherCache(teacher, split)
    with_all = _distil(teacher, split, steps, full)
    importance = compute_importance(teacher, split.batches(16))
    _, extraction = extract(teacher, importance, ArchSpec(1, 16, 2, 32))  # the layer `_distil`'s student is cut from
    kept = TeacherCache(teacher, split, layers=[0, extraction.layers[0] + 1])
    with_kept = _distil(teacher, split, steps, kept)
    assert kept.hits == full.hits == 4 and _same(with_all, with_kept)
    # the tiny teacher has 2 layers, so 3 hidden states: the student's 2 of them take 2/3 of the room (logits aside)
    logits = sum(t.nbytes for t in kept._outputs.values())
    assert kept.bytes - logits == pytest.approx((full.bytes - logits) * 2 / 3)


def test_the_cache_is_bounded_and_serves_its_teacher_only(teacher_and_split: tuple[torch.nn.Module, EncodedSplit]) -> None:
    teacher, split = teacher_and_split
    tiny = TeacherCache(teacher, split, max_bytes=1)
    _distil(teacher, split, 3, tiny)
    assert tiny.bytes == 0 and tiny.hits == 0 and tiny.misses == 3
    other = TeacherCache(torch.nn.Linear(1, 1), split)  # a cache of another teacher is not used
    _distil(teacher, split, 3, other)
    assert other.hits == other.misses == 0
