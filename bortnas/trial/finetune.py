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
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bortnas.algo.agora import Iteration, agora, theta_key
from bortnas.core.errors import ParameterError, UserInputError
from bortnas.core.finetuning import METHODS, AgoraSettings
from bortnas.core.settings import TrainConfig
from bortnas.core.space import ArchSpec
from bortnas.data.augment import Augmenter, EmbeddingNeighbours, Input, PoolNeighbours, combined, unlabelled_examples
from bortnas.data.encode import encode
from bortnas.data.tasks import SOFT_ONLY, Example
from bortnas.families import family_of
from bortnas.model.extract import Extraction
from bortnas.train.loop import embeddings, evaluate, predict, probabilities, train
from bortnas.trial.context import Context
from bortnas.trial.recipe import build_student, distil_student, finetune_student, student_config, training_split

if TYPE_CHECKING:
    from transformers import PreTrainedModel

_logger = logging.getLogger(__name__)


# the extraction of a model whose units are not a cut of the teacher's: no hidden-state pairs to compare
UNALIGNED = Extraction(layers=(), hidden=torch.arange(0))


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
    start: PreTrainedModel | None = None,
    start_units: Extraction | None = None,
) -> Finetuned:
    """Agora for `spec` cut from the task teacher, with an optional unlabelled `pool`; see the module
    docstring. `start`: the model every fine-tune starts from instead of the cut (a general encoder
    with the task's head, `adapt_encoder`), with `start_units` the teacher units it was cut from
    (`recorded_units`); without them its soft-label distillation has no hidden-state term."""
    tokenizer, max_length = ctx.teacher.tokenizer, ctx.settings.max_length
    base = student_config(ctx, steps, spec.quant)
    if start is None:
        start, extraction = build_student(ctx, spec)
    elif start_units is not None:
        extraction = start_units
    else:
        extraction, base = UNALIGNED, dataclasses.replace(base, hidden_weight=0.0)

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
    checkpoints: Path | None = None,
) -> Finetuned:
    """Train `spec` for export with `method` (see the module docstring), on the context's device;
    `pool` is unlabelled text of the task, which distillation learns from alongside the labelled
    data and Agora draws from. Distillation saves resumable state in `checkpoints` (a directory).

    Raises:
        ParameterError: unknown `method`.
    """
    if method == "distil":
        return Finetuned(
            *distil_student(ctx, spec, steps, ctx.settings.seed, show_progress_bar=show_progress_bar, pool=pool, checkpoints=checkpoints)
        )
    if method == "plain":
        if not ctx.task.labelled:
            raise ParameterError("finetune", f"=plain trains on the data's labels, and task {ctx.task.name!r} has none: use distil.")
        return Finetuned(*finetune_student(ctx, spec, steps, show_progress_bar=show_progress_bar))
    if method == "agora":
        _check_agora(ctx)
        return run_agora(ctx, spec, steps, agora_settings or AgoraSettings(), show_progress_bar, on_iteration, pool)
    raise ParameterError("method", f"={method!r} is unknown: use one of {', '.join(METHODS)}.")


def recorded_units(directory: Path, ctx: Context, layers: int, hidden: int) -> Extraction | None:
    """The teacher layers and residual units the encoder in `directory` (`layers` layers of width
    `hidden`) was cut from, as its `bortnas.json` records them (`training.teacher_layers` and
    `teacher_hidden`), where they still name the context teacher's units: the encoder was cut from
    the same teacher files the task teacher is (fine-tuned here from them, or used as they are),
    and every recorded layer and unit is inside it. Distillation then also matches those hidden
    states, as an export's does (TinyBERT's task-specific stage); general distillation kept them
    close with its own hidden-state term. None otherwise (another teacher, a model written before
    the units were recorded): the hidden-state term is dropped, since the units need not line up."""
    from bortnas.quant.pack import MANIFEST_NAME

    try:
        record = json.loads((directory / MANIFEST_NAME).read_text())
        cut_from, training = record["provenance"]["teacher_hash"], record["training"]
        teacher_layers, teacher_hidden = list(training["teacher_layers"]), list(training["teacher_hidden"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    inside = all(0 <= i < ctx.shape.layers for i in teacher_layers) and all(0 <= i < ctx.shape.hidden for i in teacher_hidden)
    if cut_from != ctx.teacher.source_hash or (len(teacher_layers), len(teacher_hidden)) != (layers, hidden) or not inside:
        return None
    return Extraction(layers=tuple(teacher_layers), hidden=torch.tensor(teacher_hidden, dtype=torch.long))


def adapt_encoder(
    ctx: Context,
    directory: Path,
    steps: int,
    method: str = "plain",
    agora_settings: AgoraSettings | None = None,
    show_progress_bar: bool = False,
    pool: Sequence[Input] = (),
) -> tuple[Finetuned, ArchSpec]:
    """The encoder in `directory` with a fresh head for the context's task, trained `steps` steps
    (per fine-tune for Agora) on the task, on the context's device: on the labels alone (plain), on
    the task teacher's outputs and the labels (distil; the unlabelled `pool` joins the data), or by
    Agora from it. Both distillations also match the teacher's hidden states at the units the
    encoder was cut from where `recorded_units` finds them and `settings.hidden_weight` is not 0;
    otherwise they have no hidden-state term. Returns the trained model, with those units (the
    written model's units descend from them whatever the method), and its shape.

    Raises:
        ParameterError: unknown `method`, or Agora for a task without classes.
    """
    from bortnas.families.teacher_dirs import teacher_shape
    from bortnas.trial.teacher import load_pretrained_teacher

    torch.manual_seed(ctx.settings.seed)  # the new head's initialisation: the same whatever ran before in this process
    student = load_pretrained_teacher(directory, ctx.data.label_names, ctx.task)
    student.to(ctx.device.torch_device)  # type: ignore[arg-type]  # transformers wraps .to; typeshed does not bind self
    head = "token" if ctx.task.name == "token_classification" else "sequence" if ctx.task.sequence_head else "none"
    spec = teacher_shape(student.config, max(1, ctx.data.num_labels), head).as_spec()
    units = recorded_units(directory, ctx, spec.layers, spec.hidden)
    if method in ("distil", "agora"):
        matched = units is not None and ctx.settings.hidden_weight > 0
        _logger.info("distillation %s the teacher's hidden states", "also matches" if matched else "does not match")
    if method == "agora":
        _check_agora(ctx)
        agora_settings = agora_settings or AgoraSettings()
        return run_agora(ctx, spec, steps, agora_settings, show_progress_bar, pool=pool, start=student, start_units=units), spec
    if method not in ("plain", "distil"):
        raise ParameterError("method", f"={method!r} is unknown: use one of {', '.join(METHODS)}.")
    config = ctx.settings.student_train_config(steps)
    distil = method == "distil"
    extraction = units if units is not None else UNALIGNED
    if distil and units is None:
        config = dataclasses.replace(config, hidden_weight=0.0)
    train(
        student,
        training_split(ctx, pool) if distil else ctx.train,
        config,
        teacher=ctx.teacher.model if distil else None,
        extraction=extraction if distil else None,
        show_progress_bar=show_progress_bar,
        description=f"{'distil' if distil else 'fine-tune'} {spec.key}",
        device=ctx.device,
        teacher_cache=ctx.teacher_cache if distil else None,
        objective=ctx.objective,
    )
    return Finetuned(student, extraction, config), spec


def _check_agora(ctx: Context) -> None:
    if ctx.task.name != "classification":
        raise ParameterError(
            "finetune",
            f"=agora labels new examples with the teacher's class; task {ctx.task.name!r} has no classes: use distil or plain.",
        )
