"""How `bortnas.export` trains the chosen candidate: `Distil` (default), `Plain` or `Agora`.

API layer, torch-free: small frozen configs. Their defaults are written once, in
`bortnas.core.finetuning` (`DEFAULT_STEPS`, `AgoraSettings`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bortnas.core.errors import ParameterError
from bortnas.core.finetuning import DEFAULT_STEPS, AgoraSettings

__all__ = ["Agora", "Distil", "Finetune", "Plain"]


@dataclasses.dataclass(frozen=True)
class Finetune:
    """The final training of an export. `steps` None: the method's default (`DEFAULT_STEPS`: 1500 for
    distil, 400 for plain and per Agora fine-tune).

    Raises:
        ParameterError: a non-positive step count.
    """

    steps: int | None = None

    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps <= 0):
            raise ParameterError("steps", f"={self.steps!r} must be a positive integer.")

    @property
    def resolved_steps(self) -> int:
        """`steps`, or the method's default."""
        return DEFAULT_STEPS[self.method] if self.steps is None else self.steps


@dataclasses.dataclass(frozen=True)
class Distil(Finetune):
    """Distil from the task teacher: its probabilities (KD) and hidden states, plus the labels; BiT
    candidates go through their multi-step chain. The default, and the best measured method."""

    method: ClassVar[str] = "distil"


@dataclasses.dataclass(frozen=True)
class Plain(Finetune):
    """Fine-tune on the task's labels alone (cross-entropy), no teacher."""

    method: ClassVar[str] = "plain"


@dataclasses.dataclass(frozen=True)
class Agora(Finetune):
    """Agora: a grid of fine-tunes on a growing data set, new examples generated from the best
    student's dev mistakes and labelled by the task teacher, with replay and pruning. `steps` is per
    fine-tune; `settings` holds the grid, replay, pruning rule and labelling (default: grid lr
    [1e-4, 5e-4] x seed [0, 1], one replay)."""

    settings: AgoraSettings = AgoraSettings()

    method: ClassVar[str] = "agora"
