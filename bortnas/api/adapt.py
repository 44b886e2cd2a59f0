"""`bortnas.finetune`: Bort's third stage, a general encoder adapted to a task.

API layer. A general encoder (`bortnas export` of a general study, or any full-precision encoder
directory with the teacher's tokenizer) gets the task's head and is trained on the task's data:
plainly on its labels, or distilled from the task teacher. The task teacher is the one `search`
would use (a teacher with the task's head as it is, one without fine-tuned once and cached): it is
what distillation learns from and what the written model is measured against. The result is the
same kind of directory `export` writes. Agora starts each of its fine-tunes from the encoder
instead of a cut of the teacher; the task teacher labels the examples it generates.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from bortnas.api.finetune import Agora, Finetune, Plain
from bortnas.core.errors import ParameterError
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
    unlabeled: str | Path | None = None,
    execution: Execution = Execution(),
    overwrite: bool = False,
    show_progress_bar: bool = False,
) -> ExportReport:
    """Fine-tune the encoder in `model` on the task of `settings` and write it to `out`.

    Args:
        model: a general encoder's directory (full precision, with the tokenizer of `settings`'s teacher).
        out: the directory to write (refused if it holds files, unless `overwrite`).
        settings: the task (data, task, columns, max_length) and its teacher, as for `search`;
            `lr`, `batch_size`, `seed` and `hidden_weight` set the training.
        method: `Plain()` (default: the task's labels alone), `Distil()` (the teacher's outputs
            and the labels) or `Agora()` (classification: teacher-labelled examples made from the
            dev mistakes, with replay); `steps` None is the method's default. Where the encoder's
            `bortnas.json` records the teacher units it was cut from and the teacher has the same
            files it was cut from, Distil and Agora also match the teacher's hidden states there
            (weight `settings.hidden_weight`, 0 to turn it off).
        unlabeled: unlabelled examples of the task (CSV/TSV/JSONL with the task's text columns), as
            for `export`: distillation also learns the teacher's probabilities on them; Agora
            draws the dev mistakes' nearest ones.
        execution: device and teacher cache.
        show_progress_bar: progress on stderr.

    Returns:
        The written model's figures next to the task teacher's.

    Raises:
        ParameterError: a general task (`settings.task`): a task is needed; `unlabeled` with
            `Plain()`; Agora for a task without classes.
        UserInputError: a model directory that is not a full-precision encoder of the teacher's
            vocabulary, bad data, an out directory that holds files.
    """
    from bortnas.export.out_dir import prepare_out_dir, release_out_dir
    from bortnas.trial.inputs import load_teacher_config, resolve_inputs

    if not isinstance(method, Finetune) or not method.method:
        raise ParameterError("method", f"={method!r} is not a fine-tuning method: pass Plain(), Distil() or Agora().")
    if isinstance(method, Plain) and unlabeled is not None:
        raise ParameterError("unlabeled", " needs a teacher to learn from: use it with Distil or Agora, not Plain.")
    if settings.task == "general":
        raise ParameterError("task", "='general' is what a general encoder was distilled for: fine-tune it on a task's data.")
    # the options are good: now the modules that train and write models (torch, transformers' models)
    from bortnas.export.writer import agora_record, units_record, write_trained
    from bortnas.quant.pack import MANIFEST_NAME
    from bortnas.runtime.device import Device
    from bortnas.trial.context import build_context
    from bortnas.trial.finetune import adapt_encoder

    directory, out = Path(model), Path(out)
    if not (directory / "config.json").is_file():
        raise ParameterError("model", f" {directory} is no model directory (no config.json): pass the directory `bortnas export` wrote.")
    config = load_teacher_config(directory)
    manifest = directory / MANIFEST_NAME
    if manifest.is_file() and not json.loads(manifest.read_text()).get("transformers_loadable", True):
        raise ParameterError("model", f" {directory} holds low-bit weights: finetune adapts full-precision encoders; export an fp32 trial.")
    inputs = resolve_inputs(settings)
    if config.vocab_size != inputs.config.vocab_size:
        raise ParameterError(
            "model",
            f" {directory} has a vocabulary of {config.vocab_size} and the teacher {inputs.teacher_dir} one of "
            f"{inputs.config.vocab_size}: name the teacher it was distilled from as the teacher.",
        )
    if isinstance(method, Agora) and inputs.task.name != "classification":
        raise ParameterError(
            "method", f"=Agora() labels new examples with the teacher's class; task {inputs.task.name!r} has none: use Plain() or Distil()."
        )
    pool: tuple[tuple[str, str | None], ...] = ()
    if unlabeled is not None:
        from bortnas.data.tasks import load_unlabeled

        pool = load_unlabeled(Path(unlabeled), inputs.settings.text_column, inputs.settings.pair_column, encoding=inputs.settings.encoding)
    prepare_out_dir(out, overwrite)
    try:
        device = Device.from_name(execution.device, compile=execution.compile)
        ctx = build_context(inputs.settings, execution.cache_dir, show_progress_bar=show_progress_bar, device=device, inputs=inputs)
        steps = method.steps_for(ctx.settings.batch_size, ctx.train.mean_tokens)
        _logger.info("fine-tuning %s on %s: %s, %d steps", directory, ctx.task.name, method.method, steps)
        agora = method.settings if isinstance(method, Agora) else None
        trained, spec = adapt_encoder(ctx, directory, steps, method.method, agora, show_progress_bar, pool)
        metadata = {
            "finetuned_from": str(directory.resolve()),
            "candidate": spec.to_dict(),
            "training": {
                **trained.config.to_dict(),
                "finetune": method.method,
                "tokens_budget": method.tokens,
                "tokens_per_example": ctx.train.mean_tokens,
                "unlabeled_pool": len(pool),
                **units_record(trained.extraction),
            },
            "agora": agora_record(trained, agora, len(pool)),
        }
        report = write_trained(ctx, trained.model, spec, out, metadata)
        _logger.info("fine-tuned %s to %s", directory, out)
        return report
    except BaseException:
        release_out_dir(out)  # what the failed run claimed; the directory itself was never touched
        raise
