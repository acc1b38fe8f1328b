"""The shared config sections that every recipe's config is composed of.

- :class:`EvalData`: labeled evaluation data (file or datasets name, columns, split) and max length.
- :class:`TrainData`: :class:`EvalData` plus the training data.
- :class:`Optimization`: the training loop's settings (epochs, batch, optimizer, schedule, eval,
  checkpoints, precision, device, FSDP).
- :class:`Output`: the output folder, ``--resume`` and ``--overwrite``.
- :class:`Speed`: the CPU speed measurement of the final report.
- :class:`Checks`: what makes a finished run fail besides an error (``--strict``: a degenerate model).
- :class:`TrainSettings`: all of them; what a recipe that trains on labeled data composes.

Each section validates its own fields; a recipe config adds its own fields and checks.
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.engine.hub import check_hub_push
from protege.engine.optim import OPTIMIZERS, SCHEDULES
from protege.engine.reporters import check_reporters
from protege.errors import ProtegeError
from protege.utils.config import Section, check_choice, check_number, check_positive, option

__all__ = ["EvalData", "TrainData", "Optimization", "Output", "Speed", "Checks", "TrainSettings", "MAX_SPEED_SECONDS"]

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
    """The training loop: schedule, batches, optimizer, evaluation, checkpoints, precision, devices."""

    epochs: float = option(3.0, "training epochs (fractions allowed)")
    max_steps: int | None = option(None, "stop after this many optimizer steps (overrides --epochs)")
    batch_size: int = option(32, "examples per batch over all processes: the global batch (under accelerate "
                                 "launch/torchrun each of N processes takes 1/N of it); one optimizer step sees "
                                 "batch-size x grad-accum examples")
    grad_accum: int = option(1, "gradient accumulation steps (batches per optimizer step)")
    optimizer: str = option("adamw", "; ".join(f"{k}: {v[1]}" for k, v in OPTIMIZERS.items()), metavar="NAME")
    lr: float = option(5e-5, "peak learning rate")
    lr_scheduler: str = option("linear", "learning-rate schedule after the warmup (transformers.get_scheduler): "
                                         + "; ".join(f"{k}: {v}" for k, v in SCHEDULES.items()), metavar="NAME")
    weight_decay: float = option(0.01, "decoupled weight decay (not applied to biases and LayerNorm)")
    warmup_ratio: float = option(0.06, "fraction of the steps of linear warmup from 0 to --lr")
    max_grad_norm: float = option(1.0, "gradient clipping norm (0 disables)")
    seed: int = option(42, "random seed (data order, dropout, initialisation), 0 to 2^32-1")
    eval_every: int | None = option(None, "evaluate every N steps (default: at the end of each epoch)")
    patience: int = option(0, "stop after N evaluations without improvement (0: never)")
    keep_best: bool = option(True, "restore the best evaluated checkpoint at the end")
    save_best_model: bool = option(False, "also keep the best evaluated model as a loadable folder OUT/best-model (with "
                                          "its tokenizer), rewritten at each new best; needs periodic evaluation")
    checkpoint_every: int | None = option(None, "write a resumable checkpoint every N steps (default: at each evaluation)")
    checkpoint_minutes: float = option(10.0, "also write a resumable checkpoint when this many minutes have passed since "
                                             "the last one (fractions allowed; 0 disables)")
    log_every: int = option(10, "log losses every N steps")
    group_by_length: bool = option(True, "batch examples of similar length together (less padding)")
    precision: str = option("auto", "auto, fp32, bf16 or fp16 (autocast; auto uses bf16 on GPUs that support it, fp32 on CPU)")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    fsdp: bool = option(False, "shard the student across the processes of accelerate launch/torchrun with FSDP2 (on by "
                               "itself under an Accelerate FSDP config; no effect in one process; the teacher stays replicated)")
    progress: bool = option(True, "show progress: a bar on a terminal, else one plain line per log step (losses, lr, ex/s)")
    report_to: str = option("none", "also write every loss term, the learning rate, examples/s and evaluation metric to: "
                                    "none, or a comma-separated list of tensorboard (OUT/tensorboard), wandb, mlflow "
                                    "(each needs its extra: pip install 'protege[tensorboard]')", metavar="NAME")

    def _check(self):
        check_positive(self, "batch_size", "grad_accum", "log_every")
        check_positive(self, "max_steps", "eval_every", "checkpoint_every", optional=True)
        check_number(self, "checkpoint_minutes", low=0)
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
        check_choice(self, "optimizer", tuple(OPTIMIZERS))
        check_choice(self, "lr_scheduler", tuple(SCHEDULES))
        if self.optimizer == "adafactor" and self.fsdp:  # its factored statistics take plain tensors, not FSDP's shards
            raise ProtegeError("--optimizer adafactor cannot train a sharded (--fsdp) student; use --optimizer adamw or sgd")
        if not (self.device in ("auto", "cpu", "cuda") or str(self.device).startswith("cuda:")):
            raise ProtegeError(f"--device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
        check_reporters(self.report_to)

    def _unused(self):
        """Settings that do not shape the model (display, checkpoints), and --epochs under --max-steps."""
        plumbing = {"progress", "log_every", "report_to", "checkpoint_every", "checkpoint_minutes", "save_best_model"}
        return plumbing | ({"epochs"} if self.max_steps is not None else set())


@dataclass(frozen=True, kw_only=True)
class Output(Section):
    """Where the run writes, and what to do with an earlier run there."""

    out: str = option(None, "output folder (a save_pretrained folder plus metrics.json and a model card)", required=True)
    resume: bool = option(False, "continue an interrupted run from its last checkpoint")
    overwrite: bool = option(False, "replace the output folder (and an interrupted run's checkpoints) if they exist")
    push_to_hub: bool = option(False, "after the run, upload the output folder to the Hugging Face hub (token: HF_TOKEN "
                                      "or `hf auth login`); the folder stays saved if the upload fails")
    hub_model_id: str | None = option(None, "hub repository for --push-to-hub: NAME or OWNER/NAME (default: the --out "
                                            "folder's name, under your account)", metavar="REPO")

    def _check(self):
        if not self.out:
            raise ProtegeError("--out is required")
        if self.resume and self.overwrite:
            raise ProtegeError("--resume and --overwrite contradict each other; pass one")
        if self.hub_model_id is not None and not self.push_to_hub:
            raise ProtegeError("--hub-model-id names the repository of --push-to-hub; pass --push-to-hub too, or drop it")
        if self.push_to_hub:
            check_hub_push(self.hub_model_id)

    def _unused(self):
        """Where the run writes is no setting of the model it writes."""
        return {"out", "resume", "overwrite", "push_to_hub", "hub_model_id"}


@dataclass(frozen=True, kw_only=True)
class Speed(Section):
    """The CPU latency/throughput measurement of the final report."""

    speed: bool = option(True, "measure CPU latency/throughput in the final report")
    speed_seconds: float = option(10.0, f"time budget per model for the speed measurement (at most {MAX_SPEED_SECONDS:g})")

    def _check(self):
        check_number(self, "speed_seconds", low=0, high=MAX_SPEED_SECONDS, low_open=True)

    def _unused(self):
        """No speed measurement, no time budget for one."""
        return set() if self.speed else {"speed_seconds"}


@dataclass(frozen=True, kw_only=True)
class Checks(Section):
    """What makes a finished run fail (exit 1) besides an error."""

    strict: bool = option(False, "exit 1, not just warn, when the trained model is degenerate: one predicted class for "
                                 "every example, MCC about 0, a constant output or NaN")

    def _unused(self):
        """The exit code is no setting of the model."""
        return {"strict"}


@dataclass(frozen=True, kw_only=True)
class TrainSettings(TrainData, Optimization, Speed, Output, Checks):
    """Data, optimisation, speed, output and check settings: what every recipe that trains on labeled data shares."""

    def _needs_train(self) -> bool:
        """Whether ``--train`` is required (general distillation reads unlabeled text instead)."""
        return True

    def _check(self):
        if not self.train and self._needs_train():
            raise ProtegeError("--train is required")
