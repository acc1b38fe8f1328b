"""Release gates on the fidelity report: ``--gate "agreement>=0.95,flips_lost<=0.02,ece_delta<=0.02"``.

A gate is a budget on one reported figure (the flat ``fidelity.figures`` of metrics.json). The
expression is checked before anything runs: a malformed budget, an unknown figure, or a figure
that needs data not given (``ood.*`` without ``--ood``, ``rare_*`` without ``--train``) is bad
input (ProtegeError, exit 2). After the run each budget passes or fails; ``protege evaluate``
exits 1 when one fails, naming the budget and by how much, so CI can block a release.

A figure that could not be measured on this run (no rare-word example in the data, internals of
a student whose tokens differ from the teacher's) is skipped with a note, or fails with ``--strict``.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass

from protege.errors import ProtegeError

__all__ = ["Gate", "FIGURES", "parse_gates", "check_gate_names", "check_gates", "format_gates", "fidelity_requested",
           "check_fidelity_options"]

_C, _R, _B = "classification", "regression", "any"
# figure -> (problem types, what it needs besides --eval and --compare, what it is)
FIGURES: dict[str, tuple[str, str | None, str]] = {
    "agreement": (_C, None, "share of examples where the student predicts the teacher's label"),
    "kl_mean": (_C, None, "mean KL(teacher || student) of the output distributions, nats"),
    "kl_p95": (_C, None, "95th percentile of the per-example KL(teacher || student)"),
    "tv_mean": (_C, None, "mean total variation distance of the output distributions"),
    "tv_p95": (_C, None, "95th percentile of the per-example total variation"),
    "flips_lost": (_C, "labels", "share of examples the teacher got right and the student wrong"),
    "flips_gained": (_C, "labels", "share of examples the teacher got wrong and the student right"),
    "flips_changed": (_C, None, "share of examples where the two predict different classes"),
    "flips_lost_count": (_C, "labels", "number of examples the teacher got right and the student wrong"),
    "flips_gained_count": (_C, "labels", "number of examples the teacher got wrong and the student right"),
    "mcnemar_p": (_C, "labels", "McNemar's exact test p-value, two-sided"),
    "mcnemar_p_worse": (_C, "labels", "McNemar's exact test p-value that the student is worse (one-sided)"),
    "accuracy_teacher": (_C, "labels", "teacher accuracy"),
    "accuracy_student": (_C, "labels", "student accuracy"),
    "accuracy_delta": (_C, "labels", "student accuracy minus teacher accuracy"),
    "ece_teacher": (_C, "labels", "teacher expected calibration error (15 bins)"),
    "ece_student": (_C, "labels", "student expected calibration error (15 bins)"),
    "ece_delta": (_C, "labels", "student ECE minus teacher ECE"),
    "brier_teacher": (_C, "labels", "teacher Brier score"),
    "brier_student": (_C, "labels", "student Brier score"),
    "brier_delta": (_C, "labels", "student Brier score minus teacher Brier score"),
    "diff_mean": (_R, None, "mean |student - teacher| of the scores"),
    "diff_p95": (_R, None, "95th percentile of |student - teacher|"),
    "mae_teacher": (_R, "labels", "teacher mean absolute error"),
    "mae_student": (_R, "labels", "student mean absolute error"),
    "mae_delta": (_R, "labels", "student MAE minus teacher MAE"),
    "errors_worse": (_R, "labels", "share of examples whose |error| grew by more than the tolerance"),
    "errors_better": (_R, "labels", "share of examples whose |error| shrank by more than the tolerance"),
    "sign_p_worse": (_R, "labels", "exact sign test p-value that the student errs more often"),
    "rare_share": (_B, "train", "share of examples holding a token rare in --train"),
    "rare_agreement": (_C, "train", "agreement on rare-word examples"),
    "rare_kl_mean": (_C, "train", "mean KL on rare-word examples"),
    "rare_flips_lost": (_C, "train", "lost flips on rare-word examples (share of them)"),
    "rare_accuracy_delta": (_C, "train", "student minus teacher accuracy on rare-word examples"),
    "rare_accuracy_gap": (_C, "train", "accuracy_delta on rare-word examples minus that on the rest"),
    "rare_mae_delta": (_R, "train", "student minus teacher MAE on rare-word examples"),
    "rare_mae_gap": (_R, "train", "mae_delta on rare-word examples minus that on the rest"),
    "cka_min": (_B, "internals", "lowest linear CKA of a student layer with its mapped teacher layer"),
    "cka_mean": (_B, "internals", "mean linear CKA over mapped layers"),
    "attention_js_mean": (_B, "internals", "mean Jensen-Shannon distance of attention maps over heads"),
    "attention_js_max": (_B, "internals", "largest Jensen-Shannon distance of a head's attention maps"),
}
OOD_PREFIX = "ood."
_OPS = {">=": lambda v, b: v >= b, "<=": lambda v, b: v <= b, ">": lambda v, b: v > b, "<": lambda v, b: v < b}
_BUDGET = re.compile(r"^\s*([A-Za-z_][\w.]*)\s*(>=|<=|==|=>|=<|>|<|=)?\s*(.*?)\s*$")
_EXAMPLE = "e.g. agreement>=0.95,flips_lost<=0.02,ece_delta<=0.02"


@dataclass(frozen=True)
class Gate:
    """One budget: ``figure op budget`` (``op`` one of >=, <=, >, <)."""

    figure: str
    op: str
    budget: float

    def __str__(self) -> str:
        return f"{self.figure}{self.op}{self.budget:g}"


def parse_gates(text: str) -> list[Gate]:
    """Parse ``"NAME>=X,NAME<=Y,..."`` (X may end in %: 95% = 0.95); ProtegeError naming what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ProtegeError(f"--gate is empty; give budgets on reported figures, {_EXAMPLE}")
    gates = []
    for part in text.split(","):
        if not part.strip():
            raise ProtegeError(f"--gate {text!r} has an empty budget (two commas in a row?); {_EXAMPLE}")
        m = _BUDGET.match(part)
        if not m or not m.group(2):
            raise ProtegeError(f"--gate budget {part.strip()!r} has no comparison; write NAME>=NUMBER or NAME<=NUMBER, "
                               f"{_EXAMPLE}")
        name, op, value = m.groups()
        if op in ("=", "==", "=>", "=<"):
            raise ProtegeError(f"--gate budget {part.strip()!r}: use >=, <=, > or < (a budget is a bound, not an equality)")
        try:
            budget = float(value[:-1]) / 100 if value.endswith("%") else float(value)
        except ValueError:
            raise ProtegeError(f"--gate budget {part.strip()!r}: {value!r} is not a number; {_EXAMPLE}") from None
        if not math.isfinite(budget):
            raise ProtegeError(f"--gate budget {part.strip()!r}: the bound must be a finite number")
        gates.append(Gate(name, op, budget))
    return gates


