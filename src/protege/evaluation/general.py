"""Measuring general-purpose students beside their teachers, and ``protege evaluate`` for them.

:func:`measure_pair` assembles the metrics dict at the end of every general distillation run;
:func:`evaluate_general` does the same for existing folders: a sentence-transformers model on
STS / a linear probe (``--sts``, ``--probe-train``/``--probe-eval``), a causal or masked LM on
held-out text (``--eval-text``), each optionally beside a reference model (``--compare``).
"""

from __future__ import annotations

from pathlib import Path

import torch

from protege.errors import ProtegeError

__all__ = ["measure_pair", "evaluate_general", "model_kind"]


def _folder(name):
    return Path(name) if name is not None and Path(name).is_dir() else None


def measure_pair(*, kind: str, student, teacher, tokenizer, student_name: str, teacher_name: str | None,
                 student_dir=None, teacher_dir=None, held_out=None, eval_source: str | None = None, eval_n: int = 0,
                 reports=None, speed_texts: list[str] | None = None, speed: bool = True, speed_seconds: float = 10.0,
                 max_length: int = 128, eval_fingerprint: str | None = None) -> dict:
    """The metrics dict of a student (and teacher): held-out scores, STS/probe reports, size, CPU speed, ratios.

    ``held_out()`` returns ``{"model": {...}, "teacher": {...}, "agreement": {...}}`` (any part
    optional); ``reports()`` returns :func:`protege.evaluation.embeddings.scores_side_by_side`'s dict.
    """
    from protege.evaluation.report import speedup_and_ratios
    from protege.evaluation.size import disk_size, parameter_counts
    from protege.evaluation.speed import compare_speed

    parts = {"student": {"model": str(student_name)}}
    if teacher is not None:
        parts["teacher"] = {"model": str(teacher_name)}
    sources, n = [], 0
    metrics = {"student": {}, "teacher": {}}
    agreement = {}
    if held_out is not None:
        scores = held_out()
        metrics["student"].update(scores.get("model", {}))
        metrics["teacher"].update(scores.get("teacher", {}))
        agreement.update(scores.get("agreement", {}))
        sources.append(eval_source or "held-out text")
        n += eval_n
    if reports is not None:
        side = reports()
        if side.get("source"):
            metrics["student"].update(side["student"])
            metrics["teacher"].update(side["teacher"])
            sources.append(side["source"])
            n += side["n"]
    for role, part in parts.items():
        if metrics[role] or (role == "student" and agreement):
            part["eval"] = {"source": "; ".join(sources), "metrics": metrics[role]}
            if len(sources) == 1:  # a count only means something for one evaluation set
                part["eval"]["n"] = n
            if eval_fingerprint and held_out is not None:  # so reports can tell runs scored on other rows
                part["eval"]["fingerprint"] = eval_fingerprint
    if agreement:
        parts["student"]["eval"]["agreement"] = agreement
    for role, model, folder in (("student", student, student_dir), ("teacher", teacher, teacher_dir)):
        if role in parts:
            parts[role]["size"] = parameter_counts(model)
            if _folder(folder) is not None:
                try:
                    parts[role]["size"]["disk_bytes"] = disk_size(folder)
                except ProtegeError:
                    pass
    if speed:
        texts = list(speed_texts or []) or ["a short example sentence ."]
        models = {role: (m.to("cpu"), tokenizer) for role, m in (("student", student), ("teacher", teacher)) if m is not None}
        timings = compare_speed(models, texts, max_length=max_length, max_seconds=speed_seconds)
        if kind == "clm":  # what a decoder's user waits for: tokens out at batch 1, and prefill
            from protege.evaluation.generation import compare_generation

            generation = compare_generation(models, texts, prefill_length=min(max_length, 128))
            for role in models:
                timings[role].update({k: v for k, v in generation[role].items() if k not in timings[role]})
        for role in models:
            parts[role]["speed"] = timings[role]
    result = {**parts["student"], "objective": kind}
    if teacher is not None:
        result["teacher"] = parts["teacher"]
        result["ratios"] = _ratios(parts, speedup_and_ratios)
    return result


def _ratios(parts, speedup_and_ratios) -> dict:
    flat = {}
    for role, part in parts.items():
        f = dict((part.get("eval") or {}).get("metrics") or {})
        f.update(part.get("size") or {})
        f.update(part.get("speed") or {})
        flat[role] = f
    ratios = speedup_and_ratios(flat["student"], flat["teacher"])
    for key in ("spearman", "accuracy"):
        s, t = flat["student"].get(key), flat["teacher"].get(key)
        if isinstance(s, float) and isinstance(t, float) and t > 0:
            ratios["retention"] = s / t
            ratios["retention_metric"] = key
            break
    for name, key in (("generate_speedup", "generate_tokens_per_s"), ("prefill_ratio", "prefill_tokens_per_s")):
        s, t = flat["student"].get(key), flat["teacher"].get(key)
        if isinstance(s, float) and isinstance(t, float) and t > 0:
            ratios[name] = s / t
    s, t = flat["student"].get("perplexity"), flat["teacher"].get("perplexity")
    if isinstance(s, float) and isinstance(t, float) and t > 0:
        ratios["perplexity_ratio"] = s / t
    return ratios


