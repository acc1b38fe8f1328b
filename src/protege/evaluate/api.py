"""``protege.evaluate``: quality, agreement, size and speed of a model, side by side with its teacher.

The same assembly runs at the end of every training verb, so every output folder's
``metrics.json`` has one layout (see :func:`compare_models`).
"""

from __future__ import annotations

from pathlib import Path

import torch

from protege.evaluate.metrics import agreement, primary_metric, task_metrics
from protege.evaluate.predict import predict
from protege.evaluate.report import speedup_and_ratios, write_json_atomic
from protege.evaluate.size import disk_size, parameter_counts
from protege.evaluate.speed import compare_speed

__all__ = ["evaluate", "compare_models"]

SPEED_TEXTS = 64


def compare_models(student, teacher=None, *, examples=None, problem_type: str, max_length: int = 128,
                   batch_size: int = 64, speed: bool = True, speed_seconds: float = 10.0, device=None,
                   teacher_logits=None) -> dict:
    """Measure a student (and optionally its teacher) on the same examples and machine.

    ``student`` and ``teacher`` are ``(name, model, tokenizer, folder_or_None)``; ``examples``
    are :class:`~protege.data.Examples` with labels in the model's label space (or None).
    Returns the ``metrics.json`` layout: ``model``, ``problem_type``, ``eval``, ``size``,
    ``speed``, and, with a teacher, ``teacher`` (same keys) and ``ratios``.
    """
    from protege.data.batching import encode

    entries = {"student": student} | ({"teacher": teacher} if teacher else {})
    parts: dict[str, dict] = {}
    logits: dict[str, object] = {}
    for role, (name, model, tokenizer, folder) in entries.items():
        part: dict = {"model": str(name)}
        if examples is not None:
            if role == "teacher" and teacher_logits is not None:
                logits[role] = teacher_logits
            else:
                features = encode(examples, tokenizer, max_length=max_length)
                logits[role] = predict(model, features, pad_token_id=tokenizer.pad_token_id or 0, batch_size=batch_size, device=device)
            part["eval"] = {"source": examples.source, "n": len(examples)}
            if examples.labels is not None:
                part["eval"]["metrics"] = task_metrics(logits[role], examples.labels, problem_type)
        part["size"] = parameter_counts(model)
        if folder is not None and Path(folder).is_dir():
            part["size"]["disk_bytes"] = disk_size(folder)
        parts[role] = part
    if teacher and examples is not None:
        parts["student"]["eval"]["agreement"] = agreement(logits["student"], logits["teacher"], problem_type)
    if speed:
        texts = list(examples.texts[:SPEED_TEXTS]) if examples is not None and len(examples) else ["a short example sentence ."]
        models = {}
        for role, (_, model, tokenizer, _) in entries.items():
            models[role] = (model.to("cpu"), tokenizer)
        timings = compare_speed(models, texts, max_length=max_length, max_seconds=speed_seconds)
        for role in entries:
            parts[role]["speed"] = timings[role]
    result = {**parts["student"], "problem_type": problem_type, "primary_metric": primary_metric(problem_type)}
    if teacher:
        result["teacher"] = parts["teacher"]
        result["ratios"] = speedup_and_ratios(_flat(parts["student"], problem_type), _flat(parts["teacher"], problem_type))
    return result


def _flat(part: dict, problem_type: str) -> dict:
    flat = {"problem_type": problem_type}
    flat.update(part.get("eval", {}).get("metrics", {}))
    flat.update(part.get("size", {}))
    flat.update(part.get("speed", {}))
    return flat


def evaluate(model: str, *, eval: str | None = None, compare: str | None = None, text_column: str | None = None,
             text_pair_column: str | None = None, label_column: str | None = None, split: str | None = None,
             max_eval_examples: int | None = None, max_length: int = 128, batch_size: int = 64, speed: bool = True,
             speed_seconds: float = 10.0, out: str | None = None, device: str = "auto") -> dict:
    """Evaluate a classifier folder (or hub id) on ``eval`` and compare it with ``compare`` (its teacher).

    Returns the metrics dict; writes it as JSON to ``out`` when given. Labels are mapped to the
    model's label space (names via ``config.id2label`` or ids).
    """
    from protege.data import LabelSpace, load_examples, map_labels
    from protege.distill.trainer import resolve_device
    from protege.errors import ProtegeError
    from protege.models import load_classifier, load_tokenizer, problem_type_of

    student = load_classifier(model, role="model")
    problem = problem_type_of(student.config)
    teacher = None
    if compare:
        teacher = load_classifier(compare, role="teacher")
        if problem_type_of(teacher.config) != problem or teacher.config.num_labels != student.config.num_labels:
            raise ProtegeError(f"{model} and {compare} predict different label spaces; compare a student with its own teacher")
    examples = None
    if eval:
        examples = load_examples(eval, text_column=text_column, text_pair_column=text_pair_column, label_column=label_column,
                                 split=split or "validation", max_examples=max_eval_examples)
        if examples.labels is not None:
            space = LabelSpace(problem, None if problem == "regression" else dict(student.config.id2label))
            examples = map_labels(examples, space, label2id=dict(student.config.label2id or {}))
    dev = resolve_device(device)
    entry = lambda name, m: (name, m.to(dev), load_tokenizer(name), name if Path(name).is_dir() else None)  # noqa: E731
    with torch.inference_mode():
        result = compare_models(entry(model, student), entry(compare, teacher) if teacher else None, examples=examples,
                                problem_type=problem, max_length=max_length, batch_size=batch_size, speed=speed,
                                speed_seconds=speed_seconds, device=dev)
    if out:
        write_json_atomic(out, result)
    return result

