"""Run configurations: frozen dataclasses validated on construction.

One field is one CLI flag (``student_layers`` -> ``--student-layers``) and one YAML key, so a
recipe, the command line and ``protege.distill(...)`` all say the same thing in the same words.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

from protege.engine.config import TrainSettings
from protege.errors import ProtegeError
from protege.objectives.registry import OBJECTIVES, objective_config_class
from protege.utils.extras import check_extra
from protege.utils.config import Section, build_config, check_choice, check_number, check_positive, option, split_options

__all__ = ["DistillConfig", "StudentSection", "CacheConfig", "OBJECTIVES", "build_distill_config"]


_STUDENT_SIZE = ("student_num_layers", "student_hidden", "student_heads", "student_ffn_size")


@dataclass(frozen=True, kw_only=True)
class StudentSection(Section):
    """How the student is made: kept teacher layers, a smaller configuration, or a pretrained checkpoint."""

    student_layers: str | None = option(None, "keep these teacher layers: 0,2,4 | every-other | ends | uniform:K | first:K "
                                              "(default every-other; ends for --objective embedding)", list=True)
    student: str | None = option(None, "a pretrained checkpoint to use as the student instead", path=True)
    student_num_layers: int | None = option(None, "random-init student: number of layers")
    student_hidden: int | None = option(None, "random-init student: hidden size")
    student_heads: int | None = option(None, "random-init student: attention heads")
    student_ffn_size: int | None = option(None, "random-init student: FFN inner size")
    student_lora_r: int | None = option(None, "train the student as LoRA adapters of rank R plus its head (a large student "
                                              "cheaply), merged into a plain model at the end; needs protege[peft]", metavar="R")
    student_lora_alpha: float | None = option(None, "LoRA scaling alpha (default 2 x --student-lora-r)")
    student_lora_target: str | None = option(None, "layers LoRA adapts, e.g. query,value (default: peft's choice for the "
                                                   "architecture)", names=True, metavar="NAME,...")

    def _check(self):
        check_positive(self, *_STUDENT_SIZE, optional=True)
        self._check_lora()
        if self.student_layers is not None and not str(self.student_layers).strip():
            raise ProtegeError("--student-layers is empty; give layers (e.g. 0,2,4, every-other or uniform:3) or drop the flag")
        sized = any(getattr(self, n) is not None for n in _STUDENT_SIZE)
        chosen = [n for n, on in (("--student-layers", self.student_layers is not None), ("--student", self.student is not None),
                                  ("--student-num-layers/--student-hidden/...", sized)) if on]
        if len(chosen) > 1:
            raise ProtegeError(f"choose one way to build the student, not {' and '.join(chosen)}")

    def _check_lora(self) -> None:
        check_positive(self, "student_lora_r", optional=True)
        if self.student_lora_r is None:
            extra = [n for n in ("student_lora_alpha", "student_lora_target") if getattr(self, n) is not None]
            if extra:
                raise ProtegeError(f"--{extra[0].replace('_', '-')} sets up a LoRA student; add --student-lora-r R or drop it")
            return
        check_number(self, "student_lora_alpha", low=0, low_open=True, optional=True)
        check_extra("peft", "peft", what="--student-lora-r (a LoRA student)")  # before torch loads
        if self.student_lora_target is not None and not str(self.student_lora_target).strip(" ,"):
            raise ProtegeError("--student-lora-target is empty; name layers (e.g. query,value) or drop the flag")
        if any(getattr(self, n) is not None for n in _STUDENT_SIZE):
            raise ProtegeError("--student-lora-r adapts pretrained weights, not a random-init student; use --student "
                               "CHECKPOINT or --student-layers with it")

    @property
    def student_kind(self) -> str:
        """``"layers"``, ``"pretrained"`` or ``"config"``."""
        if self.student is not None:
            return "pretrained"
        if any(getattr(self, n) is not None for n in _STUDENT_SIZE):
            return "config"
        return "layers"


@dataclass(frozen=True, kw_only=True)
class DistillConfig(TrainSettings, StudentSection):
    """``protege distill``: a student learns the teacher's outputs (and optionally its internals).

    The objective's own options (loss weights, temperature, masking ...) are ``losses``, a config
    of :mod:`protege.objectives.configs` chosen by ``objective``; :func:`build_distill_config`
    builds both from one flat set of flags.
    """

    teacher: str | tuple[str, ...] = option(
        None, "the teacher: a fine-tuned classifier (or, for general objectives, a masked LM, encoder, sentence-transformers "
              "folder or causal LM): save_pretrained folder or hub id. Several (task objective): their ensemble is the teacher, "
              "and the student is built from the first one's layers", required=True, path=True, many=True, metavar="MODEL")
    teacher_weights: str | None = option(None, "weights of the ensemble's members, one per --teacher, e.g. 2,1,1 (default: equal)",
                                         numbers=True, metavar="W,W,...")
    ensemble: str = option("probs", "how several --teacher combine: probs (mean of their probabilities at the KD temperature) "
                                    "| logits (mean of their logits)")
    objective: str = option("task", "task (a classifier, labeled --train) | mlm (DistilBERT) | tinybert | embedding "
                                    "(sentence-transformers) | clm (causal LM)")
    cache_teacher: str | None = option(None, "folder of the teacher-output cache: the teacher runs once over the training data, "
                                             "reused across epochs and runs (task objective)")
    cache_budget: float | None = option(None, "largest teacher cache allowed, in GB (fail before building a bigger one)")
    train_text: str | None = option(None, "unlabeled transfer text for mlm/tinybert/embedding/clm: a .txt file (one document or "
                                          "sentence a line), a table or a datasets name", path=True)
    random_text: int | None = option(None, "instead of --train-text: N random word sequences (unigram from --random-corpus, "
                                           "else the teacher's vocabulary)")
    random_corpus: str | None = option(None, "text file whose word frequencies and sentence lengths drive --random-text", path=True)
    eval_text: str | None = option(None, "held-out text for the report (perplexity, agreement, cosine to the teacher); default: "
                                         "the last 5% of the transfer text, at most 1000 lines", path=True)
    label_names: str | None = option(None, "class names in id order, e.g. neg,pos: the student's id2label, what pipeline() prints "
                                           "(default: the teacher's, or a datasets ClassLabel's when the teacher only numbers "
                                           "its classes); data labels may use them", names=True)
    losses: object = option(None, "the objective's options (a config of protege.objectives.configs)", hidden=True, object=True)

    def _needs_train(self) -> bool:
        return self.objective == "task"

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ProtegeError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}")
        cls = objective_config_class(self.objective)
        if self.losses is None:
            object.__setattr__(self, "losses", cls())  # frozen: set once, at construction
        elif not isinstance(self.losses, cls):
            raise ProtegeError(f"--objective {self.objective} takes {cls.__name__} options, got {type(self.losses).__name__}")
        if not self.teacher:
            raise ProtegeError("--teacher is required (a fine-tuned classifier folder or hub id)")
        self._check_ensemble()
        if self.student_lora_r is not None and self.objective != "task":
            raise ProtegeError(f"--student-lora-r is for task distillation (a classifier student); drop it for --objective {self.objective}")
        if self.student_lora_r is not None and self.fsdp:
            raise ProtegeError("--student-lora-r trains a replicated student; drop --fsdp (LoRA keeps the optimizer state small anyway)")
        if self.cache_budget is not None and not (self.cache_budget > 0 and math.isfinite(self.cache_budget)):
            raise ProtegeError(f"--cache-budget must be > 0 GB, got {self.cache_budget}")
        self._check_text()
        super().__post_init__()

    def _unused(self):
        """How an ensemble combines is no setting of a run with one teacher."""
        return {"ensemble", "teacher_weights"} if len(self.teachers) == 1 else set()

    @property
    def teachers(self) -> tuple[str, ...]:
        """Every ``--teacher`` given: one, or the members of an ensemble."""
        return (self.teacher,) if isinstance(self.teacher, str) else tuple(self.teacher)

    @property
    def teacher_name(self) -> str:
        """The teacher as reports name it: its folder or hub id, or ``ensemble(A, B, ...)``."""
        return self.teacher if isinstance(self.teacher, str) else f"ensemble({', '.join(self.teacher)})"

    @property
    def ensemble_weights(self) -> tuple[float, ...] | None:
        """``--teacher-weights`` as numbers (None: equal weights)."""
        if self.teacher_weights is None:
            return None
        try:
            return tuple(float(w) for w in str(self.teacher_weights).replace(" ", "").split(","))
        except ValueError:
            raise ProtegeError(f"--teacher-weights must be numbers separated by commas (e.g. 2,1), got {self.teacher_weights!r}") from None

    def _check_ensemble(self) -> None:
        """One teacher (a str from then on), or an ensemble of several for task distillation."""
        teachers = [self.teacher] if isinstance(self.teacher, (str, os.PathLike)) else list(self.teacher)
        if not teachers or not all(isinstance(t, (str, os.PathLike)) and os.fspath(t) for t in teachers):
            raise ProtegeError(f"--teacher must be one or more model folders or hub ids, got {self.teacher!r}")
        teachers = [os.fspath(t) for t in teachers]
        object.__setattr__(self, "teacher", teachers[0] if len(teachers) == 1 else tuple(teachers))  # frozen: set once
        check_choice(self, "ensemble", ("probs", "logits"))
        weights = self.ensemble_weights
        if len(teachers) == 1:
            if weights is not None:
                raise ProtegeError("--teacher-weights weighs the members of an ensemble; give several --teacher, or drop it")
            return
        if self.objective != "task":
            raise ProtegeError(f"--objective {self.objective} learns from one --teacher; an ensemble of teachers is for "
                               "task distillation (--objective task)")
        seen = [str(Path(t).expanduser().resolve()) if Path(t).expanduser().exists() else t for t in teachers]
        twice = next((t for i, t in enumerate(teachers) if seen[i] in seen[:i]), None)
        if twice is not None:
            raise ProtegeError(f"--teacher {twice} is given twice; give each member once (weigh it with --teacher-weights)")
        if weights is not None and (len(weights) != len(teachers) or not all(w >= 0 and math.isfinite(w) for w in weights)
                                    or not sum(weights) > 0):
            raise ProtegeError(f"--teacher-weights needs {len(teachers)} finite numbers >= 0 (one per --teacher), not all 0; "
                               f"got {self.teacher_weights}")
        inner = [f"--alpha-{n}" for n in ("hidden", "attn", "embed") if getattr(self.losses, f"alpha_{n}", 0)]
        if inner:
            raise ProtegeError(f"{inner[0]} reads one teacher's internals, and an ensemble has none of its own; "
                               "set it to 0 or give one --teacher")

    def _check_text(self) -> None:
        """Task distillation reads a labeled table; the general objectives read unlabeled text."""
        text = {"train_text": self.train_text, "random_text": self.random_text, "random_corpus": self.random_corpus,
                "eval_text": self.eval_text}
        if self.objective == "task":
            given = [n for n, v in text.items() if v is not None]
            if given:
                raise ProtegeError(f"--{given[0].replace('_', '-')} is for general distillation; pass --objective "
                                   "mlm|tinybert|embedding|clm (or drop it for task distillation with a labeled --train)")
            from protege.data import parse_label_names

            parse_label_names(self.label_names)  # the form now; the count against the teacher's classes later
            return
        flag = f"--objective {self.objective}"
        if self.label_names is not None:
            raise ProtegeError(f"--label-names names a classifier's classes; {flag} trains no classifier: drop it")
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
        check_positive(self, "random_text", optional=True)

    def settings(self) -> dict:
        """The run's settings as one flat dict (metrics.json, protege_config.json): given values only."""
        flat = {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "losses"}
        flat.update(dataclasses.asdict(self.losses))
        return {k: v for k, v in flat.items() if v is not None}


def build_distill_config(options: dict, *, source: str = "arguments") -> DistillConfig:
    """A :class:`DistillConfig` from one flat dict of options (flags, YAML keys, keyword arguments).

    Options of the chosen objective go to its config; an option of another objective is refused
    by name. The objective's ``RUN_DEFAULTS`` fill run settings the options leave out.
    """
    from protege.objectives.registry import OBJECTIVES

    table = {name: objective_config_class(name) for name in OBJECTIVES}
    objective, run, own = split_options(options, DistillConfig, table, choice="objective", default="task", source=source,
                                        verb="distill")
    cls = table[objective]
    for key, value in cls.RUN_DEFAULTS.items():
        if key == "student_layers" and any(run.get(n) is not None for n in ("student",) + _STUDENT_SIZE):
            continue  # the user chose another kind of student
        run.setdefault(key, value)
    losses = build_config(cls, own, source=source, verb="distill")
    return build_config(DistillConfig, {**run, "losses": losses}, source=source, verb="distill")


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
