"""General (task-agnostic) distillation: ``protege distill --objective mlm|tinybert|embedding|clm``.

One path for the four objectives, the same as task distillation's: check everything (config,
teacher, student, text, evaluation files) before writing anything, read the transfer text
(a corpus, or random word sequences for data-free transfer), pack or encode it, train with
:func:`protege.engine.trainer.train` and the objective's ``loss``, then save the student, score
teacher and student side by side (held-out text, STS / probe for embeddings, size, CPU speed)
and move the finished folder into place.

The objective classes are found in one table (:mod:`protege.objectives.registry`) and share no
base class, only the contract written there.
"""

from __future__ import annotations

from pathlib import Path


from protege.errors import ProtegeError

__all__ = ["distill_general", "transfer_text", "make_objective"]

HOLDOUT_SHARE, HOLDOUT_MAX, HOLDOUT_MIN_LINES = 20, 1000, 40  # 1/20 of the lines, at most 1000, from 40 lines on
SPEED_TEXTS = 64


def make_objective(cfg):
    """The objective object for ``cfg.objective`` (from the table in :mod:`protege.objectives.registry`)."""
    from protege.objectives.registry import build_objective

    return build_objective(cfg)


def transfer_text(cfg, tokenizer) -> tuple[list[str], str]:
    """The training texts and a description of where they came from.

    ``--train-text``: the lines of a file, table or datasets name (``--max-train-examples``
    caps them). ``--random-text N``: N random word sequences (Krishna et al. 2020's RANDOM
    generator, :func:`protege.data.queries.random_queries`): words from the unigram
    distribution of ``--random-corpus`` (and its sentence lengths), else uniform over the
    teacher tokenizer's whole words with English-like lengths.
    """
    from protege.data.text import read_lines

    if cfg.train_text:
        lines = read_lines(cfg.train_text, split=cfg.split, text_column=cfg.text_column, max_lines=cfg.max_train_examples)
        return lines, str(cfg.train_text)
    from protege.data.queries import Unigram, random_queries, read_corpus

    corpus = read_corpus(cfg.random_corpus) if cfg.random_corpus else None
    if corpus:
        unigram = Unigram.from_texts(corpus)
    else:
        try:
            unigram = Unigram.from_tokenizer(tokenizer)
        except ProtegeError:
            raise ProtegeError("the teacher's tokenizer has too few whole-word tokens for --random-text; "
                               "pass --random-corpus FILE (one sentence a line)") from None
    lines = random_queries(cfg.random_text, unigram=unigram, seed=cfg.seed, corpus=corpus)
    where = f"the words of {cfg.random_corpus}" if corpus else "the teacher vocabulary"
    return lines, f"{cfg.random_text} random word sequences (unigram of {where})"


