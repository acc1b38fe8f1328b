"""Tests for protege.losses.logits: soft CE, KL, hard CE, logit MSE, regression MSE."""

import math

import pytest
import torch
import torch.nn.functional as F

from protege.errors import ProtegeError
from protege.losses import hard_cross_entropy, kl_divergence, logits_mse, regression_mse, soft_cross_entropy


def _pair(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(*shape, generator=g, dtype=torch.float64, requires_grad=True)
    return s, t


SOFT = [soft_cross_entropy, kl_divergence]


# --- soft cross-entropy -------------------------------------------------------------------------


def test_soft_ce_hand_value():
    s = torch.tensor([[0.0, math.log(3.0)]])  # softmax = [1/4, 3/4]
    t = torch.tensor([[0.0, 0.0]])  # softmax = [1/2, 1/2]
    expected = -(0.5 * math.log(0.25) + 0.5 * math.log(0.75))
    assert soft_cross_entropy(s, t).item() == pytest.approx(expected)


def test_soft_ce_matches_cross_entropy_with_probability_targets():
    s, t = _pair(5, 7)
    for T in (1.0, 2.0, 4.0):
        ref = F.cross_entropy(s / T, F.softmax(t / T, dim=-1)) * T**2
        assert torch.allclose(soft_cross_entropy(s, t, temperature=T), ref)


def test_soft_ce_identical_equals_teacher_entropy():
    s, _ = _pair(4, 6)
    p = F.softmax(s, dim=-1)
    entropy = -(p * p.log()).sum(-1).mean()
    assert torch.allclose(soft_cross_entropy(s, s.clone()), entropy)


def test_soft_ce_gradient_roughly_invariant_in_temperature():
    # With T**2 scaling, the gradient magnitude approaches (s - t)/C for large T instead of shrinking.
    s, t = _pair(8, 10)
    s = (s * 0.1).detach().requires_grad_()
    t = (t * 0.1).detach()
    norms = []
    for T in (1.0, 4.0, 16.0):
        s.grad = None
        soft_cross_entropy(s, t, temperature=T).backward()
        norms.append(s.grad.norm().item())
    assert max(norms) / min(norms) < 1.5


# --- KL -----------------------------------------------------------------------------------------


def test_kl_matches_torch_kl_div():
    s, t = _pair(6, 5)
    for T in (1.0, 3.0):
        ref = F.kl_div(F.log_softmax(s / T, -1), F.log_softmax(t / T, -1), reduction="batchmean", log_target=True)
        assert torch.allclose(kl_divergence(s, t, temperature=T), ref * T**2)


def test_kl_exact_t_squared_factor():
    s, t = _pair(3, 4)
    T = 2.5
    unscaled = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="batchmean")
    assert torch.allclose(kl_divergence(s, t, temperature=T) / T**2, unscaled)


def test_kl_is_soft_ce_minus_teacher_entropy():
    s, t = _pair(4, 9)
    T = 2.0
    p = F.softmax(t / T, -1)
    entropy = -(p * p.log()).sum(-1).mean() * T**2
    assert torch.allclose(kl_divergence(s, t, temperature=T), soft_cross_entropy(s, t, temperature=T) - entropy)


def test_kl_zero_for_identical():
    s, _ = _pair(2, 3, 5)
    assert kl_divergence(s, s.clone(), temperature=3.0).abs().item() < 1e-12


def test_kl_finite_with_minus_inf_logits():
    s = torch.tensor([[0.0, 1.0, float("-inf")]], requires_grad=True)
    t = torch.tensor([[0.5, 0.0, float("-inf")]])
    for fn in SOFT:
        loss = fn(s, t)
        loss.backward()
        assert torch.isfinite(loss) and torch.isfinite(s.grad).all()
        s.grad = None


# --- shared soft-loss behaviour -----------------------------------------------------------------


@pytest.mark.parametrize("fn", SOFT)
def test_soft_gradients_reach_only_student(fn):
    s, t = _pair(2, 3, 4)
    fn(s, t, temperature=2.0).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0


@pytest.mark.parametrize("fn", SOFT)
def test_soft_mask_ignores_unselected_rows(fn):
    s, t = _pair(2, 3, 4)
    mask = torch.tensor([[1, 0, 1], [0, 0, 1]])
    base = fn(s, t, mask=mask)
    # Changing masked-out rows leaves the value unchanged ...
    s2 = s.detach().clone()
    s2[mask == 0] += 10.0
    assert torch.allclose(fn(s2, t, mask=mask.bool()), base)
    # ... and the value equals the loss over the selected rows alone.
    sel = mask.bool()
    assert torch.allclose(base, fn(s[sel], t[sel]))


@pytest.mark.parametrize("fn", SOFT)
def test_soft_empty_mask_gives_zero_with_graph(fn):
    s, t = _pair(2, 3, 4)
    loss = fn(s, t, mask=torch.zeros(2, 3, dtype=torch.bool))
    assert loss.dim() == 0 and loss.item() == 0.0
    loss.backward()
    assert t.grad is None and s.grad is not None