def check_gate_names(gates: list[Gate], *, ood: bool = True, train: bool = True, problem_type: str | None = None) -> None:
    """Every gate names a known figure that this run can report; ProtegeError otherwise."""
    for g in gates:
        base = g.figure.removeprefix(OOD_PREFIX)
        if base not in FIGURES:
            close = difflib.get_close_matches(base, FIGURES, n=1)
            hint = f" (did you mean {OOD_PREFIX if g.figure != base else ''}{close[0]}?)" if close else ""
            raise ProtegeError(f"--gate: unknown figure {g.figure!r}{hint}; the figures are listed in docs/fidelity.md")
        kind, needs, _ = FIGURES[base]
        if g.figure != base and needs == "internals":
            raise ProtegeError(f"--gate: {g.figure!r}: model internals are measured on --eval only; gate {base!r} instead")
        if g.figure != base and not ood:
            raise ProtegeError(f"--gate: {g.figure!r} is measured on the out-of-distribution set; pass --ood FILE")
        if needs == "train" and not train:
            raise ProtegeError(f"--gate: {g.figure!r} needs token frequencies of the training data; pass --train FILE")
        if problem_type is not None and kind != _B:
            is_regression = problem_type == "regression"
            if is_regression != (kind == _R):
                others = ", ".join(n for n, (k, _, _) in FIGURES.items() if k in (_B, _R if is_regression else _C))
                what = "regression" if is_regression else "classification"
                raise ProtegeError(f"--gate: {g.figure!r} is not reported for a {what} teacher; gate one of {others}")


