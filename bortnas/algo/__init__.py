"""Selection algorithms over candidates: the W-coefficient, Pareto fronts. Pure: no torch, no I/O."""

from bortnas.algo.objective import hypervolume, pareto_front, w_coefficient

__all__ = ["hypervolume", "pareto_front", "w_coefficient"]
