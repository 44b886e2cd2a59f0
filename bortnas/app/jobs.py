"""The long jobs behind `bortnas search` and `bortnas export`, from validated settings to results.

Application layer: the one place that wires the layers together (space and settings, study,
context, local or Ray loop, export). The CLI parses flags into the settings classes, calls these
and prints what they return. Everything that can be checked cheaply (space, settings, teacher
directory, data file, storage URL, out directory) is checked before anything is written.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bortnas.core.errors import BortnasError, UserInputError
from bortnas.core.settings import RaySettings, RunSettings, SearchOptions

if TYPE_CHECKING:
    from collections.abc import Sequence

    from bortnas.core.budget import LatencyTable
    from bortnas.core.space import ArchSpec, SearchSpace, TeacherShape
    from bortnas.runtime.device import Device
    from bortnas.search.selection import Selection

_logger = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class SearchOutcome:
    """What a search ended with: the argmax-W trial (for the FPTAS, the scheme's own answer)."""

    study: str
    best_trial: int
    candidate: str
    w: float
    dev_accuracy: float
    teacher_dev_accuracy: float
    fptas: dict[str, Any] | None
    space_size: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "best_trial": self.best_trial,
            "candidate": self.candidate,
            "W": self.w,
            "dev_accuracy": self.dev_accuracy,
            "teacher_dev_accuracy": self.teacher_dev_accuracy,
            "fptas": self.fptas,
        }


def export(
    storage_url: str,
    study_name: str,
    out: Path,
    trial_number: int | None = None,
    steps: int | None = None,
    selection: Selection | None = None,
    method: str = "distil",
    agora_grid: Path | None = None,
    agora_replay: int = 1,
    agora_prune: str = "ties",
    overwrite: bool = False,
    device_name: str = "auto",
    compile: bool = False,
    cache_dir: Path | None = None,
    show_progress_bar: bool = False,
    onnx: bool = False,
    agora_soft_labels: bool = False,
    agora_min_confidence: float = 0.0,
    unlabeled: Path | None = None,
    agora_pool_k: int = 4,
) -> Any:
    """Train a study's trial (default: argmax W; with a `selection`, the best one within its budgets,
    `bortnas.search.selection`) for `steps` more steps and write it to `out`; returns the `ExportReport`.
    With `onnx`, the ONNX graphs too (`bortnas.export.writer.write_onnx`). `unlabeled` is unlabelled
    text of the task, read with the study's text and pair columns, which distillation learns from and
    Agora draws from (`bortnas.trial.finetune`).

    Raises:
        UserInputError: bad steps or Agora options, an unreadable or empty `unlabeled` file or one
            without the study's columns, an existing `out`, an unknown storage or study,
            a budget no finished trial meets, `onnx` for a mode no runtime kernel runs (before any write or training).
        MissingDependencyError: `onnx` without onnxruntime installed.
        ExportError: no finished trial to export, or the written directory does not reproduce the model.
    """
    from bortnas.core.space import ArchSpec
    from bortnas.export.writer import export_trial, prepare_out_dir
    from bortnas.runtime.device import Device
    from bortnas.search.selection import choose_trial
    from bortnas.search.study import open_study
    from bortnas.trial.context import build_context
    from bortnas.trial.finetune import DEFAULT_GRID, DEFAULT_STEPS, METHODS, AgoraSettings, load_grid

    if method not in METHODS:
        raise UserInputError(f"--finetune={method!r} is unknown: use one of {', '.join(METHODS)}.")
    if onnx:
        from bortnas.runtime.onnx import require_onnxruntime

        require_onnxruntime("--onnx")
    steps = DEFAULT_STEPS[method] if steps is None else steps
    if steps <= 0:
        raise UserInputError(f"--steps={steps} must be a positive integer.")
    agora_settings = None
    if method == "agora":
        grid = load_grid(agora_grid) if agora_grid else dict(DEFAULT_GRID)
        agora_settings = AgoraSettings(
            grid=grid,
            replay=agora_replay,
            rule=agora_prune,
            soft_labels=agora_soft_labels,
            min_confidence=agora_min_confidence,
            pool_neighbours=agora_pool_k,
        )
    elif agora_grid or agora_soft_labels or agora_min_confidence or agora_pool_k != AgoraSettings.pool_neighbours:
        raise UserInputError("--agora-grid, --agora-soft-labels, --agora-min-confidence and --agora-pool-k apply to --finetune agora only.")
    if method == "plain" and unlabeled is not None:
        raise UserInputError("--unlabeled needs a teacher to learn from: use it with --finetune distil or agora, not plain.")
    out = out.resolve()
    prepare_out_dir(out, overwrite)
    device = Device.from_name(device_name, compile=compile)
    study, _, settings = open_study(storage_url, study_name)
    pool: tuple[tuple[str, str | None], ...] = ()
    if unlabeled is not None:
        from bortnas.data.tasks import load_unlabeled

        pool = load_unlabeled(unlabeled, settings.text_column, settings.pair_column, encoding=settings.encoding)
        _logger.info("unlabelled pool: %d examples from %s", len(pool), unlabeled)
    tables: list[LatencyTable] = []

    def retime(specs: Sequence[ArchSpec]) -> LatencyTable:
        table = retime_candidates(specs, settings, device)
        tables.append(table)
        return table

    trial = choose_trial(study, trial_number, selection, retime)
    mode = ArchSpec.from_dict(trial.user_attrs["candidate"]).quant
    if onnx and mode.config.simulated:
        raise UserInputError(
            f"--onnx: trial {trial.number} is {mode.value}, which no onnxruntime kernel runs (its arithmetic would be an fp32 "
            "simulation there too); export it without --onnx, or choose an fp32, int8 or bitnet158 trial."
        )
    _logger.info(
        "exporting trial %d (%s)%s", trial.number, trial.user_attrs.get("key"), f" for {selection.describe()}" if selection else ""
    )
    _logger.info("device: %s%s", device.describe(), ", torch.compile" if device.compile else "")
    ctx = build_context(settings, cache_dir, show_progress_bar=show_progress_bar, device=device)
    budget = None
    if selection:
        budget = {"selection": selection.describe(), "retimed": tables[0].to_dict() if tables else None}
    return export_trial(
        ctx,
        study,
        trial,
        out,
        steps,
        overwrite,
        show_progress_bar=show_progress_bar,
        method=method,
        agora_settings=agora_settings,
        budget=budget,
        onnx=onnx,
        pool=pool,
    )


