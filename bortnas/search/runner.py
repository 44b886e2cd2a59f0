"""The trial loop: ask the sampler, skip invalid and already-finished candidates, score, tell.

Optuna layer. Counting is by distinct finished candidates, so re-running the same command
resumes a study and stops at the requested number without re-evaluating anything.
Invalid combinations (hidden not divisible by heads) and repeats of a finished candidate are
told as PRUNED with the reason in `skip_reason`; a repeat carries the stored W as its
intermediate value, so TPE still learns from it.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Callable, Mapping, Protocol, Sequence

import optuna
from tqdm.auto import tqdm

from bortnas import __version__
from bortnas.context import Context
from bortnas.errors import TrialFailed
from bortnas.scoring import Reference, score_candidate
from bortnas.search.strategies import distributions
from bortnas.space import ArchSpec, SearchSpace

_logger = logging.getLogger(__name__)


def finished_candidates(study: optuna.Study) -> dict[str, tuple[int, float]]:
    """arch_id -> (trial number, W) of every COMPLETE trial."""
    out = {}
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        arch_id = trial.user_attrs.get("arch_id")
        if arch_id is not None and trial.value is not None:
            out.setdefault(arch_id, (trial.number, trial.value))
    return out


class Scored(Protocol):
    """What an evaluator returns: the objective W and the trial attributes to store."""

    @property
    def w(self) -> float: ...

    def attrs(self) -> dict[str, Any]: ...


Evaluator = Callable[[ArchSpec], Scored]


def context_evaluator(ctx: Context, space: SearchSpace) -> tuple[Evaluator, dict[str, Any]]:
    """The real evaluator (extract, distil, score) of a context, and the provenance of its trials."""
    reference = Reference.of(space.maximum_point, ctx.shape, ctx.settings.max_length)
    provenance = {
        "teacher_hash": ctx.teacher.source_hash,
        "teacher_key": ctx.teacher.key,
        "teacher_dev_accuracy": ctx.teacher.dev_accuracy,
        "data_hash": ctx.data.fingerprint(),
        "version": __version__,
        "init": ctx.settings.init,
        "maximum_point": {**space.maximum_point.to_dict(), "params": reference.params, "flops": reference.flops},
    }

    def evaluate(spec: ArchSpec) -> Scored:
        return score_candidate(ctx, spec, reference, ctx.settings.trial_steps, ctx.settings.seed)

    return evaluate, provenance


def run_search(
    study: optuna.Study,
    space: SearchSpace,
    evaluate: Evaluator,
    n_trials: int,
    strategy: str,
    provenance: Mapping[str, Any] | None = None,
    show_progress_bar: bool = False,
    proposals: Sequence[ArchSpec] | None = None,
) -> int:
    """Evaluate candidates until the study holds `n_trials` distinct finished ones (or the space is exhausted).

    `evaluate` scores one candidate (raising `TrialFailed` on divergence); `provenance` is stored
    on every evaluated trial. With `proposals` (the FPTAS plan, the grid order), the first
    `n_trials` of those candidates are evaluated, in order, instead of asking the sampler; each
    is enqueued so the trial carries it as its parameters.

    Returns:
        The number of candidates scored by this call.
    """
    provenance = {**(provenance or {}), "strategy": strategy}
    dists = distributions(space)
    target = min(n_trials, len(space) if proposals is None else len(proposals))
    if target < n_trials:
        _logger.warning("there are only %d candidates to evaluate; stopping at %d instead of %d", target, target, n_trials)
    finished = finished_candidates(study)
    queue = [spec for spec in proposals or () if spec.arch_id not in finished]
    max_skips = 20 * max(target, 10)
    skips = failures = scored = 0
    bar = tqdm(total=target, initial=min(len(finished), target), desc="trials", disable=not show_progress_bar, file=sys.stderr)
    try:
        while len(finished) < target and skips < max_skips and failures < max(3, target):
            if proposals is not None:
                if not queue:
                    break
                spec = queue.pop(0)
                study.enqueue_trial({**spec.to_dict(), "quant": spec.quant.value})
            trial = study.ask(dists)
            spec = ArchSpec.from_dict(trial.params)
            if not spec.is_valid:
                trial.set_user_attr("skip_reason", f"hidden {spec.hidden} is not divisible by heads {spec.heads}")
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                skips += 1
                continue
            if spec.arch_id in finished:
                number, value = finished[spec.arch_id]
                trial.set_user_attr("skip_reason", f"duplicate of trial {number}")
                trial.report(value, step=0)
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                skips += 1
                continue
            for key, value in provenance.items():
                trial.set_user_attr(key, value)
            trial.set_user_attr("candidate", spec.to_dict())
            trial.set_user_attr("arch_id", spec.arch_id)
            try:
                score = evaluate(spec)
            except (TrialFailed, RuntimeError) as e:
                _logger.warning("trial %d (%s) failed: %s", trial.number, spec.key, e)
                trial.set_user_attr("fail_reason", str(e))
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                failures += 1
                continue
            except KeyboardInterrupt:
                trial.set_user_attr("fail_reason", "interrupted by the user")
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                raise
            for key, value in score.attrs().items():
                trial.set_user_attr(key, value)
            study.tell(trial, score.w)
            finished[spec.arch_id] = (trial.number, score.w)
            scored += 1
            _logger.info("trial %d %s: W %.3f, dev error %.4f", trial.number, spec.key, score.w, score.attrs().get("error", float("nan")))
            bar.update(1)
            bar.set_postfix(best_W=f"{max(v for _, v in finished.values()):.3f}", refresh=False)
    finally:
        bar.close()
    if len(finished) < target:
        _logger.warning("stopped with %d of %d candidates finished (%d failures, %d skipped proposals)", len(finished), target, failures, skips)
    return scored
