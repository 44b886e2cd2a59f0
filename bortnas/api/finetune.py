"""How `bortnas.export` trains the chosen candidate: `Distil` (default), `Plain` or `Agora`.

API layer, torch-free: small frozen configs. Their defaults are written once, in
`bortnas.core.finetuning` (`DEFAULT_STEPS`, `AgoraSettings`).
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from bortnas.core.errors import ParameterError
from bortnas.core.finetuning import DEFAULT_STEPS, AgoraSettings, steps_for_tokens

__all__ = ["Agora", "Distil", "Finetune", "Plain"]


@dataclasses.dataclass(frozen=True)
class Finetune:
    """The final training of an export. `steps` None: the method's default (`DEFAULT_STEPS`: 1500 for
    distil, 400 for plain and per Agora fine-tune). `tokens` instead of `steps`: train until the
    model has seen about that many real tokens of the training data (a pre-training budget, as a
    general encoder's is usually stated); the steps follow from the batch size and the training
    examples' mean length (`bortnas.core.finetuning.steps_for_tokens`).

    Raises:
        ParameterError: a non-positive step or token count, or both given.
    """

    steps: int | None = None
    tokens: int | None = None

    method: ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in ("steps", "tokens"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise ParameterError(name, f"={value!r} must be a positive integer.")
        if self.steps is not None and self.tokens is not None:
            raise ParameterError("tokens", f"={self.tokens} and steps={self.steps} are two lengths for one training: give one.")

    @property
    def resolved_steps(self) -> int:
        """`steps`, or the method's default (a `tokens` budget is resolved by `steps_for`)."""
        return DEFAULT_STEPS[self.method] if self.steps is None else self.steps

    def steps_for(self, batch_size: int, tokens_per_example: float) -> int:
        """The training's steps: `steps`, the method's default, or those that read `tokens` tokens
        at `batch_size` examples of `tokens_per_example` tokens a step."""
        if self.tokens is None:
            return self.resolved_steps
        return steps_for_tokens(self.tokens, batch_size, tokens_per_example)


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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.tokens is not None:
            raise ParameterError("tokens", f"={self.tokens} does not fit Agora, whose data grows between its fine-tunes: give steps.")
