"""Intermediate-layer losses: hidden-state and embedding matching, plus layer mapping.

Student states may be narrower than the teacher's; a projection (TinyBERT's learned W_h, see
:class:`HiddenProjection`) maps them to the teacher width first. Teacher tensors are detached.
"""

from collections.abc import Callable

import torch.nn.functional as F
from torch import Tensor, nn

from protege.errors import ProtegeError
from protege.losses.logits import _check_mask, _masked_mean, _upcast

__all__ = [
    "hidden_mse",
    "hidden_cosine",
    "embedding_mse",
    "uniform_layer_map",
    "HiddenProjection",
]


def _prepare(student: Tensor, teacher: Tensor, mask: Tensor | None,
             projection: Callable[[Tensor], Tensor] | None, what: str):
    """Project the student, check shapes against the teacher, validate the (B, L) mask."""
    teacher = teacher.detach()
    if student.dim() < 2:
        raise ProtegeError(f"{what} must have shape (..., hidden), got {tuple(student.shape)}")
    if projection is None and student.shape[-1] != teacher.shape[-1]:
        raise ProtegeError(
            f"student {what} width {student.shape[-1]} differs from teacher width {teacher.shape[-1]}; "
            f"pass a projection (e.g. HiddenProjection({student.shape[-1]}, {teacher.shape[-1]}, n)) "
            "or use a student with the teacher's hidden size"
        )
    if projection is not None:
        student = projection(student)
    if student.shape != teacher.shape:
        raise ProtegeError(
            f"student {what} shape {tuple(student.shape)}"
            f"{' (after projection)' if projection is not None else ''} does not match teacher "
            f"shape {tuple(teacher.shape)}; student and teacher need the same batch and sequence "
            "length, and the projection must output the teacher's hidden size"
        )
    mask = _check_mask(mask, student.shape[:-1], "token (the attention_mask)")
    return _upcast(student), _upcast(teacher), mask


