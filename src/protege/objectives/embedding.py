"""``--objective embedding``: a smaller sentence-transformers model that reproduces its teacher's embeddings.

The teacher is a local sentence-transformers folder: its pooling (mean, CLS, ...), Dense layers
and normalisation are read from ``modules.json`` and applied to the student too. On any
unlabeled text (one sentence a line, or random word sequences) the student minimises

    alpha_cos * (1 - cos(e_s, e_t)) + alpha_mse * MSE(e_s, e_t) + alpha_hidden * hidden-state loss

on the final sentence embeddings (Reimers & Gurevych 2020 use the MSE; the cosine form is what
similarity search and STS read). A narrower student gets a Dense layer to the teacher's
dimension, so its embeddings live in the teacher's space. Saved as a sentence-transformers
folder. Reported: STS Spearman and linear-probe accuracy of both, and cosine to the teacher.
"""

from __future__ import annotations

import copy

import torch

from protege.errors import ProtegeError
from protege.losses.embeddings import sentence_cosine, sentence_mse
from protege.objectives.layers import held_out_batches, mapped_hidden_loss, projection_for, resolve_layer_map

__all__ = ["EmbeddingObjective"]


class EmbeddingObjective:
    """A sentence-embedding teacher, its student encoder, and the loss on pooled embeddings."""

    kind = "embedding"
    packs = False
    primary = "cosine_to_teacher"
    pipeline_tag = "sentence-similarity"
    auto_class = "SentenceTransformer"

    def __init__(self, cfg):
        from protege.models import hidden_size, load_tokenizer, num_layers
        from protege.models.families import build_student_for
        from protege.models.sentence import DenseLayer, SentenceEncoder, is_sentence_transformer, load_sentence_encoder, read_pipeline

        self.cfg = cfg
        self.weights = cfg.losses.weights
        if not is_sentence_transformer(cfg.teacher):
            raise ProtegeError(f"teacher '{cfg.teacher}' is not a local sentence-transformers folder (no modules.json); "
                               "pass one (e.g. all-MiniLM-L6-v2 saved with SentenceTransformer.save) or use --objective tinybert")
        self.teacher = load_sentence_encoder(cfg.teacher)
        self.tokenizer = load_tokenizer(str(read_pipeline(cfg.teacher).transformer_path))
        transformer, default_map, self.description = build_student_for(cfg, self.teacher.transformer, self.tokenizer, "encoder")
        hs, ht = hidden_size(transformer.config), hidden_size(self.teacher.config)
        if hs == ht:
            dense = copy.deepcopy(list(self.teacher.dense))
        else:
            dense = [DenseLayer(hs * len(self.teacher.pooling), self.teacher.embedding_dim)]
            self.description += f", Dense {hs * len(self.teacher.pooling)}->{self.teacher.embedding_dim} to the teacher's space"
        self.student = SentenceEncoder(transformer, self.teacher.pooling, self.teacher.normalize, dense,
                                       self.teacher.max_seq_length, self.teacher.do_lower_case).train()
        n = num_layers(transformer.config)
        hidden = bool(self.weights["hidden"])
        self.layer_map = resolve_layer_map(cfg.losses.layer_map, default_map, self.teacher.config, n, needed=hidden)
        self.extra = projection_for(transformer.config, self.teacher.config, n + 1, needed=hidden,
                                    allowed=cfg.losses.hidden_projection, flags="--alpha-hidden 0")
        from protege.evaluation.embeddings import load_eval_data

        o = cfg.losses
        self.eval_data = load_eval_data(sts=o.sts, probe_train=o.probe_train, probe_eval=o.probe_eval,
                                        max_probe_examples=o.max_probe_examples)
        modes = "+".join(self.teacher.pooling) + (" + normalize" if self.teacher.normalize else "")
        self.losses_text = ", ".join(f"{k}={v}" for k, v in self.weights.items() if v) + f" on {modes} embeddings"

    def prepare(self, features: list[dict]) -> None:
        """Nothing to precompute."""

    def loss(self, student, batch: dict) -> dict:
        """Loss terms on the sentence embeddings (and optionally hidden states) of one batch."""
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        hidden = bool(self.weights["hidden"])
        with torch.no_grad():
            t = self.teacher(**inputs, output_hidden_states=hidden)
        s = student(**inputs, output_hidden_states=hidden)
        terms = {}
        if self.weights["cos"]:
            terms["cos"] = sentence_cosine(s.embeddings, t.embeddings)
        if self.weights["mse"]:
            terms["mse"] = sentence_mse(s.embeddings, t.embeddings)
        if hidden:
            terms["hidden"] = mapped_hidden_loss(s.hidden_states, t.hidden_states, self.layer_map, batch["attention_mask"],
                                                 projection=self.extra, kind=self.cfg.losses.hidden_loss)
        terms["loss"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms

    def eval_features(self, features: list[dict]) -> list[dict]:
        return features

    def held_out(self, model, features: list[dict], device, *, with_teacher: bool = True) -> dict:
        """Mean cosine between ``model``'s and the teacher's embeddings of the held-out sentences."""
        total, n = 0.0, 0
        for batch, size in held_out_batches(model, features, self.tokenizer.pad_token_id or 0, device, batch_size=64):
            e_s, e_t = model(**batch).embeddings, self.teacher(**batch).embeddings
            total += (1.0 - float(sentence_cosine(e_s, e_t))) * size
            n += size
        return {"agreement": {"cosine_to_teacher": total / max(n, 1)}}

    def reports(self, device) -> dict:
        """STS and linear-probe scores of teacher and student, as asked by --sts / --probe-*."""
        from protege.evaluation.embeddings import scores_side_by_side

        return scores_side_by_side(self.student, self.teacher, self.tokenizer, self.eval_data, max_length=self.cfg.max_length,
                                   seed=self.cfg.seed, device=device)

    def save(self, folder) -> None:
        """A sentence-transformers folder (transformer at the root, Pooling, Dense, Normalize)."""
        from protege.models.sentence import save_sentence_encoder

        save_sentence_encoder(self.student, self.tokenizer, folder)
