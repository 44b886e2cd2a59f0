"""Scoring one candidate (one trial): the student recipe for n steps, its metrics, and W.

Torch layer; the trial's numbers come back as a plain frozen record that the search layer stores.
`context_evaluator` binds a context into the evaluator the search loops call.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bortnas import __version__
from bortnas.algo.objective import w_coefficient
from bortnas.core.space import ArchSpec, SearchSpace, TeacherShape
from bortnas.cost.bits import price
from bortnas.train.loop import evaluate
from bortnas.trial.context import Context
from bortnas.trial.metrics import ModelMetrics, measure
from bortnas.trial.recipe import distil_student

if TYPE_CHECKING:
    from transformers import PreTrainedModel


@dataclasses.dataclass(frozen=True)
class Reference:
    """p (bits) and i (FLOP-equivalents) of the maximum point T, the normalisers of W."""

    params: float
    flops: float

    @classmethod
    def of(cls, spec: ArchSpec, shape: TeacherShape, seq_len: int) -> Reference:
        top = price(spec, shape, seq_len)
        return cls(top.p, top.i)


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """One trial's result: the student's metrics (`trial.metrics.measure`), its W and how it was trained."""

    spec: ArchSpec
    metrics: ModelMetrics
    w: float
    steps: int
    seed: int
    seconds: float

    @property
    def error(self) -> float:
        return self.metrics.error

    def attrs(self) -> dict[str, Any]:
        """The trial attributes (JSON values) this score is stored as; trials never read the test split."""
        out = {k: v for k, v in self.metrics.to_dict().items() if k != "test_accuracy"}
        out.update(error=self.error, w=self.w, steps=self.steps, seed=self.seed, seconds=self.seconds)
        out.update(candidate=self.spec.to_dict(), arch_id=self.spec.arch_id, key=self.spec.key)
        return out


def score_candidate(
    ctx: Context,
    spec: ArchSpec,
    reference: Reference,
    steps: int,
    seed: int,
    on_checkpoint: Callable[[int, float, float], None] | None = None,
    checkpoints: int = 1,
) -> CandidateScore:
    """Train `spec` cut from the task teacher for `steps` distillation steps and score it.

    With `on_checkpoint`, the student is also scored on dev at `checkpoints - 1` evenly spaced
    steps before the end, and `on_checkpoint(step, W, error)` is called with W at that point:
    what an early-stopping scheduler (ASHA) compares. It may raise to stop the trial.

    Raises:
        TrialFailed: training diverged or evaluation was not finite.
    """
    started = time.perf_counter()
    cost = price(spec, ctx.shape, ctx.settings.max_length)
    hook = None
    if on_checkpoint is not None and checkpoints > 1:

        def hook(student: PreTrainedModel, step: int, total: int) -> None:
            if step < total and step * checkpoints // total != (step - 1) * checkpoints // total:
                error = evaluate(student, ctx.dev, device=ctx.device).error
                student.train()
                on_checkpoint(step, w_coefficient(cost.p, cost.i, error, reference.params, reference.flops), error)

    student, _, _ = distil_student(ctx, spec, steps, seed, on_step=hook)
    m = measure(student, spec, ctx)
    w = w_coefficient(m.size_bits_non_embedding, m.flops, m.error, reference.params, reference.flops)
    return CandidateScore(spec, m, w, steps, seed, time.perf_counter() - started)


def provenance(ctx: Context, space: SearchSpace) -> dict[str, Any]:
    """What every trial of a search on `ctx` records about where it came from."""
    reference = Reference.of(space.maximum_point, ctx.shape, ctx.settings.max_length)
    return {
        "teacher_hash": ctx.teacher.source_hash,
        "teacher_key": ctx.teacher.key,
        "teacher_dev_accuracy": ctx.teacher.dev_accuracy,
        "data_hash": ctx.data.fingerprint(),
        "version": __version__,
        "init": ctx.settings.init,
        "maximum_point": {**space.maximum_point.to_dict(), "params": reference.params, "flops": reference.flops},
    }


def context_evaluator(ctx: Context, space: SearchSpace) -> tuple[Callable[[ArchSpec], CandidateScore], dict[str, Any]]:
    """The real evaluator (the recipe for the settings' trial steps, then scoring) of a context, and the provenance of its trials."""
    reference = Reference.of(space.maximum_point, ctx.shape, ctx.settings.max_length)

    def evaluate_candidate(spec: ArchSpec) -> CandidateScore:
        return score_candidate(ctx, spec, reference, ctx.settings.trial_steps, ctx.settings.seed)

    return evaluate_candidate, provenance(ctx, space)
