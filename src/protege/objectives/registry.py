"""The table of objectives (``--objective``) and the contract each one implements.

An objective is what a student learns from a teacher. Each entry names its class; each class,
built from a :class:`~protege.recipes.distill.config.DistillConfig`, has:

=====================  ==========================================================================
``kind``               its ``--objective`` name
``packs``              whether unlabeled text is packed into full sequences by default
``primary``            the held-out figure that picks the best checkpoint (or None)
``teacher``            the teacher model (loaded, eval mode), ``tokenizer`` its tokenizer
``student``            the student to train; ``extra`` its projections (or None)
``layer_map``          teacher block per student block; ``description`` the student in words
``weights``            ``{term: weight}``; ``loss`` returns exactly the terms of non-zero weight
``prepare(features)``  precompute from the training features (masking statistics ...)
``loss(student, b)``   ``{term: tensor, ..., "loss": weighted sum}`` for one batch: the loop's loss_fn
``eval_features(f)``   held-out features as they are scored (e.g. a fixed mask)
``held_out(m, f, d)``  ``{"model": {...}, "teacher": {...}, "agreement": {...}}`` on held-out features
``save(folder)``       the student as the standard folder of its kind
=====================  ==========================================================================

Its options (loss weights and knobs) are a config of their own in :mod:`protege.objectives.configs`,
reached as ``cfg.losses``. To add an objective: write its class (one module in this package) and
its config, add one row below, and the contract test (tests/test_contracts.py) runs it like
every other.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from protege.errors import ProtegeError

__all__ = ["ObjectiveEntry", "OBJECTIVES", "objective_class", "objective_config_class", "build_objective", "CONTRACT"]

CONTRACT = ("kind", "packs", "primary", "teacher", "tokenizer", "student", "extra", "layer_map", "description", "weights",
            "losses_text", "prepare", "loss", "eval_features", "held_out", "save")


@dataclass(frozen=True)
class ObjectiveEntry:
    """One row of the table: where the class lives, what it distils, what it reads from the text."""

    target: str  # "module:Class"
    config: str  # the class of its options in protege.objectives.configs
    summary: str
    teacher: str  # what the teacher must be
    data: str  # "labeled" (a table with labels) or "text" (unlabeled transfer text)


OBJECTIVES = {
    "task": ObjectiveEntry("protege.objectives.task:TaskObjective", "TaskLosses", "a classifier's outputs (Hinton KD, TinyBERT terms)",
                           "a fine-tuned sequence classifier", "labeled"),
    "mlm": ObjectiveEntry("protege.objectives.mlm:MaskedLMObjective", "MlmLosses", "DistilBERT's triple loss on masked text",
                          "a masked language model", "text"),
    "tinybert": ObjectiveEntry("protege.objectives.tinybert:TinyBertObjective", "TinyBertLosses", "TinyBERT general distillation",
                               "any encoder", "text"),
    "embedding": ObjectiveEntry("protege.objectives.embedding:EmbeddingObjective", "EmbeddingLosses", "sentence embeddings",
                                "a sentence-transformers folder", "text"),
    "clm": ObjectiveEntry("protege.objectives.clm:CausalLMObjective", "ClmLosses", "next-token distributions of a causal LM",
                          "a causal language model", "text"),
}


def objective_class(name: str):
    """The class registered for ``--objective name``."""
    if name not in OBJECTIVES:
        raise ProtegeError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    module, cls = OBJECTIVES[name].target.split(":")
    return getattr(importlib.import_module(module), cls)


def objective_config_class(name: str):
    """The options class of ``--objective name`` (one of :mod:`protege.objectives.configs`)."""
    if name not in OBJECTIVES:
        raise ProtegeError(f"--objective must be one of {', '.join(OBJECTIVES)}, got {name!r}")
    from protege.objectives import configs

    return getattr(configs, OBJECTIVES[name].config)


def build_objective(cfg):
    """The objective object for ``cfg.objective`` (loads the teacher, builds and checks the student)."""
    return objective_class(cfg.objective)(cfg)
