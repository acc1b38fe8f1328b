"""Verify every exported variant against its fp32 PyTorch model, time them all together, pick one.

For each variant, on the evaluation set: the largest absolute logit difference from the fp32
PyTorch model (the reference), the task metrics, agreement with the reference and with the
teacher; then batch-1 p50/p95 latency and batch-32 throughput timed in one interleaved loop
with the reference and the teacher (:func:`protege.evaluation.speed.compare_speed`, ONNX Runtime
sessions with torch's thread count and spinning off), peak memory in a fresh process each, and
size on disk. A variant whose agreement with the reference (Pearson correlation for regression)
is below ``min_agreement`` fails parity and is never recommended; the recommended variant is the
fastest at batch 1 among those that pass.
"""

from __future__ import annotations

import numpy as np

from protege.deploy.folders import VARIANTS

__all__ = ["verify_variants", "parity", "recommend", "PREFERENCE"]

REFERENCE = "pytorch-fp32"
SPEED_TEXTS = 64
MEMORY_BATCH = 32
# without timings, the usual order of speed on a CPU (fastest first)
PREFERENCE = ("onnx-int8-static", "onnx-int8-dynamic", "onnx-int8-mixed", "onnx-fp32", "pytorch-fp32")


def parity(agreement: dict, problem_type: str, min_agreement: float) -> dict:
    """The parity verdict from an agreement dict (``agreement``, or ``pearson_to_teacher`` for regression)."""
    key = "agreement" if problem_type == "single_label_classification" else "pearson_to_teacher"
    value = agreement.get(key)
    ok = value is not None and np.isfinite(value) and value >= min_agreement
    return {"statistic": key, "value": value, "min": min_agreement, "pass": bool(ok)}


def recommend(variants: dict[str, dict]) -> tuple[str | None, str]:
    """``(name, how)``: the fastest passing variant at batch 1, or by :data:`PREFERENCE` without timings."""
    passing = [n for n, v in variants.items() if v["parity"]["pass"]]
    if not passing:
        return None, "no variant passed parity"
    timed = [n for n in passing if (variants[n].get("speed") or {}).get("latency_ms_p50") is not None]
    if timed and len(timed) == len(passing):
        return min(timed, key=lambda n: variants[n]["speed"]["latency_ms_p50"]), "lowest batch-1 p50 latency among passing variants"
    order = [n for n in PREFERENCE if n in passing] + [n for n in passing if n not in PREFERENCE]
    return order[0], "speed not measured: the usual CPU speed order (static int8, dynamic int8, mixed int8, ONNX fp32, PyTorch fp32)"


def _logits(model, tokenizer, examples, max_length, batch_size):
    from protege.data.batching import encode
    from protege.evaluation.predict import predict

    features = encode(examples, tokenizer, max_length=max_length)
    return predict(model, features, pad_token_id=tokenizer.pad_token_id or 0, batch_size=batch_size, device="cpu")


def _memory_feed(tokenizer, texts, pairs, max_length):
    n = min(MEMORY_BATCH, len(texts))
    idx = [i % len(texts) for i in range(MEMORY_BATCH)] if n < MEMORY_BATCH else list(range(n))
    enc = tokenizer([texts[i] for i in idx], None if pairs is None else [pairs[i] for i in idx], padding=True,
                    truncation=True, max_length=max_length, return_tensors="np")
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}


