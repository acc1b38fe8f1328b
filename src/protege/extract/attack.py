"""``protege.extract``: steal a classifier through its prediction API (Krishna et al. 2020).

One path, the distillation one with the teacher behind an API: validate everything, generate
the queries (:mod:`.queries`), collect the victim's answers into a resumable log
(:mod:`.client`), then train a pretrained student on them with protege's trainer: cross-entropy
on the labels when the API returns only the argmax, soft-target KD on the returned
probabilities when it returns them. The output folder is like every protege run's: a
``save_pretrained`` folder with ``metrics.json`` (accuracy on ``--eval``, agreement with the
victim on the same texts, the victim's own accuracy as the "teacher" column, queries spent), a
model card and ``protege_config.json``. API keys never reach the output.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from protege.errors import ProtegeError
from protege.extract.config import HIDDEN_FLAGS, ExtractConfig

__all__ = ["extract", "query_log_paths"]

_CLASSIFICATION = "single_label_classification"
_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")
_SECRET_FLAGS = ("--api-key", "--watermark-key")


def _log(msg: str) -> None:
    print(f"[protege] {msg}", file=sys.stderr, flush=True)


def query_log_paths(cfg: ExtractConfig, eval_texts: list[str] | None = None) -> tuple[Path, Path | None]:
    """Where the training queries and (for ``eval_texts``) the evaluation queries are logged.

    The training log defaults to ``OUT.queries.jsonl`` beside the output folder, so that it
    outlives a failed or replaced run; the evaluation log sits beside it, named after a hash of
    the evaluation texts.
    """
    out = Path(cfg.out)
    log = Path(cfg.query_log) if cfg.query_log else out.with_name(out.name + ".queries.jsonl")
    if not eval_texts:
        return log, None
    digest = hashlib.sha256("\n".join(eval_texts).encode("utf-8")).hexdigest()[:10]
    return log, log.with_name(f"{log.name.removesuffix('.jsonl')}.eval-{digest}.jsonl")


def extract(config: ExtractConfig | None = None, *, victim=None, **kwargs) -> dict:
    """Query a victim classifier and train a pretrained student on its answers.

    Keyword arguments are the fields of :class:`~protege.extract.config.ExtractConfig` (the CLI
    flags of ``protege extract``). ``victim`` is a URL or a classifier folder, as on the command
    line, or an in-process :class:`~protege.extract.victim.Victim` (anything with ``info()``
    and ``predict``). Returns the metrics written to ``out/metrics.json``.
    """
    from protege.distill.outputs import prepare_output, staging_dir
    from protege.distill.trainer import has_checkpoint
    from protege.extract.client import connect
    from protege.models.loading import quiet_transformers

    if isinstance(victim, (str, Path)):  # a URL or folder: the config field
        kwargs["victim"], victim = str(victim), None
    elif victim is not None and config is None:
        kwargs["victim"] = str(getattr(victim, "name", None) or type(victim).__name__)
    if config is not None and kwargs:
        raise TypeError("pass either a config object or keyword arguments, not both")
    cfg = config if config is not None else ExtractConfig(**kwargs)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ProtegeError("extract runs in one process (it owns the query log); start it without torchrun/accelerate launch")
    quiet_transformers()
    stage = prepare_output(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume and has_checkpoint(staging_dir(cfg.out)))
    owned = victim is None
    if owned:
        victim = connect(cfg.victim, cfg.api_key or os.environ.get("PROTEGE_API_KEY"), output=cfg.victim_output,
                         timeout=cfg.timeout, retries=cfg.retries, max_length=cfg.max_length)
    try:
        return _extract(cfg, victim, stage)
    finally:
        if owned and hasattr(victim, "close"):
            victim.close()


def _extract(cfg: ExtractConfig, victim, stage: Path) -> dict:
    import torch

    from protege.data import Examples, LabelSpace, load_examples, map_labels
    from protege.data.batching import encode
    from protege.distill.api import _eval_fn
    from protege.distill.objectives import Objective, distillation_losses
    from protege.distill.trainer import resolve_device, train
    from protege.extract.client import collect
    from protege.extract.defenses.hardening import answers_are_soft, targets_from_answers
    from protege.extract.queries import make_queries
    from protege.extract.querylog import QueryLog
    from protege.models import load_backbone_as_classifier, load_tokenizer

    labels = [str(name) for name in victim.info()["labels"]]
    id2label = dict(enumerate(labels))
    eval_ex = None
    if cfg.eval:
        eval_ex = load_examples(cfg.eval, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                                label_column=cfg.label_column, split=cfg.split or "validation", require_labels=True,
                                max_examples=cfg.max_eval_examples)
        eval_ex = map_labels(eval_ex, LabelSpace(_CLASSIFICATION, id2label), label2id={n: i for i, n in id2label.items()})
    tokenizer = load_tokenizer(cfg.student)
    torch.manual_seed(cfg.seed)  # the new head's initialisation is part of the run: same seed, same student
    model = load_backbone_as_classifier(cfg.student, problem_type=_CLASSIFICATION, id2label=id2label)
    texts, pairs = make_queries(cfg.queries, cfg.budget, seed=cfg.query_seed, corpus=cfg.query_corpus, tokenizer=tokenizer,
                                pairs=cfg.pairs, replace=cfg.pair_replace)
    ask_eval = eval_ex is not None and cfg.victim_agreement
    log_path, eval_log_path = query_log_paths(cfg, list(eval_ex.texts) if ask_eval else None)
    meta = {"victim": victim.name if hasattr(victim, "name") else str(cfg.victim), "queries": cfg.queries,
            "query_corpus": cfg.query_corpus, "query_seed": cfg.query_seed, "pairs": cfg.pairs}
    new_train = max(0, cfg.budget - _logged(log_path))
    new_eval = max(0, len(eval_ex) - _logged(eval_log_path)) if ask_eval else 0
    _check_budget(victim, new_train, new_eval)  # before any log is created
    with QueryLog(log_path, meta=meta) as log:
        eval_log = QueryLog(eval_log_path, meta={**meta, "queries": f"eval:{cfg.eval}"}) if ask_eval else None
        try:
            _log(f"querying {victim.name if hasattr(victim, 'name') else cfg.victim}: {cfg.budget} {cfg.queries} queries "
                 f"({cfg.budget - new_train} already in {log_path}, {new_train} to send)"
                 + (f", plus {new_eval} evaluation texts" if new_eval else ""))
            got = collect(victim, texts, pairs, log=log, batch_size=cfg.query_batch, progress=cfg.progress)
            got_eval = collect(victim, list(eval_ex.texts), eval_ex.text_pairs, log=eval_log, batch_size=cfg.query_batch,
                               progress=cfg.progress) if ask_eval else None
        finally:
            if eval_log is not None:
                eval_log.close()

    soft = answers_are_soft(got.answers)
    targets = targets_from_answers(got.answers, len(labels))
    features = encode(Examples(texts, pairs, None, f"{cfg.queries} queries", "text", "text_pair" if pairs else None, None),
                      tokenizer, max_length=cfg.max_length)
    for feature, target in zip(features, targets):
        feature["labels"] = int(target.argmax())
        feature["target_logits"] = np.log(np.clip(target, 1e-8, None)).astype(np.float32).tolist()
    objective = Objective(alpha_kd=1.0, temperature=cfg.temperature) if soft else Objective(alpha_kd=0.0, alpha_ce=1.0)

    def loss_fn(student, batch):
        out = student(**{k: batch[k] for k in _TOKEN_KEYS if k in batch})
        return distillation_losses(out, SimpleNamespace(logits=batch["target_logits"]), batch, objective)

    device = resolve_device(cfg.device)
    victim_logits = None
    if got_eval is not None:
        victim_logits = np.log(np.clip(targets_from_answers(got_eval.answers, len(labels)), 1e-8, None)).astype(np.float32)
    eval_fn = _eval_fn(eval_ex, tokenizer, _CLASSIFICATION, cfg.max_length, device, victim_logits) if eval_ex is not None else None
    how = "soft targets: KD on the returned probabilities" if soft else "hard labels: cross-entropy on the argmax"
    _log(f"training {cfg.student} on {len(features)} answers ({how}) on {device}")
    result = train(model, features, settings=cfg, loss_fn=loss_fn, work_dir=stage, pad_token_id=tokenizer.pad_token_id or 0,
                   eval_fn=eval_fn, primary="agreement" if victim_logits is not None else "accuracy", device=device)
    extraction = {"victim": meta["victim"], "output": _answer_mode(got.answers), "targets": "soft" if soft else "hard",
                  "queries": cfg.queries, "query_corpus": cfg.query_corpus, "budget": cfg.budget,
                  "sent": got.new, "from_log": got.reused, "query_log": str(log_path),
                  "eval_queries": len(got_eval.texts) if got_eval else 0, "eval_sent": got_eval.new if got_eval else 0,
                  "query_seconds": round(got.seconds + (got_eval.seconds if got_eval else 0.0), 1)}
    return _finish(cfg, stage, model, tokenizer, result, eval_ex, eval_fn, victim_logits, extraction, device)


def _answer_mode(answers: list[dict]) -> str:
    """What the answers revealed: "probs", "top-k" or "label"."""
    return "probs" if any("probs" in a for a in answers) else "top-k" if any("top_k" in a for a in answers) else "label"


def _logged(path: Path | None) -> int:
    from protege.extract.querylog import QueryLog

    return len(QueryLog(path, readonly=True)) if path is not None and path.is_file() else 0


def _check_budget(victim, new_train: int, new_eval: int) -> None:
    """Fail before sending anything when the key's budget cannot pay for this run."""
    if not (new_train or new_eval) or not hasattr(victim, "usage"):
        return
    remaining = victim.usage().get("remaining")
    if remaining is not None and remaining < new_train + new_eval:
        raise ProtegeError(f"the API key has {remaining} queries left but this run needs {new_train + new_eval} "
                           f"({new_train} of --budget, {new_eval} for the --eval texts); lower --budget, "
                           "pass --no-victim-agreement, or get more budget")


