"""How an exported candidate is trained: distillation (default), plain fine-tuning, or Agora.

Torch layer. All three use the one training loop (`bortnas.train.loop.train`):
- distil: `bortnas.trial.recipe.distil_student` (KD + hidden-state loss, BiT chain);
- plain: cross-entropy on the task's labels, no teacher;
- agora: `bortnas.algo.agora` with real students: each hyperparameter set fine-tunes a copy of
  the extracted (and quantized) candidate on the growing data set; new inputs come from the best
  student's dev mistakes through `bortnas.data.augment.Augmenter` (edits) and, given an
  unlabelled pool, `PoolNeighbours` (the mistakes' nearest pool texts), and are labelled by the
  task teacher. Labels are hard (the teacher's argmax; fine-tunes use cross-entropy) or, with
  `soft_labels`, the teacher's probabilities: fine-tunes then use the distillation loss of every
  other student, and generated examples have no label of their own (`SOFT_ONLY`). Inputs whose
  top teacher probability is below `min_confidence` are not added. Each fine-tune runs the
  export's step count, so Agora costs |Theta| (|Theta| + 1) / 2 (+ replayed rounds) times as many
  steps as plain fine-tuning. Four settings that depart from the loop as published, for the
  scarce-data benchmark (docs/algorithms.md §3.4): warm starts, the whole pool in D, a split dev,
  and pool weighting (the mistakes' nearest pool texts added again instead of edits).
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import yaml

from bortnas.algo.agora import PRUNE_RULES, Iteration, agora, theta_key
from bortnas.core.errors import ParameterError, UserInputError
from bortnas.core.settings import TrainConfig
from bortnas.core.space import ArchSpec
from bortnas.data.augment import Augmenter, EmbeddingNeighbours, Input, PoolNeighbours, combined, unlabelled_examples
from bortnas.data.encode import encode
from bortnas.data.tasks import SOFT_ONLY, Example
from bortnas.families import family_of
from bortnas.model.extract import Extraction
from bortnas.train.loop import embeddings, evaluate, predict, probabilities, train
from bortnas.trial.context import Context
from bortnas.trial.recipe import build_student, distil_student, finetune_student, student_config

if TYPE_CHECKING:
    from transformers import PreTrainedModel

_logger = logging.getLogger(__name__)

METHODS = ("distil", "plain", "agora")
# Steps of an export's training when no number of steps is given. Distillation: 1500 (about 5.6 epochs
# of the reviews at batch 32) brought the default run's L2-H288 candidate to 1.8 points of the
# teacher's test accuracy, where 400 left it 3.1 points below (docs/benchmarks/default-run.md).
# Plain and Agora: 400 per fine-tune, as Agora runs |Theta| (|Theta| + 1) / 2 of them.
DEFAULT_STEPS = {"distil": 1500, "plain": 400, "agora": 400}
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


@dataclasses.dataclass
class Finetuned:
    model: PreTrainedModel
    extraction: Extraction
    config: TrainConfig
    agora_log: list[Iteration] | None = None
    agora_theta: str | None = None
    agora_train_size: int | None = None
    agora_before_replay: PreTrainedModel | None = None  # Agora's best student when the pruning loop ended


def _examples(inputs: Sequence[Input]) -> list[Example]:
    return [Example(text, 0, pair) for text, pair in inputs]


def run_agora(
    ctx: Context,
    spec: ArchSpec,
    steps: int,
    settings: AgoraSettings,
    show_progress_bar: bool = False,
    on_iteration: Callable[[Iteration], None] | None = None,
    pool: Sequence[Input] = (),
) -> Finetuned:
    """Agora for `spec` cut from the task teacher, with an optional unlabelled `pool`; see the module docstring."""
    tokenizer, max_length = ctx.teacher.tokenizer, ctx.settings.max_length
    start, extraction = build_student(ctx, spec)
    base = student_config(ctx, steps, spec.quant)

    def config_of(theta: Mapping[str, Any]) -> TrainConfig:
        return dataclasses.replace(base, **theta)

    teacher = ctx.teacher.model

    latest: dict[str, PreTrainedModel] = {}  # each theta's last student, for warm starts

    def finetune(theta: Mapping[str, Any], data: Sequence[Example]) -> PreTrainedModel:
        key = theta_key(theta)
        student = copy.deepcopy(latest.get(key, start))
        train(
            student,
            encode(data, tokenizer, max_length),
            config_of(theta),
            teacher=teacher if settings.soft_labels else None,
            extraction=extraction if settings.soft_labels else None,
            show_progress_bar=show_progress_bar,
            description=f"agora {spec.key}",
            device=ctx.device,
        )
        if settings.warm_start:
            latest[key] = copy.deepcopy(student)
        return student

    chooser, source, source_examples = ctx.dev, ctx.dev, list(ctx.data.dev)
    if settings.split_dev:
        if len(ctx.data.dev) < 2:
            raise UserInputError("Agora's split dev needs at least 2 dev examples.")
        half = len(ctx.data.dev) // 2
        source_examples = list(ctx.data.dev[half:])
        chooser, source = encode(ctx.data.dev[:half], tokenizer, max_length), encode(source_examples, tokenizer, max_length)

    def mistakes(model: PreTrainedModel) -> list[Example]:
        predicted = predict(model, source, device=ctx.device)
        return [ex for ex, label in zip(source_examples, predicted, strict=True) if label != ex.label]

    def label(inputs: Sequence[Input]) -> list[Example]:
        examples = _examples(inputs)
        probs = probabilities(teacher, encode(examples, tokenizer, max_length), device=ctx.device)
        top, labels = probs.max(-1)
        return [
            dataclasses.replace(ex, label=SOFT_ONLY if settings.soft_labels else int(y))
            for ex, p, y in zip(examples, top.tolist(), labels.tolist(), strict=True)
            if p >= settings.min_confidence
        ]

    protected = [ex.text for ex in ctx.data.dev + ctx.data.test]
    edits = Augmenter(
        EmbeddingNeighbours(family_of(teacher.config).embeddings(teacher).word.table, tokenizer),
        protected=protected,
        variants=settings.variants,
        seed=settings.seed,
    )
    generate: Callable[[Sequence[Example], int], list[Input]] = edits
    initial = list(ctx.data.train)

    def input_of(ex: Example) -> Input:
        return (ex.text, ex.pair)

    def embed(inputs: Sequence[Input]) -> torch.Tensor:
        return embeddings(teacher, encode(_examples(inputs), tokenizer, max_length), device=ctx.device)

    if pool and settings.pool_in_data:
        in_data = unlabelled_examples(pool, initial, protected)
        initial += in_data
        if settings.pool_weighting:
            generate = PoolNeighbours([(ex.text, ex.pair) for ex in in_data], embed, settings.pool_neighbours, protected)

            def input_of(ex: Example) -> Input:
                # D already holds every pool text, so D's examples are keyed as the empty input,
                # which no draw is: each draw adds one more copy (PoolNeighbours draws a text once)
                return ("", None)

    elif pool:
        generate = combined(edits, PoolNeighbours(pool, embed, settings.pool_neighbours, protected))
    result = agora(
        settings.thetas(),
        initial,
        finetune,
        lambda m: evaluate(m, chooser, device=ctx.device).accuracy,
        mistakes,
        generate,
        label,
        input_of,
        rule=settings.rule,
        replay=settings.replay,
        on_iteration=on_iteration,
    )
    chosen = next(t for t in settings.thetas() if theta_key(t) == result.theta)
    first = result.before_replay or result
    return Finetuned(result.model, extraction, config_of(chosen), result.log, result.theta, result.train_size, first.model)


def finetune_candidate(
    ctx: Context,
    spec: ArchSpec,
    steps: int,
    method: str = "distil",
    agora_settings: AgoraSettings | None = None,
    show_progress_bar: bool = False,
    on_iteration: Callable[[Iteration], None] | None = None,
    pool: Sequence[Input] = (),
) -> Finetuned:
    """Train `spec` for export with `method` (see the module docstring), on the context's device;
    `pool` is unlabelled text of the task, which distillation learns from alongside the labelled
    data and Agora draws from.

    Raises:
        ParameterError: unknown `method`.
    """
    if method == "distil":
        return Finetuned(*distil_student(ctx, spec, steps, ctx.settings.seed, show_progress_bar=show_progress_bar, pool=pool))
    if method == "plain":
        return Finetuned(*finetune_student(ctx, spec, steps, show_progress_bar=show_progress_bar))
    if method == "agora":
        return run_agora(ctx, spec, steps, agora_settings or AgoraSettings(), show_progress_bar, on_iteration, pool)
    raise ParameterError("method", f"={method!r} is unknown: use one of {', '.join(METHODS)}.")
