"""Resumable training (`bortnas.train.checkpoint`): a run killed midway and started again from its
checkpoint ends with exactly the weights of a run never stopped."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from bortnas.core.settings import TrainConfig
from bortnas.data.encode import encode
from bortnas.data.tasks import load_table
from bortnas.train.checkpoint import Checkpoint
from bortnas.train.loop import train


class Killed(Exception):
    pass


def _setup(tiny_bert: Path, tiny_task: Path):  # type: ignore[no-untyped-def]
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_bert)
    task = load_table(tiny_task, "sentence", "sentiment")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_bert, num_labels=2, hidden_dropout_prob=0.1)
    return model, encode(task.train, tokenizer, 32)


def test_a_killed_run_resumes_to_the_weights_of_an_unbroken_one(tiny_bert: Path, tiny_task: Path, tmp_path: Path) -> None:
    model, data = _setup(tiny_bert, tiny_task)
    # 16 examples a batch over the tiny task: several epochs in 20 steps, so the resume crosses an epoch boundary
    config = TrainConfig(steps=20, lr=3e-3, batch_size=16)
    unbroken, killed = copy.deepcopy(model), copy.deepcopy(model)
    train(unbroken, data, config)

    checkpoint = Checkpoint(tmp_path / "run.pt", key="run", interval_s=0.0)  # saved after every step

    def kill(step: int) -> None:
        if step == 13:
            raise Killed

    with pytest.raises(Killed):
        train(killed, data, config, on_step=kill, checkpoint=checkpoint)
    resumed = copy.deepcopy(model)  # a new process: the weights as first loaded
    steps: list[int] = []
    train(resumed, data, config, on_step=steps.append, checkpoint=Checkpoint(tmp_path / "run.pt", key="run", interval_s=0.0))
    assert steps == list(range(13, 21))  # step 13 was killed before its state was saved
    for (name, a), b in zip(unbroken.state_dict().items(), resumed.state_dict().values(), strict=True):
        assert torch.allclose(a, b, atol=1e-6), name


def test_a_checkpoint_of_another_run_is_not_resumed_from(tiny_bert: Path, tiny_task: Path, tmp_path: Path) -> None:
    model, data = _setup(tiny_bert, tiny_task)
    config = TrainConfig(steps=4, lr=3e-3, batch_size=16)
    train(copy.deepcopy(model), data, config, checkpoint=Checkpoint(tmp_path / "run.pt", key="other", interval_s=0.0))
    steps: list[int] = []
    train(copy.deepcopy(model), data, config, on_step=steps.append, checkpoint=Checkpoint(tmp_path / "run.pt", key="run"))
    assert steps == [1, 2, 3, 4]
    assert torch.load(tmp_path / "run.pt", weights_only=True)["key"] == "run"  # the last step's state replaced it
