"""task_metrics, agreement and primary_metric against hand-computed values."""

import math

import numpy as np
import pytest

from protege.errors import ProtegeError
from protege.evaluation.metrics import agreement, primary_metric, task_metrics

CLS = "single_label_classification"


def one_hot_logits(classes, n_classes):
    logits = np.zeros((len(classes), n_classes))
    logits[np.arange(len(classes)), classes] = 2.0
    return logits


def test_binary_classification_by_hand():
    # preds 1 0 1 1 0 vs labels 1 0 0 1 1: TP 2, TN 1, FP 1, FN 1
    m = task_metrics(one_hot_logits([1, 0, 1, 1, 0], 2), np.array([1, 0, 0, 1, 1]), CLS)
    assert m == pytest.approx({"accuracy": 0.6, "f1": 2 / 3, "mcc": 1 / 6})
    assert all(type(v) is float for v in m.values())


def test_multiclass_f1_is_macro():
    # per-class F1: class 0 -> 1, class 1 -> 0, class 2 -> 1/2
    m = task_metrics(one_hot_logits([0, 2, 2, 1], 3), [0, 1, 2, 2], CLS)
    assert m["accuracy"] == pytest.approx(0.5)
    assert m["f1"] == pytest.approx(0.5)


def test_constant_predictions_do_not_warn():
    m = task_metrics(one_hot_logits([0, 0, 0], 2), [0, 1, 1], CLS)
    assert m["f1"] == 0.0 and m["mcc"] == 0.0


def test_regression_by_hand():
    m = task_metrics(np.array([[1.0], [2.0], [3.0], [4.0]]), np.array([1.0, 2.0, 3.0, 5.0]), "regression")
    assert m["pearson"] == pytest.approx(6.5 / math.sqrt(5 * 8.75))
    assert m["spearman"] == pytest.approx(1.0)
    assert m["mse"] == pytest.approx(0.25)
    assert all(type(v) is float for v in m.values())


def test_regression_constant_is_nan_without_warning():
    m = task_metrics(np.ones(4), np.array([1.0, 2.0, 3.0, 4.0]), "regression")
    assert math.isnan(m["pearson"]) and math.isnan(m["spearman"])


def test_agreement_identical_inputs():
    logits = np.random.default_rng(0).normal(size=(20, 3))
    a = agreement(logits, logits.copy(), CLS)
    assert a["agreement"] == 1.0
    assert a["kl"] == pytest.approx(0.0, abs=1e-12)
    r = agreement(np.arange(5.0), np.arange(5.0), "regression")
    assert r == pytest.approx({"pearson_to_teacher": 1.0, "mse_to_teacher": 0.0})


def test_agreement_by_hand():
    # teacher probs (0.75, 0.25), student (0.5, 0.5)
    student = np.array([[0.0, 0.0], [0.0, 1.0]])
    teacher = np.array([[math.log(3.0), 0.0], [0.0, 1.0]])
    a = agreement(student, teacher, CLS)
    kl_first = 0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    # argmax of a tie is class 0, which matches the teacher
    assert a["agreement"] == 1.0
    assert a["kl"] == pytest.approx(kl_first / 2)
    r = agreement(np.array([1.0, 2.0, 3.0]), np.array([[1.0], [2.0], [5.0]]), "regression")
    assert r["mse_to_teacher"] == pytest.approx(4 / 3)


def test_primary_metric():
    assert primary_metric(CLS) == "accuracy"
    assert primary_metric("regression") == "pearson"


@pytest.mark.parametrize("call", [
    lambda: primary_metric("token_classification"),
    lambda: task_metrics(np.zeros((3, 2)), [0, 1], CLS),
    lambda: task_metrics(np.zeros((3, 2)), [0, 1, 2], CLS),
    lambda: task_metrics(np.zeros((3, 2)), [0, 1, 0.5], CLS),
    lambda: task_metrics(np.zeros(3), [0, 1, 1], CLS),
    lambda: task_metrics(np.zeros((3, 2)), np.zeros(3), "regression"),
    lambda: agreement(np.zeros((3, 2)), np.zeros((3, 3)), CLS),
    lambda: agreement(np.zeros(3), np.zeros(4), "regression"),
])
def test_bad_arguments(call):
    with pytest.raises(ProtegeError):
        call()
