"""How `bortnas.export` trains the chosen candidate: `Distil` (default), `Plain` or `Agora`.

API layer, torch-free: small frozen configs. Their defaults live with the training code
(`bortnas.trial.finetune.DEFAULT_STEPS`, `AgoraSettings`), resolved when an export runs.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, ClassVar

from bortnas.core.errors import ParameterError

if TYPE_CHECKING:
    from bortnas.trial.finetune import AgoraSettings

__all__ = ["Agora", "Distil", "Finetune", "Plain"]


@dataclasses.dataclass(frozen=True)
class Finetune:
    """The final training of an export. `steps` None: the method's default (1500 for distil, 400 for
    plain and per Agora fine-tune).

    Raises:
        ParameterError: a non-positive step count.
    """

    steps: int | None = None

    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        if self.steps is not None and (isinstance(self.steps, bool) or not isinstance(self.steps, int) or self.steps <= 0):
            raise ParameterError("steps", f"={self.steps!r} must be a positive integer.")


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
    fine-tune. `settings` None: `AgoraSettings()` (grid lr [1e-4, 5e-4] x seed [0, 1], one replay)."""

    settings: AgoraSettings | None = None

    method: ClassVar[str] = "agora"
