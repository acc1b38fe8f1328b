"""Multi-label KD (per-label binary KL on sigmoids), its BCE hard term, and the multi-label metrics."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from protege.errors import ProtegeError
from protege.evaluation.metrics import agreement, primary_metric, task_metrics
from protege.losses import multilabel_bce, sigmoid_kl_divergence


def test_zero_when_the_student_matches_and_positive_otherwise():
    torch.manual_seed(0)
    t = torch.randn(5, 4) * 3
    assert sigmoid_kl_divergence(t.clone(), t, temperature=2.0).item() == pytest.approx(0.0, abs=1e-7)
    assert sigmoid_kl_divergence(torch.randn(5, 4), t, temperature=2.0).item() > 0.01


def test_reference_value_is_the_mean_bernoulli_kl_times_t_squared():
    torch.manual_seed(1)
    s, t, temp = torch.randn(3, 5), torch.randn(3, 5), 3.0
    p, q = torch.sigmoid(t / temp), torch.sigmoid(s / temp)
    expected = torch.distributions.kl_divergence(torch.distributions.Bernoulli(p), torch.distributions.Bernoulli(q)).mean() * temp ** 2
    assert sigmoid_kl_divergence(s, t, temperature=temp).item() == pytest.approx(expected.item(), rel=1e-5)


def test_gradient_is_the_soft_bce_gradient_and_reaches_only_the_student():
    torch.manual_seed(2)
    t = torch.randn(4, 3, requires_grad=True)
    s1 = torch.randn(4, 3, requires_grad=True)
    s2 = s1.detach().clone().requires_grad_()
    sigmoid_kl_divergence(s1, t, temperature=2.0).backward()
    (F.binary_cross_entropy_with_logits(s2 / 2.0, torch.sigmoid(t.detach() / 2.0)) * 4.0).backward()
    assert torch.allclose(s1.grad, s2.grad, atol=1e-6)
    assert t.grad is None


def test_high_temperature_limit_is_a_scaled_logit_mse():
    # T^2 * KL(sigmoid(t/T) || sigmoid(s/T)) -> (s - t)^2 / 8 per label as T grows (both probabilities near 1/2)
    torch.manual_seed(3)
    s, t = torch.randn(6, 2).double(), torch.randn(6, 2).double()
    assert sigmoid_kl_divergence(s, t, temperature=1000.0).item() == pytest.approx(((s - t) ** 2).mean().item() / 8, rel=1e-3)


def test_large_logits_stay_finite_and_the_mask_selects_rows():
    s = torch.tensor([[80.0, -80.0], [0.0, 0.0]])
    t = torch.tensor([[-80.0, 80.0], [0.0, 0.0]])
    assert torch.isfinite(sigmoid_kl_divergence(s, t))
    assert sigmoid_kl_divergence(s, t, mask=torch.tensor([False, True])).item() == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ProtegeError, match="num_labels"):
        sigmoid_kl_divergence(torch.zeros(2, 3), torch.zeros(2, 4))


def test_bce_matches_torch_and_checks_the_shape():
    torch.manual_seed(4)
    s, y = torch.randn(4, 3), torch.tensor([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    assert multilabel_bce(s, y).item() == pytest.approx(F.binary_cross_entropy_with_logits(s, y.float()).item())
    with pytest.raises(ProtegeError, match="multi-hot"):
        multilabel_bce(s, torch.tensor([0, 1, 2, 1]))


def test_multilabel_metrics_and_agreement():
    logits = np.array([[2.0, -1.0, 3.0], [-2.0, 1.0, -1.0], [1.0, 1.0, -1.0], [-1.0, -1.0, -1.0]])
    labels = [[1, 0, 1], [0, 1, 1], [1, 1, 0], [0, 0, 0]]
    m = task_metrics(logits, labels, "multi_label_classification")
    # predicted sets: {0,2} {1} {0,1} {}: exact on rows 1, 3, 4; tp 5, fp 0, fn 1
    assert m["subset_accuracy"] == pytest.approx(0.75)
    assert m["f1_micro"] == pytest.approx(2 * 5 / (2 * 5 + 0 + 1))
    assert m["f1_macro"] == pytest.approx(np.mean([1.0, 1.0, 2 / 3]))
    assert primary_metric("multi_label_classification") == "f1_micro"
    teacher = logits.copy()
    teacher[0, 1] = 0.5  # one label of one example flips
    a = agreement(logits, teacher, "multi_label_classification")
    assert a["agreement"] == pytest.approx(0.75) and a["label_agreement"] == pytest.approx(11 / 12) and a["kl"] > 0
    assert agreement(logits, logits, "multi_label_classification")["kl"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ProtegeError, match="multi-hot"):
        task_metrics(logits, [0, 1, 2, 0], "multi_label_classification")
