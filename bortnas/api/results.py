"""What the API returns: one trial as a row, and the outcome of a search.

API layer, torch-free. An export returns `bortnas.export.writer.ExportReport`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bortnas.core.storage_url import redact

__all__ = ["SearchResult", "TrialSummary"]


@dataclasses.dataclass(frozen=True)
class TrialSummary:
    """One trial of a study, as `bortnas trials` prints it.

    Attributes:
        number: the Optuna trial number.
        state: COMPLETE, PRUNED (a skipped proposal or an early stop), FAIL or RUNNING.
        candidate: the candidate's key, e.g. "L2-H288-A12-I384-fp32" (None without one).
        w: W under `cost`: (1 - p/p_T)(1 - i/i_T) / error (None until scored).
        error: dev error after the trial's distillation steps.
        dev_score: the task's headline metric on dev after the trial's distillation steps (`metric`).
        params_non_embedding: non-embedding parameters.
        size_mib: stored size in MiB.
        flops: FLOP-equivalents per sequence at the study's sequence length.
        latency_ms: the trained model's batch-1 latency.
        latency_table_ms: the study's latency table value for the candidate (random weights, before training).
        latency_simulated: the mode has no low-bit kernel; its latencies time fp32 arithmetic.
        cost: W's inference term, "flops" or "latency".
        pareto: on the (bits, FLOPs, error) Pareto front.
        best: the argmax-W trial under `cost`.
        in_budget: inside the budgets asked for (None when none were).
        note: why the trial failed or was skipped.
    """

    number: int
    state: str
    candidate: str | None
    w: float | None
    error: float | None
    dev_score: float | None
    params_non_embedding: int | None
    size_mib: float | None
    flops: float | None
    latency_ms: float | None
    latency_table_ms: float | None
    latency_simulated: bool
    cost: str
    pareto: bool
    best: bool
    in_budget: bool | None
    note: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """The outcome of `bortnas.search`.

    Attributes:
        study: the study's name (pass it to `bortnas.export` and `bortnas.trials`).
        storage: the storage URL the study lives in (its password, if any, is left out of `repr` and `to_dict`).
        best: the chosen trial: the FPTAS's answer, else the argmax-W trial.
        teacher_dev_score: the task teacher's dev score under `metric`, the reference of every trial.
        task: the study's task (`bortnas.core.tasks.TASKS`).
        metric: the task's headline metric (accuracy, pearson, micro_f1, entity_f1, cosine_spearman).
        space_size: candidates in the search space.
        strategy: the strategy's name.
        fptas: the FPTAS's plan and guarantee (epsilon, steps, buckets, representatives, guarantee);
            None for other strategies.
        frontier: the finished trials no other beats on both speed and dev score, fastest first
            (`bortnas.api.search.frontier`): what to pick from when W's trade is not the one wanted.
        teacher_latency_ms: the teacher's latency in the study's table (speed-ups are against it); None without a table.
        trial_steps: the distillation steps every trial ran; an export trains longer, so its score is higher.
    """

    study: str
    storage: str = dataclasses.field(repr=False)
    best: TrialSummary
    teacher_dev_score: float
    space_size: int
    strategy: str
    fptas: dict[str, Any] | None = None
    task: str = "classification"
    metric: str = "accuracy"
    frontier: tuple[TrialSummary, ...] = ()
    teacher_latency_ms: float | None = None
    trial_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "study": self.study,
            "storage": redact(self.storage),
            "best_trial": self.best.number,
            "candidate": self.best.candidate,
            "W": self.best.w,
            "task": self.task,
            "metric": self.metric,
            "dev_score": self.best.dev_score,
            "teacher_dev_score": self.teacher_dev_score,
            "strategy": self.strategy,
            "fptas": self.fptas,
            "frontier": [t.to_dict() for t in self.frontier],
            "teacher_latency_ms": self.teacher_latency_ms,
        }
