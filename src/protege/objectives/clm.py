"""``--objective clm``: token-level distillation of a causal LM (GPT-2, Llama ...).

At every position of the packed transfer text the student's next-token distribution is pulled
towards the teacher's with forward KL (Hinton et al. 2015; Kim & Rush 2016 word-level KD),
reverse KL (Gu et al. 2024, MiniLLM) or the generalized JSD (Agarwal et al. 2024, GKD) at
temperature T, optionally on the teacher's top-k tokens only; an optional next-token
cross-entropy on the text itself (``--alpha-lm``). Students keep teacher layers or shrink the
config. Reported: held-out perplexity and next-token accuracy of both, agreement and KL.
"""

from __future__ import annotations

import torch

from protege import losses
from protege.errors import ProtegeError
from protege.losses.lm import LM_LOSSES

__all__ = ["CausalLMObjective"]


class CausalLMObjective:
    """The teacher, the student and the loss of causal-LM distillation."""

    kind = "clm"
    packs = True
    primary = "agreement"
    pipeline_tag = "text-generation"
    auto_class = "AutoModelForCausalLM"

    def __init__(self, cfg):
        from protege.models.families import build_student_for, load_teacher

        self.cfg = cfg
        self.weights = cfg.losses.weights
        self.teacher = load_teacher(cfg.teacher, "clm")
        from protege.models.loading import load_lm_tokenizer

        self.tokenizer = load_lm_tokenizer(cfg.teacher)
        self.student, self.layer_map, self.description = build_student_for(cfg, self.teacher, self.tokenizer, "clm")
        self.student.train()
        self.extra = None
        v_t, v_s = _vocab(self.teacher), _vocab(self.student)
        if v_t != v_s:
            raise ProtegeError(f"the student predicts {v_s} tokens but the teacher {v_t}; pick a student with the teacher's vocabulary")
        if cfg.losses.top_k is not None and cfg.losses.top_k > v_t:
            raise ProtegeError(f"--top-k {cfg.losses.top_k} exceeds the vocabulary size {v_t}; pass a smaller --top-k")
        self.losses_text = ", ".join(f"{k}={v}" for k, v in self.weights.items() if v) + f" ({cfg.losses.lm_loss}, T={cfg.losses.temperature})"

    def prepare(self, features: list[dict]) -> None:
        """Nothing to precompute for causal LMs."""

    def _divergence(self, s, t):
        o = self.cfg.losses
        kw = {"temperature": o.temperature, "top_k": o.top_k}
        if o.lm_loss == "jsd":
            kw["beta"] = o.jsd_beta
        return LM_LOSSES[o.lm_loss](s, t, **kw)

    def loss(self, student, batch: dict) -> dict:
        """Loss terms for one batch of packed token ids (the trainer's ``loss_fn``)."""
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        valid = batch["attention_mask"].bool()
        s_logits = student(**inputs).logits
        terms = {}
        if self.weights["kd"]:
            with torch.no_grad():
                t_logits = self.teacher(**inputs).logits
            terms["kd"] = self._divergence(s_logits[valid], t_logits[valid])
        if self.weights["lm"]:
            nxt = valid[:, :-1] & valid[:, 1:]
            terms["lm"] = losses.hard_cross_entropy(s_logits[:, :-1][nxt], batch["input_ids"][:, 1:][nxt])
        terms["loss"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms

    def eval_features(self, features: list[dict]) -> list[dict]:
        """Held-out features as they are scored (unchanged for next-token prediction)."""
        return features

    def held_out(self, model, features: list[dict], device, *, with_teacher: bool = True) -> dict:
        """Perplexity/accuracy of ``model`` (and the teacher) and their agreement on held-out text."""
        from protege.evaluation.lm import lm_scores

        return lm_scores(model, features, kind="clm", pad_token_id=self.tokenizer.pad_token_id,
                         teacher=self.teacher if with_teacher else None, device=device)

    def save(self, folder) -> None:
        """A save_pretrained folder (weights, config, tokenizer) that AutoModelForCausalLM loads."""
        self.student.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)


def _vocab(model) -> int:
    return int(model.get_output_embeddings().weight.shape[0])
