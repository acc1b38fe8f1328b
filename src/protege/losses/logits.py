"""Output-layer distillation losses: soft targets, KL, hard labels and logit/regression MSE.

All losses are pure functions returning a 0-dim tensor (mean reduction). Teacher tensors are
detached inside every loss, so gradients reach only the student.
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from protege.errors import ProtegeError

__all__ = [
    "soft_cross_entropy",
    "kl_divergence",
    "hard_cross_entropy",
    "logits_mse",
    "regression_mse",
    "sigmoid_kl_divergence",
    "multilabel_bce",
]


# ---------------------------------------------------------------------------------------------
# Shared helpers (also used by hidden.py and attention.py).


def _upcast(x: Tensor) -> Tensor:
    # fp16/bf16 softmax and squared errors lose too much precision; compute in float32.
    return x if x.dtype in (torch.float32, torch.float64) else x.float()


def _zero(reference: Tensor) -> Tensor:
    """A 0-dim zero that stays attached to ``reference``'s graph (backward still works)."""
    return reference.sum() * 0


def _check_temperature(temperature: float) -> float:
    try:
        t = float(temperature)
    except (TypeError, ValueError):
        raise ProtegeError(f"temperature must be a number, got {temperature!r}; pass e.g. --temperature 2.0") from None
    if not math.isfinite(t) or t <= 0:
        raise ProtegeError(f"temperature must be a finite number > 0, got {temperature!r}; use e.g. --temperature 2.0")
    return t


def _check_same_shape(student: Tensor, teacher: Tensor, what: str, fix: str) -> None:
    if student.shape != teacher.shape:
        raise ProtegeError(
            f"student {what} shape {tuple(student.shape)} does not match teacher {what} shape "
            f"{tuple(teacher.shape)}; {fix}"
        )


def _check_mask(mask: Tensor | None, shape: torch.Size, what: str) -> Tensor | None:
    """Validate a row mask against the expected leading ``shape``; return it as bool."""
    if mask is None:
        return None
    if not isinstance(mask, Tensor):
        mask = torch.as_tensor(mask)
    if mask.shape != shape:
        raise ProtegeError(
            f"mask shape {tuple(mask.shape)} does not match the expected shape {tuple(shape)}; "
            f"pass a mask with one entry per {what}"
        )
    return mask.bool()


def _masked_mean(values: Tensor, mask: Tensor | None) -> Tensor:
    """Mean of ``values`` over entries where ``mask`` (same leading shape, bool) is true.

    Trailing dims of ``values`` beyond the mask are averaged too. An empty selection gives a
    graph-attached zero instead of NaN, so a batch without selected rows is harmless.
    """
    if mask is None:
        return values.mean() if values.numel() else _zero(values)
    selected = values[mask.to(values.device)]
    if selected.numel() == 0:
        return _zero(values)
    return selected.mean()


# ---------------------------------------------------------------------------------------------
# Soft-target losses.


def _soft_inputs(student_logits, teacher_logits, temperature, mask):
    t = _check_temperature(temperature)
    _check_same_shape(
        student_logits, teacher_logits, "logits",
        "the student and teacher must share the same label set (num_labels / vocabulary)",
    )
    if student_logits.dim() == 0:
        raise ProtegeError("logits must have a class dimension (..., C); got a 0-dim tensor")
    mask = _check_mask(mask, student_logits.shape[:-1], "logits row")
    log_p_s = F.log_softmax(_upcast(student_logits) / t, dim=-1)
    log_p_t = F.log_softmax(_upcast(teacher_logits.detach()) / t, dim=-1)
    return t, log_p_s, log_p_t, mask


def soft_cross_entropy(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float = 1.0,
                       mask: Tensor | None = None) -> Tensor:
    """Soft-target cross-entropy of Hinton, Vinyals & Dean (2015), "Distilling the Knowledge in
    a Neural Network".

    ``T**2 * mean_rows( -sum_c softmax(t/T)_c * log_softmax(s/T)_c )``. The ``T**2`` factor
    keeps gradient magnitudes roughly independent of the temperature.

    Args:
        student_logits: (..., C).
        teacher_logits: (..., C), detached inside.
        temperature: T > 0.
        mask: optional (...) bool/0-1 tensor selecting the rows that count (e.g. masked-LM
            positions); the mean is over selected rows, and no selected rows gives 0.

    Returns:
        0-dim tensor.
    """
    t, log_p_s, log_p_t, mask = _soft_inputs(student_logits, teacher_logits, temperature, mask)
    p_t = log_p_t.exp()
    # where(): a zero teacher probability against a -inf student log-prob must give 0, not NaN.
    per_row = -torch.where(p_t > 0, p_t * log_p_s, torch.zeros_like(log_p_s)).sum(-1)
    return _masked_mean(per_row, mask) * (t * t)


