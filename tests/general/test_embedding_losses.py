"""Sentence-embedding and head-averaged attention losses: zero at equality, student-only gradients, reference values."""

import pytest
import torch

from protege.errors import ProtegeError
from protege.losses import attention_mse
from protege.losses.attention_heads import head_mean_attention_mse
from protege.losses.embeddings import sentence_cosine, sentence_mse


def _emb(seed, *shape):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("fn", [sentence_mse, sentence_cosine])
def test_zero_for_identical_and_gradients_only_to_the_student(fn):
    x = _emb(0, 4, 8)
    assert float(fn(x, x.clone())) == pytest.approx(0.0, abs=1e-6)
    s, t = _emb(1, 4, 8).requires_grad_(), _emb(2, 4, 8).requires_grad_()
    fn(s, t).backward()
    assert s.grad.abs().sum() > 0 and t.grad is None


def test_reference_values():
    s = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    t = torch.tensor([[0.0, 1.0], [0.0, 1.0]])
    assert float(sentence_cosine(s, t)) == pytest.approx((1.0 + 0.0) / 2)  # orthogonal, then parallel
    assert float(sentence_mse(s, t)) == pytest.approx((1 + 1 + 0 + 1) / 4)
    assert float(sentence_cosine(s, -s)) == pytest.approx(2.0)


def test_unit_vectors_mse_is_scaled_cosine():
    s = torch.nn.functional.normalize(_emb(3, 5, 16), dim=-1)
    t = torch.nn.functional.normalize(_emb(4, 5, 16), dim=-1)
    assert float(sentence_mse(s, t)) == pytest.approx(2 * float(sentence_cosine(s, t)) / 16, rel=1e-5)


def test_shape_errors_are_one_line():
    with pytest.raises(ProtegeError, match="Dense"):
        sentence_mse(_emb(0, 2, 4), _emb(1, 2, 8))
    with pytest.raises(ProtegeError, match="pool"):
        sentence_cosine(_emb(0, 2, 3, 4), _emb(1, 2, 3, 4))


def _attn(seed, b, h, length):
    return torch.softmax(_emb(seed, b, h, length, length), dim=-1)


def test_head_mean_attention_across_head_counts():
    s, t = _attn(0, 2, 2, 5).requires_grad_(), _attn(1, 2, 3, 5)
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]])
    loss = head_mean_attention_mse(s, t, mask=mask)
    loss.backward()
    assert loss > 0 and s.grad.abs().sum() > 0
    same = _attn(2, 2, 4, 5)
    assert float(head_mean_attention_mse(same[:, :2], same[:, :2].clone())) == 0.0
    # every head alike: equal to the per-head TinyBERT MSE
    one_s, one_t = _attn(3, 2, 1, 5), _attn(4, 2, 1, 5)
    assert float(head_mean_attention_mse(one_s.expand(2, 3, 5, 5), one_t.expand(2, 2, 5, 5), mask=mask)) == pytest.approx(
        float(attention_mse(one_s, one_t, mask=mask)), rel=1e-6)
    with pytest.raises(ProtegeError, match="same batch"):
        head_mean_attention_mse(_attn(0, 2, 2, 5), _attn(1, 2, 2, 4))
