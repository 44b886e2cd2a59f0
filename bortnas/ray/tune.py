"""Ray Tune backend: the same candidates, scores and study as a local search, on a Ray cluster.

Ray layer (optional extra `bortnas[ray]`; Ray is imported only here). Ray Tune's `OptunaSearch`
asks and tells the trials of the bortnas study in the driver, on the same `RDBStorage`; this
module's subclass adds what a local search does around each trial (skip invalid and taken
candidates, claim, heartbeats, store the score's attributes) through `bortnas.search.claims`,
so local workers, Ray workers and restarted drivers can share one study. Every Ray trial runs
`score_candidate` in a reused actor that builds the task context once per process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Any, Mapping, Sequence

import optuna

from bortnas.core.settings import RaySettings, RunSettings
from bortnas.trial.context import Context, build_context
from bortnas.runtime.device import Device, limit_memory_fraction
from bortnas.core.errors import TrialFailed
from bortnas.ray.cluster import configure_ray_env, require_ray
from bortnas.trial.scoring import Reference, score_candidate
from bortnas.search.claims import Coordination, Heartbeat, claim_asked, next_action
from bortnas.search.strategies import distributions
from bortnas.core.space import ArchSpec, SearchSpace

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
    import torch
    from ray import tune

    torch.set_num_threads(max(1, int(static["cpus"])))
    ctx = _context(static["settings"], static["cache_dir"], worker_device(static["gpus"], static["compile"]))
    spec = ArchSpec.from_dict(config["candidate"])

    def report(step: int, w: float, error: float) -> None:
        tune.report({"w": w, "error": error, "step": step})

    try:
        score = score_candidate(ctx, spec, Reference(**static["reference"]), ctx.settings.trial_steps, ctx.settings.seed,
                                on_checkpoint=report, checkpoints=static["checkpoints"])
    except TrialFailed as e:
        tune.report({"w": 0.0, "failed": str(e)})
        return
    except torch.OutOfMemoryError as e:  # the candidate outgrew this trial's GPU share; the actor lives on for the next one
        torch.cuda.empty_cache()
        tune.report({"w": 0.0, "failed": f"out of GPU memory within a share of {static['gpus']:g} GPU: {str(e).splitlines()[0]}"})
        return
    # JSON, because Tune flattens nested result dicts
    tune.report({"w": score.w, "error": score.error, "step": score.steps, "final": True, "attrs": json.dumps(score.attrs())})


def _study_search_class() -> type:
    from ray.tune.search import Searcher
    from ray.tune.search.optuna import OptunaSearch

    class StudySearch(OptunaSearch):  # type: ignore[misc]
        """OptunaSearch on the bortnas study, with the claims, heartbeats and attributes of a local search."""

        def __init__(self, study: optuna.Study, storage: optuna.storages.RDBStorage, space: SearchSpace, target: int,
                     proposals: Sequence[ArchSpec] | None, coordination: Coordination, provenance: Mapping[str, Any]) -> None:
            super().__init__(space=distributions(space), metric="w", mode="max", sampler=study.sampler,
                             study_name=study.study_name, storage=storage)
            self._target, self._proposals, self._coordination = target, proposals, coordination
            self._provenance = dict(provenance)
            self._beats: dict[str, Heartbeat] = {}
            self._skips, self._max_skips = 0, 20 * max(target, 10)
            self._failed: set[str] = set()  # as in a local search: a failed candidate is not retried by this run
            self.scored = 0

        def suggest(self, trial_id: str) -> dict[str, Any] | str | None:
            study, coordination = self._ot_study, self._coordination
            while self._skips < self._max_skips and len(self._failed) < max(3, self._target):
                action, state = next_action(study, coordination, self._target, self._proposals, self._failed)
                if action != "ask":
                    return Searcher.FINISHED if action == "finish" else None  # None: Tune asks again when a trial ends
                super().suggest(trial_id)
                trial = self._ot_trials[trial_id]
                spec = claim_asked(study, trial, self._target, coordination, state)
                if spec is not None:
                    for key, value in {**self._provenance, "candidate": spec.to_dict()}.items():
                        trial.set_user_attr(key, value)
                    self._beats[trial_id] = Heartbeat(study, trial, coordination).start()
                    return {"candidate": spec.to_dict()}
                del self._ot_trials[trial_id]
                self._skips += 1
            _logger.warning("stopping: %d proposals were invalid or taken candidates, %d candidates failed", self._skips, len(self._failed))
            return Searcher.FINISHED

        def save(self, checkpoint_path: str) -> None:
            """Nothing to save: the study in SQL is the search's state, and a restarted driver resumes from it."""

        def restore(self, checkpoint_path: str) -> None:
            """Nothing to restore (see `save`)."""

        def on_trial_complete(self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False) -> None:
            beat = self._beats.pop(trial_id, None)
            if beat is not None:
                beat.stop()
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            study, trial = self._ot_study, self._ot_trials[trial_id]
            if error or not result or "failed" in result:
                reason = (result or {}).get("failed") or "the Ray trial raised an error (see its log under the Ray session directory)"
                _logger.warning("trial %d failed: %s", trial.number, reason)
                trial.set_user_attr("fail_reason", reason)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                self._failed.add(trial.user_attrs["arch_id"])
            elif result.get("final"):
                attrs = json.loads(result["attrs"])
                for key, value in attrs.items():
                    trial.set_user_attr(key, value)
                study.tell(trial, result["w"])
                self.scored += 1
                _logger.info("trial %d %s: W %.3f, dev error %.4f", trial.number, attrs["key"], result["w"], result["error"])
            else:  # stopped early by ASHA: its candidate is not proposed again, and does not count as finished
                trial.set_user_attr("stopped_early_at", result.get("step"))
                trial.set_user_attr("w_at_stop", result["w"])
                trial.set_user_attr("error_at_stop", result.get("error"))
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            self._completed_trials.add(trial_id)

    return StudySearch


