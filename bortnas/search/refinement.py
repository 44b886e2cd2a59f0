"""The FPTAS's proposals under `--fptas-refine B`: its representatives, then the bucket members the
error model ranks best given every error finished so far, re-read whenever a worker asks.

Search layer, torch-free. The representatives come first in bucket order, as in the plain scheme.
A worker that frees up takes the best member not yet finished or running
(`bortnas.search.claims.next_action` skips those): there is no barrier between the representatives
and the refinement, so on many workers the small, fast candidates' errors already steer the
refinement while the large ones still train. With one worker the sequence is exactly
`bortnas.algo.fptas.refinement`'s, one member at a time, so its properties hold (never worse than
the plain scheme, never worse with a larger B, the exhaustive optimum once B covers the space).
The search stops at `len(representatives) + B` finished candidates (its target).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import overload

import optuna

from bortnas.algo import fptas
from bortnas.core.budget import LatencyTable
from bortnas.core.space import ArchSpec, SearchSpace, TeacherShape
from bortnas.search.records import load_records
from bortnas.search.strategies import fptas_refinement

__all__ = ["RefinementOrder"]


class RefinementOrder(Sequence[ArchSpec]):
    """The representatives, then every other bucket member best first under the error model fitted
    to the study's finished trials; recomputed on every iteration (module docstring)."""

    def __init__(
        self,
        study: optuna.Study,
        plan: fptas.FptasPlan[ArchSpec],
        space: SearchSpace,
        shape: TeacherShape,
        seq_len: int,
        cost: str = "flops",
        table: LatencyTable | None = None,
    ) -> None:
        self._study, self._plan, self._space, self._shape = study, plan, space, shape
        self._seq_len, self._cost, self._table = seq_len, cost, table
        self._size = sum(len(b) for b in plan.buckets)

    def current(self) -> list[ArchSpec]:
        """The order as the study stands now: the representatives, then the members ranked by the error
        model fitted to the errors finished so far (by N alone while fewer than two are known)."""
        members = {c for bucket in self._plan.buckets for c in bucket}
        errors = {r.spec: r.attrs["error"] for r in load_records(self._study) if r.scored and r.spec in members}
        ranked = fptas_refinement(self._plan, self._space, self._shape, self._seq_len, errors, self._size, self._cost, self._table)
        return list(self._plan.representatives) + ranked

    def __iter__(self) -> Iterator[ArchSpec]:
        return iter(self.current())

    def __len__(self) -> int:
        """Every member of every bucket: what the search could evaluate (its target is set by B)."""
        return self._size

    @overload
    def __getitem__(self, index: int) -> ArchSpec: ...

    @overload
    def __getitem__(self, index: slice) -> Sequence[ArchSpec]: ...

    def __getitem__(self, index: int | slice) -> ArchSpec | Sequence[ArchSpec]:
        return self.current()[index]
