"""The shared config sections that every recipe's config is composed of.

- :class:`EvalData`: labeled evaluation data (file or datasets name, columns, split) and max length.
- :class:`TrainData`: :class:`EvalData` plus the training data.
- :class:`Optimization`: the training loop's settings (epochs, batch, AdamW, schedule, eval,
  checkpoints, precision, device, FSDP).
- :class:`Output`: the output folder, ``--resume`` and ``--overwrite``.
- :class:`Speed`: the CPU speed measurement of the final report.
- :class:`TrainSettings`: all of them; what a recipe that trains on labeled data composes.

Each section validates its own fields; a recipe config adds its own fields and checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.errors import ProtegeError
from protege.utils.config import Section, check_choice, check_number, check_positive, option

__all__ = ["EvalData", "TrainData", "Optimization", "Output", "Speed", "TrainSettings", "MAX_SPEED_SECONDS"]

MAX_SPEED_SECONDS = 600.0  # every timing loop is bounded


@dataclass(frozen=True, kw_only=True)
class EvalData(Section):
    """Labeled evaluation data and how examples are read and tokenised."""

    eval: str | None = option(None, "evaluation data (TSV/CSV/JSONL/Parquet file or datasets name), used for periodic "
                                    "evaluation and the report", path=True)
    text_column: str | None = option(None, "text column (detected when omitted)")
    text_pair_column: str | None = option(None, "second text column for sentence-pair tasks (detected when omitted)")
    label_column: str | None = option(None, "label column (detected when omitted)")
    split: str | None = option(None, "split to read from a datasets hub name (default train / validation)")
    max_eval_examples: int | None = option(None, "use only the first N evaluation examples")
    max_length: int = option(128, "maximum tokens per example (longer inputs are truncated)")

    def _check(self):
        check_positive(self, "max_length")
        check_positive(self, "max_eval_examples", optional=True)


@dataclass(frozen=True, kw_only=True)
class TrainData(EvalData):
    """:class:`EvalData` plus the training data."""

    train: str | None = option(None, "training data: TSV/CSV/JSONL/Parquet file or a datasets hub name", path=True)
    max_train_examples: int | None = option(None, "use only the first N training examples")

    def _check(self):
        check_positive(self, "max_train_examples", optional=True)


@dataclass(frozen=True, kw_only=True)
class Optimization(Section):
    """The training loop: schedule, batches, AdamW, evaluation, checkpoints, precision, devices."""

    epochs: float = option(3.0, "training epochs (fractions allowed)")
    max_steps: int | None = option(None, "stop after this many optimizer steps (overrides --epochs)")
    batch_size: int = option(32, "examples per optimizer step before accumulation: the global batch, split across "
                                 "processes under accelerate launch/torchrun")
    grad_accum: int = option(1, "gradient accumulation steps")
    lr: float = option(5e-5, "peak learning rate (AdamW)")
    weight_decay: float = option(0.01, "AdamW weight decay (not applied to biases and LayerNorm)")
    warmup_ratio: float = option(0.06, "fraction of steps of linear warmup")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 disables)")
    seed: int = option(42, "random seed (data order, dropout, initialisation), 0 to 2^32-1")
    eval_every: int | None = option(None, "evaluate every N steps (default: at the end of each epoch)")
    patience: int = option(0, "stop after N evaluations without improvement (0: never)")
    keep_best: bool = option(True, "restore the best evaluated checkpoint at the end")
    checkpoint_every: int | None = option(None, "write a resumable checkpoint every N steps (default: at each evaluation)")
    log_every: int = option(10, "log losses every N steps")
    group_by_length: bool = option(True, "batch examples of similar length together (less padding)")
    precision: str = option("auto", "auto, fp32, bf16 or fp16 (autocast; auto uses bf16 on GPUs that support it, fp32 on CPU)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    fsdp: bool = option(False, "shard the student across the processes of accelerate launch/torchrun with FSDP2 (on by "
                               "itself under an Accelerate FSDP config; no effect in one process; the teacher stays replicated)")
    progress: bool = option(True, "show a progress bar")

    def _check(self):
        check_positive(self, "batch_size", "grad_accum", "log_every")
        check_positive(self, "max_steps", "eval_every", "checkpoint_every", optional=True)
        check_number(self, "epochs", low=0, low_open=True)
        check_number(self, "lr", low=0, high=1.0, low_open=True)
        check_number(self, "weight_decay", low=0)
        check_number(self, "warmup_ratio", low=0, high=1, high_open=True)
        check_number(self, "max_grad_norm", low=0)
        if not isinstance(self.patience, int) or isinstance(self.patience, bool) or self.patience < 0:
            raise ProtegeError(f"--patience must be an integer >= 0, got {self.patience!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or not 0 <= self.seed < 2 ** 32:
            raise ProtegeError(f"--seed must be an integer from 0 to 2^32-1 (4294967295), got {self.seed!r}")
        check_choice(self, "precision", ("auto", "fp32", "bf16", "fp16"))
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise ProtegeError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")


@dataclass(frozen=True, kw_only=True)
class Output(Section):
    """Where the run writes, and what to do with an earlier run there."""

    out: str = option(None, "output folder (a save_pretrained folder plus metrics.json and a model card)", required=True)
    resume: bool = option(False, "continue an interrupted run from its last checkpoint")
    overwrite: bool = option(False, "replace the output folder (and an interrupted run's checkpoints) if they exist")

    def _check(self):
        if not self.out:
            raise ProtegeError("--out is required")
        if self.resume and self.overwrite:
            raise ProtegeError("--resume and --overwrite contradict each other; pass one")


@dataclass(frozen=True, kw_only=True)
class Speed(Section):
    """The CPU latency/throughput measurement of the final report."""

    speed: bool = option(True, "measure CPU latency/throughput in the final report")
    speed_seconds: float = option(10.0, f"time budget per model for the speed measurement (at most {MAX_SPEED_SECONDS:g})")

    def _check(self):
        check_number(self, "speed_seconds", low=0, high=MAX_SPEED_SECONDS, low_open=True)


@dataclass(frozen=True, kw_only=True)
class TrainSettings(TrainData, Optimization, Speed, Output):
    """Data, optimisation, speed and output settings: what every recipe that trains on labeled data shares."""

    def _needs_train(self) -> bool:
        """Whether ``--train`` is required (general distillation reads unlabeled text instead)."""
        return True

    def _check(self):
        if not self.train and self._needs_train():
            raise ProtegeError("--train is required")
