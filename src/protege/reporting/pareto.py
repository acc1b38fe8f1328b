"""The Pareto front of a quality-versus-cost trade-off: the runs no other run beats on both."""

from __future__ import annotations

__all__ = ["pareto_front"]


def pareto_front(costs, qualities, *, higher_quality_is_better: bool = True) -> list[int]:
    """Indices of the points on the Pareto front, in order of increasing cost.

    A point is on the front when no other point costs no more *and* is at least as good, while
    being strictly better in one of the two (lower cost, or better quality). Equal points are
    all kept. ``costs`` (latency, size: lower is better) and ``qualities`` are equal-length
    sequences of numbers; pass ``higher_quality_is_better=False`` for a quality such as MSE.
    """
    costs, qualities = list(costs), list(qualities)
    if len(costs) != len(qualities):
        raise ValueError(f"costs and qualities differ in length ({len(costs)} vs {len(qualities)})")
    sign = 1.0 if higher_quality_is_better else -1.0
    q = [sign * float(v) for v in qualities]
    c = [float(v) for v in costs]

    def dominated(i: int) -> bool:
        return any(c[j] <= c[i] and q[j] >= q[i] and (c[j] < c[i] or q[j] > q[i]) for j in range(len(c)))

    return sorted((i for i in range(len(c)) if not dominated(i)), key=lambda i: (c[i], -q[i]))