def search(
    space_path: str | Path,
    settings: RunSettings,
    options: SearchOptions,
    storage_url: str,
    study_name: str | None = None,
    ray: RaySettings | None = None,
    device_name: str = "auto",
    compile: bool = False,
    cache_dir: Path | None = None,
    show_progress_bar: bool = False,
    verbose: int = 1,
) -> SearchOutcome:
    """Run (or resume) a search and return its best trial.

    Raises:
        UserInputError: a bad space, setting, teacher, data file, storage or device, or a latency
            budget or cost over simulated modes (before any write).
        MissingDependencyError: `--latency-backend onnxruntime` without onnxruntime installed.
        BortnasError: the study ended without a finished trial.
    """
    from bortnas.core.space import load_search_space
    from bortnas.runtime.device import Device
    from bortnas.search import create_or_resume, make_sampler, run_search
    from bortnas.search.budget_screen import BudgetScreen, refuse_simulated_latency
    from bortnas.search.claims import Coordination
    from bortnas.search.records import front_and_best, load_records
    from bortnas.search.storage import claim_lock, open_storage
    from bortnas.search.strategies import describe_plan, fptas_plan, fptas_result, grid_order
    from bortnas.search.study import find_study, latency_table
    from bortnas.trial.context import build_context, check_inputs, default_cache_dir
    from bortnas.trial.scoring import context_evaluator

    if ray is not None:
        ray.check_device(device_name)
    space = load_search_space(space_path)
    shape, _ = check_inputs(settings)
    space.check_fits(shape)
    refuse_simulated_latency({c.quant for c in space.candidates()}, settings.budget(), settings.cost, space.source)
    device = Device.from_name(device_name, compile=compile)
    if settings.latency_backend == "onnxruntime":
        from bortnas.runtime.onnx import require_onnxruntime

        require_onnxruntime("--latency-backend onnxruntime")
        if device.is_cuda:
            raise UserInputError("--latency-backend onnxruntime times CPU inference: use --device cpu or --latency-backend torch.")
    name = study_name or space.name
    existing = find_study(storage_url, name)
    table = latency_table(existing) if existing is not None else None
    if table is None:
        table = measure_space_latency(space, settings, shape, device, show_progress_bar)
    elif table.device != device.describe():
        _logger.warning(
            "study %r's latency table was measured on %s; this process runs on %s: budgets and --cost latency use the stored table",
            name,
            table.device,
            device.describe(),
        )
    budget = settings.budget()
    screen = BudgetScreen(budget, shape, settings.max_length, table)
    feasible = screen.check_any(list(space.candidates()), space.source)
    if budget:
        _logger.info("budget %s: %d of %d candidates inside it", screen.describe(), len(feasible), len(space))
    inside = set(feasible)
    proposals: Sequence[ArchSpec] | None = (
        [c for c in grid_order(space, settings.seed) if c in inside] if options.strategy == "grid" else None
    )
    n_trials = min(options.n_trials, len(feasible))
    plan = fptas_info = None
    if options.strategy == "fptas":
        plan = fptas_plan(space, shape, settings.max_length, options.epsilon, feasible, settings.cost, table)
        fptas_info = describe_plan(plan, options.epsilon, options.fptas_n0, options.fptas_s)
        proposals, n_trials = list(plan.representatives), len(plan.representatives)
    sampler = make_sampler(options.strategy, space, settings.seed, options.n_trials)
    storage = open_storage(storage_url, heartbeat_interval=options.heartbeat_interval, grace_period=options.grace_period)
    study = create_or_resume(storage, name, space, settings, sampler, fptas=fptas_info, latency_table=table)
    coordination = Coordination(claim_lock(storage_url, name), storage, poll_s=min(5.0, options.heartbeat_interval))
    _logger.info("study %r in %s: %d candidates in %s", name, storage_url, len(space), space.source)
    if fptas_info is not None:
        _logger.info(
            "FPTAS epsilon %.3g: %d buckets, %d candidates to evaluate at %d steps each (bound %d), guarantee W >= %.2f * optimum",
            options.epsilon,
            fptas_info["buckets"],
            len(fptas_info["representatives"]),
            fptas_info["steps"],
            fptas_info["evaluation_bound"],
            fptas_info["guarantee"],
        )
    _logger.info("device: %s%s", device.describe(), ", torch.compile" if device.compile else "")
    ctx = build_context(settings, cache_dir, show_progress_bar=show_progress_bar, device=device)
    evaluate, provenance = context_evaluator(ctx, space, table)
    if plan is not None and options.fptas_refine:
        from bortnas.search.refinement import RefinementOrder

        order = RefinementOrder(study, plan, space, shape, settings.max_length, settings.cost, table)
        proposals, n_trials = order, min(len(order), len(plan.representatives) + options.fptas_refine)
    if ray is not None:
        from bortnas.ray.tune import run_search_ray

        run_search_ray(
            study,
            storage,
            space,
            ctx,
            n_trials,
            options.strategy,
            provenance,
            coordination,
            ray,
            (cache_dir or default_cache_dir()).resolve(),
            proposals=proposals,
            verbose=verbose,
            table=table,
            screen=screen if budget else None,
        )
    else:
        run_search(
            study,
            space,
            evaluate,
            n_trials,
            options.strategy,
            provenance,
            show_progress_bar=show_progress_bar,
            proposals=proposals,
            coordination=coordination,
            screen=screen if budget else None,
        )
    if plan is not None and fptas_info is not None and options.fptas_refine:
        # what the refinement evaluated, in trial order (`bortnas.search.refinement`)
        reps = set(plan.representatives)
        fptas_info["refined"] = [r.spec.key for r in load_records(study) if r.scored and r.spec is not None and r.spec not in reps]
        study.set_user_attr("fptas", fptas_info)
    records = load_records(study)
    if plan is not None:
        result = fptas_result(plan, records, options.trial_steps(), settings.cost)
        best = next((r.number for r in records if r.scored and r.spec == result.best), None)
    else:
        best = front_and_best(records)[1]
    if best is None:
        raise BortnasError(f"study {name!r} has no finished trial: see `bortnas trials --study {name}` for the reasons.")
    attrs = next(r.attrs for r in records if r.number == best)
    return SearchOutcome(name, best, attrs["key"], attrs["w"], attrs["dev_accuracy"], ctx.teacher.dev_accuracy, fptas_info, len(space))


