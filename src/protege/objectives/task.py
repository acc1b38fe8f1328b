"""The task-distillation objective: which teacher outputs are needed and how loss terms combine.

total = alpha_kd * KD(T) + alpha_ce * CE(gold) + alpha_mse * MSE(logits)
      + alpha_hidden * hidden(mapped layers) + alpha_attn * attention(mapped layers)
      + alpha_embed * embedding-layer MSE
(Hinton et al. 2015; Sanh et al. 2019; Jiao et al. 2020.) For regression teachers the soft
target is the teacher's prediction itself, so KD becomes an MSE on the outputs. KD is computed as
KL(teacher || student): the same gradient as Hinton's soft-target cross-entropy, minus the
teacher's entropy, so the logged value is 0 when the student matches. Multi-label teachers
(independent sigmoid outputs) get the per-label binary KL (Yang et al. 2023) and a BCE hard term.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from protege import losses
from protege.errors import ProtegeError
from protege.objectives.layers import mapped_attention_loss, mapped_hidden_loss, projector

__all__ = ["Objective", "TaskObjective", "make_objective", "distillation_losses"]


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
    def weights(self) -> dict[str, float]:
        """``{term: weight}`` of every loss term this objective can produce."""
        return {"kd": self.alpha_kd, "ce": self.alpha_ce, "mse": self.alpha_mse, "hidden": self.alpha_hidden,
                "attn": self.alpha_attn, "embed": self.alpha_embed}

    @property
    def needs_hidden_states(self) -> bool:
        """Whether teacher and student must return hidden states."""
        return self.alpha_hidden > 0 or self.alpha_embed > 0

    @property
    def needs_attentions(self) -> bool:
        """Whether teacher and student must return attention maps (eager attention)."""
        return self.alpha_attn > 0


def make_objective(cfg, *, problem_type: str, layer_map: list[int]) -> Objective:
    """An :class:`Objective` from the task options (:class:`~protege.objectives.configs.TaskLosses`)."""
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
    multi_label = o.problem_type == "multi_label_classification"
    terms: dict[str, torch.Tensor] = {}
    if o.alpha_kd:
        if regression:
            terms["kd"] = losses.logits_mse(s_logits, t_logits)
        elif multi_label:
            terms["kd"] = losses.sigmoid_kl_divergence(s_logits, t_logits, temperature=o.temperature)
        else:
            terms["kd"] = losses.kl_divergence(s_logits, t_logits, temperature=o.temperature)
    if o.alpha_ce:
        if "labels" not in batch:
            raise ProtegeError("--alpha-ce needs gold labels in the training data; set --alpha-ce 0 or add a label column")
        labels = batch["labels"]
        if regression:
            terms["ce"] = losses.regression_mse(s_logits, labels.float())
        elif multi_label:
            terms["ce"] = losses.multilabel_bce(s_logits, labels)
        else:
            terms["ce"] = losses.hard_cross_entropy(s_logits, labels)
    if o.alpha_mse:
        terms["mse"] = losses.logits_mse(s_logits, t_logits)
    mask = batch["attention_mask"]
    if o.alpha_embed:
        terms["embed"] = losses.embedding_mse(student_out.hidden_states[0], teacher_out.hidden_states[0], mask=mask,
                                              projection=projector(projection)(0))
    if o.alpha_hidden:
        terms["hidden"] = mapped_hidden_loss(student_out.hidden_states, teacher_out.hidden_states, list(o.layer_map), mask,
                                             projection=projection, kind=o.hidden_loss)
    if o.alpha_attn:
        terms["attn"] = mapped_attention_loss(student_out.attentions, teacher_out.attentions, list(o.layer_map), mask)
    terms["loss"] = sum(o.weights[k] * v for k, v in terms.items())
    return terms


class TaskObjective:
    """Task distillation behind the objective contract (:mod:`protege.objectives.registry`).

    Loads the classifier teacher (or, for several ``--teacher``, their :class:`~protege.models.ensemble.Ensemble`,
    whose first member the student is built from), builds the student (:func:`~protege.objectives.pairing.build_student`)
    and computes :func:`distillation_losses`; teacher outputs come from the live teacher or, after
    :meth:`attach_cache`, from the teacher-output cache.
    """

    kind = "task"
    packs = False
    primary = "agreement"
    pipeline_tag = "text-classification"
    auto_class = "AutoModelForSequenceClassification"

    def __init__(self, cfg):
        from protege.models import load_classifier, load_tokenizer, problem_type_of
        from protege.objectives.pairing import build_student

        self.cfg = cfg
        if isinstance(cfg.teacher, str):
            self.teacher = load_classifier(cfg.teacher, attn_implementation="eager" if cfg.losses.alpha_attn > 0 else None,
                                           multi_label=True)
            self.tokenizer = load_tokenizer(cfg.teacher)
            self.soft_teacher, first = self.teacher, self.teacher  # soft_teacher: what the loss (and the cache) read
        else:  # several --teacher: their ensemble answers; the student is built from the first member
            from protege.models.ensemble import load_ensemble

            self.teacher, self.tokenizer = load_ensemble(cfg.teacher, weights=cfg.ensemble_weights, mode=cfg.ensemble,
                                                         multi_label=True)
            # KD at T needs the members' distributions averaged at T, not the T=1 mean softened (models/ensemble.py)
            self.soft_teacher, first = self.teacher.softened(cfg.losses.temperature), self.teacher.members[0]
        self.problem_type = problem_type_of(self.teacher.config, multi_label=True)
        torch.manual_seed(cfg.seed)  # random-init students and new heads follow --seed
        built = build_student(cfg, first, self.tokenizer)
        self.student, self.extra, self.description = built.model, built.projection, built.description
        self.lora = built.lora  # a LoRA student: its settings and parameter counts (metrics.json "student")
        self.layer_map = list(built.layer_map)
        self.objective = make_objective(cfg.losses, problem_type=self.problem_type, layer_map=self.layer_map)
        self.weights = {k: v for k, v in self.objective.weights.items() if v}
        self.losses_text = ", ".join(f"{k}={v}" for k, v in self.weights.items())
        self.cache = None

    @property
    def outputs(self) -> dict:
        """What the forward passes must return for the loss terms."""
        return dict(output_hidden_states=self.objective.needs_hidden_states, output_attentions=self.objective.needs_attentions)

    def cache_spec(self):
        """The teacher outputs a cache must hold for these loss terms."""
        from protege.objectives.cache import CacheSpec

        o = self.objective
        return CacheSpec.for_losses(alpha_hidden=o.alpha_hidden, alpha_attn=o.alpha_attn, alpha_embed=o.alpha_embed,
                                    layer_map=o.layer_map)

    def attach_cache(self, cache) -> None:
        """Read teacher outputs from ``cache`` (features carry their ``index``) instead of running the teacher."""
        self.cache = cache

    def prepare(self, features: list[dict]) -> None:
        """Nothing to precompute."""

    def loss(self, student, batch: dict) -> dict:
        """Weighted loss terms for one batch (the trainer's ``loss_fn``)."""
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
        if self.cache is not None:
            t_out = self.cache.outputs(batch["index"], inputs["input_ids"].shape[1], inputs["input_ids"].device)
        else:
            with torch.inference_mode():
                t_out = self.soft_teacher(**inputs, **self.outputs)
        return distillation_losses(student(**inputs, **self.outputs), t_out, batch, self.objective, self.extra)

    def eval_features(self, features: list[dict]) -> list[dict]:
        return features

    def held_out(self, model, features: list[dict], device, *, with_teacher: bool = True) -> dict:
        """Agreement (and KL) of ``model`` with the teacher on ``features``; task metrics when they carry labels."""
        from protege.evaluation.metrics import agreement, task_metrics
        from protege.evaluation.predict import predict

        pad = self.tokenizer.pad_token_id or 0
        logits = predict(model, features, pad_token_id=pad, device=device)
        out = {"agreement": agreement(logits, predict(self.teacher, features, pad_token_id=pad, device=device),
                                      self.problem_type)} if with_teacher else {}
        if features and "labels" in features[0]:
            out["model"] = task_metrics(logits, [f["labels"] for f in features], self.problem_type)
        return out

    def merge_lora(self) -> None:
        """After training, fold a LoRA student's adapters into its weights: a stock transformers model again."""
        if self.lora is not None:
            from protege.models.lora import merge_lora

            self.student = merge_lora(self.student)

    def save(self, folder) -> None:
        """A save_pretrained classifier folder (AutoModelForSequenceClassification)."""
        student = self.student
        if hasattr(student, "merge_and_unload"):  # a LoRA student mid-training: write a merged copy, keep training the adapters
            import copy

            from protege.models.lora import merge_lora

            student = merge_lora(copy.deepcopy(student))
        student.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
