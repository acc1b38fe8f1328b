"""Self-attention distillation losses (TinyBERT MSE, MiniLM KL).

Inputs are attention probabilities of shape (B, H, L, L), as returned by Hugging Face models
with ``output_attentions=True``. Teacher tensors are detached inside every loss.
"""

import math

import torch
from torch import Tensor

from protege.errors import ProtegeError
from protege.losses.logits import _masked_mean, _upcast

__all__ = ["attention_mse", "attention_kl"]


def _prepare(student: Tensor, teacher: Tensor, mask: Tensor | None):
    """Check (B, H, L, L) shapes and turn a (B, L) token mask into a (B, 1, L) query mask and a
    (B, 1, 1, L) key mask (bool), or None for both."""
    teacher = teacher.detach()
    for name, t in (("student", student), ("teacher", teacher)):
        if t.dim() != 4:
            raise ProtegeError(
                f"{name} attention must have shape (batch, heads, query, key), got {tuple(t.shape)}; "
                "pass one layer's attentions from output_attentions=True"
            )
    if student.shape[1] != teacher.shape[1]:
        raise ProtegeError(
            f"student has {student.shape[1]} attention heads but the teacher has {teacher.shape[1]}; "
            "set --alpha-attn 0 or use a student with the same number of heads"
        )
    if student.shape != teacher.shape:
        raise ProtegeError(
            f"student attention shape {tuple(student.shape)} does not match teacher attention shape "
            f"{tuple(teacher.shape)}; feed student and teacher the same batch"
        )
    if mask is None:
        return _upcast(student), _upcast(teacher), None, None
    if not isinstance(mask, Tensor):
        mask = torch.as_tensor(mask)
    b, _, lq, lk = student.shape
    if lq != lk or mask.shape != (b, lk):
        raise ProtegeError(
            f"attention mask shape {tuple(mask.shape)} does not fit attention shape {tuple(student.shape)}; "
            "pass the (batch, seq_len) attention_mask of the self-attention inputs"
        )
    mask = mask.to(device=student.device).bool()
    return _upcast(student), _upcast(teacher), mask[:, None, :], mask[:, None, None, :]


def attention_mse(student_attention: Tensor, teacher_attention: Tensor, *,
                  mask: Tensor | None = None) -> Tensor:
    """Attention-distribution MSE of TinyBERT (Jiao et al. 2020, "TinyBERT: Distilling BERT for
    Natural Language Understanding").

    Args:
        student_attention: (B, H, L, L) attention probabilities.
        teacher_attention: (B, H, L, L), detached inside; the head counts must match.
        mask: optional (B, L) bool/0-1 of valid tokens; only (query, key) pairs where both are
            valid count, and the mean is over those entries across batch and heads.

    Returns:
        0-dim tensor.
    """
    student, teacher, query_mask, key_mask = _prepare(student_attention, teacher_attention, mask)
    sq = (student - teacher) ** 2
    if query_mask is None:
        return _masked_mean(sq, None)
    pairs = (query_mask[..., None] & key_mask).expand_as(sq)
    return _masked_mean(sq, pairs)


def attention_kl(student_attention: Tensor, teacher_attention: Tensor, *, mask: Tensor | None = None,
                 eps: float = 1e-12) -> Tensor:
    """Self-attention distribution transfer of MiniLM (Wang et al. 2020, "MiniLM: Deep
    Self-Attention Distillation for Task-Agnostic Compression of Pre-Trained Transformers"):
    ``KL(A_teacher || A_student)`` over the key dimension.

    Args:
        student_attention: (B, H, L, L) attention probabilities.
        teacher_attention: (B, H, L, L), detached inside; the head counts must match.
        mask: optional (B, L) bool/0-1 of valid tokens; padded keys are dropped from each row's
            sum (models give them ~0 probability anyway) and padded queries are not counted.
        eps: added inside the logs so zero probabilities stay finite; must be > 0.

    Returns:
        0-dim tensor: mean over valid (batch, head, query) rows of the per-row KL.
    """
    if not isinstance(eps, (int, float)) or isinstance(eps, bool) or not math.isfinite(eps) or eps <= 0:
        raise ProtegeError(f"eps must be a small number > 0, got {eps!r}; keep the default 1e-12")
    student, teacher, query_mask, key_mask = _prepare(student_attention, teacher_attention, mask)
    # Same eps on both sides keeps the loss exactly 0 for identical inputs.
    terms = teacher * (torch.log(teacher + eps) - torch.log(student + eps))
    if key_mask is not None:
        terms = terms.masked_fill(~key_mask, 0.0)
    per_row = terms.sum(-1)
    if query_mask is None:
        return _masked_mean(per_row, None)
    return _masked_mean(per_row, query_mask.expand_as(per_row))
