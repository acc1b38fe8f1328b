"""Task metrics, student-teacher agreement and the primary metric of a problem type."""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from scipy.special import log_softmax
from sklearn.metrics import accuracy_score, f1_score, matthews_corrcoef, mean_squared_error

from protege.errors import ProtegeError

__all__ = ["task_metrics", "agreement", "primary_metric", "PROBLEM_TYPES", "TASK_KEYS", "LOWER_IS_BETTER"]

TASK_KEYS = ("accuracy", "f1", "mcc", "f1_micro", "f1_macro", "subset_accuracy", "pearson", "spearman",
             "mse")  # the task metrics, in report order
LOWER_IS_BETTER = frozenset({"mse", "kl", "mse_to_teacher"})

MULTI_LABEL = "multi_label_classification"
PROBLEM_TYPES = ("single_label_classification", "regression", MULTI_LABEL)


def primary_metric(problem_type: str) -> str:
    """The metric that decides quality for ``problem_type``: "accuracy", "pearson" or (multi-label) "f1_micro"."""
    _check_problem_type(problem_type)
    return {"single_label_classification": "accuracy", "regression": "pearson", MULTI_LABEL: "f1_micro"}[problem_type]


def task_metrics(predictions, labels, problem_type: str) -> dict[str, float]:
    """Quality of ``predictions`` against gold ``labels``.

    Classification: ``predictions`` are logits of shape (N, C) and ``labels`` class ids (N,);
    returns "accuracy", "f1" (F1 of class 1 when C == 2, macro F1 over the classes seen when
    C > 2) and "mcc". Regression: ``predictions`` of shape (N,) or (N, 1) and float ``labels``;
    returns "pearson", "spearman" (NaN when either side is constant) and "mse". Multi-label:
    logits (N, L) and multi-hot ``labels`` (N, L), a label predicted where its logit is > 0
    (sigmoid > 0.5); returns "f1_micro", "f1_macro" (over the labels) and "subset_accuracy"
    (the whole label set right). All values are plain Python floats.
    """
    _check_problem_type(problem_type)
    labels = np.asarray(labels)
    if problem_type == MULTI_LABEL:
        pred, y = _label_sets(predictions, "predictions"), _multi_hot(labels, predictions)
        return {
            "f1_micro": float(f1_score(y, pred, average="micro", zero_division=0)),
            "f1_macro": float(f1_score(y, pred, average="macro", zero_division=0)),
            "subset_accuracy": float(accuracy_score(y, pred)),  # a multi-hot input makes it exact-set accuracy
        }
    if problem_type == "single_label_classification":
        logits = _logits(predictions, "predictions")
        y = _class_labels(labels, logits)
        pred = logits.argmax(axis=1)
        average = "binary" if logits.shape[1] == 2 else "macro"
        # zero_division=0: a class never predicted scores 0 instead of warning
        return {
            "accuracy": float(accuracy_score(y, pred)),
            "f1": float(f1_score(y, pred, average=average, zero_division=0)),
            "mcc": float(matthews_corrcoef(y, pred)),
        }
    pred = _scores(predictions, "predictions")
    y = _scores(labels, "labels")
    _same_length(pred, y)
    return {
        "pearson": _correlation(stats.pearsonr, pred, y),
        "spearman": _correlation(stats.spearmanr, pred, y),
        "mse": float(mean_squared_error(y, pred)),
    }


