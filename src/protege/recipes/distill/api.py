"""``protege.distill`` and ``protege.cache_teacher``: the distillation recipe on the engine.

One path: validate everything (config, data, models, compatibility) before anything is written,
train in a staging folder, then :func:`~protege.engine.finish_run` writes a ``save_pretrained``
folder with ``metrics.json``, a model card and the run's config, and moves it into place.
General objectives (mlm, tinybert, embedding, clm) take the same path in
:mod:`protege.recipes.distill.general`.
"""

from __future__ import annotations

from pathlib import Path


from protege.recipes.common import takes_objects
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


@takes_objects
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
    teacher = load_classifier(cfg.teacher, attn_implementation="eager" if cfg.alpha_attn > 0 else None, multi_label=True)
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


@takes_objects
def distill(config: DistillConfig | None = None, *, callbacks=(), **kwargs) -> dict:
    """Distil a fine-tuned classifier (``teacher``) into a smaller student.

    With ``objective="mlm" | "tinybert" | "embedding" | "clm"`` it distils a general-purpose
    model from unlabeled ``train_text`` (or ``random_text``) instead; see
    :func:`protege.recipes.distill.general.distill_general`.

    Keyword arguments are the fields of :class:`~protege.recipes.distill.config.DistillConfig`
    (the CLI flags of ``protege distill``). Returns the metrics written to ``out/metrics.json``,
    with the teacher side by side. ``callbacks`` see the training loop's events and ``on_save``
    (:mod:`protege.engine.events`). From Python, ``teacher`` may be a transformers model (with
    ``tokenizer=``) and the data a ``pandas.DataFrame``, a ``datasets`` split or ``(texts, labels)``
    (:func:`protege.recipes.common.takes_objects`).
    """
    from protege.engine.events import as_callbacks
    from protege.recipes.distill.config import build_distill_config

    if config is not None and kwargs:
        raise TypeError("pass either a config object or keyword arguments, not both")
    cfg = config if config is not None else build_distill_config(kwargs)
    callbacks = as_callbacks(callbacks)
    if cfg.objective != "task":  # general distillation: mlm, tinybert, embedding, clm
        from protege.recipes.distill.general import distill_general

        return distill_general(cfg, callbacks=callbacks)
    from protege.engine import plan_stage
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    stage = plan_stage(cfg, inputs=[*cfg.teachers, cfg.train, cfg.eval, cfg.student, cfg.cache_teacher])
    with stage.guard():
        return _distill_task(cfg, stage, callbacks)


def _fit_lengths(cfg, objective):
    """``cfg`` with a ``max_length`` both the teacher and the student can read (and the objective told)."""
    from protege.recipes.common import fit_max_length

    teachers = getattr(objective.teacher, "members", [objective.teacher])  # every member of an ensemble must read it
    for role, model in [("teacher", t) for t in teachers] + [("student", objective.student)]:
        config = getattr(getattr(model, "transformer", model), "config", None)  # a SentenceEncoder wraps its transformer
        if config is not None:
            cfg = fit_max_length(cfg, config, role=role)
    objective.cfg = cfg
    return cfg