def kl_divergence(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float = 1.0,
                  mask: Tensor | None = None) -> Tensor:
    """KL(p_teacher || p_student) at temperature T, times ``T**2`` (Hinton et al. 2015).

    Equals :func:`soft_cross_entropy` minus the teacher's entropy (same gradient, but zero when
    student and teacher agree).

    Args:
        student_logits: (..., C).
        teacher_logits: (..., C), detached inside.
        temperature: T > 0.
        mask: optional (...) bool/0-1 tensor selecting the rows that count.

    Returns:
        0-dim tensor.
    """
    t, log_p_s, log_p_t, mask = _soft_inputs(student_logits, teacher_logits, temperature, mask)
    p_t = log_p_t.exp()
    terms = torch.where(p_t > 0, p_t * (log_p_t - log_p_s), torch.zeros_like(log_p_s))
    return _masked_mean(terms.sum(-1), mask) * (t * t)


def sigmoid_kl_divergence(student_logits: Tensor, teacher_logits: Tensor, *, temperature: float = 1.0,
                          mask: Tensor | None = None) -> Tensor:
    """Multi-label KD: per-label binary KL(Bernoulli(sigmoid(t/T)) || Bernoulli(sigmoid(s/T))), times ``T**2``.

    A multi-label head scores each label independently (its probabilities do not sum to one), so
    the softmax KD of Hinton et al. (2015) does not apply; each label is a binary problem instead
    (the one-versus-all logits distillation of Yang et al. 2023, "Multi-Label Knowledge
    Distillation", ICCV, arXiv:2308.06453), with Hinton's temperature and ``T**2`` scaling. Like
    :func:`kl_divergence` it equals the soft-target binary cross-entropy minus the teacher's
    entropy: the same gradient, zero when the student matches.

    Args:
        student_logits: (..., L), one logit per label.
        teacher_logits: (..., L), detached inside.
        temperature: T > 0.
        mask: optional (...) bool/0-1 tensor selecting the rows that count.

    Returns:
        0-dim tensor: the mean over selected rows and labels.
    """
    t = _check_temperature(temperature)
    _check_same_shape(student_logits, teacher_logits, "logits", "the student and teacher must share the same labels (num_labels)")
    if student_logits.dim() == 0:
        raise ProtegeError("logits must have a label dimension (..., L); got a 0-dim tensor")
    mask = _check_mask(mask, student_logits.shape[:-1], "logits row")
    s, z = _upcast(student_logits) / t, _upcast(teacher_logits.detach()) / t
    p_t = torch.sigmoid(z)
    # log-sigmoid on both sides: log p and log(1 - p) stay finite for large logits
    terms = p_t * (F.logsigmoid(z) - F.logsigmoid(s)) + (1 - p_t) * (F.logsigmoid(-z) - F.logsigmoid(-s))
    return _masked_mean(terms.mean(-1), mask) * (t * t)


# ---------------------------------------------------------------------------------------------
# Hard-label and regression losses.


def hard_cross_entropy(student_logits: Tensor, labels: Tensor, *, ignore_index: int = -100) -> Tensor:
    """Plain cross-entropy with gold integer labels (the "hard" term of Hinton et al. 2015).

    Args:
        student_logits: (..., C).
        labels: (...) integer class ids; entries equal to ``ignore_index`` are skipped.

    Returns:
        0-dim tensor; 0 (graph-attached) if every label is ignored.
    """
    if student_logits.dim() == 0:
        raise ProtegeError("logits must have a class dimension (..., C); got a 0-dim tensor")
    if labels.shape != student_logits.shape[:-1]:
        raise ProtegeError(
            f"labels shape {tuple(labels.shape)} does not match logits shape {tuple(student_logits.shape)} "
            "without its class dimension; pass one integer label per logits row"
        )
    if labels.is_floating_point() or labels.is_complex() or labels.dtype == torch.bool:
        raise ProtegeError(
            f"classification labels must be integer class ids, got dtype {labels.dtype}; "
            "map label names to ids (or use regression_mse for float targets)"
        )
    num_classes = student_logits.shape[-1]
    flat_logits = _upcast(student_logits).reshape(-1, num_classes)
    flat_labels = labels.reshape(-1).to(device=student_logits.device, dtype=torch.long)
    if not (flat_labels != ignore_index).any():
        return _zero(flat_logits)
    return F.cross_entropy(flat_logits, flat_labels, ignore_index=ignore_index)