def retime_candidates(specs: Sequence[ArchSpec], settings: RunSettings, device: Device) -> LatencyTable:
    """`specs` and the teacher's shape timed again side by side (random weights, batch 1, the
    settings' sequence length and threads, interleaved rounds): what an export's latency budget is
    applied to (`bortnas.search.selection.retimed`)."""
    from bortnas.trial.context import check_inputs
    from bortnas.trial.latency_table import RETIME_ROUNDS, measure_table
    from bortnas.trial.teacher import load_teacher_config

    shape, _ = check_inputs(settings)
    config = load_teacher_config(settings.teacher_dir())
    _logger.info("timing %d candidate(s) and the teacher again, side by side, for the latency budget", len(specs))
    return measure_table(
        config,
        specs,
        None,
        shape.as_spec(),
        shape.num_labels,
        settings.max_length,
        settings.latency_threads,
        device,
        rounds=RETIME_ROUNDS,
        backend=settings.latency_backend,
    )


def measure_space_latency(
    space: SearchSpace, settings: RunSettings, shape: TeacherShape, device: Device, show_progress_bar: bool = False
) -> LatencyTable:
    """The latency table of every candidate of `space` (random weights, batch 1, the settings'
    sequence length and threads, on `device`), with progress; see `bortnas.trial.latency_table`."""
    from bortnas.core.progress import progress_bar
    from bortnas.trial.latency_table import measure_table
    from bortnas.trial.teacher import load_teacher_config

    candidates = list(space.candidates())
    bar = progress_bar(len(candidates), "latency table", show_progress_bar, leave=False, unit="candidates")
    try:
        return measure_table(
            load_teacher_config(settings.teacher_dir()),
            candidates,
            space.maximum_point,
            shape.as_spec(),
            shape.num_labels,
            settings.max_length,
            threads=settings.latency_threads,
            device=device,
            on_candidate=lambda done, total: bar.update(1),
            backend=settings.latency_backend,
        )
    finally:
        bar.close()
