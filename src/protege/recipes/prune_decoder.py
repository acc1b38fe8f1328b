"""``protege prune`` of a causal LM: Minitron-style structured pruning, then optional recovery by distillation.

The path of the classifier recipe (:mod:`protege.recipes.prune`), for decoders: check the flags
and the model's config (counts, whole KV groups, a stock config that expresses the result, the
calibration text) before anything is written; read and pack ``--train-text``; measure the
importance of layers, KV groups and FFN neurons on its first ``--importance-examples`` sequences
(:func:`protege.pruning.decoder.decoder_importance`); slice the weights
(:func:`~protege.pruning.decoder.prune_decoder_`); with ``--recover distill`` train the pruned
model on the same text with the causal-LM distillation objective (``--objective clm``, the dense
model as the teacher; ``--recover finetune``: next-token cross-entropy only), on protege's trainer;
then save a stock ``AutoModelForCausalLM`` folder, score it beside the dense model on
``--eval-text`` (perplexity, agreement, KL), size and CPU speed, and add ``metrics["pruning"]``.

``--keep-heads`` counts *query* heads (the result's ``num_attention_heads``), a multiple of the
KV group size; ``--keep-layers K`` (a bare number) keeps the K most important layers, while a
list or spec (``0,2,4``, ``first:K``, ``uniform:K``) keeps those layers as for classifiers.
"""

from __future__ import annotations

import copy
import dataclasses
import shutil
from pathlib import Path

from protege.errors import ProtegeError
from protege.pruning.config import StructuredConfig

__all__ = ["routes_to_decoder", "decoder_prune_config", "prune_decoder"]

SPEED_TEXTS = 64


def routes_to_decoder(cfg, mcfg) -> bool:
    """Whether ``cfg.model`` is a causal LM (pruned here); refuses the decoder-only options for a classifier."""
    from protege.models.families import KINDS
    from protege.models.loading import load_config

    archs = load_config(cfg.model).architectures or []
    if any(a.endswith(KINDS["clm"][1]) for a in archs):
        return True
    given = [n for n in ("train_text", "eval_text") if getattr(cfg, n)]
    if given:
        raise ProtegeError(f"--{given[0].replace('_', '-')} is for causal LMs; {cfg.model} is not one: pass labeled "
                           "--train / --eval tables")
    if isinstance(mcfg, StructuredConfig) and mcfg.importance == "measured":
        raise ProtegeError("--importance measured ranks causal-LM layers and KV groups; for a classifier use gradient or magnitude")
    return False


def decoder_prune_config(mcfg: StructuredConfig, num_layers: int):
    """The :class:`~protege.pruning.decoder.DecoderPruneConfig` of ``--method structured`` flags (a bare K: a count)."""
    from protege.models.students import parse_layer_spec
    from protege.pruning.decoder import DecoderPruneConfig

    keep = mcfg.keep_layers
    if keep is not None:
        text = str(keep).strip()
        keep = int(text) if text.isdigit() else tuple(parse_layer_spec(text, num_layers))
    return DecoderPruneConfig(keep_layers=keep, keep_heads=mcfg.keep_heads, keep_ffn=mcfg.keep_ffn,
                              contiguous=mcfg.contiguous_layers)


def _chosen(cfg, name: str, fallback):
    """``cfg.name`` when the user set it, else ``fallback`` (the causal-LM default of a classifier-tuned option)."""
    from protege.utils.config import given_options

    given = given_options(cfg)
    value = getattr(cfg, name)
    default = next(f.default for f in dataclasses.fields(cfg) if f.name == name)
    return value if (name in given if given is not None else value != default) else fallback


def _check(cfg, mcfg) -> None:
    """The flags that make no sense for a causal LM, refused by name (before anything loads)."""
    from protege.utils.config import given_options

    if cfg.method != "structured":
        raise ProtegeError(f"--method {cfg.method} prunes classifiers; a causal LM takes --method structured "
                           "(--keep-layers, --keep-heads, --keep-ffn)")
    if cfg.train:
        raise ProtegeError("a causal LM learns from unlabeled text: pass --train-text FILE instead of --train")
    if cfg.eval:
        raise ProtegeError("a causal LM is scored on unlabeled text: pass --eval-text FILE instead of --eval")
    explicit = "importance" in (given_options(mcfg) or ())
    if mcfg.importance == "magnitude" or (mcfg.importance == "gradient" and explicit):
        raise ProtegeError(f"--importance {mcfg.importance} ranks classifier heads; a causal LM is ranked by --importance "
                           "measured (activations and layer removal on --train-text), its default")
    if cfg.recovery == "distill" and cfg.alpha_hidden:
        raise ProtegeError("--alpha-hidden is not available when recovering a causal LM; use --alpha-kd and --alpha-ce "
                           "(next-token cross-entropy)")
    if cfg.needs_training and not cfg.train_text:
        raise ProtegeError(f"--recover {cfg.recovery} trains on text: pass --train-text FILE")


