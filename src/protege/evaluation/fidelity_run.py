"""``protege evaluate --fidelity``: run the fidelity report over a student, its teacher and the data sets."""

from __future__ import annotations

from protege.errors import ProtegeError
from protege.evaluation.fidelity import fidelity_report

__all__ = ["measure_fidelity"]


def measure_fidelity(cfg, student, teacher, examples, logits: dict, *, problem_type: str) -> tuple[dict, list[dict]]:
    """The ``fidelity`` section for ``protege evaluate --fidelity`` (eval set, ``--ood``, internals, gates) and its records.

    ``student``/``teacher`` are ``(name, model, tokenizer, folder_or_None)`` as for
    :func:`~protege.evaluation.api.compare_models`, whose logits on ``examples`` are ``logits["student"]``
    and ``logits["teacher"]``. ``cfg`` is an :class:`~protege.recipes.evaluate.EvaluateConfig`. Bad
    input raises before anything is written. Returns ``(summary, records)``: the records are the
    changed examples with their text, which the recipe writes to ``fidelity.jsonl``.
    """

    from protege.data.batching import encode
    from protege.evaluation.gates import check_gate_names, check_gates, parse_gates
    from protege.evaluation.rarity import RARE_BELOW, rare_examples, token_lengths, train_token_counts

    gates = parse_gates(cfg.gate) if cfg.gate else []
    check_gate_names(gates, ood=bool(cfg.ood), train=bool(cfg.train), problem_type=problem_type)
    if examples.labels is None and any(_needs_labels(g.figure) for g in gates):
        raise ProtegeError(f"--gate names figures that need gold labels, and {examples.source} has none; "
                           "pass labeled --eval data or gate agreement and KL only")
    _, s_model, s_tok, _ = student
    _, t_model, t_tok, _ = teacher
    id2label = None if problem_type == "regression" else {int(k): str(v) for k, v in (t_model.config.id2label or {}).items()}
    counts = None
    if cfg.train:
        counts, info = train_token_counts(cfg.train, t_tok, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                                          max_length=cfg.max_length)
    special = getattr(t_tok, "all_special_ids", [])

    def one(ex, s_logits, t_logits, where):
        # lengths and rarity under the teacher's tokenizer: the reference every student is measured against
        feats = encode(ex, t_tok, max_length=cfg.max_length)
        rare = rare_examples(feats, counts, special_ids=special) if counts is not None else None
        summary, records = fidelity_report(s_logits, t_logits, problem_type=problem_type, labels=ex.labels,
                                           lengths=token_lengths(feats), rare=rare, id2label=id2label, texts=ex.texts,
                                           text_pairs=ex.text_pairs, top_k=cfg.fidelity_examples)
        return {"source": ex.source, **summary}, [{"set": where, **r} for r in records], feats

    summary, records, feats = one(examples, logits["student"], logits["teacher"], "eval")
    figures = dict(summary["figures"])
    if counts is not None:
        summary["rarity"] = {"train": str(cfg.train), "rare_below": RARE_BELOW, "train_examples": info["examples"],
                             "train_tokens": info["tokens"], "cached": info["cached"]}
    if cfg.ood:
        ood = _load(cfg, cfg.ood, s_model.config, problem_type)
        ood_logits = [_predict(m, tok, ood, cfg) for m, tok in ((s_model, s_tok), (t_model, t_tok))]
        summary["ood"], ood_records, _ = one(ood, *ood_logits, "ood")
        records += ood_records
        figures.update({"ood." + k: v for k, v in summary["ood"]["figures"].items()})
    if cfg.fidelity_sample:
        from protege.evaluation.internals import internals_figures, sample_internals

        summary["internals"] = sample_internals(student, teacher, examples, feats, sample=cfg.fidelity_sample,
                                                max_length=cfg.max_length)
        figures.update(internals_figures(summary["internals"]))
    summary["figures"] = figures
    if gates:
        summary["gates"] = check_gates(gates, figures, strict=cfg.strict)
    return summary, records


def _load(cfg, source, config, problem_type):
    from protege.data import LabelSpace, load_examples, map_labels

    ex = load_examples(source, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                       label_column=cfg.label_column, split=cfg.split or "validation", max_examples=cfg.max_eval_examples)
    if ex.labels is not None:
        space = LabelSpace(problem_type, None if problem_type == "regression" else dict(config.id2label))
        ex = map_labels(ex, space, label2id=dict(config.label2id or {}))
    return ex


def _predict(model, tokenizer, examples, cfg):
    from protege.data.batching import encode
    from protege.evaluation.predict import predict

    feats = encode(examples, tokenizer, max_length=cfg.max_length)
    first = next(iter(model.parameters()), None)  # an exported (ONNX) student has none: its inputs stay on the CPU
    return predict(model, feats, pad_token_id=tokenizer.pad_token_id or 0, batch_size=cfg.batch_size,
                   device=first.device if first is not None else "cpu")


def _needs_labels(figure: str) -> bool:
    from protege.evaluation.gates import FIGURES

    base = figure.removeprefix("ood.")
    return FIGURES[base][1] == "labels" or base in ("rare_flips_lost", "rare_accuracy_delta", "rare_accuracy_gap",
                                                     "rare_mae_delta", "rare_mae_gap")


# --- helpers ---------------------------------------------------------------------------------------
