"""Attention transfer across different head counts.

TinyBERT's attention MSE (:func:`protege.losses.attention_mse`, Jiao et al. 2020) compares
head h of the student with head h of the teacher, so it needs equal head counts. A narrower
student often cannot have them (hidden 256 is not divisible by a MiniLM teacher's 12 heads).
Here the head-averaged attention distributions are compared instead: still a distribution over
keys for every query, defined for any pair of head counts, and equal to the per-head MSE's
target when every head attends alike. It is our choice of fallback, not a published recipe.
"""

from __future__ import annotations

import torch
from torch import Tensor

from protege.errors import ProtegeError
from protege.losses.logits import _masked_mean, _upcast

__all__ = ["head_mean_attention_mse"]


def head_mean_attention_mse(student_attention: Tensor, teacher_attention: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """MSE between head-averaged attention maps.

    Args:
        student_attention: (B, Hs, L, L) attention probabilities.
        teacher_attention: (B, Ht, L, L), detached inside; Hs and Ht may differ.
        mask: optional (B, L) bool/0-1 of valid tokens; only (query, key) pairs where both are
            valid count.

    Returns:
        0-dim tensor (mean over valid (batch, query, key) entries).
    """
    teacher_attention = teacher_attention.detach()
    for name, t in (("student", student_attention), ("teacher", teacher_attention)):
        if t.dim() != 4 or t.shape[-1] != t.shape[-2]:
            raise ProtegeError(f"{name} attention must have shape (batch, heads, query, key), got {tuple(t.shape)}")
    if student_attention.shape[0] != teacher_attention.shape[0] or student_attention.shape[2:] != teacher_attention.shape[2:]:
        raise ProtegeError(f"student attention {tuple(student_attention.shape)} and teacher attention "
                           f"{tuple(teacher_attention.shape)} differ in batch or length; feed both the same batch")
    s = _upcast(student_attention).mean(1)
    t = _upcast(teacher_attention).mean(1)
    sq = (s - t) ** 2
    if mask is None:
        return _masked_mean(sq, None)
    mask = torch.as_tensor(mask).to(s.device).bool()
    if mask.shape != s.shape[:2]:
        raise ProtegeError(f"attention mask shape {tuple(mask.shape)} does not fit attention shape "
                           f"{tuple(student_attention.shape)}; pass the (batch, seq_len) attention_mask")
    return _masked_mean(sq, mask[:, :, None] & mask[:, None, :])
