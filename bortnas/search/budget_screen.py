"""Which candidates a budget lets the search train, and how Optuna's samplers learn the constraint.

Search layer, torch-free. A candidate's cost is analytic (parameters, MiB, FLOP-equivalents) plus
its latency from the study's latency table. FPTAS plans over the feasible set and grid walks it;
the samplers propose over the whole space, so a proposal outside the budget is skipped (PRUNED,
with the reason) before any training, and every proposal carries its constraint values
(`optuna.Trial.set_constraint`), from which TPE and NSGA-II learn where the feasible region is.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from bortnas.core.budget import Budget, CandidateCost, LatencyTable
from bortnas.core.errors import InfeasibleBudgetError, UserInputError
from bortnas.core.space import ArchSpec, QuantMode, TeacherShape
from bortnas.cost import param_count
from bortnas.cost.bits import price, size_bits

__all__ = ["BudgetScreen", "candidate_cost", "refuse_simulated_latency"]


def refuse_simulated_latency(modes: Iterable[QuantMode], budget: Budget, cost: str | None, source: str) -> None:
    """Refuse latency budgets and W's latency cost over modes whose latency is simulated.

    A mode with no low-bit kernel (`QuantConfig.simulated`: the binary ones) runs its arithmetic
    in fp32, so its measured latency says nothing about a deployment, and comparing it with a
    bound or putting it into W would rank candidates by an artefact.

    Raises:
        UserInputError: `budget.max_latency_ms`, `budget.min_speedup` or `cost="latency"` with such a
            mode in `source`.
    """
    used = [
        f"{name}={value:g}" for name, value in (("max_latency_ms", budget.max_latency_ms), ("min_speedup", budget.min_speedup)) if value
    ]
    if cost == "latency":
        used.append("cost='latency'")
    simulated = sorted({m.value for m in modes if m.config.simulated})
    if used and simulated:
        raise UserInputError(
            f"{' and '.join(used)} compare measured latencies, but {source} holds {', '.join(simulated)}, which "
            "no low-bit kernel runs: their latency times an fp32 simulation; leave those modes out, or bound "
            "max_size_mib / max_flops instead."
        )


def candidate_cost(spec: ArchSpec, shape: TeacherShape, seq_len: int, table: LatencyTable | None) -> CandidateCost:
    """`spec`'s cost in every budgeted unit (latency None when the table lacks it)."""
    return CandidateCost(
        params=param_count(spec, shape).total,
        size_mib=size_bits(spec, shape).mib,
        flops=price(spec, shape, seq_len).i,
        latency_ms=table.latency(spec.key) if table is not None else None,
    )


@dataclasses.dataclass(frozen=True)
class BudgetScreen:
    """A budget bound to a teacher shape, a sequence length and a latency table: says which candidates are in.

    Plain data, so it pickles (Ray's searcher holds one).
    """

    budget: Budget
    shape: TeacherShape
    seq_len: int
    table: LatencyTable | None

    stated: Budget | None = None  # the budget as given, when `min_speedup` was resolved into a latency bound

    def __post_init__(self) -> None:
        if self.budget.min_speedup is not None and self.table is not None:
            object.__setattr__(self, "stated", self.budget)
            object.__setattr__(self, "budget", self.budget.against(self.table.teacher_ms))

    def describe(self) -> str:
        """The budget in force, with the speed-up it came from (e.g. "latency <= 2.44 ms: 8x faster than the teacher's 19.5 ms")."""
        if self.stated is None or self.stated.min_speedup is None or self.table is None:
            return self.budget.describe()
        return f"{self.budget.describe()}: {self.stated.min_speedup:g}x faster than the teacher's {self.table.teacher_ms:.2f} ms"

    def cost(self, spec: ArchSpec) -> CandidateCost:
        return candidate_cost(spec, self.shape, self.seq_len, self.table)

    def reason(self, spec: ArchSpec) -> str | None:
        """Why `spec` may not be trained (the bounds it breaks), or None when it is inside the budget."""
        return self.budget.violation(self.cost(spec)) if self.budget else None

    def feasible(self, candidates: Iterable[ArchSpec]) -> list[ArchSpec]:
        """The candidates inside the budget, in their given order."""
        return [c for c in candidates if self.reason(c) is None]

    def constraints(self, spec: ArchSpec) -> dict[str, float]:
        """Optuna's constraint values of `spec` (`Trial.set_constraint`), one per bound by field name:
        value / bound - 1, so <= 0 is inside. A proposal that is not a candidate (hidden not
        divisible by heads) is told feasible: it is skipped for that reason, not for the budget."""
        if not spec.is_valid:
            return dict.fromkeys(self.budget.given(), 0.0)
        return dict(zip(self.budget.given(), self.budget.constraints(self.cost(spec)), strict=True))

    def check_any(self, candidates: Sequence[ArchSpec], source: str) -> list[ArchSpec]:
        """The feasible candidates; refuses a budget that none meets, naming the closest one.

        Raises:
            InfeasibleBudgetError: no candidate of `source` is inside the budget.
        """
        inside = self.feasible(candidates)
        if inside or not candidates:
            return inside
        closest = min(candidates, key=lambda c: self.budget.worst_excess(self.cost(c)))
        device = f" on {self.table.device}, {self.table.threads} thread(s), batch 1 at {self.seq_len} tokens" if self.table else ""
        raise InfeasibleBudgetError(
            f"no candidate of {source} meets the budget ({self.describe()}): the cheapest, {closest.key}, has "
            f"{self.budget.cost_summary(self.cost(closest))}{device if self.budget.needs_latency else ''}; "
            "raise the budget or add smaller values to the space."
        )
