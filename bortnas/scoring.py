"""Scoring one candidate (one trial): extract, distil n steps, dev error, costs, latency, W.

Torch layer; the trial's numbers come back as a plain frozen record that the search layer stores.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from bortnas.algo.objective import w_coefficient
from bortnas.context import Context
from bortnas.cost import flops, param_count
from bortnas.extract import extract
from bortnas.latency import measure_latency
from bortnas.space import ArchSpec, TeacherShape
from bortnas.train import evaluate, train


@dataclasses.dataclass(frozen=True)
class Reference:
    """p and i of the maximum point T, the normalisers of W."""

    params: int
    flops: int

    @classmethod
    def of(cls, spec: ArchSpec, shape: TeacherShape, seq_len: int) -> Reference:
        return cls(param_count(spec, shape).non_embedding, flops(spec, shape, seq_len).total)


@dataclasses.dataclass(frozen=True)
class CandidateScore:
    spec: ArchSpec
    params_total: int
    params_non_embedding: int
    flops: int
    latency_ms: float
    dev_accuracy: float
    error: float
    w: float
    steps: int
    seed: int
    seconds: float

    def attrs(self) -> dict[str, Any]:
        """The trial attributes (JSON values) this score is stored as."""
        out = dataclasses.asdict(self)
        out["candidate"] = self.spec.to_dict()
        out["arch_id"] = self.spec.arch_id
        out["key"] = self.spec.key
        del out["spec"]
        return out


def score_candidate(ctx: Context, spec: ArchSpec, reference: Reference, steps: int, seed: int) -> CandidateScore:
    """Train `spec` cut from the task teacher for `steps` distillation steps and score it.

    Raises:
        TrialFailed: training diverged or evaluation was not finite.
    """
    started = time.perf_counter()
    student, extraction = extract(ctx.teacher.model, ctx.teacher.importance, spec, init=ctx.settings.init)
    train(student, ctx.train, ctx.settings.student_train_config(steps, seed), teacher=ctx.teacher.model, extraction=extraction)
    result = evaluate(student, ctx.dev)
    seq_len = ctx.settings.max_length
    params = param_count(spec, ctx.shape)
    cost = flops(spec, ctx.shape, seq_len).total
    latency = measure_latency(student, seq_len, threads=ctx.settings.latency_threads)
    return CandidateScore(
        spec=spec,
        params_total=params.total,
        params_non_embedding=params.non_embedding,
        flops=cost,
        latency_ms=latency.median_ms,
        dev_accuracy=result.accuracy,
        error=result.error,
        w=w_coefficient(params.non_embedding, cost, result.error, reference.params, reference.flops),
        steps=steps,
        seed=seed,
        seconds=time.perf_counter() - started,
    )
