"""Degenerate models: a student that collapsed (one class for every input, a constant score, NaN) is no success.

A collapsed classifier still scores the share of the majority class as accuracy, so "keeps 88% of
the teacher's accuracy" can describe a model that learned nothing. :func:`find_degenerate` looks
at the predictions themselves (and the task metrics) and says what is wrong, in words; the model
card, the terminal report and ``metrics.json["degenerate"]`` carry its finding, and ``--strict``
makes a run with one exit 1.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["find_degenerate", "degenerate_warning", "MCC_TOLERANCE", "MIN_EXAMPLES"]

MCC_TOLERANCE = 0.01  # |MCC| below this: the predictions tell nothing about the labels
MIN_EXAMPLES = 10  # without labels, one class on fewer examples than this may be chance
_CONSTANT = 1e-3  # a score whose spread is under this share of the labels' spread is constant


def find_degenerate(problem_type: str, *, predictions=None, labels=None, metrics: dict | None = None) -> dict:
    """Whether a model's outputs are degenerate, and why: ``{"found": bool, "reasons": [str, ...], ...}``.

    ``predictions`` are logits (N, C) for ``single_label_classification`` or scores (N,) / (N, 1)
    for ``regression``; ``labels`` the gold labels (or None); ``metrics`` the task metrics
    (``task_metrics``' dict). Degenerate means any of: a NaN or infinite output; one predicted
    class for every example (when the labels hold more than one class, or, without labels, over
    at least :data:`MIN_EXAMPLES` examples); an MCC within :data:`MCC_TOLERANCE` of 0 while the
    labels hold more than one class; a constant regression output (its spread under 0.1% of the
    labels'); one label set for every example (multi-label); without predictions, a NaN metric.
    Other problem types get the NaN checks only. Classification findings also give
    ``predicted_classes`` and ``classes``. Pure: no model, no I/O.
    """
    metrics = metrics or {}
    y = None if labels is None else np.asarray(labels)
    several_labels = y is not None and len(y) > 0 and np.unique(y.reshape(len(y), -1), axis=0).shape[0] > 1
    reasons: list[str] = []
    found: dict = {}
    if predictions is None:  # the metrics alone: a NaN is all they can show
        nan = [k for k, v in metrics.items() if isinstance(v, float) and math.isnan(v)]
        if nan:
            reasons.append(f"its {', '.join(nan)} {'is' if len(nan) == 1 else 'are'} NaN")
    else:
        p = np.asarray(predictions, dtype=np.float64).reshape(len(predictions), -1)
        finite = np.isfinite(p).all(axis=1)
        if not finite.all():
            reasons.append(f"its outputs are NaN or infinite on {1 - finite.mean():.0%} of the examples")
        if problem_type == "single_label_classification" and len(p) and p.shape[1] > 1:
            predicted = np.unique(p.argmax(axis=1))
            found.update(predicted_classes=int(predicted.size), classes=int(p.shape[1]))
            if predicted.size == 1 and (several_labels or (y is None and len(p) >= MIN_EXAMPLES)):
                mcc = metrics.get("mcc")
                reasons.append(f"it predicts one class (class {int(predicted[0])} of {p.shape[1]}) for all {len(p)} examples"
                               + (f" (MCC {mcc:.3f})" if _finite(mcc) else ""))
        elif problem_type == "multi_label_classification" and len(p):
            sets = np.unique(p > 0, axis=0)
            if len(sets) == 1 and (several_labels or (y is None and len(p) >= MIN_EXAMPLES)):
                on = [str(i) for i in np.flatnonzero(sets[0])]
                reasons.append(f"it predicts the same label set ({', '.join(on) or 'no label'}) for all {len(p)} examples")
        elif problem_type == "regression" and finite.any():
            scores = p[finite, 0]
            # against the labels' spread when known, else against the scores' own size
            scale = _CONSTANT * float(np.std(y.astype(np.float64))) if several_labels else 1e-6 * max(1.0, np.abs(scores).mean())
            if float(np.std(scores)) <= scale:
                reasons.append(f"its output is constant ({float(scores.mean()):.4g} for all {len(scores)} examples)")
    mcc = metrics.get("mcc")
    if (_finite(mcc) and abs(mcc) < MCC_TOLERANCE and (several_labels or y is None)
            and not any(r.startswith("it predicts one class") for r in reasons)):
        reasons.append(f"its MCC is {mcc:.3f}: its predictions tell nothing about the labels")
    return {"found": bool(reasons), "reasons": reasons, **found}


def degenerate_warning(metrics: dict) -> str | None:
    """The one-line warning for a metrics dict whose ``degenerate`` finding is positive, else None."""
    finding = metrics.get("degenerate") if isinstance(metrics, dict) else None
    if not isinstance(finding, dict) or not finding.get("found"):
        return None
    why = "; ".join(finding.get("reasons") or ["see metrics.json"])
    return f"warning: {metrics.get('model', 'the model')} is degenerate: {why}"


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
