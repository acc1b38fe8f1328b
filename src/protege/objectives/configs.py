"""One config per objective: its loss weights and knobs, with its own defaults and validation.

``protege distill --objective NAME`` takes the fields of ``NAME``'s config as flags (and YAML keys,
and keyword arguments); a flag of another objective is refused by name. ``RUN_DEFAULTS`` are the
run settings an objective is best measured with, used when the user does not set them
(``benchmarks/EMBEDDINGS.md`` for the embedding ones).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protege.errors import ProtegeError
from protege.utils.config import Section, check_choice, check_number, check_positive, option

__all__ = ["TaskLosses", "MlmLosses", "TinyBertLosses", "EmbeddingLosses", "ClmLosses"]


def _weights_ok(cfg, objective: str) -> None:
    weights = cfg.weights
    for name, value in weights.items():
        if not (isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0 and math.isfinite(value)):
            raise ProtegeError(f"--alpha-{name} must be a finite number >= 0, got {value!r}")
    if not any(weights.values()):
        raise ProtegeError(f"every loss weight is 0 (--objective {objective}); set at least one of "
                           + ", ".join(f"--alpha-{n}" for n in weights))


@dataclass(frozen=True, kw_only=True)
class TaskLosses(Section):
    """--objective task: a classifier's outputs (Hinton et al. 2015), optionally TinyBERT's internal terms."""

    RUN_DEFAULTS = {}

    alpha_kd: float = option(1.0, "weight of the soft-target loss (Hinton KD at --temperature; logits MSE for regression)")
    alpha_ce: float = option(0.0, "weight of the hard-label loss on gold labels")
    alpha_mse: float = option(0.0, "weight of the logits MSE loss (Ba & Caruana 2014)")
    alpha_hidden: float = option(0.0, "weight of the hidden-state loss over mapped layers (see --hidden-loss)")
    alpha_attn: float = option(0.0, "weight of the attention-distribution MSE over mapped layers (TinyBERT)")
    alpha_embed: float = option(0.0, "weight of the embedding-layer MSE (TinyBERT)")
    temperature: float = option(2.0, "softmax temperature T of the soft-target loss (scaled by T^2)")
    hidden_loss: str = option("mse", "mse (TinyBERT) or cosine (DistilBERT)")
    layer_map: str | None = option(None, "teacher layer for each student layer, e.g. 1,3,5 (default: the kept layers, or uniform)",
                                   list=True)
    hidden_projection: bool = option(True, "learn a linear projection when student and teacher widths differ")

    @property
    def weights(self) -> dict[str, float]:
        """``{term: weight}`` of every term."""
        return {"kd": self.alpha_kd, "ce": self.alpha_ce, "mse": self.alpha_mse, "hidden": self.alpha_hidden,
                "attn": self.alpha_attn, "embed": self.alpha_embed}

    def _check(self):
        _weights_ok(self, "task")
        check_number(self, "temperature", low=0, low_open=True)
        check_choice(self, "hidden_loss", ("mse", "cosine"))

    def _unused(self):
        """The knobs of terms whose weight is 0 (the model card leaves them out)."""
        unused = set() if self.alpha_kd else {"temperature"}
        if not self.alpha_hidden:
            unused |= {"hidden_loss"} | (set() if self.alpha_embed else {"hidden_projection"})
            unused |= set() if self.alpha_attn else {"layer_map"}
        return unused


@dataclass(frozen=True, kw_only=True)
class MlmLosses(Section):
    """--objective mlm: DistilBERT's triple loss (Sanh et al. 2019) on dynamically masked text."""

    RUN_DEFAULTS = {}

    alpha_kd: float = option(1.0, "soft targets at --temperature on the masked (or all) positions")
    alpha_lm: float = option(0.4, "masked-LM cross-entropy (DistilBERT's 2:5 to --alpha-kd)")
    alpha_cos: float = option(0.2, "cosine loss on the last hidden states (DistilBERT's 1:5)")
    temperature: float = option(2.0, "softmax temperature of the soft targets")
    mlm_probability: float = option(0.15, "share of tokens selected for prediction (80% [MASK], 10% kept, 10% random)")
    mask_smoothing: float = option(0.7, "masking probability proportional to token count^-X over the corpus (0 = uniform)")
    kd_positions: str = option("masked", "soft targets on the masked positions or on all positions")
    top_k: int | None = option(None, "compare the teacher's top-k tokens (plus the rest as one bucket), not the full vocabulary")
    hidden_projection: bool = option(True, "learn a linear projection when student and teacher widths differ")
    pack: bool = option(True, "pack lines into full --max-length sequences")

    @property
    def weights(self) -> dict[str, float]:
        """``{term: weight}`` of every term."""
        return {"kd": self.alpha_kd, "lm": self.alpha_lm, "cos": self.alpha_cos}

    def _check(self):
        _weights_ok(self, "mlm")
        check_number(self, "temperature", low=0, low_open=True)
        check_number(self, "mlm_probability", low=0, high=1, low_open=True, high_open=True)
        check_number(self, "mask_smoothing", low=0)
        check_choice(self, "kd_positions", ("masked", "all"))
        check_positive(self, "top_k", optional=True)

    def _unused(self):
        """The knobs of terms whose weight is 0 (the model card leaves them out)."""
        unused = set() if self.alpha_kd else {"temperature", "kd_positions", "top_k"}
        return unused | (set() if self.alpha_cos else {"hidden_projection"})


