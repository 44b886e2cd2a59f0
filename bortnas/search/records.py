"""Trial records: the stored attributes of a study's trials, read back as typed rows."""

from __future__ import annotations

import dataclasses
from typing import Any

import optuna

from bortnas.algo.objective import pareto_front
from bortnas.core.space import DIMENSIONS, ArchSpec


@dataclasses.dataclass(frozen=True)
class TrialRecord:
    number: int
    state: str
    spec: ArchSpec | None
    attrs: dict[str, Any]

    @property
    def scored(self) -> bool:
        return self.state == "COMPLETE" and "w" in self.attrs

    @property
    def latency_simulated(self) -> bool:
        """True when the trial's mode has no low-bit kernel, so its latencies time an fp32 simulation
        (read from the mode, so trials stored before the flag existed answer too)."""
        if self.spec is not None:
            return self.spec.quant.config.simulated
        return bool(self.attrs.get("latency_simulated", False))


def load_records(study: optuna.Study) -> list[TrialRecord]:
    records = []
    for trial in study.get_trials(deepcopy=False):
        candidate = trial.user_attrs.get("candidate") or trial.params
        spec = ArchSpec.from_dict(candidate) if set(DIMENSIONS) <= set(candidate) else None
        records.append(TrialRecord(trial.number, trial.state.name, spec, dict(trial.user_attrs)))
    return records


def p_bits(attrs: dict[str, Any]) -> float:
    """W's p of a stored trial (studies before quantization stored the parameter count only)."""
    return attrs.get("size_bits_non_embedding", 32.0 * attrs["params_non_embedding"])


def w_of(attrs: dict[str, Any], cost: str | None = None) -> float | None:
    """A trial's W: the study's objective (`cost` None), or W with i = FLOPs ("flops") or the table
    latency ("latency"); every trial stores both where its study has a latency table."""
    if cost is None:
        return attrs.get("w")
    value = attrs.get(f"w_{cost}")
    if value is None and cost == "flops" and "w_latency" not in attrs:
        return attrs.get("w")  # a study from before W was stored per cost: its W is the FLOPs one
    return value


def front_and_best(records: list[TrialRecord], cost: str | None = None) -> tuple[set[int], int | None]:
    """Trial numbers on the (p, i, e) Pareto front, and the argmax-W trial number (W of `cost`; None: the study's).

    p and i are W's analytic size in bits and FLOP-equivalents, so binarized candidates compete
    fairly: their measured latency is that of a full-precision simulation of the low-bit arithmetic.
    """
    scored = [r for r in records if r.scored]
    if not scored:
        return set(), None
    points = [(p_bits(r.attrs), r.attrs["flops"], r.attrs["error"]) for r in scored]
    front = {scored[k].number for k in pareto_front(points)}
    ranked = [r for r in scored if w_of(r.attrs, cost) is not None]
    if not ranked:
        return front, None
    best = max(ranked, key=lambda r: (w_of(r.attrs, cost) or 0.0, -r.number)).number
    return front, best
