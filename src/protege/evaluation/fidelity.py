"""What did the student lose? Flips, distribution distance, calibration and slices, student beside teacher.

Accuracy hides what compression breaks: two models with the same accuracy can disagree on many
inputs, and the damage concentrates in the long tail (Hooker et al. 2019, "What do compressed deep
neural networks forget?"). Dutta et al. (2024, "Accuracy is not all you need") measure it with
answer *flips* and KL. This module computes, from the two models' outputs on the same examples:

- flips: teacher right and student wrong ("lost") and the reverse ("gained"), with McNemar's exact
  test (a binomial test on the discordant pairs, ``scipy.stats.binomtest``);
- distance: KL(teacher || student) and total variation per example, mean and p95;
- calibration: expected calibration error (Guo et al. 2017, equal-width confidence bins) and the
  Brier score, with the reliability bins for plotting;
- slices: the same numbers by input length, gold label, teacher confidence and rarity;
- regression teachers: by error instead of flips (``|error|`` grew or shrank by more than a
  tolerance, with an exact sign test).

Everything but :func:`measure_fidelity` is pure NumPy/SciPy on arrays: logits (N, C) for
classification, scores (N,) or (N, 1) for regression. :func:`fidelity_report` assembles the
``fidelity`` section of metrics.json for one data set; :func:`measure_fidelity` (what ``protege
evaluate --fidelity`` runs) adds the out-of-distribution set, rarity (:mod:`.rarity`), model
internals (:mod:`.internals`) and the gates (:mod:`.gates`).
"""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import log_softmax

from protege.errors import ProtegeError

__all__ = ["flips", "mcnemar_exact", "distribution_distances", "calibration", "regression_errors", "quantile_buckets",
           "confidence_buckets", "slice_stats", "fidelity_report", "figures_of", "CONFIDENCE_EDGES",
           "ECE_BINS"]

ECE_BINS = 15  # Guo et al. 2017 use 15 equal-width bins
CONFIDENCE_EDGES = (0.6, 0.8, 0.9, 0.99)  # teacher max-probability buckets: <0.6, 0.6-0.8, ..., >=0.99
TEXT_CHARS = 300  # texts in metrics.json are cut to this many characters (fidelity.jsonl keeps them whole)


# --- the statistics ---------------------------------------------------------------------------

def mcnemar_exact(lost: int, gained: int) -> tuple[float, float]:
    """McNemar's exact test on the discordant pairs: ``(p two-sided, p that the student is worse)``.

    Under H0 (student and teacher equally accurate) a discordant example is a lost flip with
    probability 1/2, so ``lost ~ Binomial(lost + gained, 1/2)``. With no discordant pair both p are 1.
    """
    n = int(lost) + int(gained)
    if n == 0:
        return 1.0, 1.0
    two = stats.binomtest(int(lost), n, 0.5, alternative="two-sided").pvalue
    worse = stats.binomtest(int(lost), n, 0.5, alternative="greater").pvalue
    return float(two), float(worse)


def flips(student_logits, teacher_logits, labels) -> dict:
    """Answer flips against gold ``labels`` (N,): counts, rates (over N) and McNemar's exact p-values.

    ``lost``: teacher right, student wrong; ``gained``: teacher wrong, student right; ``changed``:
    the two predict different classes (including both wrong, differently).
    """
    s, t = _pred(student_logits), _pred(teacher_logits)
    y = np.asarray(labels).astype(np.int64)
    t_right, s_right = t == y, s == y
    lost, gained = int(np.sum(t_right & ~s_right)), int(np.sum(~t_right & s_right))
    p_two, p_worse = mcnemar_exact(lost, gained)
    n = len(y)
    return {"lost": lost, "gained": gained, "changed": int(np.sum(s != t)), "lost_rate": lost / n,
            "gained_rate": gained / n, "changed_rate": float(np.mean(s != t)), "mcnemar_p": p_two, "mcnemar_p_worse": p_worse}


