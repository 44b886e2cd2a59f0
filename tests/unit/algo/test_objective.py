from __future__ import annotations

import math

import pytest

from bortnas.algo import pareto_front, w_coefficient


def test_w_by_hand() -> None:
    # half the size, a quarter of the cost, 20 % error: 0.5 * 0.75 / 0.2
    assert w_coefficient(50, 25, 0.2, 100, 100) == pytest.approx(1.875)
    assert w_coefficient(100, 30, 0.1, 100, 100) == 0.0  # T's size scores 0


def test_zero_error_is_clamped_not_infinite() -> None:
    w = w_coefficient(50, 50, 0.0, 100, 100)
    assert math.isfinite(w) and w == pytest.approx(0.25 / 1e-7)


@pytest.mark.parametrize("bad", [dict(e=float("nan")), dict(e=1.5), dict(p_max=0)])
def test_invalid_inputs_raise(bad: dict) -> None:
    args = dict(p=1, i=1, e=0.1, p_max=10, i_max=10) | bad
    with pytest.raises(ValueError):
        w_coefficient(**args)


def test_pareto_front_by_hand() -> None:
    points = [(1, 5, 0.3), (2, 2, 0.2), (3, 3, 0.3), (1, 5, 0.3), (4, 1, 0.1)]
    # (3,3,0.3) is dominated by (2,2,0.2); the duplicate (1,5,0.3) points are both kept
    assert pareto_front(points) == [0, 1, 3, 4]


def test_hypervolume_by_hand() -> None:
    from bortnas.algo import hypervolume

    # 2D: two points against (4, 4): [1,4]x[3,4] (3) plus [2,4]x[1,4] (6) less their overlap
    # [2,4]x[3,4] (2) = 7
    assert hypervolume([(1, 3), (2, 1)], (4, 4)) == pytest.approx(7.0)
    # 3D: one point is a box; a dominated point adds nothing; a point outside the box adds nothing
    assert hypervolume([(1, 1, 1)], (2, 3, 4)) == pytest.approx(1 * 2 * 3)
    assert hypervolume([(1, 1, 1), (1.5, 2, 3), (5, 0, 0)], (2, 3, 4)) == pytest.approx(6.0)
    # 3D: two boxes (2*2*1 and 1*1*3) overlapping in [1,2]x[1,2]x[2,3]: 4 + 3 - 1 by inclusion-exclusion
    a, b, ref = (0, 0, 2), (1, 1, 0), (2, 2, 3)
    box = lambda p: (ref[0] - p[0]) * (ref[1] - p[1]) * (ref[2] - p[2])
    overlap = (ref[0] - 1) * (ref[1] - 1) * (ref[2] - 2)
    assert hypervolume([a, b], ref) == pytest.approx(box(a) + box(b) - overlap)
