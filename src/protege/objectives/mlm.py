"""``--objective mlm``: DistilBERT's triple loss (Sanh et al. 2019) for masked-LM teachers.

Each batch is masked afresh (15%, 80/10/10, positions drawn with probability proportional to
``count ** -0.7`` over the training corpus, special tokens never). The student then learns

    alpha_kd * T^2 KL(teacher || student) at the masked positions (or all, --kd-positions all)
  + alpha_lm * MLM cross-entropy against the original tokens
  + alpha_cos * (1 - cos) between the last hidden states (a learned projection across widths)

with DistilBERT's 5:2:1 weighting by default. The student starts from the teacher's kept
layers (DistilBERT's every-other initialisation) or a shrunk random config.
"""

from __future__ import annotations

import torch

from protege import losses
from protege.errors import ProtegeError
from protege.losses.lm import forward_kl
from protege.objectives.layers import projection_for, projector

__all__ = ["MaskedLMObjective"]


class MaskedLMObjective:
    """The teacher, the student, the masking and the loss of masked-LM distillation."""

    kind = "mlm"
    packs = True
    primary = "agreement"
    pipeline_tag = "fill-mask"
    auto_class = "AutoModelForMaskedLM"

    def __init__(self, cfg):
        from protege.models import load_tokenizer
        from protege.models.families import build_student_for, load_teacher

        self.cfg = cfg
        self.weights = cfg.losses.weights
        self.teacher = load_teacher(cfg.teacher, "mlm")
        self.tokenizer = load_tokenizer(cfg.teacher)
        if self.tokenizer.mask_token_id is None:
            raise ProtegeError(f"the tokenizer of '{cfg.teacher}' has no mask token; masked-LM distillation needs one")
        self.student, self.layer_map, self.description = build_student_for(cfg, self.teacher, self.tokenizer, "mlm")
        self.student.train()
        self.extra = projection_for(self.student.config, self.teacher.config, 1, needed=bool(self.weights["cos"]),
                                    allowed=cfg.losses.hidden_projection, flags="--alpha-cos 0")
        if cfg.losses.top_k is not None and cfg.losses.top_k > self.teacher.config.vocab_size:
            raise ProtegeError(f"--top-k {cfg.losses.top_k} exceeds the vocabulary size {self.teacher.config.vocab_size}")
        self.spec = None
        self._device_spec = None
        self.losses_text = ", ".join(f"{k}={v}" for k, v in self.weights.items() if v) + f" (T={cfg.losses.temperature})"

    def prepare(self, features: list[dict]) -> None:
        """Count tokens over the training corpus and build the smoothed masking distribution."""
        from protege.data.masking import MaskingSpec, masking_weights
        from protege.data.text import token_counts

        vocab = self.teacher.config.vocab_size
        special = set(self.tokenizer.all_special_ids)
        counts = token_counts(features, vocab)
        weights = masking_weights(counts, special, smoothing=self.cfg.losses.mask_smoothing)
        random_ids = torch.tensor([i for i in range(min(vocab, len(self.tokenizer))) if i not in special])
        self.spec = MaskingSpec(self.tokenizer.mask_token_id, weights, random_ids, self.cfg.losses.mlm_probability)
        self._device_spec = None

    def loss(self, student, batch: dict) -> dict:
        """Mask the batch, run both models, return the weighted DistilBERT terms (the trainer's ``loss_fn``)."""
        from protege.data.masking import mask_tokens

        ids, mask = batch["input_ids"], batch["attention_mask"]
        if self._device_spec is None or self._device_spec.weights.device != ids.device:
            self._device_spec = self.spec.to(ids.device)
        masked, labels, selected = mask_tokens(ids, mask, self._device_spec)
        hidden = bool(self.weights["cos"])
        inputs = {"input_ids": masked, "attention_mask": mask}
        with torch.no_grad():
            t_out = self.teacher(**inputs, output_hidden_states=hidden)
        s_out = student(**inputs, output_hidden_states=hidden)
        terms = {}
        if self.weights["kd"]:
            rows = selected if self.cfg.losses.kd_positions == "masked" else mask.bool()
            terms["kd"] = forward_kl(s_out.logits[rows], t_out.logits[rows], temperature=self.cfg.losses.temperature, top_k=self.cfg.losses.top_k)
        if self.weights["lm"]:
            terms["lm"] = losses.hard_cross_entropy(s_out.logits[selected], labels[selected])
        if hidden:
            terms["cos"] = losses.hidden_cosine(s_out.hidden_states[-1], t_out.hidden_states[-1], mask=mask,
                                                projection=projector(self.extra)(0))
        terms["loss"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms

    def eval_features(self, features: list[dict]) -> list[dict]:
        """Held-out features with a fixed 15% uniform mask (the same for teacher and student)."""
        from protege.evaluation.lm import mask_for_eval

        return mask_for_eval(features, self.tokenizer)

    def held_out(self, model, features: list[dict], device, *, with_teacher: bool = True) -> dict:
        """Masked-token perplexity/accuracy of ``model`` (and the teacher) and their agreement."""
        from protege.evaluation.lm import lm_scores

        return lm_scores(model, features, kind="mlm", pad_token_id=self.tokenizer.pad_token_id or 0,
                         teacher=self.teacher if with_teacher else None, device=device)

    def save(self, folder) -> None:
        """A save_pretrained folder that AutoModelForMaskedLM loads (MLM head included)."""
        self.student.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