def _distill_task(cfg: DistillConfig, stage, callbacks=()) -> dict:
    from protege.data import encode, load_run_data
    from protege.engine import finish_run, train
    from protege.evaluation import compare_models, primary_metric, task_eval_fn
    from protege.evaluation.predict import predict
    from protege.objectives.pairing import map_to_teacher_labels, set_class_names, student_label_names
    from protege.objectives.registry import build_objective
    from protege.utils.device import resolve_device
    from protege.utils.log import log

    objective = build_objective(cfg)
    cfg = _fit_lengths(cfg, objective)
    teacher, tokenizer, problem = objective.teacher, objective.tokenizer, objective.problem_type
    train_ex, eval_ex = load_run_data(cfg, labels_required=cfg.losses.alpha_ce > 0)
    names = student_label_names(cfg.label_names, train_ex, teacher.config)  # None: the teacher's names
    if names:
        set_class_names(objective.student.config, names)
    train_ex = map_to_teacher_labels(train_ex, teacher.config, names)
    eval_ex = map_to_teacher_labels(eval_ex, teacher.config, names) if eval_ex is not None else None
    device = resolve_device(cfg.device)
    teacher.to(device).requires_grad_(False)
    features = encode(train_ex, tokenizer, max_length=cfg.max_length)
    teacher_eval_logits, member_eval_logits = None, {}
    if eval_ex is not None:
        eval_features = encode(eval_ex, tokenizer, max_length=cfg.max_length)
        teacher_eval_logits = predict(teacher, eval_features, pad_token_id=tokenizer.pad_token_id or 0, device=device)
        for name, member in zip(cfg.teachers, teacher.members if not isinstance(cfg.teacher, str) else []):  # an ensemble's
            member_eval_logits[name] = predict(member, eval_features, pad_token_id=tokenizer.pad_token_id or 0, device=device)
    what = (f"{teacher.config.num_hidden_layers} layers" if isinstance(cfg.teacher, str)
            else f"{len(cfg.teachers)} members averaging {cfg.ensemble}")
    log(f"distilling {cfg.teacher_name} ({what}) into {objective.description} "
        f"on {len(train_ex)} examples on {device}; losses: {objective.losses_text}")
    stage.begin()
    if cfg.cache_teacher:  # an ensemble's outputs are cached once, averaged at the KD temperature
        objective.attach_cache(_teacher_cache(cfg.cache_teacher, objective.soft_teacher, features, objective.cache_spec(), tokenizer,
                                              device, budget_gb=cfg.cache_budget, progress=cfg.progress))
    eval_fn = task_eval_fn(eval_ex, tokenizer, problem, cfg.max_length, device, teacher_eval_logits) if eval_ex is not None else None
    result = train(objective.student, features, settings=cfg, loss_fn=objective.loss, work_dir=stage.path,
                   pad_token_id=tokenizer.pad_token_id or 0, eval_fn=eval_fn, primary=primary_metric(problem),
                   extra_modules=objective.extra, device=device, write_model=objective.save, callbacks=callbacks)
    objective.merge_lora()  # a LoRA student's adapters go into its weights: the saved folder is a stock model
    if hasattr(teacher, "set_attn_implementation") and cfg.losses.alpha_attn > 0:
        try:
            teacher.set_attn_implementation("sdpa")
        except (ValueError, ImportError):
            pass
    teacher_folder = cfg.teacher if isinstance(cfg.teacher, str) and Path(cfg.teacher).is_dir() else None
    if not isinstance(cfg.teacher, str) and all(Path(t).is_dir() for t in cfg.teachers):
        from protege.evaluation import disk_size

        teacher.disk_bytes = lambda: sum(disk_size(t) for t in cfg.teachers)  # compare_models reads the members' files

    def measure():
        import torch

        logits = {}
        with torch.inference_mode():
            metrics = compare_models((cfg.out, objective.student, tokenizer, stage.path),
                                     (cfg.teacher_name, teacher, tokenizer, teacher_folder), examples=eval_ex,
                                     problem_type=problem, device=device, teacher_logits=teacher_eval_logits, speed=cfg.speed,
                                     speed_seconds=cfg.speed_seconds, max_length=cfg.max_length, logits_out=logits)
        if not isinstance(cfg.teacher, str):
            metrics["ensemble"] = _ensemble_section(cfg, teacher, logits, member_eval_logits, eval_ex, problem)
        return metrics

    student = {"kind": cfg.student_kind, "description": objective.description, "layer_map": list(objective.layer_map)}
    if objective.lora is not None:
        student["lora"] = objective.lora
    return finish_run(stage, cfg.out, method="distill", model=objective.student, tokenizer=tokenizer, measure=measure,
                      result=result, config=cfg.settings(), extra={"student": student}, callbacks=callbacks,
                      settings=(cfg,))


def _ensemble_section(cfg, ensemble, logits: dict, member_logits: dict, eval_ex, problem: str) -> dict:
    """``metrics.json["ensemble"]``: how the members combine, and the student against the ensemble and each member."""
    from protege.evaluation import ensemble_report

    section = {"mode": cfg.ensemble, "temperature": cfg.losses.temperature, "weights": list(ensemble.weights),
               "members": [{"model": name, "weight": w} for name, w in zip(cfg.teachers, ensemble.weights)]}
    if eval_ex is not None and "student" in logits:
        report = ensemble_report(logits["student"], logits["teacher"], member_logits, problem_type=problem, labels=eval_ex.labels)
        section["against_ensemble"] = report["against_ensemble"]
        section["members"] = [{**entry, **measured} for entry, measured in zip(section["members"], report["members"])]
    return section