def distribution_distances(student_logits, teacher_logits) -> tuple[np.ndarray, np.ndarray]:
    """Per-example KL(teacher || student) in nats and total variation ``0.5 * sum |p_t - p_s|``: two arrays (N,)."""
    log_s, log_t = log_softmax(_logits(student_logits), axis=1), log_softmax(_logits(teacher_logits), axis=1)
    if log_s.shape != log_t.shape:
        raise ProtegeError(f"student and teacher logits differ in shape: {log_s.shape} vs {log_t.shape}")
    p_t = np.exp(log_t)
    kl = np.maximum(np.sum(p_t * (log_t - log_s), axis=1), 0.0)  # rounding leaves tiny negatives
    tv = 0.5 * np.abs(p_t - np.exp(log_s)).sum(axis=1)
    return kl, tv


def calibration(logits, labels, *, n_bins: int = ECE_BINS) -> dict:
    """ECE (Guo et al. 2017) and Brier score of one model, plus its reliability bins.

    ECE = sum over equal-width confidence bins ``((m-1)/M, m/M]`` of ``|B_m|/N * |acc(B_m) - conf(B_m)|``,
    confidence being the top softmax probability. Brier = mean over examples of
    ``sum_k (p_k - 1[y = k])^2`` (Brier 1950; for two classes twice sklearn's ``brier_score_loss``).
    ``bins``: one dict per non-empty bin with ``lo``, ``hi``, ``n``, ``confidence`` and ``accuracy``.
    """
    p = np.exp(log_softmax(_logits(logits), axis=1))
    y = np.asarray(labels).astype(np.int64)
    conf, correct = p.max(axis=1), p.argmax(axis=1) == y
    idx = np.clip(np.ceil(conf * n_bins).astype(int) - 1, 0, n_bins - 1)
    ece, bins = 0.0, []
    for m in range(n_bins):
        mask = idx == m
        if mask.any():
            acc, mean_conf = float(correct[mask].mean()), float(conf[mask].mean())
            ece += mask.sum() / len(y) * abs(acc - mean_conf)
            bins.append({"lo": m / n_bins, "hi": (m + 1) / n_bins, "n": int(mask.sum()), "confidence": mean_conf,
                         "accuracy": acc})
    onehot = np.eye(p.shape[1])[y]
    return {"ece": float(ece), "brier": float(np.mean(np.sum((p - onehot) ** 2, axis=1))), "bins": bins}


def regression_errors(student, teacher, labels, *, tolerance: float | None = None) -> dict:
    """Regression fidelity by error: who got further from the gold score, and by how much.

    ``worse``: examples where ``|student - y|`` exceeds ``|teacher - y|`` by more than ``tolerance``
    (default a tenth of the gold scores' standard deviation); ``better`` the reverse. ``sign_p_worse``
    is the exact sign test (binomial on worse vs better) that the student errs more often.
    """
    s, t, y = _scores(student), _scores(teacher), _scores(labels)
    if tolerance is None:
        tolerance = 0.1 * float(np.std(y))
    grew = np.abs(s - y) - np.abs(t - y)
    worse, better = int(np.sum(grew > tolerance)), int(np.sum(grew < -tolerance))
    n = len(y)
    mae_t, mae_s = float(np.mean(np.abs(t - y))), float(np.mean(np.abs(s - y)))
    return {"mae_teacher": mae_t, "mae_student": mae_s, "mae_delta": mae_s - mae_t, "worse": worse, "better": better,
            "worse_rate": worse / n, "better_rate": better / n, "tolerance": float(tolerance),
            "sign_p_worse": mcnemar_exact(worse, better)[1]}


# --- slices ------------------------------------------------------------------------------------

