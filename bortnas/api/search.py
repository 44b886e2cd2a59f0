"""`bortnas.search` and `bortnas.trials`: run (or resume) a search into an Optuna study, and read its trials.

API layer: the one place that wires a search together. The teacher and the task are resolved
once (`bortnas.trial.inputs.resolve_inputs`, before torch is imported) and passed down; everything that can be checked
cheaply (space, settings, teacher directory, data file, storage URL) is checked before anything
is written.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bortnas.api.results import SearchResult, TrialSummary
from bortnas.core.budget import Budget
from bortnas.core.errors import BortnasError, ParameterError
from bortnas.core.settings import COSTS, Execution, RunSettings
from bortnas.core.space import SearchSpace
from bortnas.search.selection import Selection
from bortnas.search.strategies import FPTAS, Strategy

if TYPE_CHECKING:
    from bortnas.search.records import TrialRecord

__all__ = ["search", "trials"]

_logger = logging.getLogger(__name__)


def search(
    space: str | Path | SearchSpace,
    *,
    storage: str | None = None,
    study: str | None = None,
    settings: RunSettings = RunSettings(),
    strategy: Strategy = FPTAS(),
    execution: Execution = Execution(),
    show_progress_bar: bool = False,
) -> SearchResult:
    """Evaluate candidates of a search space into an Optuna study, or resume the study, and return its best trial.

    Each trial cuts a candidate out of the task teacher, distils it for the strategy's steps,
    measures its dev error, size and inference cost, and stores W. Running the same call again
    (or in several processes at once, on one storage) resumes the study: finished candidates are
    never evaluated twice.

    Args:
        space: a search-space YAML file (see `search_spaces/`) or a loaded `SearchSpace`.
        storage: SQLAlchemy URL of the study database (default: the `BORTNAS_STORAGE` environment
            variable, else `sqlite:///bortnas.db`; PostgreSQL for a cluster).
        study: the study's name (default: the space's name).
        settings: the teacher, the task data and how trials train; pinned with the study.
        strategy: how candidates are proposed: `FPTAS` (default), `Grid`, `RandomSearch`, `TPE` or `NSGA2`.
        execution: device, teacher cache, heartbeats, and Ray.
        show_progress_bar: progress on stderr (a bar on a terminal, a line every 30 s elsewhere).

    Returns:
        The study's name and its chosen trial: the FPTAS's answer, else the argmax-W trial.

    Raises:
        ParameterError: a bad setting (naming the parameter).
        UserInputError: a bad space, teacher, data file, storage or device, or a latency budget or
            cost over modes without a low-bit kernel (before anything is written).
        StudyMismatchError: the study exists with another space or other settings.
        MissingDependencyError: `latency_backend="onnxruntime"` without onnxruntime, or Ray without ray.
        BortnasError: the study ended without a finished trial.

    Example:
        >>> import bortnas
        >>> result = bortnas.search("search_spaces/minilm_quick.yaml", storage="sqlite:///out/bortnas.db")  # doctest: +SKIP
        >>> result.best.candidate  # doctest: +SKIP
        'L2-H288-A12-I384-fp32'
    """
    from bortnas.core.space import load_search_space
    from bortnas.core.storage_url import redact, resolve_storage
    from bortnas.search.budget_screen import BudgetScreen, refuse_simulated_latency
    from bortnas.trial.inputs import resolve_inputs

    storage = resolve_storage(storage)
    space = space if isinstance(space, SearchSpace) else load_search_space(space)
    settings = dataclasses.replace(settings, trial_steps=strategy.trial_steps(settings.trial_steps))
    inputs = resolve_inputs(settings)
    settings = inputs.settings  # the task and the teacher's steps settled: what the study pins
    space.check_fits(inputs.shape)
    refuse_simulated_latency({c.quant for c in space.candidates()}, settings.budget, settings.cost, space.source)
    # the inputs are good: now the modules that train and time models (torch, transformers' models)
    from bortnas.runtime.device import Device
    from bortnas.search.claims import Coordination
    from bortnas.search.fptas_sampler import FPTASSampler
    from bortnas.search.ordered import OrderedSampler
    from bortnas.search.records import front_and_best, load_records
    from bortnas.search.runner import run_search
    from bortnas.search.storage import claim_lock, open_storage
    from bortnas.search.strategies import SearchProblem
    from bortnas.search.study import create_or_resume, find_study, latency_table
    from bortnas.trial.context import build_context, default_cache_dir
    from bortnas.trial.latency_table import measure_space
    from bortnas.trial.scoring import context_evaluator

    device = Device.from_name(execution.device, compile=execution.compile)
    if settings.latency_backend == "onnxruntime":
        from bortnas.runtime.onnx import require_onnxruntime

        require_onnxruntime("latency_backend='onnxruntime'")
        if device.is_cuda:
            raise ParameterError("latency_backend", "='onnxruntime' times CPU inference: use device 'cpu' or latency_backend 'torch'.")
    name = study or space.name
    existing = find_study(storage, name)
    table = latency_table(existing) if existing is not None else None
    if table is None:
        table = measure_space(space, inputs, device, show_progress_bar)
    elif table.device != device.describe():
        _logger.warning(
            "study %r's latency table was measured on %s; this process runs on %s: budgets and cost 'latency' use the stored table",
            name,
            table.device,
            device.describe(),
        )
    budget = settings.budget
    screen = BudgetScreen(budget, inputs.shape, settings.max_length, table)
    feasible = screen.check_any(list(space.candidates()), space.source)
    if budget:
        _logger.info("budget %s: %d of %d candidates inside it", screen.describe(), len(feasible), len(space))
    problem = SearchProblem(space, inputs.shape, settings.max_length, tuple(feasible), settings.cost, table, settings.seed)
    sampler = strategy.sampler(problem)
    target = strategy.target(sampler, problem)
    plan = strategy.describe(sampler)
    rdb = open_storage(storage, heartbeat_interval=execution.heartbeat_interval, grace_period=execution.grace_period)
    the_study = create_or_resume(rdb, name, space, settings, sampler, fptas=plan, latency_table=table)
    proposals = sampler.proposals(the_study) if isinstance(sampler, OrderedSampler) else None
    coordination = Coordination(claim_lock(storage, name), rdb, poll_s=min(5.0, execution.heartbeat_interval))
    _logger.info("study %r in %s: %d candidates in %s", name, redact(storage), len(space), space.source)
    if isinstance(sampler, FPTASSampler) and plan is not None:
        _logger.info(
            "FPTAS epsilon %.3g: %d buckets, %d candidates to evaluate at %d steps each (bound %d), guarantee W >= %.2f * optimum",
            sampler.epsilon,
            plan["buckets"],
            target,
            plan["steps"],
            plan["evaluation_bound"],
            plan["guarantee"],
        )
    _logger.info("device: %s%s", device.describe(), ", torch.compile" if device.compile else "")
    ctx = build_context(settings, execution.cache_dir, show_progress_bar=show_progress_bar, device=device, inputs=inputs)
    evaluate, provenance = context_evaluator(ctx, space, table)
    screened = screen if budget else None
    if execution.ray is not None:
        from bortnas.ray.tune import run_search_ray

        cache_dir = (execution.cache_dir or default_cache_dir()).resolve()
        run_search_ray(
            the_study,
            space,
            ctx,
            target,
            strategy.name,
            provenance,
            coordination,
            execution.ray,
            cache_dir,
            proposals=proposals,
            table=table,
            screen=screened,
        )
    else:
        run_search(
            the_study,
            space,
            evaluate,
            target,
            strategy.name,
            provenance,
            show_progress_bar=show_progress_bar,
            proposals=proposals,
            coordination=coordination,
            screen=screened,
        )
    records = load_records(the_study)
    best: int | None
    if isinstance(sampler, FPTASSampler) and plan is not None:
        reps = set(sampler.representatives)
        refined = [r.spec.key for r in records if r.scored and r.spec is not None and r.spec not in reps]
        if refined:
            # what the refinement evaluated, in trial order
            plan["refined"] = refined
            the_study.set_user_attr("fptas", plan)
        answer = sampler.result(the_study).best
        best = next((r.number for r in records if r.scored and r.spec == answer), None)
    else:
        best = front_and_best(records)[1]
    if best is None:
        raise BortnasError(f"study {name!r} has no finished trial: see `bortnas.trials({name!r})` for the reasons.")
    summaries = _summaries(records, settings.cost, None, include_skipped=True, best=best)
    summary = next(t for t in summaries if t.number == best)
    return SearchResult(
        name,
        storage,
        summary,
        ctx.teacher.dev_score,
        len(space),
        strategy.name,
        plan,
        ctx.task.name,
        ctx.task.metric,
        frontier=frontier(summaries),
        teacher_latency_ms=table.teacher_ms if table is not None else None,
        trial_steps=settings.trial_steps,
    )


def frontier(summaries: Sequence[TrialSummary]) -> tuple[TrialSummary, ...]:
    """The finished trials no other trial beats on both speed and dev score, fastest first: the
    trade-off a user picks from (W is one point on it). Speed is the study's table latency where
    there is one, else FLOPs."""

    def cost(t: TrialSummary) -> float:
        return t.latency_table_ms if t.latency_table_ms is not None else (t.flops if t.flops is not None else math.inf)

    out: list[TrialSummary] = []
    for t in sorted((t for t in summaries if t.state == "COMPLETE" and t.dev_score is not None), key=lambda t: (cost(t), t.number)):
        if not out or t.dev_score > out[-1].dev_score:  # type: ignore[operator]  # every kept trial has a score
            out.append(t)
    return tuple(out)


def trials(
    study: str,
    *,
    storage: str | None = None,
    cost: str | None = None,
    budget: Budget | None = None,
    max_accuracy_drop: float | None = None,
    include_skipped: bool = False,
) -> list[TrialSummary]:
    """The trials of a study, read-only: W, costs, the Pareto front and the argmax-W trial.

    Args:
        study: the study's name.
        storage: the storage URL the study lives in (it must exist; nothing is created; default as `search`'s).
        cost: which W to report and star, "flops" or "latency" (default: the study's own).
        budget: mark the trials inside these bounds (`in_budget`); `min_speedup` uses the study's latency table.
        max_accuracy_drop: with or without `budget`, also require dev accuracy at most this many points below the teacher's.
        include_skipped: also list proposals skipped before training (invalid, duplicate, outside the search's budget).

    Raises:
        UserInputError: no such storage or study, or a latency budget over modes without a low-bit kernel.
    """
    from bortnas.search.records import load_records
    from bortnas.search.selection import check_latencies, resolve
    from bortnas.search.study import open_study

    the_study, _, settings = open_study(storage, study)
    if cost is not None and cost not in COSTS:
        raise ParameterError("cost", f"={cost!r} is unknown: use {' or '.join(COSTS)}.")
    records = load_records(the_study)
    selection = Selection(budget or Budget(), max_accuracy_drop)
    check_latencies(records, selection, cost, study)
    chosen = resolve(selection, the_study) if selection else None
    return _summaries(records, cost or settings.cost, chosen, include_skipped)


def _summaries(
    records: list[TrialRecord], cost: str | None, selection: Selection | None, include_skipped: bool, best: int | None = None
) -> list[TrialSummary]:
    from bortnas.search.records import front_and_best, w_of
    from bortnas.search.selection import qualifying

    front, argmax = front_and_best(records, cost)
    best = argmax if best is None else best
    inside = {r.number for r in qualifying(records, selection)} if selection is not None else None
    out = []
    for r in records:
        a = r.attrs
        if "skip_reason" in a and not include_skipped:
            continue
        out.append(
            TrialSummary(
                number=r.number,
                state=r.state,
                candidate=r.spec.key if r.spec else None,
                w=w_of(a, cost),
                error=a.get("error"),
                dev_score=a.get("dev_score", a.get("dev_accuracy")),
                params_non_embedding=a.get("params_non_embedding"),
                size_mib=a.get("size_mib"),
                flops=a.get("flops"),
                latency_ms=a.get("latency_ms"),
                latency_table_ms=a.get("latency_table_ms"),
                latency_simulated=r.latency_simulated,
                cost=cost or "flops",
                pareto=r.number in front,
                best=r.number == best,
                in_budget=None if inside is None else r.number in inside,
                note=a.get("fail_reason") or a.get("skip_reason") or "",
            )
        )
    return out
