"""Token-level LM divergences: zero at equality, gradients to the student only, reference values, limits."""

import math

import numpy as np
import pytest
import torch
from scipy.spatial.distance import jensenshannon
from scipy.stats import entropy

from protege.errors import ProtegeError
from protege.losses.lm import LM_LOSSES, forward_kl, generalized_jsd, reverse_kl, teacher_topk, topk_divergence

ALL = [forward_kl, reverse_kl, generalized_jsd]


def _logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


@pytest.mark.parametrize("fn", ALL)
@pytest.mark.parametrize("top_k", [None, 3])
def test_zero_for_identical_inputs(fn, top_k):
    x = _logits(2, 5, 11)
    assert float(fn(x, x.clone(), temperature=2.0, top_k=top_k)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("fn", ALL)
def test_gradients_reach_only_the_student(fn):
    s = _logits(3, 7, seed=1).requires_grad_()
    t = _logits(3, 7, seed=2).requires_grad_()
    fn(s, t, temperature=1.5, top_k=4).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    assert t.grad is None


def test_reference_values_against_scipy():
    s, t = _logits(4, 6, seed=3), _logits(4, 6, seed=4)
    p, q = torch.softmax(t, -1).numpy().astype(np.float64), torch.softmax(s, -1).numpy().astype(np.float64)
    assert float(forward_kl(s, t)) == pytest.approx(np.mean([entropy(p[i], q[i]) for i in range(4)]), rel=1e-5)
    assert float(reverse_kl(s, t)) == pytest.approx(np.mean([entropy(q[i], p[i]) for i in range(4)]), rel=1e-5)
    js = np.mean([jensenshannon(p[i], q[i]) ** 2 for i in range(4)])  # scipy returns the square root, natural log
    assert float(generalized_jsd(s, t, beta=0.5)) == pytest.approx(js, rel=1e-5)


def test_hand_computed_two_token_case():
    # p = (0.5, 0.5), q = (0.8, 0.2): KL(p||q) = 0.5 ln(0.5/0.8) + 0.5 ln(0.5/0.2)
    t = torch.log(torch.tensor([[0.5, 0.5]]))
    s = torch.log(torch.tensor([[0.8, 0.2]]))
    expected = 0.5 * math.log(0.5 / 0.8) + 0.5 * math.log(0.5 / 0.2)
    assert float(forward_kl(s, t)) == pytest.approx(expected, rel=1e-6)


def test_temperature_scales_by_t_squared():
    s, t = _logits(2, 9, seed=5), _logits(2, 9, seed=6)
    assert float(forward_kl(s, t, temperature=3.0)) == pytest.approx(9 * float(forward_kl(s / 3, t / 3)), rel=1e-5)


def test_mask_selects_rows():
    s, t = _logits(2, 3, 5, seed=7), _logits(2, 3, 5, seed=8)
    mask = torch.tensor([[1, 0, 1], [0, 0, 1]], dtype=torch.bool)
    assert float(reverse_kl(s, t, mask=mask)) == pytest.approx(float(reverse_kl(s[mask], t[mask])), rel=1e-6)
    assert float(forward_kl(s, t, mask=torch.zeros(2, 3, dtype=torch.bool))) == 0.0


def test_jsd_limits_are_the_two_kls():
    s, t = _logits(3, 8, seed=9).double(), _logits(3, 8, seed=10).double()
    eps = 1e-7  # JSD(b) = b KL(p_t||p_s) - O(b^2 chi^2): the chi^2 term is large for random logits
    assert float(generalized_jsd(s, t, beta=eps)) / eps == pytest.approx(float(forward_kl(s, t)), rel=1e-3)
    assert float(generalized_jsd(s, t, beta=1 - eps)) / eps == pytest.approx(float(reverse_kl(s, t)), rel=1e-3)
    assert float(generalized_jsd(s * 50, -t * 50, beta=0.5)) <= math.log(2) + 1e-6


@pytest.mark.parametrize("fn", ALL)
def test_top_k_is_exact_at_full_vocabulary_and_a_lower_bound_below_it(fn):
    s, t = _logits(5, 12, seed=11), _logits(5, 12, seed=12)
    full = float(fn(s, t, temperature=2.0))
    assert float(fn(s, t, temperature=2.0, top_k=12)) == pytest.approx(full, rel=1e-5)
    for k in (1, 4, 8):
        assert float(fn(s, t, temperature=2.0, top_k=k)) <= full + 1e-6  # data processing inequality


def test_topk_divergence_from_cached_teacher_matches_the_on_the_fly_loss():
    s, t = _logits(2, 4, 20, seed=13), _logits(2, 4, 20, seed=14)
    values, indices, log_rest = teacher_topk(t, 5)
    for kind in ("forward_kl", "reverse_kl", "jsd"):
        cached = topk_divergence(s, values, indices, log_rest, kind=kind)
        fresh = LM_LOSSES[kind](s, t, top_k=5)
        assert float(cached) == pytest.approx(float(fresh), rel=1e-5)
    # without the rest mass it is recomputed from the top-k probabilities
    assert float(topk_divergence(s, values, indices)) == pytest.approx(float(forward_kl(s, t, top_k=5)), rel=1e-4)


@pytest.mark.parametrize("call, needle", [
    (lambda s, t: generalized_jsd(s, t, beta=1.0), "beta"),
    (lambda s, t: forward_kl(s, t, top_k=99), "top_k"),
    (lambda s, t: forward_kl(s, t, temperature=0), "temperature"),
    (lambda s, t: reverse_kl(s, t[:, :3]), "shape"),
    (lambda s, t: topk_divergence(s, t[:, :2], t[:, :2].long(), kind="nope"), "unknown divergence"),
])
def test_bad_arguments_raise_one_line_errors(call, needle):
    with pytest.raises(ProtegeError, match=needle):
        call(_logits(2, 6), _logits(2, 6, seed=1))
