"""``protege.distill`` and ``protege.cache_teacher``: the distillation recipe on the engine.

One path: validate everything (config, data, models, compatibility) before anything is written,
train in a staging folder, then :func:`~protege.engine.finish_run` writes a ``save_pretrained``
folder with ``metrics.json``, a model card and the run's config, and moves it into place.
General objectives (mlm, tinybert, embedding, clm) take the same path in
:mod:`protege.recipes.distill.general`.
"""

from __future__ import annotations

from pathlib import Path


from protege.recipes.distill.config import CacheConfig, DistillConfig

__all__ = ["distill", "cache_teacher"]


def _teacher_cache(cache_dir, teacher, features, spec, tokenizer, device, *, budget_gb, progress):
    """Open (or build once, on the main process) the teacher-output cache; tag features with their index."""
    from protege.objectives.cache import open_or_build_cache
    from protege.utils.device import barrier, process_group
    from protege.utils.log import log

    rank, world = process_group()

    def build():
        return open_or_build_cache(cache_dir, teacher, features, spec, pad_token_id=tokenizer.pad_token_id or 0,
                                   budget_gb=budget_gb, device=device, progress=progress and rank == 0, log=log)

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

    Keyword arguments are the fields of :class:`~protege.recipes.distill.config.CacheConfig`.
    Returns the cache's manifest (folder, examples, bytes).
    """
    from protege.data import encode, load_run_data
    from protege.objectives.cache import CacheSpec
    from protege.losses import uniform_layer_map
    from protege.models import load_classifier, load_tokenizer, num_layers, parse_layer_spec
    from protege.models.loading import quiet_transformers
    from protege.recipes.common import make_config
    from protege.utils.device import resolve_device

    cfg = make_config(CacheConfig, config, kwargs)
    quiet_transformers()
    teacher = load_classifier(cfg.teacher, attn_implementation="eager" if cfg.alpha_attn > 0 else None)
    tokenizer = load_tokenizer(cfg.teacher)
    train_ex, _ = load_run_data(cfg, labels_required=False)
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
    spec = CacheSpec.for_losses(alpha_hidden=cfg.alpha_hidden, alpha_attn=cfg.alpha_attn, alpha_embed=cfg.alpha_embed,
                                layer_map=layer_map)
    cache = _teacher_cache(cfg.out, teacher, features, spec, tokenizer, device, budget_gb=cfg.cache_budget,
                           progress=cfg.progress)
    return {"folder": str(cache.folder), **cache.manifest}


def distill(config: DistillConfig | None = None, **kwargs) -> dict:
    """Distil a fine-tuned classifier (``teacher``) into a smaller student.

    With ``objective="mlm" | "tinybert" | "embedding" | "clm"`` it distils a general-purpose
    model from unlabeled ``train_text`` (or ``random_text``) instead; see
    :func:`protege.recipes.distill.general.distill_general`.

    Keyword arguments are the fields of :class:`~protege.recipes.distill.config.DistillConfig`
    (the CLI flags of ``protege distill``). Returns the metrics written to ``out/metrics.json``,
    with the teacher side by side.
    """
    from protege.recipes.distill.config import build_distill_config

    if config is not None and kwargs:
        raise TypeError("pass either a config object or keyword arguments, not both")
    cfg = config if config is not None else build_distill_config(kwargs)
    if cfg.objective != "task":  # general distillation: mlm, tinybert, embedding, clm
        from protege.recipes.distill.general import distill_general

        return distill_general(cfg)
    from protege.engine import plan_stage
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    stage = plan_stage(cfg, inputs=[cfg.teacher, cfg.train, cfg.eval, cfg.student, cfg.cache_teacher])
    with stage.guard():
        return _distill_task(cfg, stage)


def _fit_lengths(cfg, objective):
    """``cfg`` with a ``max_length`` both the teacher and the student can read (and the objective told)."""
    from protege.recipes.common import fit_max_length

    for role, model in (("teacher", objective.teacher), ("student", objective.student)):
        config = getattr(getattr(model, "transformer", model), "config", None)  # a SentenceEncoder wraps its transformer
        if config is not None:
            cfg = fit_max_length(cfg, config, role=role)
    objective.cfg = cfg
    return cfg


def _distill_task(cfg: DistillConfig, stage) -> dict:
    from protege.data import encode, load_run_data
    from protege.engine import finish_run, train
    from protege.evaluation import compare_models, primary_metric, task_eval_fn
    from protege.evaluation.predict import predict
    from protege.objectives.pairing import map_to_teacher_labels
    from protege.objectives.registry import build_objective
    from protege.utils.device import resolve_device
    from protege.utils.log import log

    objective = build_objective(cfg)
    cfg = _fit_lengths(cfg, objective)
    teacher, tokenizer, problem = objective.teacher, objective.tokenizer, objective.problem_type
    train_ex, eval_ex = load_run_data(cfg, labels_required=cfg.losses.alpha_ce > 0)
    train_ex = map_to_teacher_labels(train_ex, teacher.config)
    eval_ex = map_to_teacher_labels(eval_ex, teacher.config) if eval_ex is not None else None
    device = resolve_device(cfg.device)
    teacher.to(device).requires_grad_(False)
    features = encode(train_ex, tokenizer, max_length=cfg.max_length)
    teacher_eval_logits = None
    if eval_ex is not None:
        eval_features = encode(eval_ex, tokenizer, max_length=cfg.max_length)
        teacher_eval_logits = predict(teacher, eval_features, pad_token_id=tokenizer.pad_token_id or 0, device=device)
    log(f"distilling {cfg.teacher} ({teacher.config.num_hidden_layers} layers) into {objective.description} "
        f"on {len(train_ex)} examples on {device}; losses: {objective.losses_text}")
    stage.begin()
    if cfg.cache_teacher:
        objective.attach_cache(_teacher_cache(cfg.cache_teacher, teacher, features, objective.cache_spec(), tokenizer, device,
                                              budget_gb=cfg.cache_budget, progress=cfg.progress))
    eval_fn = task_eval_fn(eval_ex, tokenizer, problem, cfg.max_length, device, teacher_eval_logits) if eval_ex is not None else None
    result = train(objective.student, features, settings=cfg, loss_fn=objective.loss, work_dir=stage.path,
                   pad_token_id=tokenizer.pad_token_id or 0, eval_fn=eval_fn, primary=primary_metric(problem),
                   extra_modules=objective.extra, device=device)
    if hasattr(teacher, "set_attn_implementation") and cfg.losses.alpha_attn > 0:
        try:
            teacher.set_attn_implementation("sdpa")
        except (ValueError, ImportError):
            pass
    teacher_folder = cfg.teacher if Path(cfg.teacher).is_dir() else None

    def measure():
        import torch

        with torch.inference_mode():
            return compare_models((cfg.out, objective.student, tokenizer, stage.path), (cfg.teacher, teacher, tokenizer, teacher_folder),
                                  examples=eval_ex, problem_type=problem, device=device, teacher_logits=teacher_eval_logits,
                                  speed=cfg.speed, speed_seconds=cfg.speed_seconds, max_length=cfg.max_length)

    student = {"kind": cfg.student_kind, "description": objective.description, "layer_map": list(objective.layer_map)}
    return finish_run(stage, cfg.out, method="distill", model=objective.student, tokenizer=tokenizer, measure=measure,
                      result=result, config=cfg.settings(), extra={"student": student})
