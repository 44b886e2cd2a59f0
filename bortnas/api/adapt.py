"""`bortnas.finetune`: Bort's third stage, a general encoder adapted to a task.

API layer. A general encoder (`bortnas export` of a general study, or any full-precision encoder
directory with the teacher's tokenizer) gets the task's head and is trained on the task's data:
plainly on its labels, or distilled from the task teacher. The task teacher is the one `search`
would use (a teacher with the task's head as it is, one without fine-tuned once and cached): it is
what distillation learns from and what the written model is measured against. The result is the
same kind of directory `export` writes.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bortnas.api.finetune import Distil, Finetune, Plain
from bortnas.core.errors import ParameterError, UserInputError
from bortnas.core.settings import Execution, RunSettings

if TYPE_CHECKING:
    from bortnas.export.writer import ExportReport

__all__ = ["finetune"]

_logger = logging.getLogger(__name__)


def finetune(
    model: str | Path,
    out: str | Path,
    *,
    settings: RunSettings = RunSettings(),
    method: Finetune = Plain(),
    execution: Execution = Execution(),
    overwrite: bool = False,
    show_progress_bar: bool = False,
) -> ExportReport:
    """Fine-tune the encoder in `model` on the task of `settings` and write it to `out`.

    Args:
        model: a general encoder's directory (full precision, with the tokenizer of `settings`'s teacher).
        out: the directory to write (refused if it holds files, unless `overwrite`).
        settings: the task (data, task, columns, max_length) and its teacher, as for `search`;
            `lr`, `batch_size` and `seed` set the training.
        method: `Plain()` (default: the task's labels alone) or `Distil()` (the teacher's outputs
            and the labels); `steps` None is the method's default.
        execution: device and teacher cache.
        show_progress_bar: progress on stderr.

    Returns:
        The written model's figures next to the task teacher's.

    Raises:
        ParameterError: Agora, or a general task (`settings.task`): a task is needed.
        UserInputError: a model directory that is not a full-precision encoder of the teacher's
            vocabulary, bad data, an out directory that holds files.
    """
    import torch

    from bortnas.export.writer import prepare_out_dir, write_trained
    from bortnas.families.teacher_dirs import teacher_shape
    from bortnas.model.extract import Extraction
    from bortnas.quant.pack import MANIFEST_NAME
    from bortnas.runtime.device import Device
    from bortnas.train.loop import train
    from bortnas.trial.context import build_context, resolve_inputs
    from bortnas.trial.teacher import load_pretrained_teacher, load_teacher_config

    if not isinstance(method, (Plain, Distil)):
        raise ParameterError("method", f"={type(method).__name__}() is not available for finetune yet: use Plain() or Distil().")
    if settings.task == "general":
        raise ParameterError("task", "='general' is what a general encoder was distilled for: fine-tune it on a task's data.")
    directory, out = Path(model), Path(out)
    if not (directory / "config.json").is_file():
        raise UserInputError(f"--model {directory} is no model directory (no config.json): pass the directory `bortnas export` wrote.")
    config = load_teacher_config(directory)
    manifest = directory / MANIFEST_NAME
    if manifest.is_file() and not json.loads(manifest.read_text()).get("transformers_loadable", True):
        raise UserInputError(f"--model {directory} holds low-bit weights: finetune adapts full-precision encoders; export an fp32 trial.")
    inputs = resolve_inputs(settings)
    if config.vocab_size != inputs.config.vocab_size:
        raise UserInputError(
            f"--model {directory} has a vocabulary of {config.vocab_size} and the teacher {inputs.teacher_dir} one of "
            f"{inputs.config.vocab_size}: fine-tune with the teacher the encoder was distilled from (--teacher)."
        )
    prepare_out_dir(out, overwrite)
    device = Device.from_name(execution.device, compile=execution.compile)
    ctx = build_context(inputs.settings, execution.cache_dir, show_progress_bar=show_progress_bar, device=device, inputs=inputs)
    student = load_pretrained_teacher(directory, ctx.data.label_names, ctx.task)
    student.to(device.torch_device)  # type: ignore[arg-type]  # transformers wraps .to; typeshed does not bind self
    steps = method.resolved_steps
    train_config = ctx.settings.student_train_config(steps)
    head = "token" if ctx.task.name == "token_classification" else "none" if not ctx.task.sequence_head else "sequence"
    spec = teacher_shape(student.config, max(1, ctx.data.num_labels), head).as_spec()
    _logger.info("fine-tuning %s (%s) on %s: %s, %d steps", directory, spec.key, ctx.task.name, method.method, steps)
    if isinstance(method, Distil):
        # the encoder's units need not line up with the teacher's: its outputs and the labels, no hidden states
        train_config = dataclasses.replace(train_config, hidden_weight=0.0)
        mapping = Extraction(layers=(), hidden=torch.arange(0))
        train(
            student,
            ctx.train,
            train_config,
            teacher=ctx.teacher.model,
            extraction=mapping,
            show_progress_bar=show_progress_bar,
            description=f"distil {spec.key}",
            device=device,
            teacher_cache=ctx.teacher_cache,
            objective=ctx.objective,
        )
    else:
        train(
            student,
            ctx.train,
            train_config,
            show_progress_bar=show_progress_bar,
            description=f"fine-tune {spec.key}",
            device=device,
            objective=ctx.objective,
        )
    metadata = {
        "finetuned_from": str(directory.resolve()),
        "candidate": spec.to_dict(),
        "training": {**train_config.to_dict(), "finetune": method.method},
    }
    report = write_trained(ctx, student, spec, out, metadata)
    _logger.info("fine-tuned %s to %s", directory, out)
    return report