def _held_out(cfg, lines: list[str]) -> tuple[list[str], list[str], str | None]:
    """``(train lines, held-out lines, description)``: ``--eval-text``, else the last 5% of the lines."""
    from protege.data.text import read_lines

    if cfg.eval_text:
        return lines, read_lines(cfg.eval_text, split="validation", text_column=cfg.text_column,
                                 max_lines=cfg.max_eval_examples), str(cfg.eval_text)
    if len(lines) < HOLDOUT_MIN_LINES:
        return lines, [], None
    k = min(HOLDOUT_MAX, len(lines) // HOLDOUT_SHARE, cfg.max_eval_examples or HOLDOUT_MAX)
    return lines[:-k], lines[-k:], f"the last {k} lines of the transfer text (held out)"


def _features(lines, tokenizer, *, pack: bool, max_length: int) -> list[dict]:
    from protege.data.text import encode_lines, pack_sequences, tokenize_lines

    if pack:
        return pack_sequences(tokenize_lines(lines, tokenizer), tokenizer, max_length=max_length)
    return encode_lines(lines, tokenizer, max_length=max_length)


def distill_general(cfg, *, callbacks=()) -> dict:
    """Run general distillation for a :class:`~protege.recipes.distill.config.DistillConfig` with ``objective != "task"``.

    Returns the metrics written to ``out/metrics.json``. ``callbacks``: :mod:`protege.engine.events`.
    """
    from protege.engine import plan_stage
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    o = cfg.losses
    stage = plan_stage(cfg, inputs=[cfg.teacher, cfg.train_text, cfg.random_corpus, cfg.eval_text, getattr(o, "sts", None),
                                    getattr(o, "probe_train", None), getattr(o, "probe_eval", None), cfg.student])
    with stage.guard():
        return _run(cfg, stage, callbacks)


def _run(cfg, stage, callbacks=()) -> dict:
    from protege.recipes.distill.api import _fit_lengths
    from protege.engine import train
    from protege.utils.device import resolve_device
    from protege.utils.log import log

    objective = make_objective(cfg)
    cfg = _fit_lengths(cfg, objective)  # packed sequences must fit both models' positions
    tokenizer = objective.tokenizer
    lines, source = transfer_text(cfg, tokenizer)
    train_lines, eval_lines, eval_source = _held_out(cfg, lines)
    pack = cfg.losses.pack
    features = _features(train_lines, tokenizer, pack=pack, max_length=cfg.max_length)
    if not features:
        raise ProtegeError(f"{source}: no training sequences after tokenisation; pass more text")
    eval_features = _features(eval_lines, tokenizer, pack=pack, max_length=cfg.max_length) if eval_lines else []
    if pack:
        from protege.data.text import require_one_sequence

        require_one_sequence(features, source, cfg.max_length)
        if eval_features:
            require_one_sequence(eval_features, eval_source, cfg.max_length)
    eval_features = objective.eval_features(eval_features) if eval_features else []
    objective.prepare(features)
    device = resolve_device(cfg.device)
    objective.teacher.to(device).requires_grad_(False)
    tokens = sum(len(f["input_ids"]) for f in features)
    log(f"{cfg.objective} distillation of {cfg.teacher} into {objective.description} on {len(features)} sequences "
        f"({tokens} tokens, {len(train_lines)} lines of {source}{', packed' if pack else ''}) on {device}; "
        f"losses: {objective.losses_text}")

    def held_out_metrics(model):
        scores = objective.held_out(model, eval_features, device)
        return {**scores.get("model", {}), **scores.get("agreement", {})}

    # periodic held-out scoring only when asked for (--eval-every): the final report scores the student anyway
    eval_fn = held_out_metrics if eval_features and cfg.eval_every and objective.primary else None
    stage.begin()
    result = train(objective.student, features, settings=cfg, loss_fn=objective.loss, work_dir=stage.path,
                   pad_token_id=tokenizer.pad_token_id or 0, eval_fn=eval_fn, primary=objective.primary,
                   extra_modules=objective.extra, device=device, write_model=objective.save, callbacks=callbacks)
    return _finish(cfg, stage, objective, result, eval_features, eval_source, eval_lines or train_lines, source, device,
                   held_out_lines=eval_lines, callbacks=callbacks)


def _sdpa(model) -> None:
    if hasattr(model, "set_attn_implementation"):
        try:  # attention maps were only needed for training; ship the fast kernel
            model.set_attn_implementation("sdpa")
        except (ValueError, ImportError):
            pass


def _finish(cfg, stage, objective, result, eval_features, eval_source, speed_lines, source, device, *,
            held_out_lines=(), callbacks=()) -> dict:
    """Save, score side by side, write metrics.json + model card + config, move into place (main process only)."""
    from protege.engine import finish_run
    from protege.evaluation import general_model_card, measure_pair, summary_line
    from protege.evaluation.fingerprint import text_fingerprint
    from protege.models.sentence import SentenceEncoder
    from protege.utils.device import is_main
    from protege.utils.log import log

    if not is_main():
        return {}
    student, teacher = objective.student, objective.teacher
    scores = objective.held_out(student, eval_features, device) if eval_features else None  # before the attention kernel changes

    def save(folder):
        for model in (student, teacher):
            _sdpa(model.transformer if isinstance(model, SentenceEncoder) else model)
        objective.save(folder)

    def measure():
        import torch

        with torch.inference_mode():
            return measure_pair(kind=cfg.objective, student=student, teacher=teacher, tokenizer=objective.tokenizer,
                                student_name=str(cfg.out), teacher_name=cfg.teacher, student_dir=stage.path,
                                teacher_dir=_teacher_folder(cfg.teacher), held_out=(lambda: scores) if scores is not None else None,
                                eval_source=f"{eval_source} ({len(eval_features)} sequences)", eval_n=len(eval_features),
                                reports=(lambda: objective.reports(device)) if hasattr(objective, "reports") else None,
                                speed_texts=speed_lines[:SPEED_TEXTS], speed=cfg.speed, speed_seconds=cfg.speed_seconds,
                                max_length=cfg.max_length,
                                eval_fingerprint=text_fingerprint(held_out_lines) if held_out_lines else None)

    extra = {"training": {**result.summary(), "transfer_text": source}, "loss_weights": cfg.losses.weights,
             "student": {"kind": cfg.student_kind, "description": objective.description, "layer_map": list(objective.layer_map)}}
    metrics = finish_run(stage, cfg.out, method=f"distill-{cfg.objective}", save=save, measure=measure, result=result,
                         config=cfg.settings(), extra=extra, card=lambda m: general_model_card(m, objective),
                         callbacks=callbacks, settings=(cfg,))
    line = summary_line(metrics)
    if line:
        log(line)
    return metrics


def _teacher_folder(name: str):
    from protege.objectives.tinybert import teacher_transformer_path

    path = Path(teacher_transformer_path(name)) if Path(name).is_dir() else None
    return path if path is not None and path.is_dir() else None
