"""Structured pruning: slicing equals masking, importance, and what loads the saved folders."""

import copy
import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification

from protege.errors import ProtegeError
from protege.pruning import (StructuredConfig, drop_layers_, importance_scores, layout, load_pruned, prune_, prune_ffn_,
                           prune_heads_)

HEAD = 16  # tiny teacher: hidden 32, 2 heads


def _inputs():
    torch.manual_seed(3)
    ids = torch.randint(5, 60, (3, 11))
    mask = torch.ones(3, 11, dtype=torch.long)
    mask[0, 7:] = 0
    return {"input_ids": ids, "attention_mask": mask}


def _logits(model, x):
    with torch.no_grad():
        return model(**x).logits


def _layer(model, i):
    return model.bert.encoder.layer[i]


def test_removing_ffn_neurons_that_output_nothing_changes_nothing(tiny_teacher):
    x = _inputs()
    with torch.no_grad():
        for i in range(4):
            _layer(tiny_teacher, i).output.dense.weight[:, 40:] = 0  # neurons 40..63 contribute nothing
    expected = _logits(tiny_teacher, x)
    prune_ffn_(tiny_teacher, {i: list(range(40)) for i in range(4)})
    assert layout(tiny_teacher)["ffn"] == [40] * 4
    assert tiny_teacher.config.intermediate_size == 40
    assert torch.allclose(_logits(tiny_teacher, x), expected, atol=1e-6)


def test_removing_heads_matches_masking_them(tiny_teacher):
    x = _inputs()
    masked = copy.deepcopy(tiny_teacher)
    removed = {0: 1, 2: 0, 3: 1}  # layer -> head
    with torch.no_grad():
        for layer, head in removed.items():  # masking a head = zeroing its share of the output projection
            _layer(masked, layer).attention.output.dense.weight[:, head * HEAD:(head + 1) * HEAD] = 0
    prune_heads_(tiny_teacher, {layer: [1 - head] for layer, head in removed.items()})
    assert layout(tiny_teacher)["heads"] == [1, 2, 1, 1]
    assert torch.allclose(_logits(tiny_teacher, x), _logits(masked, x), atol=1e-6)
    assert tiny_teacher.config.protege_pruned_heads == {"0": [1], "2": [0], "3": [1]}


def test_pruned_head_record_uses_original_indices_across_calls(tiny_teacher):
    tiny_teacher.config.num_attention_heads = 4  # 4 heads of 8
    model = type(tiny_teacher)(tiny_teacher.config).eval()
    prune_heads_(model, {1: [0, 2, 3]})  # drop original head 1
    prune_heads_(model, {1: [0, 1]})  # positions 0,1,2 are now original 0,2,3: keep 0,2, drop original 3
    assert model.config.protege_pruned_heads == {"1": [1, 3]}
    drop_layers_(model, [1, 3])  # layer 1 becomes layer 0
    assert model.config.protege_pruned_heads == {"0": [1, 3]}


def test_dropping_layers_matches_keep_layers(tiny_teacher):
    from protege.models import keep_layers

    x = _inputs()
    expected = _logits(keep_layers(tiny_teacher, [0, 3]), x)
    prune_(tiny_teacher, StructuredConfig(keep_layers="0,3"))
    assert tiny_teacher.config.num_hidden_layers == 2
    assert torch.allclose(_logits(tiny_teacher, x), expected)


def test_gradient_importance_ranks_a_silenced_head_last(tiny_teacher):
    x = _inputs()
    with torch.no_grad():
        _layer(tiny_teacher, 1).attention.output.dense.weight[:, HEAD:] = 0  # head 1 of layer 1 is silent
        _layer(tiny_teacher, 2).output.dense.weight[:, 5] = 0  # neuron 5 of layer 2 is silent
    for method, batches in (("gradient", [x]), ("magnitude", None)):
        scores = importance_scores(tiny_teacher, batches, method=method)
        assert len(scores["heads"]) == 4 and scores["heads"][0].shape == (2,)
        assert scores["heads"][1][1] == 0 < scores["heads"][1][0]
        assert scores["ffn"][2][5] == 0 and scores["ffn"][2].argmin() == 5
    assert not any(p.grad is not None for p in tiny_teacher.parameters())  # importance leaves no gradients behind
    prune_(tiny_teacher, StructuredConfig(keep_heads=1), batches=[x])
    assert tiny_teacher.config.protege_pruned_heads["1"] == [1]


def test_ffn_and_layer_pruning_loads_with_stock_from_pretrained(tiny_teacher, tmp_path):
    x = _inputs()
    prune_(tiny_teacher, StructuredConfig(keep_ffn=24, keep_layers="first:3", importance="magnitude"))
    tiny_teacher.save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["intermediate_size"] == 24 and config["num_hidden_layers"] == 3
    assert not any(k.startswith("protege") for k in config)
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert torch.allclose(_logits(loaded, x), _logits(tiny_teacher, x), atol=1e-6)
    assert torch.allclose(_logits(load_pruned(tmp_path), x), _logits(tiny_teacher, x), atol=1e-6)


def test_head_pruning_needs_load_pruned_and_stock_loading_refuses(tiny_teacher, tmp_path):
    x = _inputs()
    prune_(tiny_teacher, StructuredConfig(keep_heads=1, keep_ffn=48, importance="magnitude"))
    tiny_teacher.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["protege_pruned_heads"]
    with pytest.raises(RuntimeError, match="mismatch|size"):  # never silently re-initialised
        AutoModelForSequenceClassification.from_pretrained(tmp_path)
    loaded = load_pruned(tmp_path)
    assert layout(loaded) == layout(tiny_teacher)
    assert torch.allclose(_logits(loaded, x), _logits(tiny_teacher, x), atol=1e-6)


def test_uneven_ffn_widths_are_recorded_and_reloaded(tiny_teacher, tmp_path):
    x = _inputs()
    prune_ffn_(tiny_teacher, {0: list(range(10)), 3: list(range(0, 64, 2))})
    assert tiny_teacher.config.protege_ffn_sizes == [10, 64, 64, 32]
    tiny_teacher.save_pretrained(tmp_path)
    assert torch.allclose(_logits(load_pruned(tmp_path), x), _logits(tiny_teacher, x), atol=1e-6)


def test_structured_input_is_checked(tiny_teacher):
    with pytest.raises(ProtegeError, match="at least one of"):
        StructuredConfig()
    with pytest.raises(ProtegeError, match="--keep-heads 3 is more than the 2 heads"):
        prune_(tiny_teacher, StructuredConfig(keep_heads=3))
    with pytest.raises(ProtegeError, match="--keep-ffn 65"):
        prune_(tiny_teacher, StructuredConfig(keep_ffn=65))
    with pytest.raises(ProtegeError, match="outside 0..3"):
        prune_(tiny_teacher, StructuredConfig(keep_layers="0,4"))
    with pytest.raises(ProtegeError, match="needs data"):
        prune_(tiny_teacher, StructuredConfig(keep_heads=1))
