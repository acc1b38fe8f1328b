"""``protege.prune``: prune a classifier folder into a measured, loadable folder (``prune_`` prunes a model in memory).

One path for every method, as in ``protege.distill``: build and check the configs, load the
dense model and the data and check the method fits them, all before anything is written; then
prune (and train, with protege's trainer and distillation objective, the dense model as the
teacher) in the staging folder; then save, measure against the dense model with
:func:`protege.evaluation.api.compare_models`, add the pruning section, and move into place.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path


from protege.errors import ProtegeError
from protege.engine.config import Checks, Optimization, Output, Speed, TrainData
from protege.pruning.config import METHODS, MasksConfig, StructuredConfig
from protege.utils.config import option

from protege.recipes.common import takes_objects

__all__ = ["PruneConfig", "PruneRun", "RECOVERY", "prune", "split_options"]

RECOVERY = ("none", "finetune", "distill")


_DEFAULT_RECOVERY = {"magnitude": "none", "imp": "finetune", "gradual": "distill", "structured": "none", "masks": "none"}


@dataclass(frozen=True, kw_only=True)
class PruneConfig(TrainData, Optimization, Speed, Output, Checks):
    """``protege prune``: one pruning run, from a classifier folder to a pruned, measured folder.

    The training settings are used only when something trains: ``--recover finetune|distill``,
    the rounds of ``--method imp`` and the schedule of ``--method gradual``.
    """

    model: str = option(None, "the dense classifier (or causal LM, --method structured) to prune: save_pretrained folder or "
                              "hub id", required=True, positional=True, path=True)
    method: str = option("magnitude", "magnitude | imp | gradual | structured | masks")
    train: str | None = option(None, "training data for recovery, IMP rounds and gradual pruning (TSV/CSV/JSONL/Parquet or hub name)",
                               path=True)
    train_text: str | None = option(None, "causal LMs: unlabeled text (a .txt file, one document a line, a table or a "
                                          "datasets name) for measured importance and recovery; packed into --max-length "
                                          "sequences", path=True)
    eval_text: str | None = option(None, "causal LMs: held-out text for the report (perplexity, agreement with the dense "
                                         "model)", path=True)
    recover: str | None = option(None, "train after pruning: none | finetune (gold labels) | distill (from the dense model); "
                                   "default none, finetune for imp, distill for gradual")
    alpha_kd: float = option(1.0, "recovery by distillation: weight of the soft-target loss")
    alpha_ce: float = option(0.0, "recovery by distillation: weight of the hard-label loss")
    alpha_hidden: float = option(0.0, "recovery by distillation: weight of the hidden-state MSE to the dense model")
    temperature: float = option(2.0, "recovery by distillation: softmax temperature (causal LMs: 1 unless given)")

    def __post_init__(self):
        if not self.model:
            raise ProtegeError("a model to prune is required: protege prune runs/teacher --method ... --out ...")
        if self.method not in METHODS:
            raise ProtegeError(f"--method must be one of {', '.join(METHODS)}, got {self.method!r}")
        if self.recover is not None and self.recover not in RECOVERY:
            raise ProtegeError(f"--recover must be none, finetune or distill, got {self.recover!r}")
        if self.method in ("imp", "gradual") and self.recovery == "none":
            raise ProtegeError(f"--method {self.method} trains while it prunes; use --recover finetune or --recover distill")
        if self.method == "gradual" and self.recovery != "distill":
            raise ProtegeError("--method gradual prunes during distillation; use --recover distill (the default)")
        if self.resume:
            raise ProtegeError("pruning runs cannot be resumed; run the command again without --resume")
        if self.save_best_model:  # its masks are made permanent only at the end; the best round or step is no plain model
            raise ProtegeError("--save-best-model is not available for protege prune; --keep-best already restores the "
                               "best evaluated weights at the end")
        if self.out is None:
            raise ProtegeError("--out is required")
        if self.needs_training and not (self.train or self.train_text):
            why = {"imp": "to train between rounds", "gradual": "to distil while pruning"}.get(self.method, f"for --recover {self.recovery}")
            raise ProtegeError(f"--method {self.method} needs --train {why}; pass --train FILE")
        if self.method == "imp" and not self.eval:
            raise ProtegeError("--method imp needs --eval: a round 'matches' by its metric on the evaluation data")
        if self.method == "gradual" and self.patience:
            raise ProtegeError("--patience would stop before the schedule reaches --sparsity; drop it for --method gradual")
        if self.recovery == "distill":
            for name in ("alpha_kd", "alpha_ce", "alpha_hidden"):
                value = getattr(self, name)
                if not (value >= 0 and math.isfinite(value)):
                    raise ProtegeError(f"--{name.replace('_', '-')} must be >= 0, got {value}")
            if not (self.alpha_kd or self.alpha_ce or self.alpha_hidden):
                raise ProtegeError("every recovery loss weight is 0; set --alpha-kd, --alpha-ce or --alpha-hidden")
            if not (self.temperature > 0 and math.isfinite(self.temperature)):
                raise ProtegeError(f"--temperature must be > 0, got {self.temperature}")
        super().__post_init__()

    @property
    def recovery(self) -> str:
        """What trains: ``--recover`` or the method's default."""
        return self.recover or _DEFAULT_RECOVERY[self.method]

    @property
    def needs_training(self) -> bool:
        """Whether this run trains (and so needs ``--train``)."""
        return self.recovery != "none"

    def _unused(self):
        """The training settings of a run that does not train; the distillation knobs of one that does not distil."""
        unused = set() if self.recovery == "distill" else {"alpha_kd", "alpha_ce", "alpha_hidden", "temperature"}
        if not self.needs_training:
            unused |= {f.name for f in dataclasses.fields(Optimization) if f.name != "device"} | {"train", "max_train_examples"}
        return unused