def _finish(cfg, stage, model, tokenizer, result, eval_ex, eval_fn, victim_logits, extraction, device) -> dict:
    """Save the student, measure it beside the victim's answers, write the reports, move into place."""
    import torch

    from protege.distill.outputs import finalize_output
    from protege.evaluate.api import compare_models
    from protege.evaluate.metrics import task_metrics
    from protege.evaluate.report import model_card, speedup_and_ratios, write_json_atomic

    model.save_pretrained(stage)
    tokenizer.save_pretrained(stage)
    _log("measuring quality, agreement with the victim, size and speed ...")
    with torch.inference_mode():
        metrics = compare_models((cfg.out, model, tokenizer, stage), examples=eval_ex, problem_type=_CLASSIFICATION,
                                 max_length=cfg.max_length, speed=cfg.speed, speed_seconds=cfg.speed_seconds, device=device)
        if victim_logits is not None:
            measured = eval_fn(model.to(device))
            metrics["eval"]["agreement"] = {"agreement": measured["agreement"]}
            if extraction["targets"] == "soft":
                metrics["eval"]["agreement"]["kl"] = measured["kl"]
            metrics["teacher"] = {"model": extraction["victim"], "eval": {
                "source": eval_ex.source, "n": len(eval_ex),
                "metrics": task_metrics(victim_logits, eval_ex.labels, _CLASSIFICATION)}}
            metrics["ratios"] = speedup_and_ratios(metrics, metrics["teacher"], problem_type=_CLASSIFICATION)
    config = {k: v for k, v in dataclasses.asdict(cfg).items() if v is not None and k not in HIDDEN_FLAGS + ("api_key",)}
    metrics.update({
        "model": str(cfg.out), "method": "extract", "extraction": extraction,
        "training": {"steps": result.steps, "seconds": round(result.seconds, 1), "examples_per_s": round(result.examples_per_s, 2),
                     "best_step": result.best_step, "stopped_early": result.stopped_early, "final_loss": result.final_loss},
        "config": config, "command": _command(), "history": result.history,
    })
    write_json_atomic(stage / "metrics.json", metrics)
    (stage / "README.md").write_text(model_card(metrics))
    (stage / "protege_config.json").write_text(json.dumps(config, indent=2) + "\n")
    finalize_output(stage, cfg.out)
    return metrics


def _command() -> str | None:
    """The command line that ran, with secrets masked; None when not run from the CLI."""
    if Path(sys.argv[0]).name not in ("protege", "__main__.py"):
        return None
    args, masked = [], False
    for arg in sys.argv[1:]:
        if masked:
            args.append("***")
            masked = False
        elif arg in _SECRET_FLAGS:
            args.append(arg)
            masked = True
        elif arg.startswith(tuple(f + "=" for f in _SECRET_FLAGS)):
            args.append(arg.split("=", 1)[0] + "=***")
        else:
            args.append(arg)
    return " ".join(["protege"] + args)
