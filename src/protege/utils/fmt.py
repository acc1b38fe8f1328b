"""One number-formatting system for the single-run table, the model card and the multi-run report."""

from __future__ import annotations

import math

__all__ = ["num", "ratio", "fmt_metric", "fmt_num", "fmt_count", "fmt_ratio"]


def num(v) -> float | None:
    """A finite float from a number (Python, NumPy or a 0-d tensor), or None for anything else."""
    if isinstance(v, bool) or type(v).__name__ == "bool_":
        return None
    if hasattr(v, "item") and getattr(v, "ndim", None) == 0:
        v = v.item()
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def ratio(a, b) -> float | None:
    """``a / b`` when both are finite numbers and ``b`` is not 0, else None."""
    a, b = num(a), num(b)
    if a is None or b is None or b == 0:
        return None
    return a / b


def fmt_metric(v: float) -> str:
    """A quality metric: four decimals (0.8307)."""
    return f"{v:.4f}"


def fmt_num(v: float) -> str:
    """A measurement (ms, ex/s, MB): about three significant figures, never scientific notation."""
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def fmt_count(v: float) -> str:
    """A count with a unit: 22.7M, 1.3K, 512."""
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(v) >= div * 0.99995:
            return f"{v / div:.1f}{unit}"
    return f"{v:.0f}"


def fmt_ratio(kind: str | None, student: float | None, teacher: float | None) -> str:
    """A student-versus-teacher cell: ``retention`` (99.3%), ``smaller``/``faster`` (1.9x ...), ``throughput``."""
    if kind is None or student is None or teacher is None:
        return ""
    if kind == "retention":
        return f"{100 * student / teacher:.1f}%" if teacher > 0 else ""
    if kind in ("smaller", "faster"):
        return f"{teacher / student:.1f}x {kind}" if student > 0 else ""
    return f"{student / teacher:.1f}x faster" if teacher > 0 else ""
