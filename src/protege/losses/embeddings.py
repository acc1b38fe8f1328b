"""Sentence-embedding distillation losses: the student reproduces the teacher's pooled embeddings.

Reimers & Gurevych (2020), "Making Monolingual Sentence Embeddings Multilingual using Knowledge
Distillation", train the student with the MSE to the teacher's sentence embeddings; the cosine
form ignores the norm, which is what cosine-similarity search and STS scoring look at. Inputs
are (B, D) sentence embeddings; the teacher side is detached inside.
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from protege.errors import ProtegeError
from protege.losses.logits import _upcast

__all__ = ["sentence_mse", "sentence_cosine"]


def _pair(student: Tensor, teacher: Tensor) -> tuple[Tensor, Tensor]:
    teacher = teacher.detach()
    if student.dim() != 2 or teacher.dim() != 2:
        raise ProtegeError(f"sentence embeddings must have shape (batch, dim), got {tuple(student.shape)} and "
                           f"{tuple(teacher.shape)}; pool the token states first")
    if student.shape != teacher.shape:
        raise ProtegeError(f"student embeddings {tuple(student.shape)} do not match the teacher's {tuple(teacher.shape)}; "
                           "give the student a projection to the teacher's dimension (a Dense layer)")
    return _upcast(student), _upcast(teacher)


def sentence_mse(student_embeddings: Tensor, teacher_embeddings: Tensor) -> Tensor:
    """Mean squared error between sentence embeddings (Reimers & Gurevych 2020).

    Args:
        student_embeddings: (B, D).
        teacher_embeddings: (B, D), detached inside.

    Returns:
        0-dim tensor: mean over batch and dimensions (``nn.MSELoss`` convention, so for unit
        vectors it is ``(2 - 2 cos) / D``).
    """
    student, teacher = _pair(student_embeddings, teacher_embeddings)
    return ((student - teacher) ** 2).mean()


def sentence_cosine(student_embeddings: Tensor, teacher_embeddings: Tensor) -> Tensor:
    """Mean of ``1 - cos(e_s, e_t)`` over the batch: direction only, in [0, 2].

    Args:
        student_embeddings: (B, D).
        teacher_embeddings: (B, D), detached inside.

    Returns:
        0-dim tensor.
    """
    student, teacher = _pair(student_embeddings, teacher_embeddings)
    return (1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)).mean()
