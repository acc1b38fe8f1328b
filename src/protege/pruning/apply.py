"""``prune_``: apply one pruning method's transform to a model in memory."""

from __future__ import annotations

from protege.pruning.config import MagnitudeConfig, MasksConfig, StructuredConfig

__all__ = ["prune_"]


def prune_(model, config, *, batches=None):
    """Prune ``model`` in place as ``config`` says and return it.

    ``MagnitudeConfig``: unstructured magnitude pruning (torch masks attached; see
    :func:`~protege.pruning.magnitude.make_permanent_`). ``StructuredConfig``: heads, neurons and
    layers sliced away (``batches`` feed gradient importance). ``MasksConfig``: another run's
    masks. The methods that train (imp, gradual) need data and a loop: use :func:`prune`, or
    :func:`~protege.pruning.lottery.find_ticket` and :class:`~protege.pruning.schedule.GradualSchedule`.
    """
    from protege.pruning.magnitude import apply_masks_, magnitude_prune_
    from protege.pruning.structured import structured_prune_

    transforms = {
        MagnitudeConfig: lambda: magnitude_prune_(model, config),
        StructuredConfig: lambda: structured_prune_(model, config, batches),
        MasksConfig: lambda: apply_masks_(model, config.masks),
    }
    if type(config) not in transforms:
        raise TypeError(f"prune_ applies {', '.join(c.__name__ for c in transforms)}; {type(config).__name__} trains "
                        "while it prunes: use protege.prune(...)")
    transforms[type(config)]()
    return model