def multilabel_bce(student_logits: Tensor, targets: Tensor) -> Tensor:
    """Binary cross-entropy with logits against gold multi-hot labels (the hard term for multi-label heads).

    Args:
        student_logits: (N, L).
        targets: (N, L) of 0/1 (or soft values in [0, 1]); cast to float.

    Returns:
        0-dim tensor: the mean over examples and labels.
    """
    if targets.shape != student_logits.shape:
        raise ProtegeError(
            f"multi-label targets shape {tuple(targets.shape)} does not match logits shape {tuple(student_logits.shape)}; "
            "pass one 0/1 entry per label (multi-hot)"
        )
    logits = _upcast(student_logits)
    if logits.numel() == 0:
        return _zero(logits)
    return F.binary_cross_entropy_with_logits(logits, targets.detach().to(device=logits.device, dtype=logits.dtype))


def _align_regression(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    # Regression heads emit (N, 1) while labels are (N,): drop a trailing singleton to align.
    if a.shape != b.shape:
        if a.dim() == b.dim() + 1 and a.shape[-1] == 1:
            a = a.squeeze(-1)
        elif b.dim() == a.dim() + 1 and b.shape[-1] == 1:
            b = b.squeeze(-1)
    return a, b


def logits_mse(student_logits: Tensor, teacher_logits: Tensor, *, mask: Tensor | None = None) -> Tensor:
    """Mean squared error between student and teacher logits (Ba & Caruana 2014, "Do Deep Nets
    Really Need to be Deep?"; used for logit matching by Tang et al. 2019 and for regression
    teachers).

    Args:
        student_logits: (..., C), or (N, 1) / (N,) for regression (a trailing singleton dim on
            either side is dropped to align them).
        teacher_logits: same shape, detached inside.
        mask: optional bool/0-1 tensor matching the leading dims of the logits (e.g. (N,) for
            (N, C)), selecting rows; the mean is over every element of the selected rows.

    Returns:
        0-dim tensor.
    """
    student, teacher = _align_regression(student_logits, teacher_logits.detach())
    _check_same_shape(
        student, teacher, "logits",
        "the student and teacher must share the same label set (num_labels / vocabulary)",
    )
    if mask is not None:
        if not isinstance(mask, Tensor):
            mask = torch.as_tensor(mask)
        if mask.dim() > student.dim() or student.shape[: mask.dim()] != mask.shape:
            raise ProtegeError(
                f"mask shape {tuple(mask.shape)} does not match the leading dims of logits shape "
                f"{tuple(student.shape)}; pass one mask entry per logits row"
            )
        mask = mask.bool()
    sq = (_upcast(student) - _upcast(teacher)) ** 2
    return _masked_mean(sq, mask)


def regression_mse(predictions: Tensor, targets: Tensor) -> Tensor:
    """Mean squared error against gold float labels (the standard regression loss, e.g. STS-B).

    Args:
        predictions: (N, 1) or (N,).
        targets: (N,) (or (N, 1)); integer targets are cast to float.

    Returns:
        0-dim tensor.
    """
    preds, gold = _align_regression(predictions, targets.detach())
    if preds.shape != gold.shape:
        raise ProtegeError(
            f"regression predictions shape {tuple(predictions.shape)} does not match targets shape "
            f"{tuple(targets.shape)}; a regression model needs num_labels=1 and one float label per example"
        )
    preds = _upcast(preds)
    gold = gold.to(device=preds.device, dtype=preds.dtype)
    if preds.numel() == 0:
        return _zero(preds)
    return F.mse_loss(preds, gold)