def check_gates(gates: list[Gate], figures: dict, *, strict: bool = False) -> dict:
    """Each budget against the run's ``figures``: ``{"passed": bool, "strict": bool, "results": [...]}``.

    A result holds ``gate``, ``figure``, ``value``, ``passed`` (None: not measured, skipped unless
    ``strict``) and ``by`` (how far past the budget, 0 when within it).
    """
    results = []
    for g in gates:
        value = figures.get(g.figure)
        if value is None or not math.isfinite(value):
            results.append({"gate": str(g), "figure": g.figure, "value": None, "passed": False if strict else None, "by": None})
            continue
        ok = _OPS[g.op](value, g.budget)
        results.append({"gate": str(g), "figure": g.figure, "value": float(value), "passed": bool(ok),
                        "by": 0.0 if ok else abs(value - g.budget)})
    return {"passed": all(r["passed"] is not False for r in results), "strict": strict, "results": results}


def format_gates(report: dict) -> list[str]:
    """One line per budget: ``gate agreement>=0.95 failed: agreement = 0.9312, 0.0188 under the budget``."""
    lines = []
    for r in report.get("results", []):
        if r["value"] is None:
            verdict = "failed" if r["passed"] is False else "skipped"
            lines.append(f"gate {r['gate']} {verdict}: {r['figure']} was not measured on this run")
        elif r["passed"]:
            lines.append(f"gate {r['gate']} passed: {r['figure']} = {r['value']:.4g}")
        else:
            side = "under" if ">" in r["gate"] else "over"
            lines.append(f"gate {r['gate']} failed: {r['figure']} = {r['value']:.4g}, {r['by']:.4g} {side} the budget")
    return lines


def fidelity_requested(cfg) -> bool:
    """Whether an evaluate config asks for the fidelity report (``--fidelity`` or any of its options)."""
    return bool(getattr(cfg, "fidelity", False) or any(getattr(cfg, k, None) for k in ("gate", "ood", "train", "fidelity_dir")))


def check_fidelity_options(cfg) -> None:
    """The fidelity options of an evaluate config, checked before anything runs."""
    for name in ("fidelity_examples", "fidelity_sample"):
        value = getattr(cfg, name, 0)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ProtegeError(f"--{name.replace('_', '-')} must be an integer >= 0, got {value!r}")
    if not fidelity_requested(cfg):
        return
    if getattr(cfg, "general", False):
        raise ProtegeError("--fidelity compares classifiers; leave out --sts, --probe-* and --eval-text")
    if not cfg.compare:
        raise ProtegeError("--fidelity measures a student against its teacher; pass --compare TEACHER")
    if not cfg.eval:
        raise ProtegeError("--fidelity needs evaluation data; pass --eval FILE")
    folder = getattr(cfg, "fidelity_dir", None)
    if folder:
        from pathlib import Path

        if Path(folder).exists() and not Path(folder).is_dir():
            raise ProtegeError(f"--fidelity-dir {folder} is a file; give a folder for fidelity.jsonl and the plots")
    if cfg.gate is not None:
        check_gate_names(parse_gates(cfg.gate), ood=bool(cfg.ood), train=bool(cfg.train))