def split_options(options: dict, *, source: str = "arguments") -> tuple[PruneConfig, object]:
    """Build the run config and the method's config from one flat dict of options (flags, YAML keys, kwargs)."""
    from protege.utils.config import build_config, split_options as split

    method, run, own = split(options, PruneConfig, METHODS, choice="method", default="magnitude", source=source, verb="prune")
    return build_config(PruneConfig, run, source=source, verb="prune"), build_config(METHODS[method], own, source=source)


def _log(msg: str) -> None:
    from protege.utils.log import log

    log(msg)


@dataclass
class PruneRun:
    """Everything a method needs, loaded and checked before the output folder is touched."""

    cfg: PruneConfig
    method_cfg: object
    dense: object
    tokenizer: object
    problem: str
    primary: str
    train_ex: object = None
    eval_ex: object = None
    features: list | None = None
    eval_features: list | None = None
    dense_logits: object = None
    reference: dict | None = None
    device: object = None
    stage: Path | None = None
    training: list | None = None
    callbacks: tuple = ()  # the caller's (protege.prune(callbacks=...)): every training run and the finished folder

    def eval_fn(self, model) -> dict:
        from protege.evaluation.metrics import agreement, task_metrics
        from protege.evaluation.predict import predict

        logits = predict(model, self.eval_features, pad_token_id=self.pad, device=self.device)
        return task_metrics(logits, self.eval_ex.labels, self.problem) | agreement(logits, self.dense_logits, self.problem)

    @property
    def pad(self) -> int:
        return self.tokenizer.pad_token_id or 0

    def settings(self, **changes):
        """The training loop's settings (the shared sections of the run's config)."""
        from protege.engine import Optimization

        shared = {f.name: getattr(self.cfg, f.name) for f in dataclasses.fields(Optimization)}
        return dataclasses.replace(Optimization(**shared), **changes)

    def train(self, model, work_dir: Path, *, layer_map: list[int] | None = None, callbacks=(), **changes):
        """Train ``model`` (masks and all) with protege's trainer; the dense model is the teacher for ``distill``."""
        from protege.engine import train

        settings = self.settings(**changes)
        eval_fn = self.eval_fn if self.eval_ex is not None else None
        result = train(model, self.features, settings=settings, loss_fn=self._loss_fn(model, layer_map),
                       work_dir=work_dir, pad_token_id=self.pad, eval_fn=eval_fn, primary=self.primary, device=self.device,
                       callbacks=(*callbacks, *self.callbacks))
        self.training.append({"steps": result.steps, "seconds": result.seconds, "examples_per_s": result.examples_per_s,
                              "best_step": result.best_step, "final_loss": result.final_loss, "history": result.history})
        return result

    def _loss_fn(self, model, layer_map):
        import torch

        from protege.models import num_layers
        from protege.objectives.task import Objective, distillation_losses

        if self.cfg.recovery == "finetune":
            return lambda m, batch: {"loss": m(**batch).loss}
        layer_map = layer_map if layer_map is not None else list(range(num_layers(model.config)))
        c = self.cfg
        objective = Objective(alpha_kd=c.alpha_kd, alpha_ce=c.alpha_ce, alpha_hidden=c.alpha_hidden,
                              temperature=c.temperature, layer_map=tuple(layer_map), problem_type=self.problem)
        teacher = self.dense.to(self.device)  # no_grad below; its copies (IMP controls) must stay trainable
        hidden = objective.needs_hidden_states

        def loss_fn(student, batch):
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            with torch.no_grad():
                t_out = teacher(**inputs, output_hidden_states=hidden)
            return distillation_losses(student(**inputs, output_hidden_states=hidden), t_out, batch, objective)

        return loss_fn