def model_kind(name: str) -> str:
    """``embedding`` (sentence-transformers folder), ``clm``, ``mlm`` or ``encoder``, from the folder's files."""
    from protege.models.loading import load_config
    from protege.models.sentence import is_sentence_transformer

    if is_sentence_transformer(name):
        return "embedding"
    archs = load_config(name).architectures or []
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in archs):
        return "clm"
    if any(a.endswith(("ForMaskedLM", "ForPreTraining")) for a in archs):
        return "mlm"
    return "encoder"


def _load(name: str, kind: str, role: str):
    from protege.models.loading import load_lm_tokenizer
    from protege.models import load_tokenizer
    from protege.models.families import load_model
    from protege.models.sentence import load_sentence_encoder, read_pipeline

    if kind == "embedding":
        return load_sentence_encoder(name, role=role), load_tokenizer(str(read_pipeline(name).transformer_path))
    tokenizer = load_lm_tokenizer(name) if kind == "clm" else load_tokenizer(name)
    return load_model(name, kind, role=role), tokenizer


def evaluate_general(model: str, *, compare: str | None = None, eval_text: str | None = None, sts: str | None = None,
                     probe_train: str | None = None, probe_eval: str | None = None, max_probe_examples: int | None = None,
                     max_eval_examples: int | None = None, max_length: int = 128, speed: bool = True,
                     speed_seconds: float = 10.0, out: str | None = None, device: str = "auto", seed: int = 0) -> dict:
    """Evaluate a general-purpose model folder (and ``compare``, its teacher) and return the metrics dict.

    Sentence-transformers folders are scored on ``sts`` and the probe; causal and masked LMs on
    ``eval_text`` (perplexity, token accuracy, agreement and KL with ``compare``). Writes JSON
    to ``out`` when given.
    """
    from protege.data.text import pack_sequences, read_lines, tokenize_lines
    from protege.utils.device import resolve_device
    from protege.evaluation.embeddings import load_eval_data, scores_side_by_side
    from protege.evaluation.lm import lm_scores, mask_for_eval
    from protege.utils.io import write_json_atomic

    kind = model_kind(model)
    if kind == "encoder":
        raise ProtegeError(f"{model} is a bare encoder; general evaluation reads sentence-transformers folders (--sts, --probe-*) "
                           "and causal or masked LMs (--eval-text)")
    if kind == "embedding" and not (sts or probe_train):
        raise ProtegeError(f"{model} is a sentence-embedding model: pass --sts FILE and/or --probe-train/--probe-eval")
    if kind != "embedding" and not eval_text:
        raise ProtegeError(f"{model} is a {'causal' if kind == 'clm' else 'masked'} language model: pass --eval-text FILE (held-out text)")
    data = load_eval_data(sts=sts, probe_train=probe_train, probe_eval=probe_eval, max_probe_examples=max_probe_examples) \
        if kind == "embedding" else None
    lines = read_lines(eval_text, max_lines=max_eval_examples) if eval_text else []
    student, tokenizer = _load(model, kind, "model")
    teacher = None
    if compare:
        other = model_kind(compare)
        if other != kind:
            raise ProtegeError(f"{model} is a {kind} model but {compare} a {other} model; compare a student with its own teacher")
        teacher, teacher_tok = _load(compare, kind, "teacher")
        if teacher_tok.get_vocab() != tokenizer.get_vocab():
            raise ProtegeError(f"{model} and {compare} use different vocabularies; compare a student with its own teacher")
    dev = resolve_device(device)
    for m in (student, teacher):
        if m is not None:
            m.to(dev)
    held_out, reports, features = None, None, []
    if kind in ("clm", "mlm"):
        features = pack_sequences(tokenize_lines(lines, tokenizer), tokenizer, max_length=max_length)
        if kind == "mlm":
            features = mask_for_eval(features, tokenizer, seed=seed)
        held_out = lambda: lm_scores(student, features, kind=kind, pad_token_id=tokenizer.pad_token_id or 0,  # noqa: E731
                                     teacher=teacher, device=dev)
    else:
        reports = lambda: scores_side_by_side(student, teacher, tokenizer, data, max_length=max_length, seed=seed, device=dev)  # noqa: E731
        if lines and teacher is not None:
            from protege.evaluation.embeddings import cosine_to_teacher

            held_out = lambda: {"agreement": {"cosine_to_teacher": cosine_to_teacher(  # noqa: E731
                student, teacher, tokenizer, lines, max_length=max_length, device=dev)}}
    speed_texts = lines[:64] if lines else (list(data["sts"].texts[:64]) if data and data["sts"] is not None else None)
    with torch.inference_mode():
        result = measure_pair(kind=kind, student=student, teacher=teacher, tokenizer=tokenizer, student_name=model,
                              teacher_name=compare, student_dir=model, teacher_dir=compare, held_out=held_out,
                              eval_source=f"{eval_text} ({len(features) or len(lines)} {'sequences' if features else 'lines'})"
                              if eval_text else None, eval_n=len(features) or len(lines),
                              reports=reports, speed_texts=speed_texts, speed=speed, speed_seconds=speed_seconds,
                              max_length=max_length)
    if out:
        write_json_atomic(out, result)
    return result
