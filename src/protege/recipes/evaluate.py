"""``protege.evaluate``: quality, agreement, size and speed of a model, side by side with its teacher.

Classifiers are scored on labeled ``eval`` data; general-purpose models (sentence-transformers
folders, causal and masked LMs) on ``sts`` / ``probe_*`` / ``eval_text``. The metrics dict has the
layout of every ``metrics.json`` (``protege.engine.finish.SCHEMA_PATH``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from protege.engine.config import EvalData, Speed
from protege.errors import ProtegeError
from protege.recipes.common import takes_objects
from protege.utils.config import check_positive, option

__all__ = ["EvaluateConfig", "evaluate", "check_output_file"]

_GENERAL = ("sts", "probe_train", "probe_eval", "max_probe_examples", "eval_text")


@dataclass(frozen=True, kw_only=True)
class EvaluateConfig(EvalData, Speed):
    """``protege evaluate MODEL``: measure a model, optionally against its teacher."""

    model: str = option(None, "classifier (or general-purpose model) folder or hub id to evaluate", required=True,
                        positional=True)
    compare: str | None = option(None, "a reference model (the teacher) measured side by side", metavar="TEACHER")
    batch_size: int = option(64, "examples per forward pass when scoring")
    out: str | None = option(None, "also write the metrics to this JSON file", metavar="FILE.json")
    device: str = option("auto", "auto, cpu, cuda or cuda:N")
    sts: str | None = option(None, "sentence embeddings: STS-B style pairs scored by Spearman of cosine vs gold", path=True,
                             group="general")
    probe_train: str | None = option(None, "sentence embeddings: labeled data to fit a logistic-regression probe on",
                                     path=True, group="general")
    probe_eval: str | None = option(None, "sentence embeddings: labeled data the probe is scored on (accuracy)", path=True,
                                    group="general")
    max_probe_examples: int | None = option(None, "use only the first N probe training examples", group="general")
    eval_text: str | None = option(None, "causal/masked LMs: held-out text for perplexity, accuracy and agreement",
                                   path=True, group="general")
    fidelity: bool = option(False, "fidelity report against --compare: flips with McNemar's test, KL/TV, calibration, "
                                   "slices, model internals (docs/fidelity.md)", group="fidelity")
    ood: str | None = option(None, "an out-of-distribution data set measured the same way", path=True,
                             metavar="FILE", group="fidelity")
    train: str | None = option(None, "training data whose token counts mark rare-word examples (cached)",
                               path=True, metavar="FILE", group="fidelity")
    gate: str | None = option(None, "budgets that must hold, else exit 1, e.g. "
                                    "\"agreement>=0.95,flips_lost<=0.02,ece_delta<=0.02\"", metavar="BUDGETS", group="fidelity")
    strict: bool = option(False, "exit 1 when the model is degenerate (one predicted class, MCC about 0, a constant "
                                 "output or NaN: a warning otherwise) and fail a gate whose figure was not measured "
                                 "instead of skipping it")
    fidelity_dir: str | None = option(None, "folder for fidelity.jsonl and the plots (default: fidelity/ "
                                            "beside --out)", metavar="DIR", group="fidelity")
    fidelity_examples: int = option(20, "most-changed examples listed in metrics.json and the report",
                                    group="fidelity")
    fidelity_sample: int = option(64, "examples for CKA and attention similarity (0: skip)", group="fidelity")

    def _check(self):
        if not self.model:
            raise ProtegeError("a model to evaluate is required: protege evaluate MODEL --eval FILE")
        check_positive(self, "batch_size")
        check_positive(self, "max_probe_examples", optional=True)
        if self.out is not None:
            check_output_file(self.out, "--out")
        from protege.evaluation.gates import check_fidelity_options

        check_fidelity_options(self)

    @property
    def general(self) -> bool:
        """Whether this evaluates a general-purpose model (sentence embeddings, language models)."""
        return any(getattr(self, k) is not None for k in _GENERAL)


def check_output_file(path: str | os.PathLike, flag: str = "--out") -> None:
    """A file that can be written: not a folder, in a writable (or creatable) folder."""
    p = Path(path)
    if p.is_dir():
        raise ProtegeError(f"{flag} {path} is a folder; give a file name, e.g. {Path(path) / 'metrics.json'}")
    if p.exists() and not os.access(p, os.W_OK):
        raise ProtegeError(f"{flag} {path} is not writable; choose another file")
    parent = p.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not os.access(parent, os.W_OK):
        raise ProtegeError(f"{flag} {path}: cannot write in {parent}; choose a writable folder")


@takes_objects
def evaluate(model=None, *, eval=None, compare=None, sts=None, probe_train=None, probe_eval=None, eval_text=None,
             config: EvaluateConfig | None = None, **kwargs) -> dict:
    """Evaluate ``model`` (a folder or hub id) and compare it with ``compare`` (its teacher).

    A classifier is scored on labeled ``eval`` data; a general-purpose model on ``sts`` (STS-B
    pairs), ``probe_train``/``probe_eval`` (a probe on its sentence embeddings) or ``eval_text``
    (held-out text for a language model), as ``protege evaluate`` does. Other keyword arguments
    are the remaining fields of :class:`EvaluateConfig` (the flags of ``protege evaluate``).
    Returns the metrics dict; writes it as JSON to ``out`` when given. Labels are mapped to the
    model's label space (names via ``config.id2label`` or ids). From Python the models may be
    transformers models (with ``tokenizer=``) and the data a ``pandas.DataFrame``, a ``datasets``
    split or ``(texts, labels)`` (:func:`protege.recipes.common.takes_objects`).
    """
    from protege.recipes.common import make_config

    named = {"model": model, "eval": eval, "compare": compare, "sts": sts, "probe_train": probe_train,
             "probe_eval": probe_eval, "eval_text": eval_text}
    cfg = make_config(EvaluateConfig, config, {**kwargs, **{k: v for k, v in named.items() if v is not None}})
    from protege.engine import stamp
    from protege.models.loading import quiet_transformers
    from protege.utils.io import write_json_atomic

    quiet_transformers()
    result = _general(cfg) if cfg.general else _classifier(cfg)
    result.setdefault("method", "evaluate")
    stamp(result)
    if cfg.out:
        write_json_atomic(cfg.out, result)
    return result


def _general(cfg: EvaluateConfig) -> dict:
    from protege.evaluation import evaluate_general

    if cfg.eval:
        raise ProtegeError("--eval scores classifiers; a general-purpose model takes --sts, --probe-* or --eval-text")
    return evaluate_general(cfg.model, compare=cfg.compare, eval_text=cfg.eval_text, sts=cfg.sts, probe_train=cfg.probe_train,
                            probe_eval=cfg.probe_eval, max_probe_examples=cfg.max_probe_examples,
                            max_eval_examples=cfg.max_eval_examples, max_length=cfg.max_length, speed=cfg.speed,
                            speed_seconds=cfg.speed_seconds, device=cfg.device)


def _classifier(cfg: EvaluateConfig) -> dict:
    import torch

    from protege.data import LabelSpace, load_examples, map_labels
    from protege.evaluation import compare_models
    from protege.models import load_tokenizer, problem_type_of
    from protege.recipes.common import fit_max_length
    from protege.utils.device import resolve_device

    from protege.deploy.folders import load_model  # exported folders (ONNX, int8) are measured like any classifier

    student, folders = load_model(cfg.model, role="model")
    folders = {cfg.model: folders}
    problem = problem_type_of(student.config)
    cfg = fit_max_length(cfg, student.config)
    teacher = None
    if cfg.compare:
        teacher, folders[cfg.compare] = load_model(cfg.compare, role="teacher")
        cfg = fit_max_length(cfg, teacher.config, role="teacher")
        if problem_type_of(teacher.config) != problem or teacher.config.num_labels != student.config.num_labels:
            raise ProtegeError(f"{cfg.model} and {cfg.compare} predict different label spaces; compare a student with its own teacher")
    examples = None
    if cfg.eval:
        examples = load_examples(cfg.eval, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                                 label_column=cfg.label_column, split=cfg.split or "validation", max_examples=cfg.max_eval_examples)
        if examples.labels is not None:
            space = LabelSpace(problem, None if problem == "regression" else dict(student.config.id2label))
            examples = map_labels(examples, space, label2id=dict(student.config.label2id or {}))
    dev = resolve_device(cfg.device)
    entry = lambda name, m: (name, m.to(dev), load_tokenizer(str(folders[name])),  # noqa: E731
                             str(folders[name]) if Path(str(folders[name])).is_dir() else None)
    pair, logits = (entry(cfg.model, student), entry(cfg.compare, teacher) if teacher else None), {}
    with torch.inference_mode():
        result = compare_models(*pair, examples=examples, problem_type=problem, max_length=cfg.max_length,
                                batch_size=cfg.batch_size, speed=cfg.speed, speed_seconds=cfg.speed_seconds, device=dev,
                                logits_out=logits)
    from protege.evaluation.gates import fidelity_requested

    if fidelity_requested(cfg):  # what the student lost: flips, calibration, slices, internals, gates
        from protege.evaluation.fidelity_run import measure_fidelity

        summary, records = measure_fidelity(cfg, *pair, examples, logits, problem_type=problem)
        folder = cfg.fidelity_dir or (Path(cfg.out).parent / "fidelity" if cfg.out else None)
        if folder:  # fidelity.jsonl (the changed examples, with text) and the PNG plots
            from protege.reporting.fidelity import write_fidelity_files

            summary["files"] = [str(p) for p in write_fidelity_files(folder, summary, records)]
        result["fidelity"] = summary
    return result
