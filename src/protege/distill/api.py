"""``protege.finetune`` and ``protege.distill``: the library functions behind the CLI verbs.

Both follow one path: validate everything (config, data, models, compatibility) before any
training, train in a staging folder, then write a ``save_pretrained`` folder with
``metrics.json``, a model card and the run's config, and move it into place.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import torch

from protege.distill.config import DistillConfig, FinetuneConfig

__all__ = ["finetune", "distill", "cache_teacher"]


def _config(cls, config, kwargs):
    if config is not None and kwargs:
        raise TypeError("pass either a config object or keyword arguments, not both")
    return config if config is not None else cls(**kwargs)


def _log(msg: str) -> None:
    from protege.distill.trainer import process_group

    if process_group()[0] == 0:
        print(f"[protege] {msg}", file=sys.stderr, flush=True)


def _prepare(cfg) -> Path:
    """The staging folder, prepared by the main process only (others wait, then share it)."""
    from protege.distill.outputs import prepare_output, staging_dir
    from protege.distill.trainer import barrier, process_group

    rank, world = process_group()
    stage = prepare_output(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume) if rank == 0 else staging_dir(cfg.out)
    barrier(world)
    return stage


def _load_data(cfg, *, labels_required: bool):
    from protege.data import load_examples

    common = dict(text_column=cfg.text_column, text_pair_column=cfg.text_pair_column, label_column=cfg.label_column)
    train = load_examples(cfg.train, split=cfg.split or "train", require_labels=labels_required,
                          max_examples=cfg.max_train_examples, **common)
    evaluation = None
    if getattr(cfg, "eval", None):
        evaluation = load_examples(cfg.eval, split=cfg.split or "validation", require_labels=True,
                                   max_examples=cfg.max_eval_examples, **common)
    return train, evaluation


def _eval_fn(examples, tokenizer, problem_type, max_length, device, teacher_logits=None):
    from protege.data.batching import encode
    from protege.evaluate.metrics import agreement, task_metrics
    from protege.evaluate.predict import predict

    features = encode(examples, tokenizer, max_length=max_length)

    def run(model):
        logits = predict(model, features, pad_token_id=tokenizer.pad_token_id or 0, device=device)
        metrics = task_metrics(logits, examples.labels, problem_type)
        if teacher_logits is not None:
            metrics.update(agreement(logits, teacher_logits, problem_type))
        return metrics

    return run


def _finish(cfg, stage, model, tokenizer, result, report_kwargs, extra: dict) -> dict:
    """Save the model, measure it, write metrics.json + model card + config, move into place (main process only)."""
    from protege.distill.outputs import finalize_output
    from protege.distill.trainer import process_group

    if process_group()[0] != 0:
        return {}
    from protege.evaluate.api import compare_models
    from protege.evaluate.report import model_card, write_json_atomic

    if hasattr(model, "set_attn_implementation"):
        try:  # attention maps were only needed for training; ship the fast kernel
            model.set_attn_implementation("sdpa")
        except (ValueError, ImportError):
            pass
    model.save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    _log("measuring quality, size and speed ...")
    with torch.inference_mode():
        metrics = compare_models((cfg.out, model, tokenizer, stage), speed=cfg.speed, speed_seconds=cfg.speed_seconds,
                                 max_length=cfg.max_length, **report_kwargs)
    metrics["model"] = str(cfg.out)
    metrics["training"] = {"steps": result.steps, "seconds": round(result.seconds, 1),
                           "examples_per_s": round(result.examples_per_s, 2), "best_step": result.best_step,
                           "stopped_early": result.stopped_early, "final_loss": result.final_loss}
    metrics["config"] = {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None}
    metrics["command"] = " ".join(["protege"] + sys.argv[1:]) if Path(sys.argv[0]).name in ("protege", "__main__.py") else None
    metrics.update(extra)
    write_json_atomic(stage / "metrics.json", metrics)
    (stage / "README.md").write_text(model_card(metrics))
    (stage / "protege_config.json").write_text(json.dumps(metrics["config"], indent=2) + "\n")
    finalize_output(stage, cfg.out)
    return metrics


def _cache_spec(alpha_hidden, alpha_attn, alpha_embed, layer_map):
    from protege.distill.cache import CacheSpec

    hidden = ([0] if alpha_embed else []) + ([t + 1 for t in layer_map] if alpha_hidden else [])
    return CacheSpec(hidden=tuple(sorted(set(hidden))), attentions=tuple(sorted(set(layer_map))) if alpha_attn else ())


def _teacher_cache(cfg, teacher, features, spec, tokenizer, device):
    """Open (or build once, on the main process) the teacher-output cache; tag features with their index."""
    from protege.distill.cache import open_or_build_cache
    from protege.distill.trainer import barrier, process_group

    rank, world = process_group()
    build = lambda: open_or_build_cache(cfg.cache_teacher if hasattr(cfg, "cache_teacher") else cfg.out, teacher, features,  # noqa: E731
                                        spec, pad_token_id=tokenizer.pad_token_id or 0, budget_gb=cfg.cache_budget,
                                        device=device, progress=cfg.progress and rank == 0, log=_log)
    if rank == 0:
        cache = build()
    barrier(world)
    if rank != 0:
        cache = build()
    for i, feature in enumerate(features):
        feature["index"] = i
    return cache


def cache_teacher(config=None, **kwargs) -> dict:
    """Run the teacher once over ``train`` and store what a later ``distill --cache-teacher`` needs.

    Keyword arguments are the fields of :class:`~protege.distill.config.CacheConfig`. Returns the
    cache's manifest (folder, examples, bytes).
    """
    from protege.data.batching import encode
    from protege.distill.config import CacheConfig
    from protege.distill.trainer import resolve_device
    from protege.losses import uniform_layer_map
    from protege.models import load_classifier, load_tokenizer, num_layers, parse_layer_spec
    from protege.models.loading import quiet_transformers

    cfg = _config(CacheConfig, config, kwargs)
    quiet_transformers()
    teacher = load_classifier(cfg.teacher, attn_implementation="eager" if cfg.alpha_attn > 0 else None)
    tokenizer = load_tokenizer(cfg.teacher)
    train_ex, _ = _load_data(cfg, labels_required=False)
    total = num_layers(teacher.config)
    if cfg.layer_map:
        layer_map = parse_layer_spec(cfg.layer_map, total)
    elif cfg.student_num_layers:
        layer_map = uniform_layer_map(cfg.student_num_layers, total)
    else:
        layer_map = parse_layer_spec(cfg.student_layers or "every-other", total)
    device = resolve_device(cfg.device)
    teacher.to(device)
    features = encode(train_ex, tokenizer, max_length=cfg.max_length)
    cache = _teacher_cache(cfg, teacher, features, _cache_spec(cfg.alpha_hidden, cfg.alpha_attn, cfg.alpha_embed, layer_map),
                           tokenizer, device)
    return {"folder": str(cache.folder), **cache.manifest}


def finetune(config: FinetuneConfig | None = None, **kwargs) -> dict:
    """Train a classifier (a teacher) from a pretrained backbone on labeled data.

    Keyword arguments are the fields of :class:`~protege.distill.config.FinetuneConfig`
    (the CLI flags of ``protege finetune``). Returns the metrics written to ``out/metrics.json``.
    """
    from protege.data import infer_label_space, map_labels
    from protege.data.batching import encode
    from protege.distill.trainer import resolve_device, train
    from protege.evaluate.metrics import primary_metric
    from protege.models import load_backbone_as_classifier, load_tokenizer
    from protege.models.loading import quiet_transformers

    cfg = _config(FinetuneConfig, config, kwargs)
    quiet_transformers()
    stage = _prepare(cfg)
    train_ex, eval_ex = _load_data(cfg, labels_required=True)
    space = infer_label_space(train_ex.labels, problem_type=cfg.problem_type)
    label2id = {v: k for k, v in (space.id2label or {}).items()}
    train_ex = map_labels(train_ex, space, label2id=label2id)
    eval_ex = map_labels(eval_ex, space, label2id=label2id) if eval_ex is not None else None
    tokenizer = load_tokenizer(cfg.model)
    torch.manual_seed(cfg.seed)  # the new head's initialisation is part of the run's seed
    model = load_backbone_as_classifier(cfg.model, problem_type=space.problem_type, id2label=space.id2label)
    device = resolve_device(cfg.device)
    features = encode(train_ex, tokenizer, max_length=cfg.max_length)
    _log(f"fine-tuning {cfg.model} on {len(train_ex)} examples ({space.problem_type}, "
         f"{len(space.id2label or {}) or 1} outputs) on {device}")
    eval_fn = _eval_fn(eval_ex, tokenizer, space.problem_type, cfg.max_length, device) if eval_ex is not None else None

    def loss_fn(m, batch):
        return {"loss": m(**batch).loss}

    result = train(model, features, settings=cfg, loss_fn=loss_fn, work_dir=stage, pad_token_id=tokenizer.pad_token_id or 0,
                   eval_fn=eval_fn, primary=primary_metric(space.problem_type), device=device)
    return _finish(cfg, stage, model, tokenizer, result,
                   dict(examples=eval_ex, problem_type=space.problem_type, device=device),
                   {"method": "finetune", "history": result.history})


def distill(config: DistillConfig | None = None, **kwargs) -> dict:
    """Distil a fine-tuned classifier (``teacher``) into a smaller student.

    With ``objective="mlm" | "tinybert" | "embedding" | "clm"`` it distils a general-purpose
    model from unlabeled ``train_text`` (or ``random_text``) instead; see
    :func:`protege.distill.general.distill_general`.

    Keyword arguments are the fields of :class:`~protege.distill.config.DistillConfig` (the CLI
    flags of ``protege distill``). Returns the metrics written to ``out/metrics.json``, with the
    teacher side by side.
    """
    from protege.data.batching import encode
    from protege.distill.objectives import distillation_losses, make_objective
    from protege.distill.pairing import build_student, map_to_teacher_labels
    from protege.distill.trainer import resolve_device, train
    from protege.evaluate.metrics import primary_metric
    from protege.evaluate.predict import predict
    from protege.models import load_classifier, load_tokenizer, problem_type_of
    from protege.models.loading import quiet_transformers

    cfg = _config(DistillConfig, config, kwargs)
    if cfg.objective != "task":  # general distillation: mlm, tinybert, embedding, clm
        from protege.distill.general import distill_general

        return distill_general(cfg)
    quiet_transformers()
    stage = _prepare(cfg)
    teacher = load_classifier(cfg.teacher, attn_implementation="eager" if cfg.alpha_attn > 0 else None)
    tokenizer = load_tokenizer(cfg.teacher)
    problem = problem_type_of(teacher.config)
    train_ex, eval_ex = _load_data(cfg, labels_required=cfg.alpha_ce > 0)
    train_ex = map_to_teacher_labels(train_ex, teacher.config)
    eval_ex = map_to_teacher_labels(eval_ex, teacher.config) if eval_ex is not None else None
    torch.manual_seed(cfg.seed)  # random-init students and new heads follow --seed
    built = build_student(cfg, teacher, tokenizer)
    objective = make_objective(cfg, problem_type=problem, layer_map=built.layer_map)
    device = resolve_device(cfg.device)
    teacher.to(device).requires_grad_(False)
    features = encode(train_ex, tokenizer, max_length=cfg.max_length)
    teacher_eval_logits = None
    if eval_ex is not None:
        eval_features = encode(eval_ex, tokenizer, max_length=cfg.max_length)
        teacher_eval_logits = predict(teacher, eval_features, pad_token_id=tokenizer.pad_token_id or 0, device=device)
    _log(f"distilling {cfg.teacher} ({teacher.config.num_hidden_layers} layers) into {built.description} "
         f"on {len(train_ex)} examples on {device}; losses: "
         + ", ".join(f"{k}={getattr(cfg, 'alpha_' + k)}" for k in ("kd", "ce", "mse", "hidden", "attn", "embed") if getattr(cfg, "alpha_" + k)))
    outputs = dict(output_hidden_states=objective.needs_hidden_states, output_attentions=objective.needs_attentions)
    spec = _cache_spec(objective.alpha_hidden, objective.alpha_attn, objective.alpha_embed, objective.layer_map)
    cache = _teacher_cache(cfg, teacher, features, spec, tokenizer, device) if cfg.cache_teacher else None

    def loss_fn(student, batch):
        inputs = {k: v for k, v in batch.items() if k not in ("labels", "index")}
        if cache is not None:
            t_out = cache.outputs(batch["index"], inputs["input_ids"].shape[1], device)
        else:
            with torch.inference_mode():
                t_out = teacher(**inputs, **outputs)
        s_out = student(**inputs, **outputs)
        return distillation_losses(s_out, t_out, batch, objective, built.projection)

    eval_fn = _eval_fn(eval_ex, tokenizer, problem, cfg.max_length, device, teacher_eval_logits) if eval_ex is not None else None
    result = train(built.model, features, settings=cfg, loss_fn=loss_fn, work_dir=stage, pad_token_id=tokenizer.pad_token_id or 0,
                   eval_fn=eval_fn, primary=primary_metric(problem), extra_modules=built.projection, device=device)
    if hasattr(teacher, "set_attn_implementation") and cfg.alpha_attn > 0:
        try:
            teacher.set_attn_implementation("sdpa")
        except (ValueError, ImportError):
            pass
    teacher_folder = cfg.teacher if Path(cfg.teacher).is_dir() else None
    return _finish(cfg, stage, built.model, tokenizer, result,
                   dict(teacher=(cfg.teacher, teacher, tokenizer, teacher_folder), examples=eval_ex, problem_type=problem,
                        device=device, teacher_logits=teacher_eval_logits),
                   {"method": "distill", "student": {"kind": cfg.student_kind, "description": built.description,
                                                      "layer_map": list(built.layer_map)}, "history": result.history})
