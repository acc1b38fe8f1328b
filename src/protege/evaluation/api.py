"""Quality, agreement, size and speed of a classifier, side by side with its teacher.

:func:`compare_models` runs at the end of every training recipe and in ``protege evaluate``, so
every output folder's ``metrics.json`` has one layout.
"""

from __future__ import annotations

from pathlib import Path


from protege.evaluation.degenerate import find_degenerate
from protege.evaluation.metrics import agreement, primary_metric, task_metrics
from protege.evaluation.predict import predict
from protege.evaluation.report import speedup_and_ratios
from protege.evaluation.size import disk_size, parameter_counts
from protege.evaluation.speed import compare_speed

__all__ = ["compare_models", "task_eval_fn"]

SPEED_TEXTS = 64


def task_eval_fn(examples, tokenizer, problem_type: str, max_length: int, device, teacher_logits=None):
    """A function ``model -> metrics`` for periodic evaluation: task metrics, and agreement with ``teacher_logits``."""
    from protege.data.batching import encode

    features = encode(examples, tokenizer, max_length=max_length)

    def run(model):
        logits = predict(model, features, pad_token_id=tokenizer.pad_token_id or 0, device=device)
        metrics = task_metrics(logits, examples.labels, problem_type)
        if teacher_logits is not None:
            metrics.update(agreement(logits, teacher_logits, problem_type))
        return metrics

    return run


def compare_models(student, teacher=None, *, examples=None, problem_type: str, max_length: int = 128,
                   batch_size: int = 64, speed: bool = True, speed_seconds: float = 10.0, device=None,
                   teacher_logits=None, logits_out: dict | None = None) -> dict:
    """Measure a student (and optionally its teacher) on the same examples and machine.

    ``student`` and ``teacher`` are ``(name, model, tokenizer, folder_or_None)``; ``examples``
    are :class:`~protege.data.Examples` with labels in the model's label space (or None).
    Returns the ``metrics.json`` layout: ``model``, ``problem_type``, ``eval``, ``size``,
    ``speed``, ``degenerate`` (with examples: whether the student collapsed, see
    :func:`~protege.evaluation.degenerate.find_degenerate`), and, with a teacher, ``teacher``
    (same keys) and ``ratios``. A dict passed as ``logits_out`` receives the logits on ``examples`` under "student" and "teacher".
    """
    from protege.data.batching import encode
    from protege.evaluation.fingerprint import eval_fingerprint

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
            part["eval"] = {"source": examples.source, "n": len(examples), "fingerprint": eval_fingerprint(examples)}
            if examples.labels is not None:
                part["eval"]["metrics"] = task_metrics(logits[role], examples.labels, problem_type)
        # an exported model (protege.deploy) reports its own counts, weight file, runtime and precision
        counts, weights = getattr(model, "parameter_counts", None), getattr(model, "disk_bytes", None)
        part["size"] = counts() if callable(counts) else parameter_counts(model)
        if callable(weights):
            part["size"]["disk_bytes"] = weights()
        elif folder is not None and Path(folder).is_dir():
            part["size"]["disk_bytes"] = disk_size(folder)
        runtime = getattr(model, "runtime_info", None)
        if callable(runtime):
            part.update(runtime())
        parts[role] = part
    if logits_out is not None:
        logits_out.update(logits)
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
    if examples is not None and len(examples):  # a collapsed model (one class, constant, NaN) is said so, not scored
        result["degenerate"] = find_degenerate(problem_type, predictions=logits["student"], labels=examples.labels,
                                               metrics=parts["student"]["eval"].get("metrics"))
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
