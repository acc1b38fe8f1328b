"""Lottery tickets: rewinding, the stopping rule (with stub training and evaluation), the controls' pieces."""

import pytest
import torch

from protege.pruning import (LotteryConfig, MagnitudeConfig, find_ticket, get_masks, magnitude_prune_, reinitialized,
                           rewind_, snapshot, sparsity_report)


def _perturb(model, seed=0):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)


def test_rewinding_restores_pretrained_values_on_surviving_weights(tiny_teacher):
    theta = snapshot(tiny_teacher)
    magnitude_prune_(tiny_teacher, MagnitudeConfig(sparsity=0.6))
    _perturb(tiny_teacher)  # "training"
    rewind_(tiny_teacher, theta)
    masks = get_masks(tiny_teacher)
    modules = dict(tiny_teacher.named_modules())
    for name, mask in masks.items():
        weight = modules[name[: -len(".weight")]].weight
        assert torch.equal(weight[mask], theta[name][mask])  # survivors: exactly the pre-trained values
        assert (weight[~mask] == 0).all()  # pruned: still zero
    bias = "bert.encoder.layer.0.output.dense.bias"
    assert torch.equal(dict(tiny_teacher.named_parameters())[bias], theta[bias])


def test_reinitialized_weights_differ_but_fit(tiny_teacher):
    fresh = reinitialized(tiny_teacher, seed=1)
    theta = snapshot(tiny_teacher)
    assert fresh.keys() == theta.keys()
    name = "bert.encoder.layer.0.attention.self.query.weight"
    assert fresh[name].shape == theta[name].shape and not torch.equal(fresh[name], theta[name])


def _stub_eval(model):
    # quality falls linearly with sparsity: 0.90 dense, 0.80 at 100%
    return 0.90 - 0.10 * sparsity_report(model)["sparsity"]


def test_imp_stops_at_the_highest_matching_sparsity(tiny_teacher):
    trained = []
    cfg = LotteryConfig(rounds=6, rate=0.2, tolerance=0.03)  # matches while sparsity <= 0.3
    ticket = find_ticket(tiny_teacher, cfg, train=lambda m, r: (trained.append(r), _perturb(m, r)), evaluate=_stub_eval,
                         reference=0.90)
    assert [r["round"] for r in ticket.rounds] == [1, 2]  # round 2 (36%) fails: stop there
    assert [r["matching"] for r in ticket.rounds] == [True, False]
    assert trained == [1, 2]
    assert ticket.round == 1 and ticket.matching
    assert ticket.sparsity == pytest.approx(0.2, abs=1e-3)
    assert sparsity_report(tiny_teacher)["sparsity"] == pytest.approx(0.2, abs=1e-3)  # the model holds the ticket
    assert all(torch.equal(get_masks(tiny_teacher)[n], m) for n, m in ticket.masks.items())


def test_imp_sparsity_follows_the_rate_and_runs_all_rounds_when_all_match(tiny_teacher):
    cfg = LotteryConfig(rounds=3, rate=0.5, tolerance=1.0, scope="layer")
    ticket = find_ticket(tiny_teacher, cfg, train=lambda m, r: None, evaluate=_stub_eval, reference=0.90)
    assert [round(r["sparsity"], 3) for r in ticket.rounds] == [0.5, 0.75, 0.875]
    assert ticket.round == 3 and ticket.matching


def test_imp_without_a_matching_round_keeps_the_first_and_says_so(tiny_teacher):
    cfg = LotteryConfig(rounds=4, rate=0.2, tolerance=0.0)
    ticket = find_ticket(tiny_teacher, cfg, train=lambda m, r: None, evaluate=_stub_eval, reference=0.95)
    assert len(ticket.rounds) == 1 and ticket.round == 1 and not ticket.matching


def test_imp_rewinds_every_round_to_the_given_weights(tiny_teacher):
    theta = snapshot(tiny_teacher)
    seen = []

    def train(m, r):
        masks = get_masks(m)
        w = dict(m.named_modules())["bert.encoder.layer.0.attention.self.query"].weight
        mask = masks["bert.encoder.layer.0.attention.self.query.weight"]
        seen.append(torch.equal(w[mask], theta["bert.encoder.layer.0.attention.self.query.weight"][mask]))
        _perturb(m, r)

    find_ticket(tiny_teacher, LotteryConfig(rounds=3, tolerance=1.0), train=train, evaluate=_stub_eval, reference=0.9)
    assert seen == [True, True, True]