def quantile_buckets(values, *, parts: int = 4, unit: str = "", integer: bool = True) -> list[tuple[str, np.ndarray]]:
    """Split examples into about ``parts`` buckets at the quantiles of ``values``: ``[(name, mask)]``.

    Edges are the inner quantiles (deduplicated, so a narrow spread gives fewer buckets); a bucket
    holds ``prev_edge < v <= edge``. Names read ``"5-12 tokens"`` for integers, ``"<= 0.31"`` otherwise.
    """
    v = np.asarray(values, dtype=np.float64)
    qs = np.quantile(v, np.linspace(0, 1, parts + 1)[1:-1]) if len(v) else []
    edges = np.unique(np.floor(qs) if integer else qs)
    edges = [e for e in edges if e < v.max()] if len(v) else []
    out, lo = [], -np.inf
    for hi in list(edges) + [np.inf]:
        mask = (v > lo) & (v <= hi)
        if mask.any():
            if integer:
                a, b = int(v[mask].min()), int(v[mask].max())
                name = (f"{a}" if a == b else f"{a}-{b}") + (f" {unit}" if unit else "")
            else:
                name = f"> {lo:.3g}" if hi == np.inf else (f"<= {hi:.3g}" if lo == -np.inf else f"{lo:.3g}-{hi:.3g}")
            out.append((name, mask))
        lo = hi
    return out


def confidence_buckets(teacher_logits, edges=CONFIDENCE_EDGES) -> list[tuple[str, np.ndarray]]:
    """Examples by the teacher's top probability: ``< 0.6``, ``0.6-0.8``, ... , ``>= 0.99`` (non-empty ones)."""
    conf = np.exp(log_softmax(_logits(teacher_logits), axis=1)).max(axis=1)
    bounds = [0.0, *edges, np.inf]
    out = []
    for lo, hi in zip(bounds, bounds[1:]):
        mask = (conf >= lo) & (conf < hi)
        name = f"< {hi:g}" if lo == 0.0 else (f">= {lo:g}" if hi == np.inf else f"{lo:g}-{hi:g}")
        if mask.any():
            out.append((name, mask))
    return out


def slice_stats(mask, *, problem_type: str, student, teacher, labels=None, kl=None, tv=None, tolerance=None) -> dict:
    """The fidelity numbers of the examples in boolean ``mask`` (N,): n and, as available, accuracy of
    both, agreement, flips and KL/TV mean and p95 (classification) or MAE of both and the share of
    examples whose error grew (regression)."""
    mask = np.asarray(mask, dtype=bool)
    out: dict = {"n": int(mask.sum())}
    if not mask.any():
        return out
    if problem_type == "regression":
        s, t = _scores(student)[mask], _scores(teacher)[mask]
        out["diff_mean"] = float(np.mean(np.abs(s - t)))
        if labels is not None:
            e = regression_errors(s, t, _scores(labels)[mask], tolerance=tolerance)
            out.update({k: e[k] for k in ("mae_teacher", "mae_student", "mae_delta", "worse_rate")})
        return out
    s, t = _pred(student)[mask], _pred(teacher)[mask]
    out["agreement"] = float(np.mean(s == t))
    if labels is not None:
        y = np.asarray(labels).astype(np.int64)[mask]
        acc_t, acc_s = float(np.mean(t == y)), float(np.mean(s == y))
        out.update({"accuracy_teacher": acc_t, "accuracy_student": acc_s, "accuracy_delta": acc_s - acc_t,
                    "flips_lost": float(np.mean((t == y) & (s != y))), "flips_gained": float(np.mean((t != y) & (s == y)))})
    for name, values in (("kl", kl), ("tv", tv)):
        if values is not None:
            out[f"{name}_mean"] = float(np.mean(values[mask]))
            out[f"{name}_p95"] = float(np.percentile(values[mask], 95))
    return out


# --- the report --------------------------------------------------------------------------------

