"""How an export's final training is configured: the methods, their default steps, and Agora's settings.

Pure layer (stdlib, YAML and the pure Agora loop's rule names): the Python API (`bortnas.Agora`),
the CLI's help and the training code (`bortnas.trial.finetune`) all read these, so each default
is written once.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from pathlib import Path
from typing import Any

import yaml

from bortnas.algo.agora import PRUNE_RULES
from bortnas.core.errors import ParameterError, UserInputError

__all__ = ["DEFAULT_GRID", "DEFAULT_STEPS", "GRID_KEYS", "METHODS", "AgoraSettings", "load_grid", "steps_for_tokens"]

METHODS = ("distil", "plain", "agora")
# Steps of an export's training when no number of steps is given. Distillation: 1500 (about 5.6 epochs
# of the reviews at batch 32) brought the default run's L2-H288 candidate to 1.8 points of the
# teacher's test accuracy, where 400 left it 3.1 points below (docs/benchmarks/default-run.md).
# Plain and Agora: 400 per fine-tune, as Agora runs |Theta| (|Theta| + 1) / 2 of them.
DEFAULT_STEPS = {"distil": 1500, "plain": 400, "agora": 400}


def steps_for_tokens(tokens: int, batch_size: int, tokens_per_example: float) -> int:
    """The steps that show the model about `tokens` real (unpadded) tokens, at `batch_size` examples
    a step of `tokens_per_example` tokens on average: a pre-training budget is usually stated in
    tokens, while the schedule (warm-up, decay) needs its length in steps before training starts."""
    if tokens_per_example <= 0:
        raise ValueError("tokens_per_example must be positive")
    return max(1, math.ceil(tokens / (batch_size * tokens_per_example)))


GRID_KEYS = ("lr", "weight_decay", "warmup_fraction", "batch_size", "seed")
DEFAULT_GRID: dict[str, list[Any]] = {"lr": [1e-4, 5e-4], "seed": [0, 1]}


@dataclasses.dataclass(frozen=True)
class AgoraSettings:
    """Agora's settings (`run_agora`).

    Raises:
        ParameterError: a bad `replay`, `min_confidence`, `pool_neighbours` or `rule`.
        UserInputError: `pool_in_data` without `soft_labels`, or `pool_weighting` without `pool_in_data`.
    """

    grid: dict[str, list[Any]] = dataclasses.field(default_factory=lambda: dict(DEFAULT_GRID))
    replay: int = 1  # rounds re-run on the grown data at the end
    rule: str = "ties"
    variants: int = 4  # generated inputs per dev mistake
    seed: int = 0
    soft_labels: bool = False  # learn from the teacher's probabilities (distillation loss), not its argmax
    min_confidence: float = 0.0  # add a generated input only if the teacher's top probability is at least this
    pool_neighbours: int = 4  # unlabelled pool inputs drawn per dev mistake, when a pool is given
    warm_start: bool = False  # each theta's fine-tune continues its previous round's student instead of restarting
    pool_in_data: bool = False  # the whole pool joins D from the start (teacher's probabilities only; needs soft_labels)
    split_dev: bool = False  # generate from the mistakes on one half of dev, choose students on the other half
    pool_weighting: bool = False  # with pool_in_data: no edits; each mistake's nearest pool texts join D once more

    def __post_init__(self) -> None:
        if self.replay < 0:
            raise ParameterError("replay", f"={self.replay} must be >= 0: the rounds re-run on the grown data at the end, e.g. 1.")
        if not 0.0 <= self.min_confidence < 1.0:
            raise ParameterError(
                "min_confidence", f"={self.min_confidence} must be in [0, 1): a top probability to reach, e.g. 0.9 (0 keeps every input)."
            )
        if self.pool_neighbours < 1:
            raise ParameterError(
                "pool_neighbours", f"={self.pool_neighbours} must be a positive integer: the pool inputs drawn per dev mistake, e.g. 4."
            )
        if self.rule not in PRUNE_RULES:
            raise ParameterError("rule", f"={self.rule!r} is unknown: use one of {', '.join(PRUNE_RULES)}.")
        if self.pool_in_data and not self.soft_labels:
            raise UserInputError(
                "Agora's pool_in_data=True needs soft_labels=True: pool texts have no label of their own; "
                "turn soft_labels on or pool_in_data off."
            )
        if self.pool_weighting and not self.pool_in_data:
            raise UserInputError(
                "Agora's pool_weighting=True needs pool_in_data=True: it weights up pool texts already in D; "
                "turn pool_in_data on or pool_weighting off."
            )

    def thetas(self) -> list[dict[str, Any]]:
        keys = list(self.grid)
        return [dict(zip(keys, values, strict=True)) for values in itertools.product(*(self.grid[k] for k in keys))]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def load_grid(path: str | Path) -> dict[str, list[Any]]:
    """A hyperparameter grid from YAML: each key of GRID_KEYS maps to a list of values.

    Raises:
        UserInputError: unreadable file, bad YAML, unknown key, empty or non-numeric values.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except OSError as e:
        raise UserInputError(f"cannot read the Agora grid {path}: {e.strerror}; pass a readable YAML file.") from e
    except yaml.YAMLError:
        raise UserInputError(f"the Agora grid {path} is not valid YAML: write e.g. `lr: [1.0e-4, 5.0e-4]`.") from None
    if not isinstance(data, dict) or not data:
        raise UserInputError(f"the Agora grid {path} must map hyperparameters to lists, e.g. `lr: [1.0e-4, 5.0e-4]`.")
    grid = {}
    for key, values in data.items():
        if key not in GRID_KEYS:
            raise UserInputError(f"unknown key {key!r} in the Agora grid {path}: allowed keys are {', '.join(GRID_KEYS)}.")
        values = values if isinstance(values, list) else [values]
        integer = key in ("batch_size", "seed")
        ok = values and all(isinstance(v, (int, float)) and not isinstance(v, bool) and (not integer or isinstance(v, int)) for v in values)
        if not ok or (key in ("lr", "batch_size") and min(values) <= 0) or min(values) < 0:
            kind = "non-negative integers" if integer else "non-negative numbers"
            raise UserInputError(f"{key} in the Agora grid {path} must be a non-empty list of {kind} (lr and batch_size positive).")
        grid[key] = list(dict.fromkeys(values))
    return grid