def run_search_ray(
    study: optuna.Study,
    storage: optuna.storages.RDBStorage,
    space: SearchSpace,
    ctx: Context,
    n_trials: int,
    strategy: str,
    provenance: Mapping[str, Any],
    coordination: Coordination,
    ray_settings: RaySettings,
    cache_dir: Path,
    proposals: Sequence[ArchSpec] | None = None,
    verbose: int = 1,
) -> int:
    """Evaluate candidates as Ray Tune trials until the study holds `n_trials` finished ones.

    The driver has already built `ctx` (so the task teacher is fine-tuned and cached once, in
    `cache_dir`, which every worker must see: a shared path on a multi-machine cluster). Returns the number of candidates scored by this call.

    Raises:
        MissingDependencyError: Ray Tune is not installed.
    """
    require_ray("--backend ray")
    configure_ray_env(client=ray_settings.address is not None)
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, FIFOScheduler

    target = min(n_trials, len(space) if proposals is None else len(proposals))
    reference = Reference.of(space.maximum_point, ctx.shape, ctx.settings.max_length)
    static = {
        "settings": ctx.settings.to_dict(),
        "cache_dir": str(cache_dir),
        "reference": dataclasses.asdict(reference),
        "checkpoints": ray_settings.checkpoints if ray_settings.asha and proposals is None else 1,
        "cpus": ray_settings.cpus_per_trial,
        "gpus": ray_settings.gpus_per_trial,
        "compile": ctx.device.compile,
    }
    searcher = _study_search_class()(study, storage, space, target, proposals, coordination,
                                     {**provenance, "strategy": strategy, "backend": "ray"})
    early_stop = static["checkpoints"] > 1
    scheduler = (ASHAScheduler(metric="w", mode="max", time_attr="training_iteration", max_t=ray_settings.checkpoints,
                               grace_period=1, reduction_factor=3) if early_stop else FIFOScheduler())
    started_ray = not ray.is_initialized()
    if started_ray:
        ray.init(address=ray_settings.address, num_cpus=ray_settings.num_cpus if ray_settings.address is None else None,
                 include_dashboard=False, logging_level=logging.WARNING, log_to_driver=verbose > 1)
    results_dir = tempfile.mkdtemp(prefix="bortnas-ray-")
    resources = {"cpu": ray_settings.cpus_per_trial, "gpu": ray_settings.gpus_per_trial}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "Heartbeat of storage is supposed to be used with Study.optimize")
            tuner = tune.Tuner(
                tune.with_resources(tune.with_parameters(evaluate_trial, static=static), resources),
                tune_config=tune.TuneConfig(search_alg=searcher, scheduler=scheduler, num_samples=-1, reuse_actors=True,
                                            trial_dirname_creator=lambda trial: trial.trial_id),
                run_config=tune.RunConfig(storage_path=results_dir, name=study.study_name, verbose=min(verbose, 1)),
            )
            tuner.fit()
    finally:
        shutil.rmtree(results_dir, ignore_errors=True)
        if started_ray:
            ray.shutdown()
    return int(searcher.scored)
