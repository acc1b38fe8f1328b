"""Unstructured magnitude pruning: exact counts, scopes, no-ops, masks on disk, stock loading."""

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from protege.errors import ProtegeError
from protege.pruning import (MagnitudeConfig, PruneTarget, apply_masks_, get_masks, load_masks, magnitude_prune_,
                           make_permanent_, prunable_weights, prune_, random_prune_, save_masks, sparsity_report)


def _inputs():
    torch.manual_seed(3)
    return {"input_ids": torch.randint(5, 60, (3, 11)), "attention_mask": torch.ones(3, 11, dtype=torch.long)}


def test_candidates_are_the_encoder_linears_unless_asked(tiny_teacher):
    names = list(prunable_weights(tiny_teacher))
    assert len(names) == 4 * 6 and all(".encoder.layer." in n for n in names)
    more = prunable_weights(tiny_teacher, PruneTarget(include_pooler=True, include_classifier=True, include_embeddings=True))
    extra = set(more) - set(names)
    assert {"bert.pooler.dense.weight", "classifier.weight", "bert.embeddings.word_embeddings.weight"} <= extra


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.9])
def test_layer_scope_zeroes_exactly_round_s_n_in_every_matrix(tiny_teacher, sparsity):
    prune_(tiny_teacher, MagnitudeConfig(sparsity=sparsity, scope="layer"))
    report = sparsity_report(tiny_teacher)
    for name, layer in report["per_layer"].items():
        assert layer["zeros"] == round(sparsity * layer["parameters"]), name
        module = dict(tiny_teacher.named_modules())[name[: -len(".weight")]]
        assert int((module.weight == 0).sum()) == layer["zeros"]  # the forward pass sees the zeros


def test_global_scope_is_exact_overall_and_keeps_the_largest_weights(tiny_teacher):
    before = {n: m.weight.detach().abs().clone() for n, m in prunable_weights(tiny_teacher).items()}
    magnitude_prune_(tiny_teacher, MagnitudeConfig(sparsity=0.6, scope="global"))
    report = sparsity_report(tiny_teacher)
    assert report["zeros"] == round(0.6 * report["parameters"])
    masks = get_masks(tiny_teacher)
    kept = torch.cat([before[n][masks[n]] for n in masks])
    dropped = torch.cat([before[n][~masks[n]] for n in masks])
    assert kept.min() >= dropped.max()


def test_global_and_layer_scope_differ_as_they_should(tiny_teacher):
    # one matrix with 10x larger weights: global ranking spares it, layer scope prunes it like the rest
    import copy

    big = "bert.encoder.layer.1.intermediate.dense.weight"
    with torch.no_grad():
        dict(tiny_teacher.named_parameters())[big].mul_(10)
    by_layer = magnitude_prune_(copy.deepcopy(tiny_teacher), MagnitudeConfig(sparsity=0.5, scope="layer"))
    by_global = magnitude_prune_(copy.deepcopy(tiny_teacher), MagnitudeConfig(sparsity=0.5, scope="global"))
    layer_report, global_report = sparsity_report(by_layer)["per_layer"], sparsity_report(by_global)["per_layer"]
    assert layer_report[big]["sparsity"] == pytest.approx(0.5)
    assert global_report[big]["sparsity"] < 0.1
    others = [v["sparsity"] for k, v in global_report.items() if k != big]
    assert min(others) > 0.5  # the rest pays for it


def test_sparsity_zero_leaves_outputs_unchanged(tiny_teacher):
    import copy

    x = _inputs()
    pruned = prune_(copy.deepcopy(tiny_teacher), MagnitudeConfig(sparsity=0.0))
    with torch.no_grad():
        assert torch.equal(pruned(**x).logits, tiny_teacher(**x).logits)
    assert sparsity_report(pruned)["zeros"] == 0


def test_pruning_again_keeps_earlier_zeros(tiny_teacher):
    magnitude_prune_(tiny_teacher, MagnitudeConfig(sparsity=0.3, scope="layer"))
    first = get_masks(tiny_teacher)
    magnitude_prune_(tiny_teacher, MagnitudeConfig(sparsity=0.6, scope="layer"))
    second = get_masks(tiny_teacher)
    assert all(not (second[n] & ~first[n]).any() for n in first)  # nothing revived
    magnitude_prune_(tiny_teacher, MagnitudeConfig(sparsity=0.2, scope="layer"))  # a lower target revives nothing
    assert all(torch.equal(get_masks(tiny_teacher)[n], second[n]) for n in second)


def test_masks_round_trip_and_apply_to_another_model(tiny_teacher, tmp_path):
    import copy

    other = copy.deepcopy(tiny_teacher)
    with torch.no_grad():
        for p in other.parameters():
            p.add_(0.01)
    magnitude_prune_(tiny_teacher, MagnitudeConfig(sparsity=0.7, scope="global"))
    path = save_masks(get_masks(tiny_teacher), tmp_path / "m.safetensors")
    apply_masks_(other, path)
    assert all(torch.equal(get_masks(other)[n], m) for n, m in load_masks(path).items())


def test_masks_of_another_shape_are_refused(tiny_teacher, tmp_path):
    masks = {"bert.encoder.layer.0.attention.self.query.weight": torch.ones(3, 3, dtype=torch.bool)}
    with pytest.raises(ProtegeError, match="same architecture"):
        apply_masks_(tiny_teacher, masks)
    with pytest.raises(ProtegeError, match="does not have"):
        apply_masks_(tiny_teacher, {"nope.weight": torch.ones(1, dtype=torch.bool)})
    with pytest.raises(ProtegeError, match="no such masks file"):
        load_masks(tmp_path)


def test_random_masks_match_the_counts(tiny_teacher):
    zeros = {"bert.encoder.layer.0.output.dense.weight": 100, "bert.encoder.layer.2.attention.self.key.weight": 7}
    random_prune_(tiny_teacher, zeros, seed=1)
    report = sparsity_report(tiny_teacher)["per_layer"]
    assert {n: report[n]["zeros"] for n in zeros} == zeros


def test_made_permanent_it_saves_and_loads_with_stock_transformers(tiny_teacher, tmp_path):
    x = _inputs()
    magnitude_prune_(tiny_teacher, MagnitudeConfig(sparsity=0.5))
    with torch.no_grad():
        expected = tiny_teacher(**x).logits
    make_permanent_(tiny_teacher)
    assert not any("weight_orig" in n or "weight_mask" in n for n in tiny_teacher.state_dict())
    tiny_teacher.save_pretrained(tmp_path)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        assert torch.allclose(loaded(**x).logits, expected, atol=1e-6)
    assert sparsity_report(loaded)["sparsity"] == pytest.approx(0.5, abs=1e-3)


def test_config_validation():
    with pytest.raises(ProtegeError, match="--sparsity is required"):
        MagnitudeConfig()
    with pytest.raises(ProtegeError, match=r"--sparsity must be a fraction in \[0, 1\)"):
        MagnitudeConfig(sparsity=1.0)
    with pytest.raises(ProtegeError, match="--scope"):
        MagnitudeConfig(sparsity=0.5, scope="row")