def prune_decoder(cfg, mcfg: StructuredConfig, *, callbacks=()) -> dict:
    """Prune the causal LM ``cfg.model`` (a :class:`~protege.recipes.prune.PruneConfig`) into ``cfg.out``; returns the metrics."""
    from protege.engine import plan_stage
    from protege.models.loading import load_config
    from protege.pruning.decoder import check_decoder_prune, ranked_parts
    from protege.recipes.common import fit_max_length

    _check(cfg, mcfg)
    config = load_config(cfg.model)
    dcfg = decoder_prune_config(mcfg, int(config.num_hidden_layers))
    check_decoder_prune(config, dcfg)
    need = ranked_parts(config, dcfg)
    if need and not cfg.train_text:
        raise ProtegeError(f"ranking {', '.join(sorted(need))} by measured importance needs calibration text: pass "
                           "--train-text FILE")
    cfg = fit_max_length(cfg, config)
    # the clm objective's default temperature, not the classifiers' 2 (recorded as used)
    cfg = dataclasses.replace(cfg, temperature=_chosen(cfg, "temperature", 1.0))
    stage = plan_stage(cfg, inputs=[cfg.model, cfg.train_text, cfg.eval_text])
    with stage.guard():
        return _run(cfg, dataclasses.replace(mcfg, importance="measured"), dcfg, need, stage, callbacks)


def _texts(cfg, tokenizer):
    from protege.data.text import pack_sequences, read_lines, require_one_sequence, tokenize_lines

    def packed(source, split, limit):
        lines = read_lines(source, split=split, text_column=cfg.text_column, max_lines=limit)
        features = pack_sequences(tokenize_lines(lines, tokenizer), tokenizer, max_length=cfg.max_length)
        require_one_sequence(features, str(source), cfg.max_length)
        return lines, features

    lines, features = packed(cfg.train_text, cfg.split, cfg.max_train_examples) if cfg.train_text else ([], [])
    eval_lines, eval_features = (packed(cfg.eval_text, "validation", cfg.max_eval_examples) if cfg.eval_text else ([], []))
    return lines, features, eval_lines, eval_features


def _run(cfg, mcfg, dcfg, need: set, stage, callbacks) -> dict:
    from protege.data.batching import collate
    from protege.models.families import load_model
    from protege.models.loading import load_lm_tokenizer
    from protege.pruning.decoder import decoder_importance, decoder_layout, prune_decoder_
    from protege.utils.device import resolve_device
    from protege.utils.log import log

    tokenizer = load_lm_tokenizer(cfg.model)
    lines, features, eval_lines, eval_features = _texts(cfg, tokenizer)
    dense = load_model(cfg.model, "clm", role="model")
    decoder_layout(dense)  # a block layout pruning knows, before any work
    device = resolve_device(cfg.device)
    pruned = copy.deepcopy(dense).to(device)
    importance = None
    if need:
        calibration = features[: mcfg.importance_examples]
        batches = [collate(calibration[i:i + cfg.batch_size], tokenizer.pad_token_id)
                   for i in range(0, len(calibration), cfg.batch_size)]
        log(f"measuring the importance of {', '.join(sorted(need))} on {len(calibration)} sequences of up to "
            f"{cfg.max_length} tokens on {device}")
        importance = decoder_importance(pruned, batches, layers=mcfg.layer_importance if "layers" in need else None,
                                        heads="heads" in need, ffn="ffn" in need)
    summary = prune_decoder_(pruned, dcfg, importance)
    before, after = summary["before"], summary["after"]
    log(f"structure: layers {before['layers']} -> {after['layers']} (dropped {summary['dropped_layers']}), heads "
        f"{before['heads'][0]}/{before['kv_heads'][0]} kv -> {after['heads'][0]}/{after['kv_heads'][0]} kv, FFN "
        f"{before['ffn'][0]} -> {after['ffn'][0]}")
    stage.begin()
    result = None
    if cfg.needs_training:
        pruned, result = _recover(cfg, pruned, tokenizer, features, eval_features, stage.path, device, callbacks)
    structure = {**summary, "importance": "measured" if need else None,
                 "layer_importance": mcfg.layer_importance if "layers" in need else None,
                 "contiguous_layers": dcfg.contiguous if "layers" in need else None,
                 "scores": importance.summary() if importance is not None else None}
    return _finish(cfg, mcfg, stage, pruned, dense, tokenizer, structure, result, lines, eval_lines, eval_features, device,
                   callbacks)


