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
from bortnas.core.budget import LatencyTable
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
    """The normalisers of W: p (bits), i (FLOP-equivalents) and, with a latency table, the
    table latency of the maximum point T; `cost` names W's inference term ("flops" or "latency")."""

    params: float
    flops: float
    latency_ms: float | None = None
    cost: str = "flops"

    @classmethod
    def of(cls, spec: ArchSpec, shape: TeacherShape, seq_len: int, table: LatencyTable | None = None, cost: str = "flops") -> Reference:
        top = price(spec, shape, seq_len)
        return cls(top.p, top.i, table.maximum_point_ms if table is not None else None, cost)

    def both_w(self, p: float, flops: float, latency_ms: float | None, error: float) -> dict[str, float]:
        """W with i = FLOPs ("w_flops") and, where latencies are known, with i = table latency ("w_latency")."""
        out = {"w_flops": w_coefficient(p, flops, error, self.params, self.flops)}
        if latency_ms is not None and self.latency_ms is not None:
            out["w_latency"] = w_coefficient(p, latency_ms, error, self.params, self.latency_ms)
        return out

    def w(self, p: float, flops: float, latency_ms: float | None, error: float) -> float:
        """W under the study's cost: the FLOPs one, or the latency one.

        Raises:
            ValueError: cost "latency" without a table latency for the candidate or T.
        """
        both = self.both_w(p, flops, latency_ms, error)
        if self.cost == "latency":
            if "w_latency" not in both:
                raise ValueError("W with cost 'latency' needs the latency table's value of the candidate and of T")
            return both["w_latency"]
        return both["w_flops"]


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    """One trial's result: the student's metrics (`trial.metrics.measure`), its W and how it was trained."""

    spec: ArchSpec
    metrics: ModelMetrics
    w: float
    steps: int
    seed: int
    seconds: float
    w_by_cost: dict[str, float] = dataclasses.field(default_factory=dict)  # "w_flops", "w_latency"
    latency_table_ms: float | None = None  # the candidate's latency in the study's table (random weights)

    @property
    def error(self) -> float:
        return self.metrics.error

    def attrs(self) -> dict[str, Any]:
        """The trial attributes (JSON values) this score is stored as; trials never read the test split."""
        out = {k: v for k, v in self.metrics.to_dict().items() if k not in ("test_score", "test_metrics")}
        out.update(error=self.error, w=self.w, steps=self.steps, seed=self.seed, seconds=self.seconds, **self.w_by_cost)
        if self.latency_table_ms is not None:
            out["latency_table_ms"] = self.latency_table_ms
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
    latency_table_ms: float | None = None,
) -> CandidateScore:
    """Train `spec` cut from the task teacher for `steps` distillation steps and score it.

    With `on_checkpoint`, the student is also scored on dev at `checkpoints - 1` evenly spaced
    steps before the end, and `on_checkpoint(step, W, error)` is called with W at that point:
    what an early-stopping scheduler (ASHA) compares. It may raise to stop the trial.
    `latency_table_ms` is the candidate's latency in the study's table: W's i when the
    reference's cost is "latency".

    Raises:
        TrialFailed: training diverged or evaluation was not finite.
    """
    started = time.perf_counter()
    cost = price(spec, ctx.shape, ctx.settings.max_length)
    hook = None
    if on_checkpoint is not None and checkpoints > 1:

        def hook(student: PreTrainedModel, step: int, total: int) -> None:
            if step < total and step * checkpoints // total != (step - 1) * checkpoints // total:
                error = evaluate(student, ctx.dev, device=ctx.device, objective=ctx.objective).error
                student.train()
                on_checkpoint(step, reference.w(cost.p, cost.i, latency_table_ms, error), error)

    student, _, _ = distil_student(ctx, spec, steps, seed, on_step=hook)
    m = measure(student, spec, ctx)
    w = reference.w(m.size_bits_non_embedding, m.flops, latency_table_ms, m.error)
    both = reference.both_w(m.size_bits_non_embedding, m.flops, latency_table_ms, m.error)
    return CandidateScore(spec, m, w, steps, seed, time.perf_counter() - started, both, latency_table_ms)


def provenance(ctx: Context, space: SearchSpace, table: LatencyTable | None = None) -> dict[str, Any]:
    """What every trial of a search on `ctx` records about where it came from."""
    reference = Reference.of(space.maximum_point, ctx.shape, ctx.settings.max_length, table, ctx.settings.cost)
    return {
        "teacher_hash": ctx.teacher.source_hash,
        "teacher_key": ctx.teacher.key,
        "teacher_dev_score": ctx.teacher.dev_score,
        "task": ctx.task.name,
        "metric": ctx.task.metric,
        "data_hash": ctx.data.fingerprint(),
        "version": __version__,
        "init": ctx.settings.init,
        "maximum_point": {
            **space.maximum_point.to_dict(),
            "params": reference.params,
            "flops": reference.flops,
            "latency_ms": reference.latency_ms,
        },
        "cost": reference.cost,
    }


def context_evaluator(
    ctx: Context, space: SearchSpace, table: LatencyTable | None = None
) -> tuple[Callable[[ArchSpec], CandidateScore], dict[str, Any]]:
    """The real evaluator (the recipe for the settings' trial steps, then scoring) of a context, and the provenance of its trials.

    `table` is the study's latency table: each trial stores its candidate's table latency and W
    under both costs, and W's i is that latency when the settings' cost is "latency".
    """
    reference = Reference.of(space.maximum_point, ctx.shape, ctx.settings.max_length, table, ctx.settings.cost)

    def evaluate_candidate(spec: ArchSpec) -> CandidateScore:
        latency = table.latency(spec.key) if table is not None else None
        return score_candidate(ctx, spec, reference, ctx.settings.trial_steps, ctx.settings.seed, latency_table_ms=latency)

    return evaluate_candidate, provenance(ctx, space, table)
