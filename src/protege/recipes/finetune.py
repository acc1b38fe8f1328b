"""``protege.finetune``: train a classifier (a future teacher) from a pretrained backbone on labeled data.

The "teacher" here is the gold labels: the same engine (staging, loop, finish) as every recipe.
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.engine.config import TrainSettings
from protege.errors import ProtegeError
from protege.utils.config import option

__all__ = ["FinetuneConfig", "finetune"]


@dataclass(frozen=True, kw_only=True)
class FinetuneConfig(TrainSettings):
    """``protege finetune``: train a classifier (the future teacher) from a pretrained backbone."""

    model: str = option(None, "pretrained backbone or classifier: save_pretrained folder or hub id", required=True, path=True)
    problem_type: str | None = option(None, "single_label_classification or regression (inferred from the labels)")

    def _check(self):
        if not self.model:
            raise ProtegeError("--model is required (a pretrained folder or hub id)")
        if self.problem_type not in (None, "single_label_classification", "regression"):
            raise ProtegeError(f"--problem-type must be single_label_classification or regression, got {self.problem_type!r}")


def finetune(config: FinetuneConfig | None = None, **kwargs) -> dict:
    """Train a classifier (a teacher) from a pretrained backbone on labeled data.

    Keyword arguments are the fields of :class:`FinetuneConfig` (the CLI flags of ``protege
    finetune``). Returns the metrics written to ``out/metrics.json``.
    """
    import dataclasses

    import torch

    from protege.data import encode, infer_label_space, load_run_data, map_labels
    from protege.engine import finish_run, plan_stage, train
    from protege.evaluation import compare_models, primary_metric, task_eval_fn
    from protege.models import load_backbone_as_classifier, load_tokenizer
    from protege.models.loading import quiet_transformers
    from protege.recipes.common import fit_max_length, make_config
    from protege.utils.device import resolve_device
    from protege.utils.log import log

    cfg = make_config(FinetuneConfig, config, kwargs)
    quiet_transformers()
    stage = plan_stage(cfg, inputs=[cfg.model, cfg.train, cfg.eval])
    with stage.guard():
        train_ex, eval_ex = load_run_data(cfg, labels_required=True)
        space = infer_label_space(train_ex.labels, problem_type=cfg.problem_type)
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
                       device=device)

        def measure():
            with torch.inference_mode():
                return compare_models((cfg.out, model, tokenizer, stage.path), examples=eval_ex, problem_type=space.problem_type,
                                      device=device, speed=cfg.speed, speed_seconds=cfg.speed_seconds, max_length=cfg.max_length)

        return finish_run(stage, cfg.out, method="finetune", model=model, tokenizer=tokenizer, measure=measure,
                          result=result, config=dataclasses.asdict(cfg))
