"""`bortnas.export`: train a study's chosen candidate to completion and write a model directory.

API layer: the one place that wires an export together (study, selection, context, training,
writer). The teacher and the task are resolved once from the study's pinned settings and passed
down; every cheap check (options, out directory, storage, study, unlabelled file) runs before any
training or write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bortnas.api.finetune import Agora, Distil, Finetune
from bortnas.core.budget import Budget
from bortnas.core.errors import ParameterError
from bortnas.core.settings import Execution
from bortnas.search.storage import DEFAULT_STORAGE

if TYPE_CHECKING:
    from bortnas.core.budget import LatencyTable
    from bortnas.core.space import ArchSpec
    from bortnas.export.writer import ExportReport

__all__ = ["export"]

_logger = logging.getLogger(__name__)
NOTABLE_DROP = 2.0  # points of the task's headline metric: beyond it an export says what else the study offers


def export(
    study: str,
    out: str | Path,
    *,
    storage: str = DEFAULT_STORAGE,
    trial: int | None = None,
    budget: Budget | None = None,
    max_accuracy_drop: float | None = None,
    finetune: Finetune = Distil(),
    unlabeled: str | Path | None = None,
    onnx: bool = False,
    overwrite: bool = False,
    execution: Execution = Execution(),
    show_progress_bar: bool = False,
) -> ExportReport:
    """Train a study's trial to completion and write it to `out` as a transformers model directory.

    The trial is `trial`, else the best finished trial within `budget` and `max_accuracy_drop`
    (a latency budget is applied to latencies timed again here, side by side with the teacher),
    else the argmax-W trial. The directory holds config, weights (low-bit modes packed), the
    tokenizer and `bortnas.json` (metrics beside the teacher's, and whether stock transformers
    loads it); `bortnas.load(out)` reads any of them.

    Args:
        study: the study's name.
        out: the output directory (absent or empty unless `overwrite`).
        storage: the storage URL the study lives in.
        trial: the trial number to export (not with a budget).
        budget: choose the best trial within these bounds (latency, size, speed-up).
        max_accuracy_drop: choose among trials at most this many points of dev accuracy below the teacher.
        finetune: how to train: `Distil` (default), `Plain` or `Agora`.
        unlabeled: unlabelled examples of the task (CSV/TSV/JSONL with the study's text columns):
            distillation also learns the teacher's probabilities on them; Agora draws from them.
        onnx: also write model.onnx (and model.int8.onnx where onnxruntime has an int8 graph) and
            record their onnxruntime latency and accuracy.
        overwrite: replace a non-empty `out`.
        execution: device and teacher cache.
        show_progress_bar: progress on stderr.

    Returns:
        The exported model's metrics beside the teacher's.

    Raises:
        ParameterError: a bad option (naming the parameter).
        UserInputError: an existing `out`, an unknown storage or study, an unreadable or empty
            `unlabeled` file, `onnx` for a mode no onnxruntime kernel runs (before any write or training).
        InfeasibleBudgetError: no finished trial meets the budget.
        MissingDependencyError: `onnx` without onnxruntime.
        ExportError: no finished trial, or the written directory does not reproduce the model.

    Example:
        >>> import bortnas
        >>> report = bortnas.export("minilm_quick", "out/model", storage="sqlite:///out/bortnas.db")  # doctest: +SKIP
        >>> report.ratios()["latency"]  # doctest: +SKIP
        9.57
    """
    from bortnas.core.space import ArchSpec
    from bortnas.export.writer import export_trial, prepare_out_dir
    from bortnas.runtime.device import Device
    from bortnas.search.selection import Selection, choose_trial, parse_accuracy_drop
    from bortnas.search.study import open_study
    from bortnas.trial.context import build_context, resolve_inputs
    from bortnas.trial.latency_table import retime

    if not isinstance(finetune, Finetune) or not finetune.method:
        raise ParameterError("finetune", f"={finetune!r} is not a fine-tuning method: pass Distil(), Plain() or Agora().")
    if finetune.method == "plain" and unlabeled is not None:
        raise ParameterError("unlabeled", " needs a teacher to learn from: use it with Distil or Agora, not Plain.")
    if onnx:
        from bortnas.runtime.onnx import require_onnxruntime

        require_onnxruntime("onnx=True")
    steps = finetune.resolved_steps
    agora_settings = finetune.settings if isinstance(finetune, Agora) else None
    selection = Selection(budget or Budget(), parse_accuracy_drop(max_accuracy_drop))
    out = Path(out).resolve()
    prepare_out_dir(out, overwrite)
    device = Device.from_name(execution.device, compile=execution.compile)
    the_study, _, settings = open_study(storage, study)
    inputs = resolve_inputs(settings)
    pool: tuple[tuple[str, str | None], ...] = ()
    if unlabeled is not None:
        from bortnas.data.tasks import load_unlabeled

        pool = load_unlabeled(Path(unlabeled), settings.text_column, settings.pair_column, encoding=settings.encoding)
        _logger.info("unlabelled pool: %d examples from %s", len(pool), unlabeled)
    tables: list[LatencyTable] = []

    def retimer(specs: Sequence[ArchSpec]) -> LatencyTable:
        table = retime(specs, inputs, device)
        tables.append(table)
        return table

    chosen = choose_trial(the_study, trial, selection, retimer)
    mode = ArchSpec.from_dict(chosen.user_attrs["candidate"]).quant
    if onnx and mode.config.simulated:
        raise ParameterError(
            "onnx",
            f": trial {chosen.number} is {mode.value}, which no onnxruntime kernel runs (its arithmetic would be an fp32 "
            "simulation there too); export it without onnx, or choose an fp32, int8 or bitnet158 trial.",
        )
    _logger.info(
        "exporting trial %d (%s)%s", chosen.number, chosen.user_attrs.get("key"), f" for {selection.describe()}" if selection else ""
    )
    _logger.info("device: %s%s", device.describe(), ", torch.compile" if device.compile else "")
    ctx = build_context(settings, execution.cache_dir, show_progress_bar=show_progress_bar, device=device, inputs=inputs)
    chosen_by = None
    if selection:
        chosen_by = {"selection": selection.describe(), "retimed": tables[0].to_dict() if tables else None}
    report = export_trial(
        ctx,
        the_study,
        chosen,
        out,
        steps,
        overwrite,
        show_progress_bar=show_progress_bar,
        method=finetune.method,
        agora_settings=agora_settings,
        budget=chosen_by,
        onnx=onnx,
        pool=pool,
    )
    _warn_if_far_below_teacher(report, study, storage, ctx.task.metric)
    return report


def _warn_if_far_below_teacher(report: ExportReport, study: str, storage: str, metric: str) -> None:
    """Say so when the export is more than `NOTABLE_DROP` points of its test metric below the
    teacher, and name the more accurate trials of the frontier that could be exported instead."""
    from bortnas.api.search import frontier, trials

    drop = -report.ratios()["test_points"]
    if drop <= NOTABLE_DROP:
        return
    summaries = trials(study, storage=storage)
    chosen = next((t for t in summaries if t.number == report.trial), None)
    larger = [t for t in frontier(summaries) if chosen is not None and (t.dev_score or 0) > (chosen.dev_score or 0)]
    options = ", ".join(f"trial {t.number} ({t.candidate})" for t in larger[:3])
    _logger.warning(
        "the exported model is %.2f points of test %s below its teacher; %s",
        drop,
        metric,
        f"more accurate trials on the frontier: {options}: export one by its trial number, or choose by an accuracy drop or a budget."
        if options
        else "no trial of this study was more accurate on dev: search a space with larger candidates.",
    )
