"""The optimizers and learning-rate schedules a run may choose: two small tables of the field's own implementations.

``--optimizer`` picks a row of :data:`OPTIMIZERS` (``torch.optim.AdamW``, transformers'
``Adafactor`` set up as the Trainer's ``optim="adafactor"``, ``torch.optim.SGD``);
``--lr-scheduler`` a row of :data:`SCHEDULES`, each built by ``transformers.get_scheduler``
after a linear warmup of ``--warmup-ratio`` of the steps. The builders import torch only when
called, so a config validates the names before torch loads; a new row is picked up by the flags'
help and by the contract tests in ``tests/engine/test_schedules.py``.
"""

from __future__ import annotations

from protege.errors import ProtegeError

__all__ = ["OPTIMIZERS", "SCHEDULES", "build_optimizer", "build_schedule"]

# name -> the curve after warmup; every schedule warms up linearly over --warmup-ratio of the steps
SCHEDULES = {
    "linear": "linear decay to 0",
    "cosine": "half-cosine decay to 0 (Loshchilov & Hutter 2017)",
    "constant_with_warmup": "constant after the warmup",
}


def _adamw(groups, lr):
    import torch

    return torch.optim.AdamW(groups, lr=lr)


def _adafactor(groups, lr):
    from transformers.optimization import Adafactor

    # what transformers.Trainer does for optim="adafactor": an external lr, no relative-step schedule of its own
    return Adafactor(groups, lr=lr, scale_parameter=False, relative_step=False, warmup_init=False)


def _sgd(groups, lr):
    import torch

    return torch.optim.SGD(groups, lr=lr, momentum=0.9)


# name -> (builder, what it is: the --help text)
OPTIMIZERS = {
    "adamw": (_adamw, "torch.optim.AdamW (Loshchilov & Hutter 2019)"),
    "adafactor": (_adafactor, "transformers' Adafactor at the given --lr, with factored second moments: less optimizer "
                              "memory (Shazeer & Stern 2018)"),
    "sgd": (_sgd, "torch.optim.SGD with momentum 0.9"),
}


def build_optimizer(name: str, param_groups: list[dict], lr: float):
    """The optimizer ``name`` (a key of :data:`OPTIMIZERS`) over ``param_groups`` (each may set its weight decay)."""
    if name not in OPTIMIZERS:
        raise ProtegeError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, got {name!r}")
    return OPTIMIZERS[name][0](param_groups, lr)


def build_schedule(name: str, optimizer, *, warmup_steps: int, total_steps: int):
    """``transformers.get_scheduler(name, ...)`` over ``total_steps``, after ``warmup_steps`` of linear warmup from 0."""
    if name not in SCHEDULES:
        raise ProtegeError(f"--lr-scheduler must be one of {', '.join(SCHEDULES)}, got {name!r}")
    from transformers import get_scheduler

    return get_scheduler(name, optimizer, num_warmup_steps=warmup_steps, num_training_steps=total_steps)

