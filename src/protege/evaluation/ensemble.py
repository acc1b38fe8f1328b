"""A student of an ensemble, measured against the ensemble and against each of its members.

The ``teacher`` section of ``metrics.json`` describes the ensemble as one model; this adds the
``ensemble`` section: the student's agreement, KL and fidelity figures
(:func:`~protege.evaluation.fidelity.figures_of`) against the ensemble and against every member,
and each member's own scores, so a report can say whether the student beat the best single teacher.
"""

from __future__ import annotations

from protege.evaluation.fidelity import fidelity_report
from protege.evaluation.metrics import agreement, task_metrics

__all__ = ["ensemble_report"]

# the fidelity report reads one answer per example (argmax or score); multi-label heads have several
_FIDELITY = ("single_label_classification", "regression")


def ensemble_report(student_logits, ensemble_logits, member_logits: dict, *, problem_type: str, labels=None) -> dict:
    """``{"against_ensemble": {...}, "members": [{"model", "eval", "agreement", "fidelity"}, ...]}`` on one eval set.

    ``student_logits``/``ensemble_logits``: (N, C) arrays on the same examples; ``member_logits``:
    ``{name: (N, C)}`` in member order; ``labels``: gold labels in the teacher's space, or None.
    ``agreement`` holds agreement and KL (or, for regression, correlation and MSE) of the student
    with that model; ``fidelity`` the flat fidelity figures (flips, calibration, ...).
    """
    def against(teacher_logits) -> dict:
        out = {"agreement": agreement(student_logits, teacher_logits, problem_type)}
        if problem_type in _FIDELITY:
            summary, _ = fidelity_report(student_logits, teacher_logits, problem_type=problem_type, labels=labels, top_k=0)
            out["fidelity"] = summary["figures"]
        return out

    members = []
    for name, logits in member_logits.items():
        entry = {"model": str(name)}
        if labels is not None:
            entry["eval"] = {"metrics": task_metrics(logits, labels, problem_type)}
        members.append({**entry, **against(logits)})
    return {"against_ensemble": against(ensemble_logits), "members": members}
