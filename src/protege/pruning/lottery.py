"""Lottery tickets: iterative magnitude pruning with rewinding, and its controls.

Frankle & Carbin (2019) find sparse subnetworks that train to the dense network's quality
("matching") by repeating: prune a fraction of the remaining weights by magnitude, rewind the
survivors to their early values, train again. Chen et al. (2020) found such subnetworks in
BERT at 40-90% sparsity by global magnitude pruning with rewinding to the pre-trained weights;
Frankle et al. (2020) rewind to step k of training instead of step 0. The controls at the
ticket's sparsity are a random mask (same count per matrix) and the ticket's mask with
re-initialised weights.

:func:`find_ticket` is the loop; it takes the training and evaluation of a round as functions,
so protege's trainer runs it from :func:`protege.pruning.prune` and a test runs it with stubs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Callable

import torch
from torch import nn

from protege.pruning.magnitude import get_masks, magnitude_prune_, sparsity_report

__all__ = ["Ticket", "snapshot", "rewind_", "reinitialized", "find_ticket"]


def _plain(name: str) -> str:
    # torch's pruning renames "weight" to "weight_orig"; snapshots use the stock name
    return name[: -len("_orig")] if name.endswith("_orig") else name


def snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    """A copy (on the CPU) of every parameter of ``model``, under stock names, to rewind to later."""
    return {_plain(n): p.detach().cpu().clone() for n, p in model.named_parameters()}


@torch.no_grad()
def rewind_(model: nn.Module, weights: dict[str, torch.Tensor]) -> nn.Module:
    """Set every parameter of ``model`` to ``weights`` (a :func:`snapshot`), keeping its masks.

    Pruned weights stay zero; surviving weights get exactly the snapshot's values.
    """
    for name, p in model.named_parameters():
        p.copy_(weights[_plain(name)].to(p.device, p.dtype))
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            module.weight = module.weight_orig * module.weight_mask
    return model


def reinitialized(model: nn.Module, *, seed: int) -> dict[str, torch.Tensor]:
    """A :func:`snapshot` of a freshly initialised model with ``model``'s class and config (the re-init control)."""
    torch.manual_seed(seed)
    return snapshot(type(model)(copy.deepcopy(model.config)))


@dataclass
class Ticket:
    """The result of :func:`find_ticket`.

    ``round`` and ``sparsity`` describe the kept subnetwork (the sparsest matching one, or the
    first round when none matched: ``matching`` says which); ``rounds`` lists every round
    tried as ``{"round", "sparsity", "metric", "matching"}``; ``stopped_because`` says in one
    line why the search ended (a round missed the tolerance, or ``--rounds`` ran out).
    """

    masks: dict[str, torch.Tensor]
    round: int
    sparsity: float
    metric: float
    matching: bool
    reference: float
    rounds: list[dict] = field(default_factory=list)
    stopped_because: str = ""


def find_ticket(model: nn.Module, config, *, train: Callable[[nn.Module, int], object],
                evaluate: Callable[[nn.Module], float], reference: float,
                rewind_to: dict[str, torch.Tensor] | None = None, metric_name: str = "metric") -> Ticket:
    """Iterative magnitude pruning with rewinding, stopping at the sparsest matching subnetwork.

    ``model`` holds the trained dense weights that the first round prunes by magnitude;
    ``rewind_to`` (default: a snapshot of ``model`` now) is where surviving weights go back to
    each round. Round r prunes to sparsity ``1 - (1 - rate)^r`` (``config`` is a
    :class:`~protege.pruning.config.LotteryConfig`), rewinds, calls ``train(model, r)``, then
    ``evaluate(model)`` (higher is better). A round matches when its metric is at least
    ``reference - tolerance``; the first round that does not ends the search, so
    ``config.rounds`` is a maximum. On return ``model`` holds the kept subnetwork's trained
    weights and masks; ``Ticket.stopped_because`` names ``metric_name`` in saying why it stopped.
    """
    theta = rewind_to if rewind_to is not None else snapshot(model)
    rounds, best = [], None
    for r in range(1, config.rounds + 1):
        magnitude_prune_(model, config.at(config.sparsity_at(r)))
        rewind_(model, theta)
        train(model, r)
        metric = float(evaluate(model))
        matching = metric >= reference - config.tolerance
        achieved = sparsity_report(model)["sparsity"]
        rounds.append({"round": r, "sparsity": achieved, "metric": metric, "matching": matching})
        if matching or best is None:
            best = (r, achieved, metric, matching, get_masks(model), copy.deepcopy(model.state_dict()))
        if not matching:
            break
    r, achieved, metric, matching, masks, state = best
    if r != rounds[-1]["round"]:
        model.load_state_dict(state)
    return Ticket(masks=masks, round=r, sparsity=achieved, metric=metric, matching=matching, reference=reference,
                  rounds=rounds, stopped_because=_why_stopped(rounds, config, reference, metric_name))


def _why_stopped(rounds: list[dict], config, reference: float, metric_name: str) -> str:
    """One line: the round that missed the tolerance, or that every round allowed by ``--rounds`` matched."""
    last = rounds[-1]
    if not last["matching"]:
        return (f"stopped after round {last['round']}: {metric_name} {last['metric']:.4f} is below the reference "
                f"{reference:.4f} - tolerance {config.tolerance:g} = {reference - config.tolerance:.4f}")
    return (f"stopped after round {last['round']}: every round matched and --rounds {config.rounds} is the maximum; "
            "pass more --rounds to search for a sparser ticket")
