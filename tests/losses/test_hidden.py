"""Tests for protege.losses.hidden: hidden/embedding MSE, cosine loss, layer map, projection."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from protege.errors import ProtegeError
from protege.losses import HiddenProjection, embedding_mse, hidden_cosine, hidden_mse, uniform_layer_map

MSE_LOSSES = [hidden_mse, embedding_mse]
ALL = [hidden_mse, embedding_mse, hidden_cosine]


def _states(b=2, length=5, hs=4, ht=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(b, length, hs, generator=g, dtype=torch.float64, requires_grad=True)
    t = torch.randn(b, length, ht, generator=g, dtype=torch.float64, requires_grad=True)
    return s, t


MASK = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])


# --- values -------------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", MSE_LOSSES)
def test_mse_reference(fn):
    s, t = _states()
    assert torch.allclose(fn(s, t), F.mse_loss(s, t))


@pytest.mark.parametrize("fn", MSE_LOSSES)
def test_mse_hand_value_with_mask(fn):
    s = torch.zeros(1, 2, 2)
    t = torch.tensor([[[1.0, 3.0], [100.0, 100.0]]])
    # Only the first token counts: (1 + 9) / 2.
    assert fn(s, t, mask=torch.tensor([[1, 0]])).item() == pytest.approx(5.0)


def test_cosine_reference():
    s, t = _states()
    ref = F.cosine_embedding_loss(s.reshape(-1, 4), t.reshape(-1, 4), torch.ones(10, dtype=torch.float64))
    assert torch.allclose(hidden_cosine(s, t), ref)


def test_cosine_hand_value():
    s = torch.tensor([[[1.0, 0.0], [1.0, 1.0], [2.0, 0.0]]])
    t = torch.tensor([[[0.0, 3.0], [2.0, 2.0], [-1.0, 0.0]]])
    # 1 - cos: orthogonal -> 1, parallel -> 0, opposite -> 2.
    assert hidden_cosine(s, t).item() == pytest.approx(1.0)
    assert hidden_cosine(s, t, mask=torch.tensor([[0, 1, 1]])).item() == pytest.approx(1.0)
    assert hidden_cosine(s, t, mask=torch.tensor([[1, 1, 0]])).item() == pytest.approx(0.5)


@pytest.mark.parametrize("fn", ALL)
def test_zero_for_identical(fn):
    s, _ = _states()
    assert fn(s, s.clone()).abs().item() < 1e-12
    assert fn(s, s.clone(), mask=MASK).abs().item() < 1e-12


# --- gradients and mask -------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL)
def test_gradients_reach_only_student(fn):
    s, t = _states()
    fn(s, t, mask=MASK).backward()
    assert t.grad is None
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert s.grad[0, 3:].abs().sum() == 0  # padded tokens get no gradient


@pytest.mark.parametrize("fn", ALL)
def test_mask_ignores_padded_tokens(fn):
    s, t = _states()
    base = fn(s, t, mask=MASK)
    s2 = s.detach().clone()
    s2[0, 3:] = 50.0
    assert torch.allclose(fn(s2, t, mask=MASK.bool()), base)
    # Equals the loss over the valid tokens alone.
    sel = MASK.bool()
    assert torch.allclose(base, fn(s[sel][None], t[sel][None]))


@pytest.mark.parametrize("fn", ALL)
def test_empty_mask_gives_zero_with_graph(fn):
    s, t = _states()
    loss = fn(s, t, mask=torch.zeros(2, 5))
    assert loss.dim() == 0 and loss.item() == 0.0
    loss.backward()
    assert s.grad is not None and t.grad is None


# --- projection ---------------------------------------------------------------------------------


@pytest.mark.parametrize("fn", ALL)
def test_projection_path(fn):
    s, t = _states(hs=3, ht=6)
    proj = nn.Linear(3, 6).double()
    loss = fn(s, t, mask=MASK, projection=proj)
    with torch.no_grad():
        assert torch.allclose(loss, fn(proj(s), t, mask=MASK))
    loss.backward()
    assert proj.weight.grad is not None and proj.weight.grad.abs().sum() > 0
    assert s.grad.abs().sum() > 0 and t.grad is None


@pytest.mark.parametrize("fn", ALL)
def test_width_mismatch_needs_projection(fn):
    s, t = _states(hs=3, ht=6)
    with pytest.raises(ProtegeError, match="projection"):
        fn(s, t)
    with pytest.raises(ProtegeError, match="after projection"):
        fn(s, t, projection=nn.Linear(3, 5).double())


@pytest.mark.parametrize("fn", ALL)
def test_shape_and_mask_errors(fn):
    s, _ = _states()
    with pytest.raises(ProtegeError, match="does not match"):
        fn(s, torch.randn(2, 4, 4, dtype=torch.float64))
    with pytest.raises(ProtegeError, match="mask shape"):
        fn(s, s.detach(), mask=torch.ones(2, 4))


def test_hidden_projection_module():
    proj = HiddenProjection(3, 6, 2)
    assert len(proj.projections) == 2
    assert all(isinstance(p, nn.Linear) for p in proj.projections)
    for p in proj.projections:
        assert p.weight.shape == (6, 3)
        assert torch.all(p.bias == 0)
        assert p.weight.abs().sum() > 0
    x = torch.randn(2, 5, 3)
    assert torch.allclose(proj(x, 1), proj.projections[1](x))
    assert not torch.allclose(proj(x, 0), proj(x, 1))
    # Works as a hidden_mse projection through functools-style binding.
    s, t = torch.randn(2, 5, 3), torch.randn(2, 5, 6)
    loss = hidden_mse(s, t, projection=lambda h: proj(h, 0))
    loss.backward()
    assert proj.projections[0].weight.grad is not None
    assert proj.projections[1].weight.grad is None


def test_hidden_projection_errors():
    proj = HiddenProjection(3, 6, 2)
    with pytest.raises(ProtegeError, match="out of range"):
        proj(torch.randn(1, 3), 2)
    with pytest.raises(ProtegeError, match="student_dim"):
        proj(torch.randn(1, 4), 0)
    with pytest.raises(ProtegeError):
        HiddenProjection(0, 6, 1)


# --- layer map ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ns", "nt", "expected"),
    [(3, 6, [1, 3, 5]), (2, 4, [1, 3]), (4, 4, [0, 1, 2, 3]), (1, 12, [11]), (4, 12, [2, 5, 8, 11]),
     (3, 7, [1, 3, 6]), (4, 6, [0, 1, 2, 5])],
)
def test_uniform_layer_map(ns, nt, expected):
    assert uniform_layer_map(ns, nt) == expected


@pytest.mark.parametrize(("ns", "nt"), [(5, 4), (0, 4), (2, 0), (-1, 3), (2.0, 4), (True, 4)])
def test_uniform_layer_map_errors(ns, nt):
    with pytest.raises(ProtegeError):
        uniform_layer_map(ns, nt)
