"""Token-level divergences for language-model distillation: forward KL, reverse KL, generalized JSD.

Each compares the student's and the teacher's next-token (or masked-token) distributions at
temperature T, row by row, and returns the mean over the selected rows times ``T**2`` (Hinton
et al. 2015). ``top_k=k`` keeps the teacher's k most likely tokens and lumps every other token
into one "rest" bucket, for both models: the divergence of these (k+1)-bucket distributions is
zero when the full ones agree, never exceeds the full divergence (data processing), equals it at
``k = V``, and is what a cache of the teacher's top-k log-probabilities plus its rest mass can
feed (see :func:`topk_divergence`).

- forward KL, ``KL(p_teacher || p_student)``: mode-covering, the classic KD objective;
- reverse KL, ``KL(p_student || p_teacher)``: mode-seeking (Gu et al. 2024, "MiniLLM");
- generalized JSD(beta) = ``beta KL(p_t || m) + (1 - beta) KL(p_s || m)`` with
  ``m = beta p_t + (1 - beta) p_s`` (Agarwal et al. 2024, "On-Policy Distillation of Language
  Models", GKD). JSD(beta)/beta -> forward KL as beta -> 0 and JSD(beta)/(1-beta) -> reverse KL
  as beta -> 1; beta = 0.5 is the Jensen-Shannon divergence (at most log 2).

Teacher tensors are detached inside, so gradients reach only the student.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from protege.errors import ProtegeError
from protege.losses.logits import _check_mask, _check_same_shape, _check_temperature, _masked_mean, _upcast

__all__ = ["forward_kl", "reverse_kl", "generalized_jsd", "topk_divergence", "teacher_topk", "LM_LOSSES"]


def _kl_rows(log_a: Tensor, log_b: Tensor) -> Tensor:
    """``sum_c a_c (log a_c - log b_c)`` over the last dim, with 0 log 0 = 0 (no NaN from -inf)."""
    a = log_a.exp()
    diff = torch.where(a > 0, log_a - log_b, torch.zeros_like(log_a))
    return (a * diff).sum(-1)


def _jsd_rows(log_s: Tensor, log_t: Tensor, beta: float) -> Tensor:
    log_m = torch.logsumexp(torch.stack([log_t + math.log(beta), log_s + math.log1p(-beta)]), dim=0)
    return beta * _kl_rows(log_t, log_m) + (1 - beta) * _kl_rows(log_s, log_m)


def _check_beta(beta) -> float:
    try:
        b = float(beta)
    except (TypeError, ValueError):
        raise ProtegeError(f"beta must be a number in (0, 1), got {beta!r}; pass e.g. --jsd-beta 0.5") from None
    if not 0 < b < 1:
        raise ProtegeError(f"beta must be in (0, 1), got {beta!r}; use forward_kl (beta -> 0) or reverse_kl (beta -> 1) "
                           "for the limits, or e.g. --jsd-beta 0.5")
    return b


def teacher_topk(teacher_logits: Tensor, k: int, *, temperature: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
    """The teacher's k most likely tokens at temperature T: ``(log_probs, indices, log_rest)``.

    Args:
        teacher_logits: (..., V).
        k: 1 <= k <= V.

    Returns:
        log-probabilities (..., k), token ids (..., k), and the log of the remaining mass (...)
        (``-inf`` when k = V). Detached.
    """
    t = _check_temperature(temperature)
    vocab = teacher_logits.shape[-1]
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= vocab:
        raise ProtegeError(f"top_k must be an integer between 1 and the vocabulary size {vocab}, got {k!r}; pass e.g. --top-k 64")
    log_p = F.log_softmax(_upcast(teacher_logits.detach()) / t, dim=-1)
    values, indices = log_p.topk(k, dim=-1)
    return values, indices, _log_rest(log_p, indices)


def _log_rest(log_p: Tensor, indices: Tensor) -> Tensor:
    """log of the probability mass outside ``indices``, computed without cancellation."""
    outside = log_p.scatter(-1, indices, float("-inf"))
    return torch.logsumexp(outside, dim=-1)


def _bucket(log_p: Tensor, indices: Tensor) -> Tensor:
    """(..., V) log-probabilities -> (..., k+1): the k tokens of ``indices`` plus the rest."""
    return torch.cat([log_p.gather(-1, indices), _log_rest(log_p, indices).unsqueeze(-1)], dim=-1)


def _rows(student_logits, teacher_logits, temperature, mask, top_k):
    """Log-distributions of student and teacher over V tokens (or k+1 buckets), and the row mask."""
    t = _check_temperature(temperature)
    _check_same_shape(student_logits, teacher_logits, "logits",
                      "student and teacher must share the vocabulary (same tokenizer and output size)")
    if student_logits.dim() == 0:
        raise ProtegeError("logits must have a vocabulary dimension (..., V); got a 0-dim tensor")
    mask = _check_mask(mask, student_logits.shape[:-1], "token position")
    log_s = F.log_softmax(_upcast(student_logits) / t, dim=-1)
    if top_k is None:
        log_t = F.log_softmax(_upcast(teacher_logits.detach()) / t, dim=-1)
        return t, log_s, log_t, mask
    values, indices, log_rest = teacher_topk(teacher_logits, top_k, temperature=t)
    log_t = torch.cat([values, log_rest.unsqueeze(-1)], dim=-1)
    return t, _bucket(log_s, indices), log_t, mask


def forward_kl(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float = 1.0,
               mask: Tensor | None = None, top_k: int | None = None) -> Tensor:
    """``T**2 * mean_rows KL(softmax(t/T) || softmax(s/T))`` (Hinton et al. 2015).

    Args:
        student_logits: (..., V), e.g. (B, L, V) next-token logits.
        teacher_logits: (..., V), detached inside.
        temperature: T > 0.
        mask: optional (...) bool/0-1 selecting the rows (token positions) that count.
        top_k: compare the teacher's top-k tokens plus one rest bucket instead of all V.

    Returns:
        0-dim tensor >= 0.
    """
    t, log_s, log_t, mask = _rows(student_logits, teacher_logits, temperature, mask, top_k)
    return _masked_mean(_kl_rows(log_t, log_s), mask) * (t * t)


def reverse_kl(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float = 1.0,
               mask: Tensor | None = None, top_k: int | None = None) -> Tensor:
    """``T**2 * mean_rows KL(softmax(s/T) || softmax(t/T))``, mode-seeking (Gu et al. 2024, MiniLLM).

    Args and returns as :func:`forward_kl`.
    """
    t, log_s, log_t, mask = _rows(student_logits, teacher_logits, temperature, mask, top_k)
    return _masked_mean(_kl_rows(log_s, log_t), mask) * (t * t)


def generalized_jsd(student_logits: Tensor, teacher_logits: Tensor, *, beta: float = 0.5, temperature: float = 1.0,
                    mask: Tensor | None = None, top_k: int | None = None) -> Tensor:
    """Generalized Jensen-Shannon divergence JSD(beta) of Agarwal et al. (2024, GKD), times ``T**2``.

    ``beta KL(p_t || m) + (1 - beta) KL(p_s || m)``, ``m = beta p_t + (1 - beta) p_s``; symmetric
    at beta = 0.5 and bounded by ``T**2 log 2`` there.

    Args:
        beta: in (0, 1).
        Others as :func:`forward_kl`.

    Returns:
        0-dim tensor >= 0.
    """
    b = _check_beta(beta)
    t, log_s, log_t, mask = _rows(student_logits, teacher_logits, temperature, mask, top_k)
    return _masked_mean(_jsd_rows(log_s, log_t, b), mask) * (t * t)


def topk_divergence(student_logits: Tensor, teacher_log_probs: Tensor, teacher_indices: Tensor,
                    teacher_log_rest: Tensor | None = None, *, kind: str = "forward_kl", beta: float = 0.5,
                    temperature: float = 1.0, mask: Tensor | None = None) -> Tensor:
    """A divergence against a teacher known only by its top-k tokens (e.g. read from a cache).

    Args:
        student_logits: (..., V).
        teacher_log_probs: (..., k) teacher log-probabilities of its top-k tokens (at the
            temperature the cache was built with; ``temperature`` applies to the student).
        teacher_indices: (..., k) their token ids.
        teacher_log_rest: (...) log of the teacher's remaining mass; computed from the top-k as
            ``log(1 - sum p)`` when omitted.
        kind: ``forward_kl``, ``reverse_kl`` or ``jsd``.

    Returns:
        0-dim tensor, equal to ``forward_kl(..., top_k=k)`` (and so on) at temperature 1.
    """
    t = _check_temperature(temperature)
    if kind not in _ROWS:
        raise ProtegeError(f"unknown divergence {kind!r}; use one of {', '.join(_ROWS)}")
    if teacher_log_probs.shape != teacher_indices.shape or teacher_log_probs.shape[:-1] != student_logits.shape[:-1]:
        raise ProtegeError(f"teacher top-k shapes {tuple(teacher_log_probs.shape)} / {tuple(teacher_indices.shape)} do not "
                           f"match student logits {tuple(student_logits.shape)}; pass (..., k) tensors for the same rows")
    values = _upcast(teacher_log_probs.detach())
    if teacher_log_rest is None:
        teacher_log_rest = torch.log1p(-values.exp().sum(-1).clamp(max=1.0))
    log_t = torch.cat([values, _upcast(teacher_log_rest.detach()).unsqueeze(-1)], dim=-1)
    log_s = _bucket(F.log_softmax(_upcast(student_logits) / t, dim=-1), teacher_indices.long())
    mask = _check_mask(mask, student_logits.shape[:-1], "token position")
    rows = _jsd_rows(log_s, log_t, _check_beta(beta)) if kind == "jsd" else _ROWS[kind](log_s, log_t)
    return _masked_mean(rows, mask) * (t * t)


_ROWS = {"forward_kl": lambda s, t: _kl_rows(t, s), "reverse_kl": lambda s, t: _kl_rows(s, t), "jsd": None}

# --lm-loss NAME -> function(student_logits, teacher_logits, *, temperature, mask, top_k[, beta])
LM_LOSSES = {"forward_kl": forward_kl, "reverse_kl": reverse_kl, "jsd": generalized_jsd}