def fidelity_report(student, teacher, *, problem_type: str, labels=None, lengths=None, rare=None, id2label=None,
                    texts=None, text_pairs=None, top_k: int = 20, n_bins: int = ECE_BINS,
                    tolerance: float | None = None) -> tuple[dict, list[dict]]:
    """The fidelity of a student to its teacher on one data set: ``(summary, changed_examples)``.

    ``student``/``teacher``: logits (N, C) or regression scores (N,); ``labels``: gold class ids or
    scores (N,) or None; ``lengths``: tokens per example (N,); ``rare``: bool (N,), examples holding a
    token rare in the training data (:mod:`protege.evaluation.rarity`). ``summary`` is the layout of
    ``metrics.json["fidelity"]`` (flips or errors, distance, calibration, slices, ``most_changed`` and
    the flat ``figures`` that gates read); ``changed_examples`` lists, most changed first, every
    example whose answer changed plus the ``top_k`` most changed, for ``fidelity.jsonl``.
    """
    regression = problem_type == "regression"
    n = len(_scores(student)) if regression else len(_logits(student))
    if (len(_scores(teacher)) if regression else len(_logits(teacher))) != n:
        raise ProtegeError("student and teacher outputs differ in length; score both on the same examples")
    if labels is not None:
        labels = np.asarray(labels, dtype=np.float64 if regression else np.int64)
    summary: dict = {"n": n, "problem_type": problem_type}
    kl = tv = None
    if regression:
        s, t = _scores(student), _scores(teacher)
        diff = np.abs(s - t)
        summary["distance"] = {"diff_mean": float(diff.mean()), "diff_p95": float(np.percentile(diff, 95))}
        if labels is not None:
            summary["errors"] = regression_errors(s, t, labels, tolerance=tolerance)
            tolerance = summary["errors"]["tolerance"]
        change, changed = diff, (np.abs(s - labels) - np.abs(t - labels) > tolerance) if labels is not None else diff > 0
    else:
        kl, tv = distribution_distances(student, teacher)
        summary["agreement"] = float(np.mean(_pred(student) == _pred(teacher)))
        summary["distance"] = {"kl_mean": float(kl.mean()), "kl_p95": float(np.percentile(kl, 95)),
                               "tv_mean": float(tv.mean()), "tv_p95": float(np.percentile(tv, 95))}
        if labels is not None:
            summary["flips"] = flips(student, teacher, labels)
            summary["calibration"] = {"bins": n_bins, "teacher": calibration(teacher, labels, n_bins=n_bins),
                                      "student": calibration(student, labels, n_bins=n_bins)}
        p_s, p_t = (np.exp(log_softmax(_logits(x), axis=1)) for x in (student, teacher))
        top = p_t.argmax(axis=1)
        change = p_t[np.arange(n), top] - p_s[np.arange(n), top]  # drop in the probability of the teacher's answer
        changed = _pred(student) != top
    summary["slices"] = _slices(problem_type, student, teacher, labels, lengths, rare, id2label, kl, tv, tolerance)
    order = np.argsort(-change, kind="stable")
    keep = [int(i) for i in order if changed[i]]
    keep += [int(i) for i in order[:top_k] if not changed[i]]
    keep.sort(key=lambda i: -change[i])
    records = [_record(i, problem_type, student, teacher, labels, texts, text_pairs, id2label, change, kl) for i in keep]
    summary["most_changed"] = [{**r, **{k: _cut(r.get(k)) for k in ("text", "text_pair") if k in r}}
                               for r in sorted(records, key=lambda r: -r["change"])[:top_k]]
    summary["figures"] = figures_of(summary)
    return summary, records


def figures_of(summary: dict) -> dict[str, float]:
    """The flat figures of a summary that ``--gate`` budgets name (``agreement``, ``flips_lost`` ...)."""
    f: dict = {}
    if "agreement" in summary:
        f["agreement"], f["flips_changed"] = summary["agreement"], 1.0 - summary["agreement"]
    f.update(summary.get("distance", {}))
    fl = summary.get("flips")
    if fl:
        f.update({"flips_lost": fl["lost_rate"], "flips_gained": fl["gained_rate"], "flips_lost_count": fl["lost"],
                  "flips_gained_count": fl["gained"], "mcnemar_p": fl["mcnemar_p"], "mcnemar_p_worse": fl["mcnemar_p_worse"]})
    cal = summary.get("calibration")
    if cal:
        for what in ("ece", "brier"):
            f[f"{what}_teacher"], f[f"{what}_student"] = cal["teacher"][what], cal["student"][what]
            f[f"{what}_delta"] = cal["student"][what] - cal["teacher"][what]
    err = summary.get("errors")
    if err:
        f.update({k: err[k] for k in ("mae_teacher", "mae_student", "mae_delta", "sign_p_worse")})
        f["errors_worse"], f["errors_better"] = err["worse_rate"], err["better_rate"]
    if "accuracy_teacher" in _first(summary):
        whole = _first(summary)
        f.update({"accuracy_teacher": whole["accuracy_teacher"], "accuracy_student": whole["accuracy_student"],
                  "accuracy_delta": whole["accuracy_delta"]})
    rarity = {b["name"]: b for b in summary.get("slices", {}).get("rarity", [])}
    if rarity:
        f["rare_share"] = rarity.get("rare", {"n": 0})["n"] / summary["n"]
    if "rare" in rarity:
        rare, rest = rarity["rare"], rarity.get("rest", {})
        for key in ("agreement", "kl_mean", "accuracy_delta", "flips_lost", "mae_delta"):
            if key in rare:
                f[f"rare_{key}"] = rare[key]
        for key in ("accuracy_delta", "mae_delta"):
            if key in rare and key in rest:
                f[f"rare_{key.split('_')[0]}_gap"] = rare[key] - rest[key]  # how much more is lost on rare examples
    return {k: float(v) for k, v in f.items()}


