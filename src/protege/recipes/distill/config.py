"""Run configurations: frozen dataclasses validated on construction.

One field is one CLI flag (``student_layers`` -> ``--student-layers``) and one YAML key, so a
recipe, the command line and ``protege.distill(...)`` all say the same thing in the same words.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from protege.engine.config import TrainSettings
from protege.errors import ProtegeError
from protege.utils.config import check_positive, option

__all__ = ["DistillConfig", "CacheConfig", "OBJECTIVES"]


@dataclass(frozen=True, kw_only=True)
class DistillConfig(TrainSettings):
    """``protege distill``: a student learns the teacher's outputs (and optionally its internals)."""

    teacher: str = option(None, "fine-tuned classifier: save_pretrained folder or hub id", required=True)
    student_layers: str | None = option(None, "keep these teacher layers: 0,2,4 | every-other | uniform:K | first:K (default every-other)", list=True)
    student: str | None = option(None, "a pretrained checkpoint to use as the student instead")
    student_num_layers: int | None = option(None, "random-init student: number of layers")
    student_hidden: int | None = option(None, "random-init student: hidden size")
    student_heads: int | None = option(None, "random-init student: attention heads")
    student_ffn_size: int | None = option(None, "random-init student: FFN inner size")
    alpha_kd: float = option(1.0, "weight of the soft-target loss (Hinton KD at --temperature; logits MSE for regression)")
    alpha_ce: float = option(0.0, "weight of the hard-label loss on gold labels")
    alpha_mse: float = option(0.0, "weight of the logits MSE loss")
    alpha_hidden: float = option(0.0, "weight of the hidden-state loss (see --hidden-loss)")
    alpha_attn: float = option(0.0, "weight of the attention-distribution MSE (TinyBERT)")
    alpha_embed: float = option(0.0, "weight of the embedding-layer MSE (TinyBERT)")
    temperature: float = option(2.0, "softmax temperature T of the soft-target loss (scaled by T^2)")
    hidden_loss: str = option("mse", "mse (TinyBERT) or cosine (DistilBERT)")
    layer_map: str | None = option(None, "teacher layer for each student layer, e.g. 1,3,5 (default: the kept layers, or uniform)", list=True)
    hidden_projection: bool = option(True, "learn a linear projection when student and teacher widths differ")
    cache_teacher: str | None = option(None, "folder of the teacher-output cache: the teacher runs once over the training data, reused across epochs and runs")
    cache_budget: float | None = option(None, "largest teacher cache allowed, in GB (fail before building a bigger one)")
    # general (task-agnostic) distillation: see protege.recipes.distill.general and docs/general.md
    objective: str = option("task", "task (a classifier, labeled --train) | mlm (DistilBERT) | tinybert | embedding (sentence-transformers) | clm (causal LM)")
    train_text: str | None = option(None, "unlabeled transfer text for mlm/tinybert/embedding/clm: a .txt file (one document or sentence a line), a table or a datasets name")
    random_text: int | None = option(None, "instead of --train-text: N random word sequences (unigram from --random-corpus, else the teacher's vocabulary)")
    random_corpus: str | None = option(None, "text file whose word frequencies and sentence lengths drive --random-text")
    eval_text: str | None = option(None, "held-out text for the report (perplexity, agreement, cosine to the teacher); default: the last 5% of the transfer text, at most 1000 lines")
    pack: bool | None = option(None, "pack lines into full --max-length sequences (default: yes for mlm/tinybert/clm, no for embedding)")
    mlm_probability: float = option(0.15, "mlm: share of tokens selected for prediction (80% [MASK], 10% kept, 10% random)")
    mask_smoothing: float = option(0.7, "mlm: masking probability proportional to token count^-X over the corpus (DistilBERT 0.7; 0 = uniform)")
    kd_positions: str = option("masked", "mlm: soft targets on the masked positions or on all positions")
    alpha_lm: float | None = option(None, "mlm/clm: weight of the language-modelling loss on the text itself (default 0.4 for mlm = DistilBERT's 2:5 to --alpha-kd, 0 for clm)")
    alpha_cos: float | None = option(None, "mlm: cosine loss on the last hidden states (default 0.2, DistilBERT's 1:5); embedding: cosine on sentence embeddings (default 1)")
    lm_loss: str = option("forward_kl", "clm: token-level divergence forward_kl | reverse_kl | jsd")
    jsd_beta: float = option(0.5, "clm: beta of the generalized JSD (--lm-loss jsd), in (0, 1)")
    top_k: int | None = option(None, "mlm/clm: compare the teacher's top-k tokens (plus the rest as one bucket) instead of the full vocabulary")
    sts: str | None = option(None, "embedding: STS-B style file (sentence1, sentence2, score) scored at the end: Spearman of cosine vs gold")
    probe_train: str | None = option(None, "embedding: labeled data to fit a logistic-regression probe on frozen embeddings")
    probe_eval: str | None = option(None, "embedding: labeled data the probe is scored on (accuracy)")
    max_probe_examples: int | None = option(None, "embedding: use only the first N probe training examples")

    def _needs_train(self) -> bool:
        return self.objective == "task"

    def __post_init__(self):
        self._check_objective()
        if not self.teacher:
            raise ProtegeError("--teacher is required (a fine-tuned classifier folder or hub id)")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ProtegeError(f"--temperature must be > 0, got {self.temperature}")
        alphas = {n: getattr(self, n) for n in ("alpha_kd", "alpha_ce", "alpha_mse", "alpha_hidden", "alpha_attn", "alpha_embed")}
        for name, value in alphas.items():
            if not (value >= 0 and math.isfinite(value)):
                raise ProtegeError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if not any(alphas.values()) and self.objective == "task":
            raise ProtegeError("every loss weight is 0; set at least one of --alpha-kd, --alpha-ce, --alpha-hidden ...")
        if self.cache_budget is not None and not self.cache_budget > 0:
            raise ProtegeError(f"--cache-budget must be > 0 GB, got {self.cache_budget}")
        if self.hidden_loss not in ("mse", "cosine"):
            raise ProtegeError(f"--hidden-loss must be mse or cosine, got {self.hidden_loss!r}")
        sized = any(getattr(self, n) is not None for n in ("student_num_layers", "student_hidden", "student_heads", "student_ffn_size"))
        chosen = [n for n, on in (("--student-layers", self.student_layers is not None), ("--student", self.student is not None),
                                  ("--student-num-layers/--student-hidden/...", sized)) if on]
        if len(chosen) > 1:
            raise ProtegeError(f"choose one way to build the student, not {' and '.join(chosen)}")
        super().__post_init__()

    def _check_objective(self) -> None:
        """Validation of the general-distillation fields (objective, transfer text, masking, LM losses)."""
        if self.objective not in OBJECTIVES:
            raise ProtegeError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        general = {"train_text": self.train_text, "random_text": self.random_text, "random_corpus": self.random_corpus,
                   "eval_text": self.eval_text, "pack": self.pack, "alpha_lm": self.alpha_lm, "alpha_cos": self.alpha_cos,
                   "top_k": self.top_k, "sts": self.sts, "probe_train": self.probe_train, "probe_eval": self.probe_eval,
                   "max_probe_examples": self.max_probe_examples}
        if self.objective == "task":
            given = [n for n, v in general.items() if v is not None]
            if given:
                raise ProtegeError(f"--{given[0].replace('_', '-')} is for general distillation; pass --objective "
                                   "mlm|tinybert|embedding|clm (or drop it for task distillation with a labeled --train)")
            return
        flag = f"--objective {self.objective}"
        if self.train:
            raise ProtegeError(f"{flag} learns from unlabeled text: pass --train-text FILE (or --random-text N) instead of --train")
        if self.eval:
            raise ProtegeError(f"{flag} does not read labeled --eval data; use --eval-text FILE (or --sts/--probe-eval for embedding)")
        if (self.train_text is None) == (self.random_text is None):
            raise ProtegeError(f"{flag} needs its transfer text: pass either --train-text FILE or --random-text N")
        if self.random_corpus is not None and self.random_text is None:
            raise ProtegeError("--random-corpus only shapes --random-text; add --random-text N or drop it")
        if self.cache_teacher is not None:
            raise ProtegeError(f"--cache-teacher is for task distillation; {flag} runs the teacher alongside the student")
        check_positive(self, "random_text", "top_k", "max_probe_examples", optional=True)
        if not 0 < self.mlm_probability < 1:
            raise ProtegeError(f"--mlm-probability must be in (0, 1), got {self.mlm_probability}")
        if not (self.mask_smoothing >= 0 and math.isfinite(self.mask_smoothing)):
            raise ProtegeError(f"--mask-smoothing must be >= 0, got {self.mask_smoothing}")
        if self.kd_positions not in ("masked", "all"):
            raise ProtegeError(f"--kd-positions must be masked or all, got {self.kd_positions!r}")
        if self.lm_loss not in ("forward_kl", "reverse_kl", "jsd"):
            raise ProtegeError(f"--lm-loss must be forward_kl, reverse_kl or jsd, got {self.lm_loss!r}")
        if not 0 < self.jsd_beta < 1:
            raise ProtegeError(f"--jsd-beta must be in (0, 1), got {self.jsd_beta}")
        if (self.probe_train is None) != (self.probe_eval is None):
            raise ProtegeError("the linear probe needs both --probe-train and --probe-eval")
        if self.objective != "embedding" and (self.sts or self.probe_train):
            raise ProtegeError("--sts and --probe-train/--probe-eval score sentence embeddings; use them with --objective embedding")
        if self.top_k is not None and self.objective not in ("mlm", "clm"):
            raise ProtegeError(f"--top-k applies to the token distributions of --objective mlm or clm, not {self.objective}")
        weights = self.general_weights  # resolves defaults and rejects weights the objective does not use
        for name, value in weights.items():
            if not (value >= 0 and math.isfinite(value)):
                raise ProtegeError(f"--alpha-{name} must be >= 0, got {value}")
        if not any(weights.values()):
            raise ProtegeError(f"every loss weight of {flag} is 0; set at least one of "
                               + ", ".join(f"--alpha-{n}" for n in weights))

    @property
    def general_weights(self) -> dict[str, float]:
        """Loss weights of a general objective, defaults resolved: ``{term: weight}``.

        mlm: kd (soft targets), lm (MLM), cos (last hidden states), DistilBERT's 5:2:1 as 1 : 0.4 : 0.2;
        tinybert: attn, hidden, embed (all 1 when none is set); embedding: cos (default 1), mse,
        hidden (token states over the layer map); clm: kd (the --lm-loss divergence), lm (next token).
        """
        o = self.objective
        table = {"mlm": {"kd": self.alpha_kd, "lm": _default(self.alpha_lm, 0.4), "cos": _default(self.alpha_cos, 0.2)},
                 "tinybert": {"attn": self.alpha_attn, "hidden": self.alpha_hidden, "embed": self.alpha_embed},
                 "embedding": {"cos": _default(self.alpha_cos, 1.0), "mse": self.alpha_mse, "hidden": self.alpha_hidden},
                 "clm": {"kd": self.alpha_kd, "lm": _default(self.alpha_lm, 0.0)}}
        if o not in table:
            return {}
        used = table[o]
        if o == "tinybert" and not any(used.values()):
            used = {k: 1.0 for k in used}
        task_only = {"alpha_ce": 0.0, "alpha_mse": 0.0, "alpha_hidden": 0.0, "alpha_attn": 0.0, "alpha_embed": 0.0, "alpha_kd": 1.0}
        for name, default in task_only.items():
            if name[6:] not in used and getattr(self, name) != default:
                raise ProtegeError(f"--{name.replace('_', '-')} does not apply to --objective {o}; its losses are "
                                   + ", ".join(f"--alpha-{k}" for k in used))
        for name in ("alpha_lm", "alpha_cos"):
            if getattr(self, name) is not None and name[6:] not in used:
                raise ProtegeError(f"--{name.replace('_', '-')} does not apply to --objective {o}; its losses are "
                                   + ", ".join(f"--alpha-{k}" for k in used))
        return used

    @property
    def student_kind(self) -> str:
        """``"layers"``, ``"pretrained"`` or ``"config"``."""
        if self.student is not None:
            return "pretrained"
        if any(getattr(self, n) is not None for n in ("student_num_layers", "student_hidden", "student_heads", "student_ffn_size")):
            return "config"
        return "layers"