@dataclass(frozen=True, kw_only=True)
class TinyBertLosses(Section):
    """--objective tinybert: TinyBERT general distillation (Jiao et al. 2020): embeddings, hidden states, attention."""

    RUN_DEFAULTS = {}

    alpha_attn: float = option(1.0, "attention-distribution MSE over mapped layers")
    alpha_hidden: float = option(1.0, "hidden-state MSE over mapped layers")
    alpha_embed: float = option(1.0, "embedding-layer MSE")
    layer_map: str | None = option(None, "teacher layer for each student layer (default: TinyBERT's uniform map)", list=True)
    hidden_projection: bool = option(True, "learn projections when the student is narrower")
    pack: bool = option(True, "pack lines into full --max-length sequences")

    @property
    def weights(self) -> dict[str, float]:
        """``{term: weight}`` of every term."""
        return {"attn": self.alpha_attn, "hidden": self.alpha_hidden, "embed": self.alpha_embed}

    def _check(self):
        _weights_ok(self, "tinybert")


@dataclass(frozen=True, kw_only=True)
class EmbeddingLosses(Section):
    """--objective embedding: a sentence-transformers student of its teacher's embeddings (defaults, measured best: layers ends, lr 3e-4)."""

    # measured (benchmarks/EMBEDDINGS.md): keeping the teacher's last layer, which is what gets pooled,
    # and a higher learning rate took a 3-layer MiniLM student from 88.6% to 97.4% of the teacher's STS-B
    RUN_DEFAULTS = {"student_layers": "ends", "lr": 3e-4}

    alpha_cos: float = option(1.0, "1 - cosine between student and teacher sentence embeddings")
    alpha_mse: float = option(0.0, "MSE between the sentence embeddings (Reimers & Gurevych 2020)")
    alpha_hidden: float = option(0.0, "token hidden-state loss over mapped layers (see --hidden-loss)")
    hidden_loss: str = option("mse", "mse or cosine, for --alpha-hidden")
    layer_map: str | None = option(None, "teacher layer for each student layer (for --alpha-hidden)", list=True)
    hidden_projection: bool = option(True, "learn a projection when the student is narrower")
    pack: bool = option(False, "pack lines into full --max-length sequences (sentences are usually kept whole)")
    sts: str | None = option(None, "STS-B style file (sentence1, sentence2, score) scored at the end: Spearman of cosine vs gold",
                             path=True)
    probe_train: str | None = option(None, "labeled data to fit a logistic-regression probe on frozen embeddings", path=True)
    probe_eval: str | None = option(None, "labeled data the probe is scored on (accuracy)", path=True)
    max_probe_examples: int | None = option(None, "use only the first N probe training examples")

    @property
    def weights(self) -> dict[str, float]:
        """``{term: weight}`` of every term."""
        return {"cos": self.alpha_cos, "mse": self.alpha_mse, "hidden": self.alpha_hidden}

    def _check(self):
        _weights_ok(self, "embedding")
        check_choice(self, "hidden_loss", ("mse", "cosine"))
        check_positive(self, "max_probe_examples", optional=True)
        if (self.probe_train is None) != (self.probe_eval is None):
            raise ProtegeError("the linear probe needs both --probe-train and --probe-eval")

    def _unused(self):
        """The knobs of terms whose weight is 0 (the model card leaves them out)."""
        return set() if self.alpha_hidden else {"hidden_loss", "layer_map"}


@dataclass(frozen=True, kw_only=True)
class ClmLosses(Section):
    """--objective clm: next-token distributions of a causal LM (forward/reverse KL, generalized JSD)."""

    RUN_DEFAULTS = {}

    alpha_kd: float = option(1.0, "the --lm-loss divergence between teacher and student next-token distributions")
    alpha_lm: float = option(0.0, "next-token cross-entropy on the text itself")
    temperature: float = option(1.0, "softmax temperature of the divergence (1: the distributions as they are sampled)")
    lm_loss: str = option("forward_kl", "token-level divergence: forward_kl | reverse_kl | jsd")
    jsd_beta: float = option(0.5, "beta of the generalized JSD (--lm-loss jsd), in (0, 1)")
    top_k: int | None = option(None, "compare the teacher's top-k tokens (plus the rest as one bucket), not the full vocabulary")
    pack: bool = option(True, "pack lines into full --max-length sequences")

    @property
    def weights(self) -> dict[str, float]:
        """``{term: weight}`` of every term."""
        return {"kd": self.alpha_kd, "lm": self.alpha_lm}

    def _check(self):
        _weights_ok(self, "clm")
        check_number(self, "temperature", low=0, low_open=True)
        check_choice(self, "lm_loss", ("forward_kl", "reverse_kl", "jsd"))
        check_number(self, "jsd_beta", low=0, high=1, low_open=True, high_open=True)
        check_positive(self, "top_k", optional=True)

    def _unused(self):
        """The knobs of terms whose weight is 0 (the model card leaves them out)."""
        if not self.alpha_kd:
            return {"temperature", "lm_loss", "jsd_beta", "top_k"}
        return set() if self.lm_loss == "jsd" else {"jsd_beta"}
