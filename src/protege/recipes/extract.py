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
import math
from dataclasses import dataclass
import hashlib
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from protege.engine.config import Checks, EvalData, Optimization, Output, Speed
from protege.errors import ProtegeError
from protege.extraction.defenses.hardening import OUTPUT_MODES
from protege.utils.config import check_positive, option
from protege.utils.log import log as status

__all__ = ["ExtractConfig", "extract", "query_log_paths"]

_CLASSIFICATION = "single_label_classification"
_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")


@dataclass(frozen=True, kw_only=True)
class ExtractConfig(EvalData, Optimization, Speed, Output, Checks):
    """``protege extract``: query a victim, then train a pretrained student on its answers.

    Hard labels (cross-entropy) when the victim returns only labels; soft targets (KD at
    ``temperature``) when it returns probabilities. Training flags are those of ``distill``.
    """

    HINTS = {"train": "extract has no --train: the student learns from the victim's answers to --queries; use --budget",
             "max_train_examples": "extract has no --train: --budget sets how many queries the student learns from"}

    victim: str = option(None, "the victim: URL of a protege server (http://127.0.0.1:8000) or a classifier folder queried in-process",
                     required=True)
    api_key: str | None = option(None, "API key for the server (default: $PROTEGE_API_KEY)")
    victim_output: str = option("label", "output mode of an in-process victim folder: label, probs or top-k (a server sets its own)")
    student: str = option(None, "pretrained backbone the attacker starts from (folder or hub id); gets a new head", required=True)
    queries: str = option("random", "random, wiki, or a FILE of queries (one per line, or a table with a text column)")
    query_corpus: str | None = option(None, "text file, one sentence a line: RANDOM takes word frequencies and lengths from it "
                                        "(default: the student's vocabulary), WIKI takes its sentences")
    budget: int = option(None, "queries to spend, exactly (answers already in --query-log are reused, not re-sent)", required=True)
    query_seed: int = option(0, "seed of the query generator (separate from --seed, so retraining reuses the log)")
    pairs: bool = option(False, "the victim classifies text pairs: the second text is the first with --pair-replace words replaced")
    pair_replace: int = option(3, "words replaced to make the second text of a pair")
    query_batch: int = option(32, "texts per request")
    query_log: str | None = option(None, "JSONL log of queries and answers, resumable (default: OUT.queries.jsonl)")
    victim_agreement: bool = option(True, "also send the --eval texts (beyond --budget) to report agreement with the victim")
    temperature: float = option(1.0, "softmax temperature of the soft-target loss when the victim returns probabilities")
    retries: int = option(5, "retries of a failed request (exponential backoff)")
    timeout: float = option(60.0, "seconds to wait for one answer")

    def __post_init__(self):
        if not self.victim:
            raise ProtegeError("--victim is required (http://HOST:PORT of a protege server, or a classifier folder)")
        if not self.student:
            raise ProtegeError("--student is required (the pretrained backbone to train on the victim's answers)")
        check_positive(self, "budget", "query_batch", "pair_replace")
        if self.victim_output not in OUTPUT_MODES:
            raise ProtegeError(f"--victim-output must be one of {', '.join(OUTPUT_MODES)}, got {self.victim_output!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ProtegeError(f"--temperature must be > 0, got {self.temperature}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ProtegeError(f"--retries must be a non-negative integer, got {self.retries!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ProtegeError(f"--timeout must be > 0 seconds, got {self.timeout}")
        super().__post_init__()

    @property
    def remote(self) -> bool:
        """Whether the victim is an HTTP server."""
        return self.victim.startswith(("http://", "https://"))


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


def extract(config: ExtractConfig | None = None, *, victim=None, callbacks=(), **kwargs) -> dict:
    """Query a victim classifier and train a pretrained student on its answers.

    Keyword arguments are the fields of :class:`~protege.extraction.config.ExtractConfig` (the CLI
    flags of ``protege extract``). ``victim`` is a URL or a classifier folder, as on the command
    line, or an in-process :class:`~protege.extraction.victim.Victim` (anything with ``info()``
    and ``predict``). Returns the metrics written to ``out/metrics.json``. ``callbacks`` see the
    training loop's events and ``on_save`` (:mod:`protege.engine.events`).
    """
    from protege.engine import prepare_output
    from protege.engine.events import as_callbacks
    from protege.engine.staging import has_checkpoint, staging_dir
    from protege.extraction.client import connect
    from protege.models.loading import quiet_transformers
    from protege.recipes.common import make_config

    if isinstance(victim, (str, Path)):  # a URL or folder: the config field
        kwargs["victim"], victim = str(victim), None
    elif victim is not None and config is None:
        kwargs["victim"] = str(getattr(victim, "name", None) or type(victim).__name__)
    cfg = make_config(ExtractConfig, config, kwargs)
    callbacks = as_callbacks(callbacks)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        raise ProtegeError("extract runs in one process (it owns the query log); start it without torchrun/accelerate launch")
    quiet_transformers()
    # --resume also resumes the query log alone, before any training checkpoint exists
    stage = prepare_output(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume and has_checkpoint(staging_dir(cfg.out)),
                           inputs=[cfg.student, cfg.eval, cfg.query_corpus, cfg.queries if cfg.queries not in ("random", "wiki") else None,
                                   None if cfg.remote else cfg.victim])
    owned = victim is None
    with stage.guard():
        if owned:
            victim = connect(cfg.victim, cfg.api_key or os.environ.get("PROTEGE_API_KEY"), output=cfg.victim_output,
                             timeout=cfg.timeout, retries=cfg.retries, max_length=cfg.max_length)
        try:
            return _extract(cfg, victim, stage, callbacks)
        finally:
            if owned and hasattr(victim, "close"):
                victim.close()


def _extract(cfg: ExtractConfig, victim, stage: Path, callbacks=()) -> dict:
    import torch

    from protege.data import Examples, LabelSpace, encode, load_examples, map_labels
    from protege.data.queries import make_queries
    from protege.engine import save_model, train
    from protege.evaluation import task_eval_fn
    from protege.extraction.client import collect
    from protege.extraction.defenses.hardening import answers_are_soft, targets_from_answers
    from protege.extraction.querylog import QueryLog
    from protege.models import load_backbone_as_classifier, load_tokenizer
    from protege.recipes.common import fit_max_length
    from protege.objectives.task import Objective, distillation_losses
    from protege.utils.device import resolve_device

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
    cfg = fit_max_length(cfg, model.config)
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
            status(f"querying {victim.name if hasattr(victim, 'name') else cfg.victim}: {cfg.budget} {cfg.queries} queries "
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
    eval_fn = task_eval_fn(eval_ex, tokenizer, _CLASSIFICATION, cfg.max_length, device, victim_logits) if eval_ex is not None else None
    how = "soft targets: KD on the returned probabilities" if soft else "hard labels: cross-entropy on the argmax"
    status(f"training {cfg.student} on {len(features)} answers ({how}) on {device}")
    stage.begin()
    result = train(model, features, settings=cfg, loss_fn=loss_fn, work_dir=stage.path, pad_token_id=tokenizer.pad_token_id or 0,
                   eval_fn=eval_fn, primary="agreement" if victim_logits is not None else "accuracy", device=device,
                   write_model=lambda folder: save_model(model, tokenizer, folder), callbacks=callbacks)
    extraction = {"victim": meta["victim"], "output": _answer_mode(got.answers), "targets": "soft" if soft else "hard",
                  "queries": cfg.queries, "query_corpus": cfg.query_corpus, "budget": cfg.budget,
                  "sent": got.new, "from_log": got.reused, "query_log": str(log_path),
                  "eval_queries": len(got_eval.texts) if got_eval else 0, "eval_sent": got_eval.new if got_eval else 0,
                  "query_seconds": round(got.seconds + (got_eval.seconds if got_eval else 0.0), 1)}
    return _finish(cfg, stage, model, tokenizer, result, eval_ex, eval_fn, victim_logits, extraction, device, callbacks)


def _answer_mode(answers: list[dict]) -> str:
    """What the answers revealed: "probs", "top-k" or "label"."""
    return "probs" if any("probs" in a for a in answers) else "top-k" if any("top_k" in a for a in answers) else "label"


def _logged(path: Path | None) -> int:
    """Queries paid for in a log: its answers, plus a request sent before a crash (resent free)."""
    from protege.extraction.querylog import QueryLog

    if path is None or not path.is_file():
        return 0
    log = QueryLog(path, readonly=True)
    pending = log.pending()
    return len(log) if pending is None else pending["start"] + len(pending["texts"])


def _check_budget(victim, new_train: int, new_eval: int) -> None:
    """Fail before sending anything when the key's budget cannot pay for this run."""
    if not (new_train or new_eval) or not hasattr(victim, "usage"):
        return
    remaining = victim.usage().get("remaining")
    if remaining is not None and remaining < new_train + new_eval:
        raise ProtegeError(f"the API key has {remaining} queries left but this run needs {new_train + new_eval} "
                           f"({new_train} of --budget, {new_eval} for the --eval texts); lower --budget, "
                           "pass --no-victim-agreement, or get more budget")


def _finish(cfg, stage, model, tokenizer, result, eval_ex, eval_fn, victim_logits, extraction, device, callbacks=()) -> dict:
    """Save the student, measure it beside the victim's answers, write the reports, move into place."""
    import torch

    from protege.engine import finish_run
    from protege.evaluation import compare_models, speedup_and_ratios, task_metrics

    def measure():
        with torch.inference_mode():
            metrics = compare_models((cfg.out, model, tokenizer, stage.path), examples=eval_ex, problem_type=_CLASSIFICATION,
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
        return metrics

    config = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "api_key"}  # never write a secret
    return finish_run(stage, cfg.out, method="extract", model=model, tokenizer=tokenizer, measure=measure, result=result,
                      config=config, extra={"extraction": extraction}, callbacks=callbacks, settings=(cfg,))