def _recover(cfg, pruned, tokenizer, features, eval_features, stage_path: Path, device, callbacks):
    """Train the pruned model on the text with ``--objective clm`` (the dense model the teacher); returns (model, result)."""
    from protege.engine import Optimization, train
    from protege.objectives.registry import build_objective
    from protege.recipes.distill.config import build_distill_config
    from protege.utils.log import log

    scratch = stage_path / "recovery-student"  # the objective loads its student like any pretrained one
    pruned.save_pretrained(scratch)
    tokenizer.save_pretrained(scratch)
    distill = cfg.recovery == "distill"
    losses = {"alpha_kd": cfg.alpha_kd if distill else 0.0, "alpha_lm": cfg.alpha_ce if distill else 1.0}
    if distill:
        losses["temperature"] = cfg.temperature
    options = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(Optimization)}
    options.update(objective="clm", teacher=cfg.model, student=str(scratch), train_text=cfg.train_text, out=str(cfg.out),
                   max_length=cfg.max_length, speed=False, **losses)
    try:
        objective = build_objective(build_distill_config(options))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    objective.teacher.to(device).requires_grad_(False)
    log(f"recovery ({cfg.recovery}) on {len(features)} sequences of {cfg.train_text}; losses: {objective.losses_text}")

    def held_out(model):
        scores = objective.held_out(model, eval_features, device)
        return {**scores.get("model", {}), **scores.get("agreement", {})}

    eval_fn = held_out if eval_features and cfg.eval_every else None
    result = train(objective.student, features, settings=objective.cfg, loss_fn=objective.loss, work_dir=stage_path,
                   pad_token_id=tokenizer.pad_token_id, eval_fn=eval_fn, primary=objective.primary, device=device,
                   write_model=objective.save, callbacks=callbacks)
    objective.teacher.to("cpu")
    return objective.student, result


def _finish(cfg, mcfg, stage, pruned, dense, tokenizer, structure, result, lines, eval_lines, eval_features, device,
            callbacks) -> dict:
    from protege.engine import finish_run
    from protege.evaluation import general_model_card, measure_pair
    from protege.evaluation.fingerprint import text_fingerprint
    from protege.evaluation.lm import lm_scores
    from protege.pruning.report import pruning_card, pruning_section

    pruned.eval()
    dense_folder = Path(cfg.model) if Path(cfg.model).is_dir() else None

    def measure():
        import torch

        held_out = (lambda: lm_scores(pruned, eval_features, kind="clm", pad_token_id=tokenizer.pad_token_id, teacher=dense,
                                      device=device)) if eval_features else None
        with torch.inference_mode():
            metrics = measure_pair(kind="clm", student=pruned, teacher=dense, tokenizer=tokenizer, student_name=str(cfg.out),
                                   teacher_name=str(cfg.model), student_dir=stage.path, teacher_dir=dense_folder,
                                   held_out=held_out, eval_source=f"{cfg.eval_text} ({len(eval_features)} packed sequences)",
                                   eval_n=len(eval_features), speed_texts=(eval_lines or lines)[:SPEED_TEXTS], speed=cfg.speed,
                                   speed_seconds=cfg.speed_seconds, max_length=cfg.max_length,
                                   eval_fingerprint=text_fingerprint(eval_lines) if eval_lines else None)
        metrics["pruning"] = pruning_section("structured", pruned, dense, metrics, structure=structure,
                                             loads_with="transformers AutoModelForCausalLM.from_pretrained")
        return metrics

    extra = {"training": {**result.summary(), "transfer_text": str(cfg.train_text), "recovery": cfg.recovery}} if result else {}
    config = dataclasses.asdict(cfg) | dataclasses.asdict(mcfg)
    return finish_run(stage, cfg.out, method="prune", model=pruned, tokenizer=tokenizer, measure=measure, result=result,
                      config=config, extra=extra, card=lambda m: pruning_card(general_model_card(m), m),
                      callbacks=callbacks, settings=(cfg, mcfg))
