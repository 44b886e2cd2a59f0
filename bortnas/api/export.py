"""`bortnas.export`: train a study's chosen candidate to completion and write a model directory.

API layer: the one place that wires an export together (study, selection, context, training,
writer). The teacher and the task are resolved once from the study's pinned settings and passed
down; every cheap check (options, out directory, storage, study, unlabelled file) runs before any
training or write.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bortnas.api.finetune import Agora, Distil, Finetune
from bortnas.core.budget import Budget
from bortnas.core.errors import ParameterError
from bortnas.core.settings import Execution
from bortnas.core.storage_url import resolve_storage

if TYPE_CHECKING:
    import optuna

    from bortnas.core.budget import LatencyTable
    from bortnas.core.space import ArchSpec
    from bortnas.export.writer import ExportReport
    from bortnas.search.selection import Selection
    from bortnas.trial.context import Context
    from bortnas.trial.finetune import Finetuned

__all__ = ["export"]

_logger = logging.getLogger(__name__)
NOTABLE_DROP = 2.0  # points of the task's headline metric: beyond it an export says what else the study offers
ACCEPT_DROP = 2.0  # points on dev: a default export trained further below its teacher climbs the frontier
CLIMBS = 2  # more accurate candidates a default export trains at most before it keeps the best


def export(
    study: str,
    out: str | Path,
    *,
    storage: str | None = None,
    trial: int | None = None,
    budget: Budget | None = None,
    max_accuracy_drop: float | None = None,
    accept_drop: float | None = ACCEPT_DROP,
    climbs: int = CLIMBS,
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
    else the argmax-W trial.

    A trial's dev score comes from the search's short training, which can rank a small candidate
    far below or above what it reaches after the export's long one. So unless the trial is named,
    the trained model is checked on dev, by the task's headline metric (an embedding model by
    recall@10 where its data has pairs, since its headline compares it with the teacher itself).
    More than `accept_drop` points below the teacher, the export trains the next more accurate
    trial of the study's frontier (the fastest one whose search dev score is higher; with a cost
    budget, the next one within it), up to `climbs` times, and writes the first one within
    `accept_drop`, else the most accurate one it trained. Each attempt is logged and listed in
    `bortnas.json`.

    The directory holds config, weights (low-bit modes packed), the tokenizer and `bortnas.json`
    (metrics beside the teacher's, and whether stock transformers loads it); `bortnas.load(out)`
    reads any of them.

    Args:
        study: the study's name.
        out: the output directory (absent or empty unless `overwrite`).
        storage: the storage URL the study lives in (default: `$BORTNAS_STORAGE`, else `sqlite:///bortnas.db`).
        trial: the trial number to export (not with a budget).
        budget: choose the best trial within these bounds (latency, size, speed-up).
        max_accuracy_drop: choose among trials at most this many points of dev accuracy below the teacher.
        accept_drop: points of the dev score below the teacher a trained model may be before the
            export climbs to a more accurate trial (at most `max_accuracy_drop` where that is
            given); None exports the chosen trial as trained.
        climbs: how many more accurate trials the export trains at most.
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
    from bortnas.export.out_dir import prepare_out_dir, release_out_dir
    from bortnas.search.selection import Selection, choose_trial, parse_accuracy_drop
    from bortnas.search.study import open_study
    from bortnas.trial.inputs import resolve_inputs

    if not isinstance(finetune, Finetune) or not finetune.method:
        raise ParameterError("finetune", f"={finetune!r} is not a fine-tuning method: pass Distil(), Plain() or Agora().")
    if finetune.method == "plain" and unlabeled is not None:
        raise ParameterError("unlabeled", " needs a teacher to learn from: use it with Distil or Agora, not Plain.")
    if onnx:
        from bortnas.runtime.onnx import require_onnxruntime

        require_onnxruntime("onnx=True")
    if accept_drop is not None and not (math.isfinite(accept_drop) and accept_drop >= 0):
        raise ParameterError("accept_drop", f"={accept_drop!r} must be a finite number of points >= 0, or None.")
    if isinstance(climbs, bool) or not isinstance(climbs, int) or climbs < 0:
        raise ParameterError("climbs", f"={climbs!r} must be a whole number >= 0.")
    steps = finetune.resolved_steps
    agora_settings = finetune.settings if isinstance(finetune, Agora) else None
    selection = Selection(budget or Budget(), parse_accuracy_drop(max_accuracy_drop))
    out = Path(out).resolve()
    prepare_out_dir(out, overwrite)
    try:
        storage = resolve_storage(storage)
        the_study, _, settings = open_study(storage, study)
        pool: tuple[tuple[str, str | None], ...] = ()
        if unlabeled is not None:
            from bortnas.data.tasks import load_unlabeled

            pool = load_unlabeled(Path(unlabeled), settings.text_column, settings.pair_column, encoding=settings.encoding)
            _logger.info("unlabelled pool: %d examples from %s", len(pool), unlabeled)
        inputs = resolve_inputs(settings)  # its last checks read the teacher's config and weights through transformers
        if onnx and inputs.masked_lm:
            raise ParameterError(
                "onnx",
                ": a general encoder with a masked-LM head is written as AutoModelForMaskedLM, whose graph would output "
                "vocabulary logits; export it without onnx.",
            )
        # the inputs are good: now the modules that train and write models (torch, transformers' models)
        from bortnas.export.writer import discard_checkpoints, export_trial, train_trial
        from bortnas.runtime.device import Device
        from bortnas.trial.context import build_context
        from bortnas.trial.latency_table import retime

        device = Device.from_name(execution.device, compile=execution.compile)
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
        if finetune.tokens is not None:
            steps = finetune.steps_for(ctx.settings.batch_size, ctx.train.mean_tokens)
            batch, mean = ctx.settings.batch_size, ctx.train.mean_tokens
            _logger.info("%d tokens: %d steps of %d examples of %.1f tokens on average", finetune.tokens, steps, batch, mean)
        chosen_by = None
        if selection:
            chosen_by = {"selection": selection.describe(), "retimed": tables[0].to_dict() if tables else None}
        climbing = accept_drop is not None and trial is None and ctx.task.checkable
        if accept_drop is not None and selection.max_accuracy_drop is not None:  # the stricter of the user's two bounds
            accept_drop = min(accept_drop, selection.max_accuracy_drop)
        trained = train_trial(ctx, chosen, steps, finetune.method, agora_settings, show_progress_bar, pool)
        attempts: list[dict[str, Any]] = []
        if climbing:
            assert accept_drop is not None
            chosen, trained, attempts = _climb(
                ctx, the_study, chosen, trained, accept_drop, climbs, steps, finetune, show_progress_bar, pool, onnx, selection
            )
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
            trained=trained,
            attempts=attempts,
            tokens=finetune.tokens,
        )
        discard_checkpoints(ctx, [str(chosen.user_attrs.get("key"))] + [str(a["candidate"]) for a in attempts])
        if ctx.task.checkable:
            _warn_if_far_below_teacher(report, study, storage, ctx.task.metric)
        return report
    except BaseException:
        release_out_dir(out)  # what the failed run claimed; the directory itself was never touched
        raise


def _climb(
    ctx: Context,
    study: optuna.Study,
    chosen: optuna.trial.FrozenTrial,
    trained: Finetuned,
    accept_drop: float,
    climbs: int,
    steps: int,
    finetune: Finetune,
    show_progress_bar: bool,
    pool: Sequence[tuple[str, str | None]],
    onnx: bool,
    selection: Selection | None = None,
) -> tuple[optuna.trial.FrozenTrial, Finetuned, list[dict[str, Any]]]:
    """Check `trained` (trial `chosen`) on dev and climb the frontier while it is more than
    `accept_drop` points below the teacher (`export`'s docstring): the trial to write, its trained
    model and every attempt's record. With `onnx`, only modes onnxruntime runs are climbed to; with
    a cost budget in `selection`, only trials within it (by the study's latency table)."""
    from bortnas.export.writer import train_trial
    from bortnas.search.records import load_records
    from bortnas.search.selection import Selection, more_accurate, qualifying, resolve
    from bortnas.trial.metrics import score_metrics

    agora_settings = finetune.settings if isinstance(finetune, Agora) else None
    records = [r for r in load_records(study) if not (onnx and r.latency_simulated)]
    if selection is not None and selection.budget:
        inside = {r.number for r in qualifying(records, resolve(Selection(selection.budget), study))}
        records = [r for r in records if r.number in inside or r.number == chosen.number]
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    metric = ctx.task.check_metric
    if metric not in ctx.teacher.dev_metrics:  # an embedding corpus without pairs has no recall@10
        _logger.info("no dev check: the teacher has no dev %s on this data; writing trial %d as trained", metric, chosen.number)
        return chosen, trained, []
    teacher_score = ctx.teacher.dev_metrics[metric]
    tried: list[tuple[optuna.trial.FrozenTrial, Finetuned, dict[str, Any]]] = []
    while True:
        score = score_metrics(trained.model, ctx, ctx.dev)[metric]
        drop = 100.0 * (teacher_score - score)
        record = {
            "trial": chosen.number,
            "candidate": chosen.user_attrs.get("key"),
            "metric": metric,
            "dev_score": score,
            "dev_drop_points": drop,
        }
        tried.append((chosen, trained, record))
        within = drop <= accept_drop + 1e-9
        nxt = None if within or len(tried) > climbs else more_accurate(records, chosen.number)
        _logger.info(
            "trial %d (%s) trained: dev %s %.4f, %.2f points below the teacher's %.4f (accepted up to %g)%s",
            chosen.number,
            record["candidate"],
            metric,
            score,
            drop,
            teacher_score,
            accept_drop,
            f"; climbing to trial {nxt.number} ({nxt.attrs.get('key')}), the next more accurate on the frontier" if nxt else "",
        )
        if nxt is None:
            break
        chosen = trials[nxt.number]
        trained = train_trial(ctx, chosen, steps, finetune.method, agora_settings, show_progress_bar, pool)
    chosen, trained, _ = tried[-1] if within else max(tried, key=lambda t: t[2]["dev_score"])
    if not within and len(tried) > 1:
        _logger.warning(
            "no trained trial came within %g points of the teacher on dev; writing the most accurate, trial %d", accept_drop, chosen.number
        )
    return chosen, trained, [r for _, _, r in tried]


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
