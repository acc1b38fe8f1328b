"""The training and evaluation examples that a run's data settings name."""

from __future__ import annotations

from protege.data.tables import Examples, load_examples

__all__ = ["load_run_data"]


def load_run_data(cfg, *, labels_required: bool) -> tuple[Examples | None, Examples | None]:
    """``(train, eval)`` examples of a config with the data section's fields (either may be None)."""
    common = dict(text_column=cfg.text_column, text_pair_column=cfg.text_pair_column, label_column=cfg.label_column)
    train = None
    if getattr(cfg, "train", None):
        train = load_examples(cfg.train, split=cfg.split or "train", require_labels=labels_required,
                              max_examples=cfg.max_train_examples, **common)
    evaluation = None
    if getattr(cfg, "eval", None):
        evaluation = load_examples(cfg.eval, split=cfg.split or "validation", require_labels=True,
                                   max_examples=cfg.max_eval_examples, **common)
    return train, evaluation