def verify_variants(variants: dict, tokenizer, examples, *, problem_type: str, teacher=None, max_length: int = 128,
                    batch_size: int = 64, min_agreement: float = 0.99, speed: bool = True, speed_seconds: float = 10.0,
                    memory: bool = True, log=None) -> dict:
    """Measure ``variants`` (name -> ``(model, folder)``; must hold ``pytorch-fp32``) on labeled ``examples``.

    ``teacher`` is ``(name, model, tokenizer, folder_or_None)`` or None. Returns ``{"variants":
    {name: section}, "teacher": part or None, "recommended", "recommended_by", "reference",
    "min_agreement"}``; each section has ``runtime``, ``precision``, ``folder``, ``eval``
    (``metrics``, ``agreement_with_reference``, ``agreement`` with the teacher), ``max_abs_logit_diff``,
    ``parity``, ``size``, ``speed``, ``memory``.
    """
    import torch

    from protege.deploy.folders import variant_disk_size
    from protege.evaluation.metrics import agreement, task_metrics
    from protege.evaluation.size import disk_size, parameter_counts

    log = log or (lambda _msg: None)
    ref_model = variants[REFERENCE][0]
    logits = {name: _logits(m, tokenizer, examples, max_length, batch_size) for name, (m, _) in variants.items()}
    teacher_part, teacher_logits = None, None
    if teacher is not None:
        t_name, t_model, t_tok, t_folder = teacher
        teacher_logits = _logits(t_model, t_tok, examples, max_length, batch_size)
        teacher_part = {"model": str(t_name), "eval": {"source": examples.source, "n": len(examples)},
                        "size": parameter_counts(t_model), "runtime": "pytorch", "precision": "fp32"}
        if examples.labels is not None:
            teacher_part["eval"]["metrics"] = task_metrics(teacher_logits, examples.labels, problem_type)
        if t_folder is not None:
            teacher_part["size"]["disk_bytes"] = disk_size(t_folder)
    sections = {}
    ref_counts = parameter_counts(ref_model)
    for name, (model, folder) in variants.items():
        runtime, precision = VARIANTS[name]
        ev = {"source": examples.source, "n": len(examples)}
        if examples.labels is not None:
            ev["metrics"] = task_metrics(logits[name], examples.labels, problem_type)
        ev["agreement_with_reference"] = agreement(logits[name], logits[REFERENCE], problem_type)
        if teacher_logits is not None:
            ev["agreement"] = agreement(logits[name], teacher_logits, problem_type)
        diff = float(np.max(np.abs(logits[name] - logits[REFERENCE]))) if len(examples) else 0.0
        sections[name] = {"runtime": runtime, "precision": precision, "folder": name, "eval": ev,
                          "max_abs_logit_diff": diff if np.isfinite(diff) else None,
                          "parity": parity(ev["agreement_with_reference"], problem_type, min_agreement),
                          "size": {**ref_counts, "disk_bytes": variant_disk_size(folder)}}
        if runtime == "onnxruntime":
            sections[name]["onnxruntime"] = model.runtime_info()["onnxruntime"]
    threads = torch.get_num_threads()
    if speed:
        from protege.evaluation.speed import compare_speed

        texts = list(examples.texts[:SPEED_TEXTS]) or ["a short example sentence ."]
        models = ({"teacher": (teacher[1].to("cpu"), teacher[2])} if teacher is not None else {})
        models.update({name: (m, tokenizer) for name, (m, _) in variants.items()})
        log(f"timing {', '.join(models)} interleaved ({threads} thread{'s' if threads > 1 else ''}, "
            f"about {len(models) * speed_seconds:.0f} s)")
        timings = compare_speed(models, texts, max_length=max_length, max_seconds=speed_seconds)
        if teacher_part is not None:
            teacher_part["speed"] = timings["teacher"]
        for name in variants:
            sections[name]["speed"] = timings[name]
            if sections[name]["runtime"] == "onnxruntime":  # the threads ORT ran with, beside torch's
                sections[name]["speed"] = {**timings[name], "onnxruntime": sections[name]["onnxruntime"],
                                           "intra_op_threads": variants[name][0].threads, "spinning": False}
    if memory:
        from protege.deploy.memory import peak_memory

        log("measuring peak memory, one fresh process per model")
        feed = _memory_feed(tokenizer, examples.texts, examples.text_pairs, max_length)
        for name, (_, folder) in variants.items():
            sections[name]["memory"] = peak_memory(folder, feed, threads=threads)
        if teacher is not None and teacher[3] is not None:
            t_feed = _memory_feed(teacher[2], examples.texts, examples.text_pairs, max_length)
            teacher_part["memory"] = peak_memory(teacher[3], t_feed, threads=threads)
    _ratios(sections, teacher_part)
    pick, how = recommend(sections)
    return {"reference": REFERENCE, "min_agreement": min_agreement, "variants": sections, "teacher": teacher_part,
            "recommended": pick, "recommended_by": how}


def _ratios(sections: dict, teacher: dict | None) -> None:
    """Speedups against the fp32 PyTorch model and, when there is one, the teacher (same session)."""
    from protege.utils.fmt import ratio

    ref = (sections[REFERENCE].get("speed") or {}).get("latency_ms_p50")
    t = ((teacher or {}).get("speed") or {}).get("latency_ms_p50")
    for section in sections.values():
        p50 = (section.get("speed") or {}).get("latency_ms_p50")
        section["speedup_vs_reference"] = ratio(ref, p50)
        if teacher is not None:
            section["speedup_vs_teacher"] = ratio(t, p50)
