"""The W-coefficient of de Wynter (2020) and the Pareto view of (p, i, e).

W(xi) = (1 - p(xi)/p(T)) * (1 - i(xi)/i(T)) / e(xi): the relative saving in size times the
relative saving in inference cost, divided by the error. T is the maximum point, which scores 0.
The error is clamped to at least 1e-7 so a perfect candidate does not divide by zero (as the
QHACK2021 implementation does); see docs/algorithms.md §1 for the reading chosen.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

MIN_ERROR = 1e-7


def w_coefficient(p: float, i: float, e: float, p_max: float, i_max: float) -> float:
    """W of a candidate with size `p`, inference cost `i` and error `e` in [0, 1].

    Raises:
        ValueError: `p_max` or `i_max` is not positive, or `e` is not a finite number in [0, 1].
    """
    if p_max <= 0 or i_max <= 0:
        raise ValueError(f"p_max={p_max} and i_max={i_max} must be positive (they are p and i of the maximum point T).")
    if not (math.isfinite(e) and 0.0 <= e <= 1.0):
        raise ValueError(f"error e={e} must be a finite number in [0, 1].")
    return (1.0 - p / p_max) * (1.0 - i / i_max) / max(e, MIN_ERROR)


def pareto_front(points: Sequence[Sequence[float]]) -> list[int]:
    """Indices of the points no other point dominates (all objectives minimised).

    A point dominates another when it is no worse in every objective and better in one.
    Equal points are all kept.
    """
    front = []
    for k, point in enumerate(points):
        dominated = any(
            all(o <= q for o, q in zip(other, point, strict=False)) and any(o < q for o, q in zip(other, point, strict=False))
            for j, other in enumerate(points)
            if j != k
        )
        if not dominated:
            front.append(k)
    return front


def hypervolume(points: Sequence[Sequence[float]], reference: Sequence[float]) -> float:
    """Volume dominated by `points` (minimised) inside the box bounded above by `reference`.

    Exact, by slicing: sweep the last objective upwards and add, for each slab, the volume
    (recursively, one dimension fewer) dominated by the points already below it. Points not
    strictly better than `reference` in every objective add nothing.
    """
    inside = [tuple(p) for p in points if all(v < r for v, r in zip(p, reference, strict=False))]
    if not inside:
        return 0.0
    if len(reference) == 1:
        return reference[0] - min(p[0] for p in inside)
    inside.sort(key=lambda p: p[-1])
    volume = 0.0
    for k, point in enumerate(inside):
        top = inside[k + 1][-1] if k + 1 < len(inside) else reference[-1]
        if top > point[-1]:
            volume += (top - point[-1]) * hypervolume([p[:-1] for p in inside[: k + 1]], reference[:-1])
    return volume