def hidden_mse(student_hidden: Tensor, teacher_hidden: Tensor, *, mask: Tensor | None = None,
               projection: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Hidden-state MSE of TinyBERT (Jiao et al. 2020, "TinyBERT: Distilling BERT for Natural
    Language Understanding"): ``MSE(H_s W_h, H_t)``.

    Args:
        student_hidden: (B, L, Hs).
        teacher_hidden: (B, L, Ht), detached inside.
        mask: optional (B, L) bool/0-1 of valid tokens (the attention_mask); the squared error
            is averaged over valid positions and the hidden dimension.
        projection: optional callable (e.g. ``nn.Linear(Hs, Ht)``) applied to the student
            states first; required when Hs != Ht.

    Returns:
        0-dim tensor.
    """
    student, teacher, mask = _prepare(student_hidden, teacher_hidden, mask, projection, "hidden states")
    per_token = ((student - teacher) ** 2).mean(-1)
    return _masked_mean(per_token, mask)


def hidden_cosine(student_hidden: Tensor, teacher_hidden: Tensor, *, mask: Tensor | None = None,
                  projection: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Cosine embedding loss of DistilBERT (Sanh et al. 2019, "DistilBERT, a distilled version
    of BERT"): mean over valid tokens of ``1 - cos(h_s, h_t)``.

    Args:
        student_hidden: (B, L, Hs).
        teacher_hidden: (B, L, Ht), detached inside.
        mask: optional (B, L) bool/0-1 of valid tokens.
        projection: optional callable applied to the student states first; required when
            Hs != Ht.

    Returns:
        0-dim tensor in [0, 2].
    """
    student, teacher, mask = _prepare(student_hidden, teacher_hidden, mask, projection, "hidden states")
    per_token = 1.0 - F.cosine_similarity(student, teacher, dim=-1, eps=1e-8)
    return _masked_mean(per_token, mask)


def embedding_mse(student_embeddings: Tensor, teacher_embeddings: Tensor, *, mask: Tensor | None = None,
                  projection: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """Embedding-layer loss of TinyBERT (Jiao et al. 2020): ``MSE(E_s W_e, E_t)``.

    Same math as :func:`hidden_mse`, applied to the embedding-layer outputs (``hidden_states[0]``
    of a Hugging Face model) with its own projection W_e.

    Args:
        student_embeddings: (B, L, Hs).
        teacher_embeddings: (B, L, Ht), detached inside.
        mask: optional (B, L) bool/0-1 of valid tokens.
        projection: optional callable applied to the student embeddings first; required when
            Hs != Ht.

    Returns:
        0-dim tensor.
    """
    student, teacher, mask = _prepare(student_embeddings, teacher_embeddings, mask, projection, "embeddings")
    per_token = ((student - teacher) ** 2).mean(-1)
    return _masked_mean(per_token, mask)


def _check_count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtegeError(f"{name} must be an integer, got {value!r}")
    if value < 1:
        raise ProtegeError(f"{name} must be >= 1, got {value}; the model needs at least one layer")
    return value


def uniform_layer_map(num_student_layers: int, num_teacher_layers: int) -> list[int]:
    """TinyBERT's uniform layer mapping ``g(m) = m * k`` with ``k = num_teacher // num_student``
    (Jiao et al. 2020).

    Layers are 0-based transformer layers (a Hugging Face ``hidden_states`` tuple is offset by
    one because entry 0 is the embeddings). Student layer ``i`` maps to teacher layer
    ``(i + 1) * k - 1``, and the student's last layer always maps to the teacher's last layer
    (which matters when the counts do not divide).

    Examples: ``(3, 6) -> [1, 3, 5]``, ``(2, 4) -> [1, 3]``, ``(4, 4) -> [0, 1, 2, 3]``.

    Returns:
        list of ``num_student_layers`` teacher-layer indices, strictly increasing.
    """
    ns = _check_count(num_student_layers, "num_student_layers")
    nt = _check_count(num_teacher_layers, "num_teacher_layers")
    if ns > nt:
        raise ProtegeError(
            f"the student has more layers ({ns}) than the teacher ({nt}); "
            "use a student with at most as many layers as the teacher"
        )
    k = nt // ns
    mapping = [(i + 1) * k - 1 for i in range(ns)]
    mapping[-1] = nt - 1
    return mapping


class HiddenProjection(nn.Module):
    """Learned linear maps from student width to teacher width, one per mapped layer (TinyBERT's
    W_h, Jiao et al. 2020).

    ``forward(x, index)`` maps ``x`` of shape (..., student_dim) to (..., teacher_dim) with
    projection ``index``. Weights use Xavier-uniform init and zero bias.
    """

    def __init__(self, student_dim: int, teacher_dim: int, num_projections: int):
        super().__init__()
        for name, value in (("student_dim", student_dim), ("teacher_dim", teacher_dim)):
            _check_count(value, name)
        if isinstance(num_projections, bool) or not isinstance(num_projections, int) or num_projections < 0:
            raise ProtegeError(f"num_projections must be an integer >= 0, got {num_projections!r}")
        self.student_dim = student_dim
        self.teacher_dim = teacher_dim
        self.projections = nn.ModuleList(nn.Linear(student_dim, teacher_dim) for _ in range(num_projections))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for linear in self.projections:
            nn.init.xavier_uniform_(linear.weight)
            nn.init.zeros_(linear.bias)

    def forward(self, x: Tensor, index: int) -> Tensor:
        if not 0 <= index < len(self.projections):
            raise ProtegeError(
                f"projection index {index} is out of range for {len(self.projections)} projections; "
                "build HiddenProjection with one projection per mapped layer"
            )
        if x.shape[-1] != self.student_dim:
            raise ProtegeError(
                f"input width {x.shape[-1]} does not match the projection's student_dim {self.student_dim}; "
                "build HiddenProjection with the student's hidden size"
            )
        return self.projections[index](x)

    def extra_repr(self) -> str:
        return f"student_dim={self.student_dim}, teacher_dim={self.teacher_dim}, num_projections={len(self.projections)}"