@dataclass(frozen=True, kw_only=True)
class CacheConfig:
    """``protege cache-teacher``: run the teacher once over the data and store what distillation will need."""

    teacher: str = option(None, "fine-tuned classifier: save_pretrained folder or hub id", required=True)
    train: str = option(None, "data to run the teacher on (as distill's --train)", required=True)
    out: str = option(None, "cache folder (pass the same folder to distill --cache-teacher)", required=True)
    text_column: str | None = option(None, "text column (detected when omitted)")
    text_pair_column: str | None = option(None, "second text column (detected when omitted)")
    label_column: str | None = option(None, "label column (detected when omitted)")
    split: str | None = option(None, "split of a datasets hub name (default train)")
    max_train_examples: int | None = option(None, "use only the first N examples")
    max_length: int = option(128, "maximum tokens per example: must match distill's")
    student_layers: str | None = option(None, "as distill: the kept layers decide which hidden states/attentions to store", list=True)
    student_num_layers: int | None = option(None, "as distill: a random-init student of N layers (uniform layer map)")
    layer_map: str | None = option(None, "as distill: teacher layer for each student layer", list=True)
    alpha_hidden: float = option(0.0, "store the mapped hidden states (set as in distill)")
    alpha_attn: float = option(0.0, "store the mapped attention maps (set as in distill)")
    alpha_embed: float = option(0.0, "store the embedding-layer output (set as in distill)")
    cache_budget: float | None = option(None, "largest cache allowed, in GB")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = option(True, "show a progress bar")

    def __post_init__(self):
        for name in ("teacher", "train", "out"):
            if not getattr(self, name):
                raise ProtegeError(f"--{name} is required")
        check_positive(self, "max_length")
        check_positive(self, "max_train_examples", "student_num_layers", optional=True)
        if self.cache_budget is not None and not self.cache_budget > 0:
            raise ProtegeError(f"--cache-budget must be > 0 GB, got {self.cache_budget}")
        if min(self.alpha_hidden, self.alpha_attn, self.alpha_embed) < 0:
            raise ProtegeError("--alpha-hidden, --alpha-attn and --alpha-embed must be >= 0")


OBJECTIVES = ("task", "mlm", "tinybert", "embedding", "clm")


def _default(value, default):
    return default if value is None else value
