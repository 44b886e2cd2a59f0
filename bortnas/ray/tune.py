"""Ray Tune backend: the same candidates, scores and study as a local search, on a Ray cluster.

Ray layer (optional extra `bortnas[ray]`). This module imports Ray at the top and is imported
only for `--backend ray` (`bortnas.search` with `Execution(ray=...)`); without Ray installed, importing it raises
`MissingDependencyError` with the pip command. `StudySearch`, an ordinary Tune `Searcher`, asks
and tells the trials of the bortnas study itself in the driver (Optuna's ask/tell on the same
`RDBStorage`), and does what a local search does around each trial through
`bortnas.search.claims` (skip invalid and taken candidates, claim, heartbeats) and
`bortnas.search.bookkeeper` (provenance, failures, scores, the stop rule), so local workers, Ray
workers and restarted drivers can share one study. Every Ray trial runs `score_candidate` in a
reused actor that builds the task context once per process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import optuna

from bortnas.ray.cluster import configure_ray_env, require_ray

# A clear MissingDependencyError (with the pip command) instead of a bare ImportError, before any
# Ray import. Usage reporting is off before Ray is loaded; the client's auth mode is set per run.
require_ray("the Ray backend")
configure_ray_env(client=False)

import ray  # noqa: E402
import torch  # noqa: E402
from ray import tune  # noqa: E402
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler  # noqa: E402
from ray.tune.search import Searcher  # noqa: E402

from bortnas.core.budget import LatencyTable  # noqa: E402
from bortnas.core.errors import TrialFailed  # noqa: E402
from bortnas.core.settings import RaySettings, RunSettings  # noqa: E402
from bortnas.core.space import ArchSpec, SearchSpace  # noqa: E402
from bortnas.runtime.device import Device, limit_memory_fraction  # noqa: E402
from bortnas.search.bookkeeper import TrialBookkeeper, driven_heartbeats, interrupt_reason, search_target  # noqa: E402
from bortnas.search.budget_screen import BudgetScreen  # noqa: E402
from bortnas.search.claims import Coordination, Heartbeat, claim_asked, next_action, read_state  # noqa: E402
from bortnas.search.strategies import distributions  # noqa: E402
from bortnas.trial.context import Context, build_context  # noqa: E402
from bortnas.trial.scoring import Reference, score_candidate  # noqa: E402

_logger = logging.getLogger(__name__)


_CONTEXTS: dict[str, Context] = {}


def worker_device(gpus_per_trial: float, compile: bool = False) -> Device:
    """The device of a Ray trial: the GPU Ray assigned to it, or the CPU when it was given none.

    Ray makes a trial's GPU `cuda:0` of its process (CUDA_VISIBLE_DEVICES). With a fraction
    below 1, several trials share that GPU, so this process's allocator is capped at its share
    (`limit_memory_fraction`): a large candidate then fails its own trial with an out-of-memory
    error instead of starving the trials beside it.

    Raises:
        UserInputError: a GPU share, but torch in the worker sees no GPU.
    """
    if gpus_per_trial <= 0:
        return Device(compile=compile)
    device = Device.from_name("cuda", compile=compile)
    if gpus_per_trial < 1:
        device = dataclasses.replace(device, memory_share=gpus_per_trial)
        limit_memory_fraction(device, gpus_per_trial)
    return device


def _context(settings: Mapping[str, Any], cache_dir: str | None, device: Device) -> Context:
    """The task context of this worker process on `device`, built once (reused actors keep it)."""
    key = json.dumps([settings, cache_dir, str(device)], sort_keys=True)
    if key not in _CONTEXTS:
        _CONTEXTS.clear()
        _CONTEXTS[key] = build_context(RunSettings.from_dict(dict(settings)), Path(cache_dir) if cache_dir else None, device=device)
    return _CONTEXTS[key]


def evaluate_trial(config: dict[str, Any], static: Mapping[str, Any]) -> None:
    """The Ray Tune trainable: score one candidate, reporting W at checkpoints and at the end.

    `config` holds the candidate only (Tune shows it); `static` the settings every trial shares.
    """
    torch.set_num_threads(max(1, int(static["cpus"])))
    ctx = _context(static["settings"], static["cache_dir"], worker_device(static["gpus"], static["compile"]))
    spec = ArchSpec.from_dict(config["candidate"])

    def report(step: int, w: float, error: float) -> None:
        tune.report({"w": w, "error": error, "step": step})

    try:
        score = score_candidate(
            ctx,
            spec,
            Reference(**static["reference"]),
            ctx.settings.trial_steps,
            ctx.settings.seed,
            on_checkpoint=report,
            checkpoints=static["checkpoints"],
            latency_table_ms=static["latency_table"].get(spec.key),
        )
    except TrialFailed as e:
        tune.report({"w": 0.0, "failed": str(e)})
        return
    except torch.OutOfMemoryError as e:  # the candidate outgrew this trial's GPU share; the actor lives on for the next one
        torch.cuda.empty_cache()
        tune.report({"w": 0.0, "failed": f"out of GPU memory within a share of {static['gpus']:g} GPU: {str(e).splitlines()[0]}"})
        return
    # JSON, because Tune flattens nested result dicts
    tune.report({"w": score.w, "error": score.error, "step": score.steps, "final": True, "attrs": json.dumps(score.attrs())})


class _Live(NamedTuple):
    """A Tune trial this searcher suggested and has not heard the end of yet."""

    trial: optuna.Trial
    spec: ArchSpec
    beat: Heartbeat


class StudySearch(Searcher):
    """A Tune searcher that asks and tells the trials of the bortnas study, with the claims,
    heartbeats and bookkeeping of a local search.

    Tune names trials by its own `trial_id`; the Optuna trial of each live one is kept here, from
    `suggest` to `on_trial_complete`. The SQL study is the whole state of the search, so `save`
    and `restore` do nothing and a restarted driver resumes from the study. Metric "w", mode "max".
    """

    def __init__(
        self,
        study: optuna.Study,
        space: SearchSpace,
        target: int,
        proposals: Sequence[ArchSpec] | None,
        coordination: Coordination,
        book: TrialBookkeeper,
        screen: BudgetScreen | None = None,
    ) -> None:
        super().__init__(metric="w", mode="max")
        self.study, self.target, self.proposals, self.coordination, self.book = study, target, proposals, coordination, book
        self.screen = screen
        self._distributions = distributions(space)
        self._live: dict[str, _Live] = {}

    @property
    def scored(self) -> int:
        """Candidates scored through this searcher."""
        return self.book.scored

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict[str, Any], **spec: Any) -> bool:
        """Accept Tune's metric and mode if they are this searcher's; a Tune `param_space` cannot be used (the space is the study's)."""
        return not config and metric in (None, "w") and mode in (None, "max")

    def suggest(self, trial_id: str) -> dict[str, Any] | str | None:  # type: ignore[override]  # Ray's hint omits FINISHED
        """The candidate of a newly claimed trial; FINISHED when the search is done, None to be asked again when a trial ends."""
        study, coordination, book = self.study, self.coordination, self.book
        while book.should_continue():
            action, state = next_action(study, coordination, self.target, self.proposals, book.failed)
            book.observe(state)
            if action != "ask":
                return Searcher.FINISHED if action == "finish" else None
            trial = study.ask(self._distributions)
            spec = claim_asked(study, trial, self.target, coordination, state, self.screen)
            if spec is None:
                book.record_skip()
                continue
            book.start(trial, spec)
            self._live[trial_id] = _Live(trial, spec, Heartbeat(study, trial, coordination).start())
            return {"candidate": spec.to_dict()}
        return Searcher.FINISHED

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        """Report W at each checkpoint as the trial's intermediate value (TPE ranks stopped-early trials by it)."""
        live = self._live.get(trial_id)
        if live is not None and "failed" not in result and "w" in result:
            live.trial.report(result["w"], step=result.get("training_iteration", 0))

    def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
        """Tell the study how the trial ended: scored, failed, or stopped early by ASHA."""
        live = self._live.pop(trial_id, None)
        if live is None:  # a second notification, or a trial this searcher did not suggest
            return
        live.beat.stop()
        if result and "failed" in result:  # the candidate's own failure (diverged, out of its GPU share)
            self.book.record_failure(live.trial, live.spec, result["failed"])
        elif error or not result:  # the trial's worker died or raised outside the candidate's scoring: evaluate it again
            reason = "the Ray trial's worker was lost or raised an error (see its log under the Ray session directory)"
            self.book.record_failure(live.trial, live.spec, reason, candidate_at_fault=False)
        elif result.get("final"):
            self.book.record_score(live.trial, live.spec, result["w"], json.loads(result["attrs"]))
        else:  # stopped early by ASHA: its candidate is not proposed again, and does not count as finished
            self.book.record_stopped_early(live.trial, result.get("step"), result["w"], result.get("error"))

    def abandon(self, reason: str) -> None:
        """Tell FAIL, with `reason`, every trial Tune left without a completion (the run was stopped), so none stays RUNNING."""
        for trial_id in list(self._live):
            live = self._live.pop(trial_id)
            live.beat.stop()
            self.book.record_interrupt(live.trial, reason)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study in SQL is the search's state, and a restarted driver resumes from it."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore (see `save`)."""


def run_search_ray(
    study: optuna.Study,
    space: SearchSpace,
    ctx: Context,
    n_trials: int,
    strategy: str,
    provenance: Mapping[str, Any],
    coordination: Coordination,
    ray_settings: RaySettings,
    cache_dir: Path,
    proposals: Sequence[ArchSpec] | None = None,
    show_progress_bar: bool = False,
    table: LatencyTable | None = None,
    screen: BudgetScreen | None = None,
) -> int:
    """Evaluate candidates as Ray Tune trials until the study holds `n_trials` finished ones.

    The driver has already built `ctx` (so the task teacher is fine-tuned and cached once, in
    `cache_dir`, which every worker must see: a shared path on a multi-machine cluster).
    Ray's own output follows the "bortnas" logger: its status table at INFO, its workers' logs at DEBUG.
    `show_progress_bar`: the bookkeeper's trials bar
    in the driver, as in a local search (off by default: Tune prints its own status table).
    `table` is the study's latency table (W under both costs per trial); `screen` skips
    proposals outside the budget before they reach a worker, as a local search does.
    Returns the number of candidates scored by this call.
    """
    configure_ray_env(client=ray_settings.address is not None)
    level = logging.getLogger("bortnas").getEffectiveLevel()
    verbose = 2 if level <= logging.DEBUG else (1 if level <= logging.INFO else 0)
    target = search_target(n_trials, space, proposals)
    reference = Reference.of(space.maximum_point, ctx.shape, ctx.settings.max_length, table, ctx.settings.cost)
    checkpoints = ray_settings.checkpoints if ray_settings.asha and proposals is None else 1
    static = {
        "settings": ctx.settings.to_dict(),
        "cache_dir": str(cache_dir),
        "reference": dataclasses.asdict(reference),
        "checkpoints": checkpoints,
        "cpus": ray_settings.cpus_per_trial,
        "gpus": ray_settings.gpus_per_trial,
        "compile": ctx.device.compile,
        "latency_table": dict(table.ms) if table is not None else {},
    }
    book = TrialBookkeeper(study, target, strategy, provenance, backend="ray", show_progress_bar=show_progress_bar)
    searcher = StudySearch(study, space, target, proposals, coordination, book, screen)
    early_stop = checkpoints > 1
    scheduler = (
        ASHAScheduler(
            metric="w", mode="max", time_attr="training_iteration", max_t=ray_settings.checkpoints, grace_period=1, reduction_factor=3
        )
        if early_stop
        else FIFOScheduler()
    )
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(
            address=ray_settings.address,
            num_cpus=ray_settings.num_cpus if ray_settings.address is None else None,
            include_dashboard=False,
            logging_level=logging.WARNING,
            log_to_driver=verbose > 1,
        )
    results_dir = tempfile.mkdtemp(prefix="bortnas-ray-")
    resources = {"cpu": ray_settings.cpus_per_trial, "gpu": ray_settings.gpus_per_trial}
    try:
        with driven_heartbeats():
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(evaluate_trial, static=static), resources),
                tune_config=tune.TuneConfig(
                    search_alg=searcher,
                    scheduler=scheduler,
                    num_samples=-1,
                    reuse_actors=True,
                    trial_dirname_creator=lambda trial: trial.trial_id,
                ),
                run_config=tune.RunConfig(storage_path=results_dir, name=study.study_name, verbose=min(verbose, 1)),
            )
            tuner.fit()
    finally:
        searcher.abandon(interrupt_reason(sys.exc_info()[1]))
        book.close()
        shutil.rmtree(results_dir, ignore_errors=True)
        if started_ray:
            ray.shutdown()
    book.finish(len(read_state(study, coordination).finished))
    return searcher.scored
