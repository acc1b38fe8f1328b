"""Tests for protege.losses.attention: TinyBERT attention MSE and MiniLM attention KL."""

import pytest
import torch
import torch.nn.functional as F

from protege.errors import ProtegeError
from protege.losses import attention_kl, attention_mse

ALL = [attention_mse, attention_kl]
MASK = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]])


def _attn(b=2, h=2, length=4, seed=0, mask=None):
    """Student/teacher attention probabilities like HF returns (padded keys get ~0 weight)."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(2):
        scores = torch.randn(b, h, length, length, generator=g, dtype=torch.float64)
        if mask is not None:
            scores = scores.masked_fill(~mask.bool()[:, None, None, :], torch.finfo(scores.dtype).min)
        out.append(scores.softmax(-1).requires_grad_())
    return out


# --- values -------------------------------------------------------------------------------------


def test_mse_reference():
    s, t = _attn()
    assert torch.allclose(attention_mse(s, t), F.mse_loss(s, t))


def test_mse_hand_value_with_mask():
    s = torch.zeros(1, 1, 2, 2)
    t = torch.tensor([[[[0.5, 0.0], [9.0, 9.0]]]])
    # Only pair (query 0, key 0) is valid.
    assert attention_mse(s, t, mask=torch.tensor([[1, 0]])).item() == pytest.approx(0.25)
    assert attention_mse(s, t).item() == pytest.approx((0.25 + 81 + 81) / 4)


def test_kl_reference():
    s, t = _attn()
    ref = F.kl_div(s.log(), t, reduction="sum") / (2 * 2 * 4)
    assert torch.allclose(attention_kl(s, t), ref)


def test_kl_reference_with_mask():
    s, t = _attn(mask=MASK)
    loss = attention_kl(s, t, mask=MASK)
    # Valid rows: batch 0 queries 0-2 over keys 0-2, batch 1 all; per-row KL via torch.
    rows = []
    for b in range(2):
        n = int(MASK[b].sum())
        for h in range(2):
            for q in range(n):
                rows.append(F.kl_div(s[b, h, q, :n].log(), t[b, h, q, :n], reduction="sum"))
    assert torch.allclose(loss, torch.stack(rows).mean())


def test_kl_hand_value():
    s = torch.tensor([[[[0.5, 0.5]]]])
    t = torch.tensor([[[[1.0, 0.0]]]])
    assert attention_kl(s, t).item() == pytest.approx(torch.log(torch.tensor(2.0)).item(), rel=1e-6)


@pytest.mark.parametrize("fn", ALL)
def test_zero_for_identical(fn):
    s, _ = _attn(mask=MASK)
    assert fn(s, s.clone()).abs().item() < 1e-12
    assert fn(s, s.clone(), mask=MASK).abs().item() < 1e-12


# --- gradients and mask -------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL)
def test_gradients_reach_only_student(fn):
    s, t = _attn(mask=MASK)
    fn(s, t, mask=MASK).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert s.grad[0, :, 3].abs().sum() == 0  # padded query
    assert s.grad[0, :, :, 3].abs().sum() == 0  # padded key


@pytest.mark.parametrize("fn", ALL)
def test_mask_ignores_padded_positions(fn):
    s, t = _attn(mask=MASK)
    base = fn(s, t, mask=MASK)
    s2 = s.detach().clone()
    s2[0, :, 3, :] = 0.9
    s2[0, :, :, 3] = 0.7
    assert torch.allclose(fn(s2, t, mask=MASK.bool()), base)
    # Masking only trims rows of batch 0; batch 1 alone is the unmasked loss.
    assert torch.allclose(fn(s[1:], t[1:], mask=MASK[1:]), fn(s[1:], t[1:]))


@pytest.mark.parametrize("fn", ALL)
def test_empty_mask_gives_zero_with_graph(fn):
    s, t = _attn()
    loss = fn(s, t, mask=torch.zeros(2, 4))
    assert loss.dim() == 0 and loss.item() == 0.0
    loss.backward()
    assert s.grad is not None and t.grad is None


# --- errors -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL)
def test_head_mismatch_error(fn):
    s, _ = _attn(h=2)
    _, t = _attn(h=4)
    with pytest.raises(ProtegeError, match="alpha-attn 0"):
        fn(s, t)


@pytest.mark.parametrize("fn", ALL)
def test_shape_errors(fn):
    s, t = _attn()
    with pytest.raises(ProtegeError, match="does not match"):
        fn(s, t[:, :, :3, :3])
    with pytest.raises(ProtegeError, match=r"\(batch, heads, query, key\)"):
        fn(s[0], t[0])
    with pytest.raises(ProtegeError, match="attention mask"):
        fn(s, t, mask=torch.ones(2, 3))


def test_kl_bad_eps():
    s, t = _attn()
    for eps in (0.0, -1.0, float("nan")):
        with pytest.raises(ProtegeError, match="eps"):
            attention_kl(s, t, eps=eps)