# --- running it on two models ----------------------------------------------------------------------

def _slices(problem_type, student, teacher, labels, lengths, rare, id2label, kl, tv, tolerance) -> dict:
    kinds: dict[str, list] = {}
    n = len(_scores(student)) if problem_type == "regression" else len(_logits(student))
    kinds["all"] = [("all", np.ones(n, dtype=bool))]
    if lengths is not None:
        kinds["length"] = quantile_buckets(lengths, unit="tokens")
    if labels is not None:
        if problem_type == "regression":
            kinds["label"] = quantile_buckets(labels, integer=False)
        else:
            names = {int(k): str(v) for k, v in (id2label or {}).items()}
            kinds["label"] = [(names.get(int(c), str(int(c))), labels == c) for c in np.unique(labels)]
    if problem_type != "regression":
        kinds["confidence"] = confidence_buckets(teacher)
    if rare is not None:
        rare = np.asarray(rare, dtype=bool)
        kinds["rarity"] = [(name, mask) for name, mask in (("rare", rare), ("rest", ~rare)) if mask.any()]
    return {kind: [{"name": name, **slice_stats(mask, problem_type=problem_type, student=student, teacher=teacher,
                                                  labels=labels, kl=kl, tv=tv, tolerance=tolerance)}
                   for name, mask in buckets] for kind, buckets in kinds.items()}


def _record(i, problem_type, student, teacher, labels, texts, pairs, id2label, change, kl) -> dict:
    r: dict = {"index": i}
    if texts is not None:
        r["text"] = texts[i]
    if pairs is not None:
        r["text_pair"] = pairs[i]
    name = lambda c: str((id2label or {}).get(int(c), int(c)))  # noqa: E731
    if problem_type == "regression":
        r.update({"label": None if labels is None else float(labels[i]), "teacher": float(_scores(teacher)[i]),
                  "student": float(_scores(student)[i])})
    else:
        p_s, p_t = (np.exp(log_softmax(_logits(x)[i:i + 1], axis=1))[0] for x in (student, teacher))
        top = int(p_t.argmax())
        r.update({"label": None if labels is None else name(labels[i]), "teacher": name(top), "student": name(p_s.argmax()),
                  "p_teacher": float(p_t[top]), "p_student": float(p_s[top]), "kl": float(kl[i])})
        if labels is not None:
            right_t, right_s = top == labels[i], int(p_s.argmax()) == labels[i]
            r["flip"] = "lost" if right_t and not right_s else "gained" if right_s and not right_t else None
    r["change"] = float(change[i])
    return r


def _first(summary: dict) -> dict:
    whole = summary.get("slices", {}).get("all") or [{}]
    return whole[0]


def _cut(text):
    return text if not isinstance(text, str) or len(text) <= TEXT_CHARS else text[:TEXT_CHARS - 1] + "…"


def _pred(logits) -> np.ndarray:
    return _logits(logits).argmax(axis=1)


def _logits(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < 2:
        raise ProtegeError(f"expected logits of shape (N, C) with C >= 2, got shape {x.shape}")
    return x


def _scores(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x[:, 0] if x.ndim == 2 and x.shape[1] == 1 else x
