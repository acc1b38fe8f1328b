"""Run configurations: frozen dataclasses validated on construction.

One field is one CLI flag (``student_layers`` -> ``--student-layers``) and one YAML key, so a
recipe, the command line and ``protege.distill(...)`` all say the same thing in the same words.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protege.errors import ProtegeError

__all__ = ["TrainSettings", "FinetuneConfig", "DistillConfig", "CacheConfig", "load_recipe", "build_config"]


def _f(default, help: str, **kw):
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True, kw_only=True)
class TrainSettings:
    """Data and optimisation settings shared by every training verb."""

    train: str = _f(None, "training data: TSV/CSV/JSONL/Parquet file or a datasets hub name", required=True)
    eval: str | None = _f(None, "evaluation data (same formats), used for periodic evaluation and the report")
    out: str = _f(None, "output folder (a save_pretrained folder plus metrics.json and a model card)", required=True)
    text_column: str | None = _f(None, "text column (detected when omitted)")
    text_pair_column: str | None = _f(None, "second text column for sentence-pair tasks (detected when omitted)")
    label_column: str | None = _f(None, "label column (detected when omitted)")
    split: str | None = _f(None, "split to read from a datasets hub name (default train / validation)")
    max_train_examples: int | None = _f(None, "use only the first N training examples")
    max_eval_examples: int | None = _f(None, "use only the first N evaluation examples")
    epochs: float = _f(3.0, "training epochs (fractions allowed)")
    max_steps: int | None = _f(None, "stop after this many optimizer steps (overrides --epochs)")
    batch_size: int = _f(32, "examples per optimizer step, per process, before accumulation")
    grad_accum: int = _f(1, "gradient accumulation steps")
    max_length: int = _f(128, "maximum tokens per example (longer inputs are truncated)")
    lr: float = _f(5e-5, "peak learning rate (AdamW)")
    weight_decay: float = _f(0.01, "AdamW weight decay (not applied to biases and LayerNorm)")
    warmup_ratio: float = _f(0.06, "fraction of steps of linear warmup")
    max_grad_norm: float = _f(1.0, "gradient clipping norm (0 disables)")
    seed: int = _f(42, "random seed (data order, dropout, initialisation)")
    eval_every: int | None = _f(None, "evaluate every N steps (default: at the end of each epoch)")
    patience: int = _f(0, "stop after N evaluations without improvement (0: never)")
    keep_best: bool = _f(True, "restore the best evaluated checkpoint at the end")
    checkpoint_every: int | None = _f(None, "write a resumable checkpoint every N steps (default: at each evaluation)")
    log_every: int = _f(10, "log losses every N steps")
    group_by_length: bool = _f(True, "batch examples of similar length together (less padding)")
    precision: str = _f("auto", "auto, fp32, bf16 or fp16 (autocast; auto uses bf16 on GPUs that support it, fp32 on CPU)")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    speed: bool = _f(True, "measure CPU latency/throughput in the final report")
    speed_seconds: float = _f(10.0, "time budget per model for the speed measurement")
    resume: bool = _f(False, "continue an interrupted run from its last checkpoint")
    overwrite: bool = _f(False, "replace the output folder if it exists")
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self):
        for name in ("train", "out"):
            if not getattr(self, name):
                raise ProtegeError(f"--{name.replace('_', '-')} is required")
        _positive(self, "batch_size", "grad_accum", "max_length", "log_every")
        _positive(self, "max_steps", "eval_every", "checkpoint_every", "max_train_examples", "max_eval_examples", optional=True)
        if not (self.epochs > 0 and math.isfinite(self.epochs)):
            raise ProtegeError(f"--epochs must be > 0, got {self.epochs}")
        if not self.lr > 0:
            raise ProtegeError(f"--lr must be > 0, got {self.lr}")
        if not 0 <= self.warmup_ratio < 1:
            raise ProtegeError(f"--warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        if not self.speed_seconds > 0:
            raise ProtegeError(f"--speed-seconds must be > 0, got {self.speed_seconds}")
        if self.weight_decay < 0 or self.max_grad_norm < 0 or self.patience < 0:
            raise ProtegeError("--weight-decay, --max-grad-norm and --patience must be >= 0")
        if self.precision not in ("auto", "fp32", "bf16", "fp16"):
            raise ProtegeError(f"--precision must be auto, fp32, bf16 or fp16, got {self.precision!r}")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ProtegeError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        if self.resume and self.overwrite:
            raise ProtegeError("--resume and --overwrite contradict each other; pass one")


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainSettings):
    """``protege finetune``: train a classifier (the future teacher) from a pretrained backbone."""

    model: str = _f(None, "pretrained backbone or classifier: save_pretrained folder or hub id", required=True)
    problem_type: str | None = _f(None, "single_label_classification or regression (inferred from the labels)")

    def __post_init__(self):
        if not self.model:
            raise ProtegeError("--model is required (a pretrained folder or hub id)")
        if self.problem_type not in (None, "single_label_classification", "regression"):
            raise ProtegeError(f"--problem-type must be single_label_classification or regression, got {self.problem_type!r}")
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class DistillConfig(TrainSettings):
    """``protege distill``: a student learns the teacher's outputs (and optionally its internals)."""

    teacher: str = _f(None, "fine-tuned classifier: save_pretrained folder or hub id", required=True)
    student_layers: str | None = _f(None, "keep these teacher layers: 0,2,4 | every-other | uniform:K | first:K (default every-other)")
    student: str | None = _f(None, "a pretrained checkpoint to use as the student instead")
    student_num_layers: int | None = _f(None, "random-init student: number of layers")
    student_hidden: int | None = _f(None, "random-init student: hidden size")
    student_heads: int | None = _f(None, "random-init student: attention heads")
    student_ffn_size: int | None = _f(None, "random-init student: FFN inner size")
    alpha_kd: float = _f(1.0, "weight of the soft-target loss (Hinton KD at --temperature; logits MSE for regression)")
    alpha_ce: float = _f(0.0, "weight of the hard-label loss on gold labels")
    alpha_mse: float = _f(0.0, "weight of the logits MSE loss")
    alpha_hidden: float = _f(0.0, "weight of the hidden-state loss (see --hidden-loss)")
    alpha_attn: float = _f(0.0, "weight of the attention-distribution MSE (TinyBERT)")
    alpha_embed: float = _f(0.0, "weight of the embedding-layer MSE (TinyBERT)")
    temperature: float = _f(2.0, "softmax temperature T of the soft-target loss (scaled by T^2)")
    hidden_loss: str = _f("mse", "mse (TinyBERT) or cosine (DistilBERT)")
    layer_map: str | None = _f(None, "teacher layer for each student layer, e.g. 1,3,5 (default: the kept layers, or uniform)")
    hidden_projection: bool = _f(True, "learn a linear projection when student and teacher widths differ")
    cache_teacher: str | None = _f(None, "folder of the teacher-output cache: the teacher runs once over the training data, reused across epochs and runs")
    cache_budget: float | None = _f(None, "largest teacher cache allowed, in GB (fail before building a bigger one)")

    def __post_init__(self):
        if not self.teacher:
            raise ProtegeError("--teacher is required (a fine-tuned classifier folder or hub id)")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ProtegeError(f"--temperature must be > 0, got {self.temperature}")
        alphas = {n: getattr(self, n) for n in ("alpha_kd", "alpha_ce", "alpha_mse", "alpha_hidden", "alpha_attn", "alpha_embed")}
        for name, value in alphas.items():
            if not (value >= 0 and math.isfinite(value)):
                raise ProtegeError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
        if not any(alphas.values()):
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

    teacher: str = _f(None, "fine-tuned classifier: save_pretrained folder or hub id", required=True)
    train: str = _f(None, "data to run the teacher on (as distill's --train)", required=True)
    out: str = _f(None, "cache folder (pass the same folder to distill --cache-teacher)", required=True)
    text_column: str | None = _f(None, "text column (detected when omitted)")
    text_pair_column: str | None = _f(None, "second text column (detected when omitted)")
    label_column: str | None = _f(None, "label column (detected when omitted)")
    split: str | None = _f(None, "split of a datasets hub name (default train)")
    max_train_examples: int | None = _f(None, "use only the first N examples")
    max_length: int = _f(128, "maximum tokens per example: must match distill's")
    student_layers: str | None = _f(None, "as distill: the kept layers decide which hidden states/attentions to store")
    student_num_layers: int | None = _f(None, "as distill: a random-init student of N layers (uniform layer map)")
    layer_map: str | None = _f(None, "as distill: teacher layer for each student layer")
    alpha_hidden: float = _f(0.0, "store the mapped hidden states (set as in distill)")
    alpha_attn: float = _f(0.0, "store the mapped attention maps (set as in distill)")
    alpha_embed: float = _f(0.0, "store the embedding-layer output (set as in distill)")
    cache_budget: float | None = _f(None, "largest cache allowed, in GB")
    device: str = _f("auto", "auto, cpu, cuda or cuda:N")
    progress: bool = _f(True, "show a progress bar")

    def __post_init__(self):
        for name in ("teacher", "train", "out"):
            if not getattr(self, name):
                raise ProtegeError(f"--{name} is required")
        _positive(self, "max_length")
        _positive(self, "max_train_examples", "student_num_layers", optional=True)
        if self.cache_budget is not None and not self.cache_budget > 0:
            raise ProtegeError(f"--cache-budget must be > 0 GB, got {self.cache_budget}")
        if min(self.alpha_hidden, self.alpha_attn, self.alpha_embed) < 0:
            raise ProtegeError("--alpha-hidden, --alpha-attn and --alpha-embed must be >= 0")


