"""The one student recipe: cut a candidate from the task teacher, quantize it, configure and train it.

Torch layer. Scoring (`bortnas.trial.scoring`), export and Agora (`bortnas.trial.finetune`) all
make their students here, so a trial's student and the exported one differ only in their steps.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from bortnas.core.settings import TrainConfig
from bortnas.core.space import ArchSpec
from bortnas.data.augment import Input, unlabelled_examples
from bortnas.data.encode import EncodedSplit, encode
from bortnas.model.extract import Extraction, extract
from bortnas.modes import QuantMode
from bortnas.quant import quantize_
from bortnas.train.checkpoint import Checkpoint
from bortnas.train.loop import train
from bortnas.train.teacher_cache import TeacherCache
from bortnas.trial.context import Context

if TYPE_CHECKING:
    from transformers import PreTrainedModel


def build_student(ctx: Context, spec: ArchSpec) -> tuple[PreTrainedModel, Extraction]:
    """`spec` cut from the task teacher (or initialised from scratch, per the settings) and
    quantized to its mode; on the context's device, untrained."""
    student, extraction = extract(ctx.teacher.model, ctx.teacher.importance, spec, init=ctx.settings.init)
    quantize_(student, spec.quant)
    return student, extraction


def student_config(ctx: Context, steps: int, mode: QuantMode, seed: int | None = None) -> TrainConfig:
    """The training configuration of a `mode` student: the settings' optimizer and rate, plus the
    distillation extras the mode's config asks for (BiBERT's direction matching)."""
    return ctx.settings.student_train_config(steps, seed, dmd_weight=mode.config.dmd_weight)


def chain_stages(mode: QuantMode, chain: Sequence[QuantMode], steps: int) -> list[tuple[QuantMode, int]]:
    """The (mode, steps) stages that train a `mode` candidate in `steps` steps in all.

    A mode in `chain` is reached through every mode before it (BiT's multi-step distillation);
    the steps are shared out evenly, the remainder to the last stage; with fewer steps than
    stages the earliest stages are dropped.
    """
    modes = list(chain[: chain.index(mode) + 1]) if mode in chain else [mode]
    modes = modes[-steps:] if steps < len(modes) else modes
    share = steps // len(modes)
    return [(m, share + (steps - share * len(modes) if k == len(modes) - 1 else 0)) for k, m in enumerate(modes)]


def training_split(ctx: Context, pool: Sequence[Input] = ()) -> EncodedSplit:
    """The context's training split; with a `pool` of unlabelled inputs, those join it as examples
    that learn from the teacher's probabilities only (`unlabelled_examples`: duplicates, labelled
    inputs and dev/test texts are left out)."""
    if not pool:
        return ctx.train
    protected = [ex.text for ex in ctx.data.dev + ctx.data.test]
    examples = list(ctx.data.train) + unlabelled_examples(pool, ctx.data.train, protected)
    return encode(examples, ctx.teacher.tokenizer, ctx.settings.max_length, ctx.data.task, ctx.data.num_labels)


def distil_student(
    ctx: Context,
    spec: ArchSpec,
    steps: int,
    seed: int,
    show_progress_bar: bool = False,
    on_step: Callable[[PreTrainedModel, int, int], None] | None = None,
    layers: Sequence[int] | None = None,
    pool: Sequence[Input] = (),
    checkpoints: Path | None = None,
) -> tuple[PreTrainedModel, Extraction, TrainConfig]:
    """Build `spec` and distil it through its chain; returns the student, its extraction and the
    configuration of the candidate's own mode with the total step count.

    With `checkpoints` (a directory), each stage saves its state there now and then and resumes
    from it (`bortnas.train.checkpoint`): an export killed midway goes on where it stopped. A stage
    already finished is restored at its end, so its student is the same.

    A `pool` of unlabelled inputs joins the training data: those examples learn from the teacher's
    probabilities only (`training_split`; dev and test texts are left out). In the scarce-data
    benchmark this is the strongest use of an unlabelled pool (docs/guides/agora.md).

    `layers` (teacher layer indices, passed to `extract`) replaces the most important layers, so
    truncation baselines are distilled with exactly this recipe.

    The first stage learns from the task teacher; every later stage from the previous stage's
    student, a model of the same shape (so its units map one to one), re-quantized to the next
    mode. `on_step(student, step, steps)` is called after every step of the last stage (the
    candidate's own mode). The student is trained on, and returned on, the context's device.
    """
    stages = chain_stages(spec.quant, ctx.settings.chain(), steps)
    data = training_split(ctx, pool)
    student, extraction = extract(ctx.teacher.model, ctx.teacher.importance, spec, init=ctx.settings.init, layers=layers)
    teacher, mapping = ctx.teacher.model, extraction
    config = student_config(ctx, steps, spec.quant, seed)
    cache = ctx.teacher_cache
    if steps * config.batch_size > len(data):
        # a run that revisits examples (an export) keeps just this student's teacher layers, so all of them fit
        cache = TeacherCache(ctx.teacher.model, data, layers=[0] + [layer + 1 for layer in extraction.layers])
    for k, (mode, n) in enumerate(stages):
        if k:
            teacher = copy.deepcopy(student).eval()
            mapping = Extraction(layers=tuple(range(spec.layers)), hidden=torch.arange(spec.hidden, device=ctx.device.torch_device))
        quantize_(student, mode)
        config = student_config(ctx, n, mode, seed)
        last = k == len(stages) - 1
        hook = (lambda step, total=n: on_step(student, step, total)) if on_step is not None and last else None
        train(
            student,
            data,
            config,
            teacher=teacher,
            extraction=mapping,
            show_progress_bar=show_progress_bar,
            description=f"{spec.key} {mode.value} ({k + 1}/{len(stages)})",
            on_step=hook,
            device=ctx.device,
            teacher_cache=cache,
            objective=ctx.objective,
            checkpoint=_stage_checkpoint(checkpoints, spec, k, mode, config, len(data)),
        )
    return student, extraction, dataclasses.replace(config, steps=steps)


def _stage_checkpoint(
    directory: Path | None, spec: ArchSpec, stage: int, mode: QuantMode, config: TrainConfig, examples: int
) -> Checkpoint | None:
    """The checkpoint of one stage of `spec`'s distillation, keyed by everything that shapes the stage."""
    if directory is None:
        return None
    what = {"candidate": spec.key, "stage": stage, "mode": mode.value, "config": config.to_dict(), "examples": examples}
    key = json.dumps(what, sort_keys=True)
    return Checkpoint(directory / f"{spec.key}.stage{stage}.pt", key)


def finetune_student(
    ctx: Context, spec: ArchSpec, steps: int, show_progress_bar: bool = False
) -> tuple[PreTrainedModel, Extraction, TrainConfig]:
    """Build `spec` and fine-tune it on the task's labels alone (cross-entropy, no teacher)."""
    student, extraction = build_student(ctx, spec)
    config = student_config(ctx, steps, spec.quant)
    train(
        student,
        ctx.train,
        config,
        show_progress_bar=show_progress_bar,
        description=f"fine-tune {spec.key}",
        device=ctx.device,
        objective=ctx.objective,
    )
    return student, extraction, config
