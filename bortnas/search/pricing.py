"""A space priced before any training: p and i of every candidate, N, its FPTAS bucket, and ranks.

Search layer, torch-free: what `bortnas space` prints, from the analytic cost models alone.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bortnas.algo.fptas import numerator
from bortnas.core.errors import UserInputError
from bortnas.core.space import SearchSpace, TeacherShape
from bortnas.cost import flops, param_count
from bortnas.cost.bits import price, size_bits
from bortnas.search.strategies import FPTAS, SearchProblem


@dataclasses.dataclass(frozen=True)
class SpacePricing:
    """`rows`: one dict per candidate (in the space's order); `summary`: the space as a whole,
    with the rank by N of each of the space's `highlight` candidates."""

    summary: dict[str, Any]
    rows: list[dict[str, Any]]


def price_space(space: SearchSpace, shape: TeacherShape, seq_len: int, epsilon: float, against: str) -> SpacePricing:
    """Price every candidate of `space` cut from a teacher of `shape`, at `seq_len` tokens.

    Raises:
        SearchSpaceError: a value of the space exceeds the teacher's.
        ParameterError: epsilon outside (0, 1).
        UserInputError: a highlight that is not a candidate.
    """
    space.check_fits(shape)
    plan = FPTAS(epsilon=epsilon).sampler(SearchProblem(space, shape, seq_len, tuple(space.candidates())))
    bucket_of = {c: k for k, bucket in enumerate(plan.buckets) for c in bucket}
    representatives = set(plan.representatives)
    top = space.maximum_point
    p_top, i_top, cost_top = param_count(top, shape), flops(top, shape, seq_len), price(top, shape, seq_len)
    rows: list[dict[str, Any]] = []
    for spec in space.candidates():
        p, cost = param_count(spec, shape), price(spec, shape, seq_len)
        rows.append(
            {
                "candidate": spec.key,
                "params": p.total,
                "params_non_embedding": p.non_embedding,
                "params_encoder": p.encoder,
                "size_mib": size_bits(spec, shape).mib,
                "p_bits": cost.p,
                "flops": cost.i,
                "N": numerator(cost.p, cost.i, cost_top.p, cost_top.i),
                "bucket": bucket_of.get(spec),
                "representative": spec in representatives,
            }
        )
    rank = {r["candidate"]: k + 1 for k, r in enumerate(sorted(rows, key=lambda r: -r["N"]))}
    highlights = []
    for spec in space.highlight:
        row = next((r for r in rows if r["candidate"] == spec.key), None)
        if row is None:
            raise UserInputError(f"highlight {spec.key} in {space.source} is not a candidate of the space.")
        highlights.append({**row, "rank_by_N": rank[spec.key]})
    summary = {
        "against": against,
        "seq_len": seq_len,
        "candidates": len(rows),
        "maximum_point": top.key,
        "maximum_point_params": p_top.total,
        "maximum_point_params_non_embedding": p_top.non_embedding,
        "maximum_point_flops": i_top.total,
        "epsilon": epsilon,
        "buckets": len(plan.buckets),
        "fptas_evaluations": len(plan.representatives),
        "highlight": highlights,
    }
    return SpacePricing(summary, rows)
