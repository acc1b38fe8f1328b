"""The task-distillation objective: which teacher outputs are needed and how loss terms combine.

total = alpha_kd * KD(T) + alpha_ce * CE(gold) + alpha_mse * MSE(logits)
      + alpha_hidden * hidden(mapped layers) + alpha_attn * attention(mapped layers)
      + alpha_embed * embedding-layer MSE
(Hinton et al. 2015; Sanh et al. 2019; Jiao et al. 2020.) For regression teachers the soft
target is the teacher's prediction itself, so KD becomes an MSE on the outputs. KD is computed as
KL(teacher || student): the same gradient as Hinton's soft-target cross-entropy, minus the
teacher's entropy, so the logged value is 0 when the student matches.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from protege import losses
from protege.errors import ProtegeError

__all__ = ["Objective", "make_objective", "distillation_losses"]


@dataclass(frozen=True)
class Objective:
    """Loss weights plus the student-to-teacher layer mapping (0-based teacher block per student block)."""

    alpha_kd: float = 1.0
    alpha_ce: float = 0.0
    alpha_mse: float = 0.0
    alpha_hidden: float = 0.0
    alpha_attn: float = 0.0
    alpha_embed: float = 0.0
    temperature: float = 2.0
    hidden_loss: str = "mse"
    layer_map: tuple[int, ...] = ()
    problem_type: str = "single_label_classification"

    @property
    def needs_hidden_states(self) -> bool:
        """Whether teacher and student must return hidden states."""
        return self.alpha_hidden > 0 or self.alpha_embed > 0

    @property
    def needs_attentions(self) -> bool:
        """Whether teacher and student must return attention maps (eager attention)."""
        return self.alpha_attn > 0


def make_objective(cfg, *, problem_type: str, layer_map: list[int]) -> Objective:
    """An :class:`Objective` from a :class:`~protege.recipes.distill.config.DistillConfig`."""
    return Objective(
        alpha_kd=cfg.alpha_kd, alpha_ce=cfg.alpha_ce, alpha_mse=cfg.alpha_mse, alpha_hidden=cfg.alpha_hidden,
        alpha_attn=cfg.alpha_attn, alpha_embed=cfg.alpha_embed, temperature=cfg.temperature,
        hidden_loss=cfg.hidden_loss, layer_map=tuple(layer_map), problem_type=problem_type,
    )


def distillation_losses(student_out, teacher_out, batch: dict, objective: Objective, projection=None) -> dict[str, torch.Tensor]:
    """Every weighted loss term plus ``"loss"``, their sum.

    ``student_out``/``teacher_out`` are HF model outputs (``logits``; ``hidden_states`` and
    ``attentions`` when the objective needs them); ``batch`` holds ``attention_mask`` and,
    for the hard-label term, ``labels``. ``projection`` maps student widths to the teacher's
    (:class:`protege.losses.HiddenProjection`; index 0 for embeddings, i+1 for block i).
    """
    o = objective
    s_logits, t_logits = student_out.logits.float(), teacher_out.logits.float()
    regression = o.problem_type == "regression"
    terms: dict[str, torch.Tensor] = {}
    if o.alpha_kd:
        terms["kd"] = losses.logits_mse(s_logits, t_logits) if regression else \
            losses.kl_divergence(s_logits, t_logits, temperature=o.temperature)
    if o.alpha_ce:
        if "labels" not in batch:
            raise ProtegeError("--alpha-ce needs gold labels in the training data; set --alpha-ce 0 or add a label column")
        labels = batch["labels"]
        terms["ce"] = losses.regression_mse(s_logits, labels.float()) if regression else losses.hard_cross_entropy(s_logits, labels)
    if o.alpha_mse:
        terms["mse"] = losses.logits_mse(s_logits, t_logits)
    mask = batch["attention_mask"]
    project = (lambda i: (lambda x: projection(x, i))) if projection is not None else (lambda i: None)
    if o.alpha_embed:
        terms["embed"] = losses.embedding_mse(student_out.hidden_states[0], teacher_out.hidden_states[0], mask=mask, projection=project(0))
    if o.alpha_hidden:
        fn = losses.hidden_cosine if o.hidden_loss == "cosine" else losses.hidden_mse
        per_layer = [fn(student_out.hidden_states[i + 1], teacher_out.hidden_states[t + 1], mask=mask, projection=project(i + 1))
                     for i, t in enumerate(o.layer_map)]
        terms["hidden"] = torch.stack(per_layer).mean()
    if o.alpha_attn:
        per_layer = [losses.attention_mse(student_out.attentions[i], teacher_out.attentions[t], mask=mask)
                     for i, t in enumerate(o.layer_map)]
        terms["attn"] = torch.stack(per_layer).mean()
    weights = {"kd": o.alpha_kd, "ce": o.alpha_ce, "mse": o.alpha_mse, "hidden": o.alpha_hidden, "attn": o.alpha_attn, "embed": o.alpha_embed}
    terms["loss"] = sum(weights[k] * v for k, v in terms.items())
    return terms