def _positive(cfg, *names, optional=False):
    for name in names:
        value = getattr(cfg, name)
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ProtegeError(f"--{name.replace('_', '-')} must be a positive integer, got {value!r}")


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe into a dict of config fields (keys may use - or _)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ProtegeError(f"{path}: no such recipe file")
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as err:
        raise ProtegeError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ProtegeError(f"{path}: a recipe must be a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(cls, values: dict[str, Any], *, source: str = "arguments"):
    """Construct ``cls`` from a dict, turning unknown keys and wrong types into one-line errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ProtegeError(f"unknown option '{unknown[0]}' in {source}; see protege {cls.__name__[:-6].lower()} --help")
    clean = {}
    for name, value in values.items():
        clean[name] = _coerce(name, value, fields[name].type, source)
    return cls(**clean)


def _coerce(name, value, annotation, source):
    if value is None:
        return None
    kind = str(annotation)
    flag = "--" + name.replace("_", "-")
    try:
        if kind.startswith("bool"):
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if kind.startswith("int"):
            if isinstance(value, float) and not value.is_integer() or isinstance(value, bool):
                raise ValueError
            return int(value)
        if kind.startswith("float"):
            return float(value)
        if isinstance(value, (list, tuple)) and name in ("student_layers", "layer_map"):
            return ",".join(str(int(v)) for v in value)
        return str(value)
    except (TypeError, ValueError):
        raise ProtegeError(f"{flag} in {source}: expected {kind.split(' ')[0]}, got {value!r}") from None
