"""``--objective tinybert``: TinyBERT's general distillation (Jiao et al. 2020, section 3.2).

On unlabeled text, with no output-layer term, the student learns the teacher's Transformer
layers: MSE on the embedding-layer outputs, on the hidden states and on the attention
distributions of mapped layers (uniform ``g(m) = m * N/M`` or ``--layer-map``), with learned
projections W_e, W_h when the student is narrower. Head counts that differ (a 256-wide student
of a 12-head, 384-wide teacher has 8 heads) fall back to the MSE of head-averaged attention
(:func:`protege.losses.attention_heads.head_mean_attention_mse`). The student is saved as a bare
encoder (``AutoModel``), ready for task distillation (``--student runs/general``).
"""

from __future__ import annotations

import torch

from protege import losses
from protege.objectives.layers import (held_out_batches, mapped_attention_loss, mapped_hidden_loss, projection_for, projector,
                                       resolve_layer_map)

__all__ = ["TinyBertObjective", "teacher_transformer_path"]


def teacher_transformer_path(name: str) -> str:
    """The transformer folder of ``name``: itself, or the Transformer stage of a sentence-transformers folder."""
    from protege.models.sentence import is_sentence_transformer, read_pipeline

    return str(read_pipeline(name).transformer_path) if is_sentence_transformer(name) else name


class TinyBertObjective:
    """The teacher, the student, the layer map, the projections and the loss of TinyBERT general distillation."""

    kind = "tinybert"
    packs = True
    primary = None
    pipeline_tag = "feature-extraction"
    auto_class = "AutoModel"

    def __init__(self, cfg):
        from protege.models import load_tokenizer, num_heads, num_layers
        from protege.models.families import build_student_for, load_teacher

        self.cfg = cfg
        self.weights = cfg.losses.weights
        path = teacher_transformer_path(cfg.teacher)
        attn = "eager" if self.weights["attn"] else None
        self.teacher = load_teacher(path, "encoder", attn_implementation=attn)
        self.tokenizer = load_tokenizer(path)
        self.student, default_map, self.description = build_student_for(cfg, self.teacher, self.tokenizer, "encoder",
                                                                        attn_implementation=attn)
        self.student.train()
        n = num_layers(self.student.config)
        self.layer_map = resolve_layer_map(cfg.losses.layer_map, default_map, self.teacher.config, n,
                                           needed=bool(self.weights["hidden"] or self.weights["attn"]))
        self.extra = projection_for(self.student.config, self.teacher.config, n + 1, allowed=cfg.losses.hidden_projection,
                                    needed=bool(self.weights["hidden"] or self.weights["embed"]))
        self.same_heads = num_heads(self.student.config) == num_heads(self.teacher.config)
        self.losses_text = ", ".join(f"{k}={v}" for k, v in self.weights.items() if v)
        if self.weights["attn"] and not self.same_heads:
            self.losses_text += (f" (attention averaged over heads: student {num_heads(self.student.config)}, "
                                 f"teacher {num_heads(self.teacher.config)})")

    def prepare(self, features: list[dict]) -> None:
        """Nothing to precompute."""

    def terms(self, student, batch: dict) -> dict:
        """Unweighted TinyBERT terms for one batch."""
        mask = batch["attention_mask"]
        inputs = {"input_ids": batch["input_ids"], "attention_mask": mask}
        want = dict(output_hidden_states=bool(self.weights["hidden"] or self.weights["embed"]),
                    output_attentions=bool(self.weights["attn"]))
        with torch.no_grad():
            t = self.teacher(**inputs, **want)
        s = student(**inputs, **want)
        out = {}
        if self.weights["embed"]:
            out["embed"] = losses.embedding_mse(s.hidden_states[0], t.hidden_states[0], mask=mask,
                                                projection=projector(self.extra)(0))
        if self.weights["hidden"]:
            out["hidden"] = mapped_hidden_loss(s.hidden_states, t.hidden_states, self.layer_map, mask, projection=self.extra)
        if self.weights["attn"]:
            out["attn"] = mapped_attention_loss(s.attentions, t.attentions, self.layer_map, mask, same_heads=self.same_heads)
        return out

    def loss(self, student, batch: dict) -> dict:
        """The weighted sum of the terms (the trainer's ``loss_fn``)."""
        terms = self.terms(student, batch)
        terms["loss"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms

    def eval_features(self, features: list[dict]) -> list[dict]:
        return features

    def held_out(self, model, features: list[dict], device, *, with_teacher: bool = True) -> dict:
        """Mean held-out TinyBERT terms of ``model`` (lower is closer to the teacher)."""
        sums, n = {}, 0
        for batch, size in held_out_batches(model, features, self.tokenizer.pad_token_id or 0, device):
            for k, v in self.terms(model, batch).items():
                sums[k] = sums.get(k, 0.0) + float(v) * size
            n += size
        return {"model": {f"{k}_mse": v / max(n, 1) for k, v in sums.items()}}

    def save(self, folder) -> None:
        """A save_pretrained encoder folder (AutoModel), ready for fine-tuning or task distillation."""
        self.student.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
