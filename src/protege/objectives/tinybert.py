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
from protege.errors import ProtegeError
from protege.losses.attention_heads import head_mean_attention_mse

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
        from protege.models import hidden_size, load_tokenizer, num_heads, num_layers, parse_layer_spec
        from protege.models.families import build_student_for, load_teacher

        self.cfg = cfg
        self.weights = cfg.general_weights
        path = teacher_transformer_path(cfg.teacher)
        attn = "eager" if self.weights["attn"] else None
        self.teacher = load_teacher(path, "encoder", attn_implementation=attn)
        self.tokenizer = load_tokenizer(path)
        self.student, default_map, self.description = build_student_for(cfg, self.teacher, self.tokenizer, "encoder",
                                                                        attn_implementation=attn)
        self.student.train()
        total, n = num_layers(self.teacher.config), num_layers(self.student.config)
        self.layer_map = parse_layer_spec(cfg.layer_map, total) if cfg.layer_map else list(default_map)
        if (self.weights["hidden"] or self.weights["attn"]) and len(self.layer_map) != n:
            raise ProtegeError(f"--layer-map names {len(self.layer_map)} teacher layers but the student has {n}; "
                               "give one per student layer")
        hs, ht = hidden_size(self.student.config), hidden_size(self.teacher.config)
        self.extra = None
        if hs != ht and (self.weights["hidden"] or self.weights["embed"]):
            if not cfg.hidden_projection:
                raise ProtegeError(f"hidden-state losses compare widths {hs} (student) and {ht} (teacher): drop --no-hidden-projection "
                                   "or set --alpha-hidden 0 --alpha-embed 0")
            self.extra = losses.HiddenProjection(hs, ht, n + 1)
        self.same_heads = num_heads(self.student.config) == num_heads(self.teacher.config)
        self.losses_text = ", ".join(f"{k}={v}" for k, v in self.weights.items() if v)
        if self.weights["attn"] and not self.same_heads:
            self.losses_text += (f" (attention averaged over heads: student {num_heads(self.student.config)}, "
                                 f"teacher {num_heads(self.teacher.config)})")

    def prepare(self, features: list[dict]) -> None:
        """Nothing to precompute."""

    def _project(self, i):
        return (lambda x: self.extra(x, i)) if self.extra is not None else None

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
            out["embed"] = losses.embedding_mse(s.hidden_states[0], t.hidden_states[0], mask=mask, projection=self._project(0))
        if self.weights["hidden"]:
            out["hidden"] = torch.stack([losses.hidden_mse(s.hidden_states[i + 1], t.hidden_states[j + 1], mask=mask,
                                                           projection=self._project(i + 1))
                                         for i, j in enumerate(self.layer_map)]).mean()
        if self.weights["attn"]:
            fn = losses.attention_mse if self.same_heads else head_mean_attention_mse
            out["attn"] = torch.stack([fn(s.attentions[i], t.attentions[j], mask=mask) for i, j in enumerate(self.layer_map)]).mean()
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
        from protege.data.batching import collate

        sums, n = {}, 0
        was = model.training
        model.eval()
        try:
            with torch.inference_mode():
                for start in range(0, len(features), 16):
                    chunk = features[start:start + 16]
                    batch = {k: v.to(device) for k, v in collate(chunk, self.tokenizer.pad_token_id or 0).items()}
                    for k, v in self.terms(model, batch).items():
                        sums[k] = sums.get(k, 0.0) + float(v) * len(chunk)
                    n += len(chunk)
        finally:
            model.train(was)
        return {"model": {f"{k}_mse": v / max(n, 1) for k, v in sums.items()}}

    def save(self, folder) -> None:
        """A save_pretrained encoder folder (AutoModel), ready for fine-tuning or task distillation."""
        self.student.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