@takes_objects
def prune(model: str | None = None, *, config: PruneConfig | None = None, method_config=None, callbacks=(),
          **options) -> dict:
    """Prune the classifier ``model`` (a folder or hub id) into ``out``; returns the metrics written to ``out/metrics.json``.

    Keyword arguments are the fields of :class:`~protege.pruning.config.PruneConfig` (``method``,
    ``out``, ``train``, ``eval``, ``recover``, training settings) and of the method's config
    (:data:`~protege.pruning.config.METHODS`), i.e. the flags of ``protege prune``. Or pass
    ``config`` and ``method_config`` objects. The report compares the pruned model with the
    dense one: quality, agreement, parameters, CPU latency, plus ``metrics["pruning"]``.
    ``callbacks`` see every training run's events (steps restart at 1 in each lottery round) and
    ``on_save`` (:mod:`protege.engine.events`). A causal LM ``model`` goes to
    :func:`protege.recipes.prune_decoder.prune_decoder` (``--method structured``, ``train_text``).
    """
    from protege.engine import plan_stage
    from protege.engine.events import as_callbacks
    from protege.models.loading import quiet_transformers
    from protege.recipes.prune_steps import METHOD_STEPS
    from protege.utils.device import resolve_device

    if config is not None or method_config is not None:
        if options or model is not None or config is None or method_config is None:
            raise TypeError("pass either config and method_config objects, or a model and keyword arguments")
        cfg, mcfg = config, method_config
        if not isinstance(mcfg, METHODS[cfg.method]):
            raise ProtegeError(f"--method {cfg.method} takes a {METHODS[cfg.method].__name__}, got {type(mcfg).__name__}")
    else:
        cfg, mcfg = split_options({**options, **({"model": model} if model is not None else {})})
    callbacks = as_callbacks(callbacks)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # masks, rounds and the output have no main-process guards
        raise ProtegeError("prune runs in one process; start it without torchrun/accelerate launch")
    quiet_transformers()
    from protege.recipes.prune_decoder import prune_decoder, routes_to_decoder

    if routes_to_decoder(cfg, mcfg):  # a causal LM: Minitron-style structured pruning
        return prune_decoder(cfg, mcfg, callbacks=callbacks)
    stage = plan_stage(cfg, inputs=[cfg.model, cfg.train, cfg.eval, getattr(mcfg, "masks", None)])
    with stage.guard():
        run = _prepare(cfg, mcfg)
        run.device = resolve_device(cfg.device)
        run.stage = stage.begin()
        run.training = []
        run.callbacks = callbacks
        pruned, extra = METHOD_STEPS[cfg.method](run)
        return _finish(run, stage, pruned, extra)


# --- before anything is written ------------------------------------------------------------------

def _load_dense(name: str):
    from protege.models.loading import load_classifier, load_config
    from protege.pruning.structured import FFN_SIZES_KEY, PRUNED_HEADS_KEY, load_pruned

    config = load_config(name)
    if getattr(config, PRUNED_HEADS_KEY, None) or getattr(config, FFN_SIZES_KEY, None):
        return load_pruned(name)
    return load_classifier(name, role="model")


