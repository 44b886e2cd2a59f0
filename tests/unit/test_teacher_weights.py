"""A teacher whose config.json and weights disagree is refused before anything is written, not
silently completed with random layers (what transformers does with a config of more layers)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from bortnas.core.errors import UserInputError
from bortnas.trial.inputs import check_teacher_weights, load_teacher_config
from bortnas.trial.teacher import load_pretrained_teacher


def edited(teacher: Path, tmp_path: Path, **changes: int) -> Path:
    """A copy of `teacher` whose config.json says `changes`; the weights stay as they were."""
    copy = tmp_path / "teacher"
    shutil.copytree(teacher, copy)
    config = json.loads((copy / "config.json").read_text())
    (copy / "config.json").write_text(json.dumps({**config, **changes}))
    return copy


@pytest.mark.parametrize("family", ["tiny_bert", "tiny_roberta"])
def test_matching_weights_pass_with_or_without_a_task_head(family: str, request: pytest.FixtureRequest) -> None:
    teacher: Path = request.getfixturevalue(family)
    check_teacher_weights(teacher, load_teacher_config(teacher))  # saved as a bare encoder: the head is absent
    assert load_pretrained_teacher(teacher, ("a", "b", "c")).config.num_labels == 3


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        # a layer is 16 tensors: Q, K, V, attention output, two LayerNorms, FFN in and out, each weight and bias
        ({"num_hidden_layers": 3}, "16 weights missing (e.g. encoder.layer.2.attention.output.LayerNorm.bias)"),
        ({"num_hidden_layers": 1}, "16 unexpected weights (e.g. encoder.layer.1."),
        # per layer the FFN's input weight and bias and its output weight depend on the FFN width: 3 x 2 layers
        ({"intermediate_size": 48}, "6 weights of another shape (e.g. encoder.layer.0.intermediate.dense.bias)"),
    ],
)
def test_disagreeing_config_is_refused_before_loading(tiny_bert: Path, tmp_path: Path, changes: dict[str, int], message: str) -> None:
    teacher = edited(tiny_bert, tmp_path, **changes)
    with pytest.raises(UserInputError, match="config.json and the weights disagree") as raised:
        check_teacher_weights(teacher, load_teacher_config(teacher))
    assert message in str(raised.value)


def test_a_bin_checkpoint_is_checked_when_loaded(tiny_bert: Path, tmp_path: Path) -> None:
    teacher = edited(tiny_bert, tmp_path, num_hidden_layers=3)
    weights = teacher / "model.safetensors"
    from safetensors.torch import load_file

    torch.save(load_file(str(weights)), teacher / "pytorch_model.bin")
    weights.unlink()
    check_teacher_weights(teacher, load_teacher_config(teacher))  # no safetensors header to read: deferred
    with pytest.raises(UserInputError, match="16 weights missing"):
        load_pretrained_teacher(teacher, ("a", "b"))
    shape = edited(tiny_bert, tmp_path / "shape", intermediate_size=48)
    with pytest.raises(UserInputError, match="tensors of another shape"):
        load_pretrained_teacher(shape, ("a", "b"))


def test_a_legacy_buffer_in_the_weights_is_not_a_disagreement(tiny_bert: Path, tmp_path: Path) -> None:
    # Checkpoints saved by older transformers (the bundled MiniLM among them) also hold
    # embeddings.position_ids, a buffer today's BERT no longer writes.
    from safetensors.torch import load_file, save_file

    teacher = edited(tiny_bert, tmp_path)
    tensors = load_file(str(teacher / "model.safetensors"))
    save_file({**tensors, "embeddings.position_ids": torch.arange(64).unsqueeze(0)}, str(teacher / "model.safetensors"))
    check_teacher_weights(teacher, load_teacher_config(teacher))
    load_pretrained_teacher(teacher, ("a", "b"))