@pytest.mark.parametrize("fn", SOFT)
@pytest.mark.parametrize("temperature", [0.0, -1.0, float("nan"), float("inf")])
def test_soft_bad_temperature(fn, temperature):
    s, t = _pair(2, 3)
    with pytest.raises(ProtegeError, match="temperature"):
        fn(s, t, temperature=temperature)


@pytest.mark.parametrize("fn", SOFT)
def test_soft_shape_errors(fn):
    s, _ = _pair(2, 3)
    with pytest.raises(ProtegeError, match="does not match"):
        fn(s, torch.randn(2, 4))
    with pytest.raises(ProtegeError, match="mask shape"):
        fn(s, s.detach(), mask=torch.ones(3, dtype=torch.bool))


def test_soft_returns_float32_for_half_inputs():
    s = torch.randn(3, 4).to(torch.bfloat16)
    loss = soft_cross_entropy(s, s.clone(), temperature=2.0)
    assert loss.dtype == torch.float32 and loss.dim() == 0


# --- hard cross-entropy -------------------------------------------------------------------------


def test_hard_ce_reference_and_ignore_index():
    s, _ = _pair(2, 3, 5)
    labels = torch.tensor([[1, -100, 4], [0, 2, -100]])
    ref = F.cross_entropy(s.reshape(-1, 5), labels.reshape(-1))
    loss = hard_cross_entropy(s, labels)
    assert torch.allclose(loss, ref)
    loss.backward()
    assert s.grad.abs().sum() > 0
    assert s.grad[0, 1].abs().sum() == 0  # ignored position gets no gradient


def test_hard_ce_hand_value_and_all_ignored():
    s = torch.tensor([[0.0, math.log(3.0)]])
    assert hard_cross_entropy(s, torch.tensor([1])).item() == pytest.approx(-math.log(0.75))
    s.requires_grad_()
    loss = hard_cross_entropy(s, torch.tensor([-100]))
    assert loss.item() == 0.0
    loss.backward()


def test_hard_ce_errors():
    s, _ = _pair(4, 3)
    with pytest.raises(ProtegeError, match="labels shape"):
        hard_cross_entropy(s, torch.tensor([0, 1]))
    with pytest.raises(ProtegeError, match="integer"):
        hard_cross_entropy(s, torch.zeros(4))


# --- logits MSE ---------------------------------------------------------------------------------


def test_logits_mse_reference_zero_and_grad():
    s, t = _pair(4, 3)
    loss = logits_mse(s, t)
    assert torch.allclose(loss, F.mse_loss(s, t))
    loss.backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    assert logits_mse(s, s.clone()).item() == 0.0


def test_logits_mse_mask_selects_rows():
    s, t = _pair(4, 3)
    mask = torch.tensor([True, False, True, False])
    loss = logits_mse(s, t, mask=mask)
    assert torch.allclose(loss, ((s[mask] - t[mask]) ** 2).mean())
    s2 = s.detach().clone()
    s2[~mask] = 100.0
    assert torch.allclose(logits_mse(s2, t, mask=mask), loss)


def test_logits_mse_regression_shapes():
    s = torch.tensor([[1.0], [2.0], [4.0]], requires_grad=True)
    t = torch.tensor([1.0, 1.0, 1.0], requires_grad=True)
    loss = logits_mse(s, t)
    assert loss.item() == pytest.approx((0 + 1 + 9) / 3)
    loss.backward()
    assert t.grad is None
    assert logits_mse(s, t.detach()[:, None], mask=torch.tensor([1, 0, 0])).item() == 0.0


def test_logits_mse_shape_errors():
    with pytest.raises(ProtegeError, match="does not match"):
        logits_mse(torch.randn(3, 2), torch.randn(3, 3))
    with pytest.raises(ProtegeError, match="mask shape"):
        logits_mse(torch.randn(3, 2), torch.randn(3, 2), mask=torch.ones(2))


# --- regression MSE -----------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(4, 1), (4,)])
def test_regression_mse(shape):
    preds = torch.tensor([0.0, 1.0, 2.0, 3.0]).reshape(shape).requires_grad_()
    gold = torch.tensor([0.0, 1.0, 2.0, 5.0])
    loss = regression_mse(preds, gold)
    assert loss.dim() == 0 and loss.item() == pytest.approx(1.0)
    loss.backward()
    assert preds.grad.abs().sum() > 0
    assert regression_mse(preds, preds.detach().reshape(-1)).item() == 0.0


def test_regression_mse_errors():
    with pytest.raises(ProtegeError, match="num_labels=1"):
        regression_mse(torch.randn(4, 2), torch.randn(4))
    with pytest.raises(ProtegeError, match="num_labels=1"):
        regression_mse(torch.randn(4, 1), torch.randn(3))