def _prepare(cfg: PruneConfig, mcfg) -> PruneRun:
    from protege.data import load_examples
    from protege.data.batching import encode
    from protege.objectives.pairing import map_to_teacher_labels
    from protege.evaluation.metrics import primary_metric
    from protege.models import load_tokenizer, problem_type_of
    from protege.recipes.common import fit_max_length
    from protege.pruning.magnitude import load_masks, prunable_weights
    from protege.pruning.schedule import GradualSchedule, planned_steps
    from protege.pruning.structured import check_structured

    dense = _load_dense(cfg.model)
    cfg = fit_max_length(cfg, dense.config)
    tokenizer = load_tokenizer(cfg.model)
    problem = problem_type_of(dense.config)
    run = PruneRun(cfg, mcfg, dense, tokenizer, problem, primary_metric(problem))
    try:
        prunable_weights(dense)
    except ProtegeError:
        raise ProtegeError(f"cannot find the transformer blocks of {cfg.model} ({type(dense).__name__}); protege prune "
                           "supports encoders whose blocks sit in one ModuleList (BERT, RoBERTa, DistilBERT, ELECTRA, MPNet)") from None
    if isinstance(mcfg, StructuredConfig):
        check_structured(dense, mcfg)
    if isinstance(mcfg, MasksConfig):
        from protege.pruning.magnitude import apply_masks_

        apply_masks_(copy.deepcopy(dense), load_masks(mcfg.masks))  # shapes and names must fit
    common = dict(text_column=cfg.text_column, text_pair_column=cfg.text_pair_column, label_column=cfg.label_column)
    if cfg.train:
        labels = cfg.recovery == "finetune" or (cfg.recovery == "distill" and cfg.alpha_ce > 0)
        run.train_ex = map_to_teacher_labels(load_examples(cfg.train, split=cfg.split or "train", require_labels=labels,
                                                           max_examples=cfg.max_train_examples, **common), dense.config)
        run.features = encode(run.train_ex, tokenizer, max_length=cfg.max_length)
    if cfg.eval:
        run.eval_ex = map_to_teacher_labels(load_examples(cfg.eval, split=cfg.split or "validation", require_labels=True,
                                                          max_examples=cfg.max_eval_examples, **common), dense.config)
        run.eval_features = encode(run.eval_ex, tokenizer, max_length=cfg.max_length)
    if isinstance(mcfg, StructuredConfig) and mcfg.importance == "gradient" and (mcfg.keep_heads or mcfg.keep_ffn) \
            and run.train_ex is None and run.eval_ex is None:
        raise ProtegeError("gradient importance needs data: pass --train (or --eval), or use --importance magnitude")
    steps = planned_steps(run.settings(), len(run.features)) if run.features else 0
    if cfg.method == "imp" and mcfg.rewind_step >= max(steps, 1):
        raise ProtegeError(f"--rewind-step {mcfg.rewind_step} is not before the end of training ({steps} steps); "
                           f"choose a step below {steps} or 0 to rewind to the input model")
    if cfg.method == "gradual":
        GradualSchedule(mcfg, steps)  # the window must hold at least one step
    if run.eval_ex is not None:
        from protege.evaluation.predict import predict

        run.dense_logits = predict(dense, run.eval_features, pad_token_id=run.pad)
        from protege.evaluation.metrics import task_metrics

        run.reference = task_metrics(run.dense_logits, run.eval_ex.labels, problem)
    return run


# --- after ------------------------------------------------------------------------------------

def _finish(run: PruneRun, stage, model, extra: dict) -> dict:
    from protege.engine import finish_run
    from protege.evaluation import compare_models, model_card
    from protege.pruning.magnitude import MASKS_FILE, get_masks, make_permanent_, save_masks, sparsity_report
    from protege.pruning.report import pruning_card, pruning_section
    from protege.pruning.structured import PRUNED_HEADS_KEY

    cfg = run.cfg
    masks = get_masks(model)
    sparsity = sparsity_report(model) if masks else None
    make_permanent_(model)
    model.eval()
    dense_folder = cfg.model if Path(cfg.model).is_dir() else None
    heads = getattr(model.config, PRUNED_HEADS_KEY, None)
    loads_with = ("protege.pruning.load_pruned (attention heads were removed; stock from_pretrained cannot build this layout)"
                  if heads else "transformers AutoModelForSequenceClassification.from_pretrained")

    def measure():
        import torch

        with torch.inference_mode():
            metrics = compare_models((cfg.out, model, run.tokenizer, stage.path), (cfg.model, run.dense, run.tokenizer, dense_folder),
                                     examples=run.eval_ex, problem_type=run.problem, max_length=cfg.max_length,
                                     speed=cfg.speed, speed_seconds=cfg.speed_seconds, device=run.device,
                                     teacher_logits=run.dense_logits)
        metrics["pruning"] = pruning_section(cfg.method, model, run.dense, metrics, sparsity=sparsity,
                                             loads_with=loads_with, masks_file=MASKS_FILE if masks else None, **extra)
        return metrics

    sections = {}
    if run.training:
        sections["training"] = {"steps": sum(t["steps"] for t in run.training),
                                "seconds": round(sum(t["seconds"] for t in run.training), 1),
                                "runs": len(run.training), "best_step": run.training[-1]["best_step"],
                                "final_loss": run.training[-1]["final_loss"]}
        sections["history"] = run.training[-1]["history"]
    config = dataclasses.asdict(cfg) | dataclasses.asdict(run.method_cfg)
    return finish_run(stage, cfg.out, method="prune", model=model, tokenizer=run.tokenizer, measure=measure, config=config,
                      extra=sections, card=lambda m: pruning_card(model_card(m), m),
                      # after measuring: the masks are not part of the model's size
                      after_measure=(lambda folder: save_masks(masks, folder / MASKS_FILE)) if masks else None,
                      callbacks=run.callbacks, settings=(cfg, run.method_cfg))
