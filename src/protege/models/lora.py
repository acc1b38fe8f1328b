"""LoRA students: train low-rank adapters (and the classifier head) instead of every weight, then merge them.

LoRA (Hu et al. 2021, "LoRA: Low-Rank Adaptation of Large Language Models") freezes a weight
``W`` and learns ``W + (alpha / r) * B @ A`` with ``A`` (r x in) and ``B`` (out x r), so a large
student distils for the memory of its adapters' optimizer state. :func:`add_lora` wraps a
``...ForSequenceClassification`` student with ``peft`` (the ``peft`` extra); its head stays fully
trainable (peft's ``modules_to_save``), because a new or copied head must learn the teacher's
labels. :func:`merge_lora` folds the adapters back into ``W``: the result is a stock
transformers model, saved with ``save_pretrained`` and loaded with ``AutoModelForSequenceClassification``.
"""

from __future__ import annotations

from protege.errors import ProtegeError
from protege.utils.extras import require_extra

__all__ = ["add_lora", "merge_lora", "parameter_split"]


def _head_modules(model) -> list[str]:
    """The top-level modules outside the backbone that hold weights: the head (classifier, pre_classifier, score)."""
    prefix = getattr(model, "base_model_prefix", "")
    return [name for name, child in model.named_children() if name != prefix and any(True for _ in child.parameters())]


def _linear_names(model) -> list[str]:
    """Leaf names of the backbone's Linear layers (what ``--student-lora-target`` may name)."""
    import torch

    prefix = getattr(model, "base_model_prefix", "")
    backbone = getattr(model, prefix, model)
    return sorted({name.rsplit(".", 1)[-1] for name, m in backbone.named_modules() if isinstance(m, torch.nn.Linear)})


def add_lora(model, *, r: int, alpha: float | None = None, target: str | list[str] | None = None):
    """``model`` (a sequence classifier) wrapped by peft: LoRA adapters of rank ``r`` on ``target``, plus a trainable head.

    ``alpha`` defaults to ``2 * r``; ``target`` (names of Linear layers, e.g. ``"query,value"``)
    defaults to peft's choice for the architecture. Only adapters and head require grad, so the
    trainer's optimizer (which takes ``requires_grad`` parameters) trains nothing else.
    """
    require_extra("peft", "peft", what="a LoRA student (--student-lora-r)")
    from peft import LoraConfig, TaskType, get_peft_model

    if isinstance(target, str):
        target = [t.strip() for t in target.split(",") if t.strip()]
    config = LoraConfig(task_type=TaskType.SEQ_CLS, r=r, lora_alpha=alpha if alpha is not None else 2 * r,
                        target_modules=list(target) if target else None, lora_dropout=0.0,
                        modules_to_save=_head_modules(model))
    try:
        return get_peft_model(model, config)
    except ValueError as err:
        known = ", ".join(_linear_names(model)) or "none"
        if not target:
            raise ProtegeError(f"peft has no default LoRA targets for {model.config.model_type}; pass --student-lora-target "
                               f"with Linear layer names (this student has: {known})") from None
        raise ProtegeError(f"--student-lora-target {','.join(target)} names no layer of the student; use Linear layer names "
                           f"(this student has: {known})") from None


def parameter_split(model) -> dict[str, int]:
    """``{"trainable_parameters", "total_parameters"}`` of ``model`` as it trains (adapters included, as peft counts them)."""
    return {"trainable_parameters": int(sum(p.numel() for p in model.parameters() if p.requires_grad)),
            "total_parameters": int(sum(p.numel() for p in model.parameters()))}


def merge_lora(model):
    """The plain transformers model with the adapters merged into its weights (``model`` unchanged if not a peft model)."""
    merge = getattr(model, "merge_and_unload", None)
    if merge is None:
        return model
    merged = merge()
    merged.requires_grad_(True)  # a stock model again: later steps (pruning, fine-tuning) may train any weight
    return merged
