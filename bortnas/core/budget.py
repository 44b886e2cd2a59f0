"""What a user must ship under (a budget), what a candidate costs against it, and the latency table.

Pure layer: no torch, no I/O. A budget bounds batch-1 latency (measured: the study's latency
table), stored size, total parameters and FLOP-equivalents (analytic). The search trains only
candidates inside it, and `export` picks among finished trials by it. Values come from the
command line as text, so parsing and checking them is here too: one line naming the flag on
bad input.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from bortnas.core.errors import ParameterError

__all__ = ["BUDGET_FIELDS", "Budget", "CandidateCost", "LatencyTable", "parse_limit"]

# field -> (unit shown in messages, example value)
BUDGET_FIELDS: dict[str, tuple[str, str]] = {
    "max_latency_ms": ("ms", "5"),
    "max_size_mib": ("MiB", "20"),
    "max_params": ("parameters", "5e6"),
    "max_flops": ("FLOPs", "2e8"),
    "min_speedup": ("x", "8"),
}
_NAMES = {"max_latency_ms": "latency", "max_size_mib": "size", "max_params": "parameters", "max_flops": "FLOPs"}


def parse_limit(field: str, value: str | float | None) -> float | None:
    """`value` of the budget field `field` as a positive finite number (None stays None).

    Raises:
        ParameterError: not a number, not finite, or not positive.
    """
    if value is None:
        return None
    example = BUDGET_FIELDS[field][1]
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ParameterError(field, f"={value!r} is not a number: give a positive number such as {example}.") from None
    if not (math.isfinite(number) and number > 0):
        raise ParameterError(field, f"={value!r} must be a positive finite number such as {example}.")
    return number


@dataclasses.dataclass(frozen=True)
class CandidateCost:
    """A candidate's cost in every budgeted unit: total parameters, stored MiB, FLOP-equivalents at the
    study's sequence length (analytic) and batch-1 latency from the latency table (None: not measured)."""

    params: int
    size_mib: float
    flops: float
    latency_ms: float | None

    def value(self, field: str) -> float | None:
        return {"max_latency_ms": self.latency_ms, "max_size_mib": self.size_mib, "max_params": self.params, "max_flops": self.flops}[field]


def _show(field: str, value: float) -> str:
    unit = BUDGET_FIELDS[field][0]
    if field in ("max_latency_ms", "max_size_mib"):
        return f"{value:.2f} {unit}" if value >= 0.01 else f"{value:.2g} {unit}"
    return f"{value:,.0f} {unit}" if value < 1e6 else f"{value:.3g} {unit}"