def agreement(student_predictions, teacher_predictions, problem_type: str) -> dict[str, float]:
    """How closely the student follows the teacher on the same inputs.

    Classification (logits (N, C) from both): "agreement", the fraction of examples with the
    same argmax, and "kl", the mean KL(teacher || student) between softmax probabilities at
    temperature 1 (nats). Regression: "pearson_to_teacher" and "mse_to_teacher". Multi-label
    (logits (N, L)): "agreement", the fraction of examples with the same predicted label set,
    "label_agreement", the fraction of (example, label) decisions that agree, and "kl", the
    mean per-label binary KL(teacher || student) of the sigmoid probabilities (nats).
    """
    _check_problem_type(problem_type)
    if problem_type == MULTI_LABEL:
        s, t = _logits(student_predictions, "student_predictions", min_classes=1), \
            _logits(teacher_predictions, "teacher_predictions", min_classes=1)
        if s.shape != t.shape:
            raise ProtegeError(f"student and teacher logits differ in shape: {s.shape} vs {t.shape}")
        same = (s > 0) == (t > 0)
        # log p = -log(1 + e^-z), log(1 - p) = -log(1 + e^z): finite for any logit
        log_ps, log_qs, log_pt, log_qt = -np.logaddexp(0, -s), -np.logaddexp(0, s), -np.logaddexp(0, -t), -np.logaddexp(0, t)
        kl = np.exp(log_pt) * (log_pt - log_ps) + np.exp(log_qt) * (log_qt - log_qs)
        return {"agreement": float(np.mean(same.all(axis=1))), "label_agreement": float(np.mean(same)),
                "kl": float(max(kl.mean(), 0.0))}
    if problem_type == "single_label_classification":
        s = _logits(student_predictions, "student_predictions")
        t = _logits(teacher_predictions, "teacher_predictions")
        if s.shape != t.shape:
            raise ProtegeError(f"student and teacher logits differ in shape: {s.shape} vs {t.shape}")
        log_s, log_t = log_softmax(s, axis=1), log_softmax(t, axis=1)
        kl = np.sum(np.exp(log_t) * (log_t - log_s), axis=1)
        return {
            "agreement": float(np.mean(s.argmax(axis=1) == t.argmax(axis=1))),
            # rounding can leave tiny negatives where the distributions match
            "kl": float(max(kl.mean(), 0.0)),
        }
    s = _scores(student_predictions, "student_predictions")
    t = _scores(teacher_predictions, "teacher_predictions")
    _same_length(s, t)
    return {
        "pearson_to_teacher": _correlation(stats.pearsonr, s, t),
        "mse_to_teacher": float(mean_squared_error(t, s)),
    }


def _check_problem_type(problem_type) -> None:
    if problem_type not in PROBLEM_TYPES:
        raise ProtegeError(f"unsupported problem_type {problem_type!r}; use one of {', '.join(PROBLEM_TYPES)}")


def _logits(x, name: str, *, min_classes: int = 2) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[1] < min_classes or x.shape[0] == 0:
        raise ProtegeError(f"{name} must be logits of shape (N, C) with N >= 1 and C >= {min_classes}, got shape {x.shape}")
    return x


def _label_sets(logits, name: str) -> np.ndarray:
    """Multi-label logits (N, L) as 0/1 predictions: a label is on where sigmoid(logit) > 0.5."""
    return (_logits(logits, name, min_classes=1) > 0).astype(np.int64)


def _multi_hot(labels: np.ndarray, logits) -> np.ndarray:
    shape = np.shape(logits)
    if labels.shape != tuple(shape):
        raise ProtegeError(f"multi-label labels must be multi-hot of shape {tuple(shape)} (one 0/1 per label), got {labels.shape}")
    if not np.isin(labels, (0, 1)).all():
        raise ProtegeError("multi-label labels must be 0/1 (multi-hot)")
    return labels.astype(np.int64)


def _class_labels(labels: np.ndarray, logits: np.ndarray) -> np.ndarray:
    if labels.ndim != 1 or len(labels) != len(logits):
        raise ProtegeError(f"labels must have shape ({len(logits)},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.number) or np.any(labels != np.round(labels)):
        raise ProtegeError("classification labels must be integer class ids")
    y = labels.astype(np.int64)
    if y.min() < 0 or y.max() >= logits.shape[1]:
        raise ProtegeError(f"labels must lie in [0, {logits.shape[1] - 1}] to match {logits.shape[1]} logits")
    return y


def _scores(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2 and x.shape[1] == 1:
        x = x[:, 0]
    if x.ndim != 1 or len(x) == 0:
        raise ProtegeError(f"{name} must have shape (N,) or (N, 1) with N >= 1, got {x.shape}")
    return x


def _same_length(a: np.ndarray, b: np.ndarray) -> None:
    if len(a) != len(b):
        raise ProtegeError(f"predictions and references differ in length: {len(a)} vs {len(b)}")


def _correlation(fn, a: np.ndarray, b: np.ndarray) -> float:
    # undefined for fewer than two points or a constant side: NaN, not a warning or an error
    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return float(fn(a, b)[0])
