"""``protege.finetune``: train a classifier (a future teacher) from a pretrained backbone on labeled data.

The "teacher" here is the gold labels: the same engine (staging, loop, finish) as every recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.engine.config import TrainSettings
from protege.errors import ProtegeError
from protege.recipes.common import takes_objects
from protege.utils.config import option

__all__ = ["FinetuneConfig", "finetune"]


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainSettings):
    """``protege finetune``: train a classifier (the future teacher) from a pretrained backbone."""

    model: str = option(None, "pretrained backbone or classifier: save_pretrained folder or hub id", required=True, path=True)
    problem_type: str | None = option(None, "single_label_classification, regression or multi_label_classification (inferred "
                                            "from the labels: a JSON list of labels means multi-label; with this set, a,b cells too)")

    label_names: str | None = option(None, "class names in id order, e.g. neg,pos: the model's id2label, what pipeline() "
                                           "prints (default: the names in the label column, or a datasets ClassLabel's)",
                                     names=True)

    def _check(self):
        if not self.model:
            raise ProtegeError("--model is required (a pretrained folder or hub id)")
        if self.problem_type not in (None, "single_label_classification", "regression", "multi_label_classification"):
            raise ProtegeError("--problem-type must be single_label_classification, regression or multi_label_classification, "
                               f"got {self.problem_type!r}")
        from protege.data import parse_label_names

        parse_label_names(self.label_names)  # the form now; the count once the labels are read


@takes_objects
def finetune(config: FinetuneConfig | None = None, *, callbacks=(), **kwargs) -> dict:
    """Train a classifier (a teacher) from a pretrained backbone on labeled data.

    Keyword arguments are the fields of :class:`FinetuneConfig` (the CLI flags of ``protege
    finetune``). Returns the metrics written to ``out/metrics.json``. From Python, ``model`` may
    be a transformers model (with ``tokenizer=``) and ``train``/``eval`` a ``pandas.DataFrame``, a
    ``datasets`` split or ``(texts, labels)`` (:func:`protege.recipes.common.takes_objects`).
    ``callbacks`` see the training loop's events and ``on_save`` (:mod:`protege.engine.events`).
    """
    import dataclasses

    import torch

    from protege.data import encode, infer_label_space, load_run_data, map_labels, name_classes, parse_label_names
    from protege.engine import finish_run, plan_stage, save_model, train
    from protege.engine.events import as_callbacks
    from protege.evaluation import compare_models, primary_metric, task_eval_fn
    from protege.models import load_backbone_as_classifier, load_tokenizer
    from protege.models.loading import quiet_transformers
    from protege.recipes.common import fit_max_length, make_config
    from protege.utils.device import resolve_device
    from protege.utils.log import log

    cfg = make_config(FinetuneConfig, config, kwargs)
    callbacks = as_callbacks(callbacks)
    quiet_transformers()
    stage = plan_stage(cfg, inputs=[cfg.model, cfg.train, cfg.eval])
    with stage.guard():
        train_ex, eval_ex = load_run_data(cfg, labels_required=True)
        space = infer_label_space(train_ex.labels, problem_type=cfg.problem_type)
        # the classes' names (what pipeline() prints): --label-names, else a ClassLabel's, else the label column's
        space = name_classes(space, parse_label_names(cfg.label_names, space) or (train_ex.label_names if space.id2label else None))
        label2id = {v: k for k, v in (space.id2label or {}).items()}
        train_ex = map_labels(train_ex, space, label2id=label2id)
        eval_ex = map_labels(eval_ex, space, label2id=label2id) if eval_ex is not None else None
        tokenizer = load_tokenizer(cfg.model)
        torch.manual_seed(cfg.seed)  # the new head's initialisation is part of the run's seed
        model = load_backbone_as_classifier(cfg.model, problem_type=space.problem_type, id2label=space.id2label)
        cfg = fit_max_length(cfg, model.config)
        device = resolve_device(cfg.device)
        features = encode(train_ex, tokenizer, max_length=cfg.max_length)
        log(f"fine-tuning {cfg.model} on {len(train_ex)} examples ({space.problem_type}, "
            f"{len(space.id2label or {}) or 1} outputs) on {device}")
        eval_fn = task_eval_fn(eval_ex, tokenizer, space.problem_type, cfg.max_length, device) if eval_ex is not None else None
        stage.begin()
        result = train(model, features, settings=cfg, loss_fn=lambda m, batch: {"loss": m(**batch).loss}, work_dir=stage.path,
                       pad_token_id=tokenizer.pad_token_id or 0, eval_fn=eval_fn, primary=primary_metric(space.problem_type),
                       device=device, write_model=lambda folder: save_model(model, tokenizer, folder), callbacks=callbacks)

        def measure():
            with torch.inference_mode():
                return compare_models((cfg.out, model, tokenizer, stage.path), examples=eval_ex, problem_type=space.problem_type,
                                      device=device, speed=cfg.speed, speed_seconds=cfg.speed_seconds, max_length=cfg.max_length)

        return finish_run(stage, cfg.out, method="finetune", model=model, tokenizer=tokenizer, measure=measure,
                          result=result, config=dataclasses.asdict(cfg), callbacks=callbacks, settings=(cfg,))