@dataclasses.dataclass(frozen=True)
class Budget:
    """Upper bounds a model must meet; None leaves a dimension free. Latency is batch 1 at the
    study's sequence length, on the device and threads its trials measure with.

    Raises:
        ParameterError: a bound that is not a positive finite number.
    """

    max_latency_ms: float | None = None
    max_size_mib: float | None = None
    max_params: float | None = None
    max_flops: float | None = None
    # batch-1 latency at most the teacher's / min_speedup, both from the same latency table (`against`)
    min_speedup: float | None = None

    def __post_init__(self) -> None:
        # numbers given as text (the command line's) are parsed here, once, for every caller
        for field in BUDGET_FIELDS:
            object.__setattr__(self, field, parse_limit(field, getattr(self, field)))

    @classmethod
    def parse(cls, **values: str | float | None) -> Budget:
        """A budget from text as the command line gives it (`max_latency_ms="5"`); see the class for errors."""
        unknown = set(values) - set(BUDGET_FIELDS)
        if unknown:
            raise TypeError(f"unknown budget fields {sorted(unknown)}")
        return cls(**{f: parse_limit(f, v) for f, v in values.items()})

    def given(self) -> dict[str, float]:
        """The upper bounds that are set, by field name (a speed-up counts once resolved by `against`)."""
        return {f: v for f in BUDGET_FIELDS if f != "min_speedup" and (v := getattr(self, f)) is not None}

    def against(self, teacher_ms: float) -> Budget:
        """This budget with `min_speedup` turned into the latency bound it means: teacher_ms / min_speedup
        (the tighter of that and `max_latency_ms`). Stating a speed-up compares the candidates with the
        teacher timed in the same table, so machine noise between runs cancels."""
        if self.min_speedup is None:
            return self
        bound = teacher_ms / self.min_speedup
        latency = bound if self.max_latency_ms is None else min(self.max_latency_ms, bound)
        return dataclasses.replace(self, max_latency_ms=latency, min_speedup=None)

    def __bool__(self) -> bool:
        return bool(self.given()) or self.min_speedup is not None

    @property
    def needs_latency(self) -> bool:
        return self.max_latency_ms is not None or self.min_speedup is not None

    def describe(self) -> str:
        """E.g. "latency <= 3.00 ms, size <= 20.00 MiB"; "no budget" when none is set."""
        parts = [f"{_NAMES[f]} <= {_show(f, v)}" for f, v in self.given().items()]
        if self.min_speedup is not None:
            parts.append(f"at least {self.min_speedup:g}x faster than the teacher")
        return ", ".join(parts) or "no budget"

    def excess(self, cost: CandidateCost) -> dict[str, float]:
        """By how much (as a fraction of the bound) `cost` exceeds each bound it breaks; empty: inside.
        A latency bound with no measured latency counts as broken by an infinite amount."""
        out = {}
        for field, limit in self.given().items():
            value = cost.value(field)
            ratio = math.inf if value is None else value / limit - 1.0
            if ratio > 0:
                out[field] = ratio
        return out

    def violation(self, cost: CandidateCost) -> str | None:
        """A one-line reason `cost` is outside the budget, or None when it is inside."""
        broken = self.excess(cost)
        if not broken:
            return None
        parts = []
        for field in broken:
            value = cost.value(field)
            shown = "not measured" if value is None else _show(field, value)
            parts.append(f"{_NAMES[field]} {shown} > {_show(field, self.given()[field])} ({field})")
        return "outside the budget: " + ", ".join(parts)

    def constraints(self, cost: CandidateCost) -> list[float]:
        """Optuna's constraint values of `cost`, one per bound (value / bound - 1; <= 0 is feasible)."""
        return [math.inf if (v := cost.value(field)) is None else v / limit - 1.0 for field, limit in self.given().items()]

    def worst_excess(self, cost: CandidateCost) -> float:
        """The largest relative excess over the set bounds (<= 0 inside); ranks how close an outsider is."""
        values = self.constraints(cost)
        return max(values) if values else 0.0

    def cost_summary(self, cost: CandidateCost) -> str:
        """`cost` in the budget's own units, e.g. "latency 2.10 ms, size 25.40 MiB"."""
        return ", ".join(f"{_NAMES[f]} {'not measured' if cost.value(f) is None else _show(f, cost.value(f) or 0.0)}" for f in self.given())


@dataclasses.dataclass(frozen=True)
class LatencyTable:
    """Batch-1 latency of every candidate of a space, measured with random weights before any training.

    Stored with the study (attribute "latency_table") and reused on resume, export, `trials` and the
    dashboard. `maximum_point_ms` is the maximum point T's latency, W's normaliser when W's inference
    term is latency (`--cost latency`); `teacher_ms` the teacher's shape, for budgets stated as speed-ups.
    """

    ms: Mapping[str, float]  # candidate key (ArchSpec.key) -> median latency in ms
    maximum_point_ms: float
    teacher_ms: float
    device: str
    threads: int
    seq_len: int
    repeats: int
    seconds: float  # wall time the measurement took
    batch_size: int = 1
    backend: str = "torch"  # where it was timed: PyTorch eager or onnxruntime (`RunSettings.latency_backend`)

    def latency(self, key: str) -> float | None:
        return self.ms.get(key)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["ms"] = dict(self.ms)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyTable:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
