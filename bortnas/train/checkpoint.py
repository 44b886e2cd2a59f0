"""Resumable training: the state of a long run, saved now and then, so a killed export goes on where it stopped.

Torch layer. An export's distillation (a general encoder's above all, the longest job bortnas
runs) may take hours; a process killed by a scheduler or a full node should lose minutes, not the
run. The training loop saves the model, the optimizer, the schedule, the random state and where it
is in its data every `interval_s` seconds, atomically (a new file, then a rename, so a kill while
saving leaves the previous state whole), and on start resumes from the file if there is one. The
batches after a resume are exactly those the run would have drawn, so the result does not depend
on where it was stopped (tests/unit/train/test_checkpoint.py).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bortnas.core.disk import disk_full_error, is_disk_full

if TYPE_CHECKING:
    from transformers import PreTrainedModel

__all__ = ["Checkpoint", "Position"]

_logger = logging.getLogger(__name__)

DEFAULT_INTERVAL_S = 300.0


@dataclasses.dataclass(frozen=True)
class Position:
    """Where a run is: optimizer steps taken, the epoch, and the batches of that epoch already used."""

    step: int
    epoch: int
    batch: int


@dataclasses.dataclass
class Checkpoint:
    """The state file of one training run (`path`); saved at most every `interval_s` seconds.

    `key` names what the run is (its model, data and configuration): a file saved for another run
    is not resumed from, but replaced.
    """

    path: Path
    key: str
    interval_s: float = DEFAULT_INTERVAL_S
    _last: float = dataclasses.field(default_factory=time.monotonic)

    def restore(
        self, model: PreTrainedModel, optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler
    ) -> Position:
        """Load the saved state into the run's objects and return where it was; the start where there is none."""
        if not self.path.is_file():
            return Position(0, 0, 0)
        state = torch.load(self.path, map_location="cpu", weights_only=True)
        if state.get("key") != self.key:
            _logger.info("checkpoint %s belongs to another run: starting afresh", self.path)
            return Position(0, 0, 0)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["rng"])
        position = Position(*state["position"])
        _logger.info("resuming training from %s at step %d", self.path, position.step)
        return position

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.interval_s

    def save(
        self,
        model: PreTrainedModel,
        optimizer: torch.optim.Optimizer,
        scheduler: torch.optim.lr_scheduler.LRScheduler,
        position: Position,
    ) -> None:
        """Write the state atomically (a temporary file renamed over the last one)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        state = {
            "key": self.key,
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "rng": torch.get_rng_state(),
            "position": [position.step, position.epoch, position.batch],
        }
        partial = self.path.with_suffix(".partial")
        try:
            torch.save(state, partial)
        except BaseException as e:
            partial.unlink(missing_ok=True)
            if is_disk_full(e):
                weights = sum(t.numel() * t.element_size() for t in model.state_dict().values())
                raise disk_full_error(self.path.parent, 3 * weights, "saving a training checkpoint") from e  # weights, Adam's two moments
            raise
        os.replace(partial, self.path)
        self._last = time.monotonic()
