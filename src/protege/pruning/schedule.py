"""Gradual pruning on the cubic schedule of Zhu & Gupta (2017), hooked into any training loop.

    s_t = s_f + (s_i - s_f) * (1 - (t - t_0) / (t_end - t_0))^3      for t_0 <= t <= t_end

Sparsity rises fast while the network has many redundant weights and slowly near the end;
after ``t_end`` it stays at ``s_f`` and training recovers. The pruning itself is
:func:`~protege.pruning.magnitude.magnitude_prune_` to the schedule's target, every ``Δt`` steps.

:func:`pruning_callback` plugs a schedule into the training loop's ``on_step`` event
(:mod:`protege.engine.events`), so neither the loop nor the loss needs to know about pruning, and
a resumed run prunes at the same steps as an uninterrupted one.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from protege.errors import ProtegeError
from protege.pruning.magnitude import magnitude_prune_

__all__ = ["cubic_sparsity", "GradualSchedule", "pruning_callback", "planned_steps"]

DEFAULT_EVENTS = 10


def cubic_sparsity(step: int, *, initial: float, final: float, start: int, end: int) -> float:
    """The target sparsity at ``step``: ``initial`` before ``start``, ``final`` from ``end`` on, cubic between."""
    if end <= start:
        raise ProtegeError(f"the pruning schedule must end after it starts (start {start}, end {end})")
    if step <= start:
        return float(initial)
    if step >= end:
        return float(final)
    return float(final + (initial - final) * (1.0 - (step - start) / (end - start)) ** 3)


def planned_steps(settings, n_examples: int) -> int:
    """Optimizer steps a :class:`~protege.recipes.distill.config.TrainSettings` run over ``n_examples`` will take.

    The same arithmetic as :func:`protege.engine.trainer.train`.
    """
    if settings.max_steps:
        return settings.max_steps
    per_epoch = math.ceil(math.ceil(n_examples / settings.batch_size) / settings.grad_accum)
    return max(1, math.ceil(per_epoch * settings.epochs))


class GradualSchedule:
    """When to prune and to what sparsity, in optimizer steps, for a :class:`~protege.pruning.config.GradualConfig`."""

    def __init__(self, config, total_steps: int):
        self.config = config
        self.start = int(config.prune_start * total_steps)
        self.end = int(config.prune_end * total_steps)
        if self.end <= self.start:
            raise ProtegeError(f"a {total_steps}-step run leaves no room between --prune-start and --prune-end; "
                               "train for more steps (--epochs / --max-steps) or widen the window")
        self.every = config.prune_every or max(1, math.ceil((self.end - self.start) / DEFAULT_EVENTS))

    def target(self, step: int) -> float:
        """Sparsity the model should have after ``step`` optimizer steps."""
        return cubic_sparsity(step, initial=self.config.initial_sparsity, final=self.config.sparsity,
                              start=self.start, end=self.end)

    def due(self, step: int) -> bool:
        """Whether to prune after ``step`` optimizer steps."""
        return self.start <= step <= self.end and ((step - self.start) % self.every == 0 or step == self.end)

    def events(self) -> list[tuple[int, float]]:
        """Every (step, sparsity) at which pruning happens."""
        return [(t, self.target(t)) for t in range(self.start, self.end + 1) if self.due(t)]

    def step_(self, model: nn.Module, step: int) -> bool:
        """Prune ``model`` if ``step`` is a pruning step; returns whether it did."""
        if not self.due(step):
            return False
        with torch.no_grad():
            magnitude_prune_(model, self.config.at(self.target(step)))
        return True


class pruning_callback:  # noqa: N801 - used like a function: pruning_callback(schedule, model)
    """A training-loop callback (:mod:`protege.engine.events`) that applies ``schedule`` to ``model`` after each step."""

    def __init__(self, schedule: GradualSchedule, model: nn.Module):
        self.schedule, self.model = schedule, model

    def on_step(self, step: int, _net) -> None:
        """Prune to the schedule's target when a pruning step is due."""
        self.schedule.step_(self.model, step)
