"""Run configurations: frozen dataclasses validated on construction.

One field is one CLI flag (``student_layers`` -> ``--student-layers``) and one YAML key, so a
recipe, the command line and ``protege.distill(...)`` all say the same thing in the same words.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from protege.engine.config import TrainSettings
from protege.errors import ProtegeError
from protege.objectives.registry import OBJECTIVES, objective_config_class
from protege.utils.config import Section, build_config, check_positive, option, split_options

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

    def _check(self):
        check_positive(self, *_STUDENT_SIZE, optional=True)
        if self.student_layers is not None and not str(self.student_layers).strip():
            raise ProtegeError("--student-layers is empty; give layers (e.g. 0,2,4, every-other or uniform:3) or drop the flag")
        sized = any(getattr(self, n) is not None for n in _STUDENT_SIZE)
        chosen = [n for n, on in (("--student-layers", self.student_layers is not None), ("--student", self.student is not None),
                                  ("--student-num-layers/--student-hidden/...", sized)) if on]
        if len(chosen) > 1:
            raise ProtegeError(f"choose one way to build the student, not {' and '.join(chosen)}")

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

    teacher: str = option(None, "the teacher: a fine-tuned classifier (or, for general objectives, a masked LM, encoder, "
                                "sentence-transformers folder or causal LM): save_pretrained folder or hub id", required=True,
                          path=True)
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
        if self.cache_budget is not None and not (self.cache_budget > 0 and math.isfinite(self.cache_budget)):
            raise ProtegeError(f"--cache-budget must be > 0 GB, got {self.cache_budget}")
        self._check_text()
        super().__post_init__()

    def _check_text(self) -> None:
        """Task distillation reads a labeled table; the general objectives read unlabeled text."""
        text = {"train_text": self.train_text, "random_text": self.random_text, "random_corpus": self.random_corpus,
                "eval_text": self.eval_text}
        if self.objective == "task":
            given = [n for n, v in text.items() if v is not None]
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
