"""Tokenising, length-grouped batching and dynamic padding."""

import random

import pytest
import torch

from protege.data.batching import batch_indices, collate, encode, iterate_batches
from protege.data.tables import Examples, infer_label_space, load_examples, map_labels
from protege.errors import ProtegeError


def _examples(texts, pairs=None, labels=None):
    return Examples(list(texts), pairs, labels, "mem", "sentence", "sentence2" if pairs else None,
                    "label" if labels is not None else None)


def test_encode_single(tiny_tokenizer, tiny_data_dir):
    ex = load_examples(tiny_data_dir / "dev.tsv")
    ex = map_labels(ex, infer_label_space(ex.labels))
    feats = encode(ex, tiny_tokenizer, max_length=8)
    assert len(feats) == len(ex)
    f = feats[0]
    assert set(f) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert all(type(i) is int for i in f["input_ids"])
    assert f["input_ids"][0] == tiny_tokenizer.cls_token_id and f["input_ids"][-1] == tiny_tokenizer.sep_token_id
    assert max(len(x["input_ids"]) for x in feats) == 8  # truncated
    assert all(set(x["attention_mask"]) == {1} for x in feats)  # no padding
    assert [x["labels"] for x in feats] == ex.labels


def test_encode_pairs_and_unlabelled(tiny_tokenizer):
    ex = _examples(["the movie was good", "bad plot"], pairs=["it was great", "boring"])
    feats = encode(ex, tiny_tokenizer, max_length=32)
    assert "labels" not in feats[0]
    for f in feats:
        tt = f["token_type_ids"]
        assert 1 in tt and tt[0] == 0 and len(tt) == len(f["input_ids"])
        assert tt == sorted(tt)  # 0s for the first sequence, then 1s
    reg = encode(_examples(["good"], labels=[4.25]), tiny_tokenizer, max_length=16)
    assert reg[0]["labels"] == 4.25


def test_encode_rejects_unmapped_labels(tiny_tokenizer):
    with pytest.raises(ProtegeError, match="map_labels"):
        encode(_examples(["good"], labels=["positive"]), tiny_tokenizer, max_length=16)
    with pytest.raises(ProtegeError, match="max_length"):
        encode(_examples(["good"]), tiny_tokenizer, max_length=0)


def test_every_index_once_and_determinism():
    rng = random.Random(0)
    lengths = [rng.randint(3, 120) for _ in range(1037)]
    for group in (True, False):
        orders = {}
        for epoch in range(3):
            batches = batch_indices(lengths, 16, shuffle=True, seed=5, epoch=epoch, group_by_length=group)
            flat = [i for b in batches for i in b]
            assert sorted(flat) == list(range(len(lengths)))
            assert all(1 <= len(b) <= 16 for b in batches)
            assert sum(len(b) < 16 for b in batches) <= 1
            orders[epoch] = flat
            again = batch_indices(lengths, 16, shuffle=True, seed=5, epoch=epoch, group_by_length=group)
            assert again == batches
        assert orders[0] != orders[1] != orders[2]
        other_seed = batch_indices(lengths, 16, shuffle=True, seed=6, epoch=0, group_by_length=group)
        assert [i for b in other_seed for i in b] != orders[0]


def test_sequential_order_for_evaluation():
    batches = batch_indices([5] * 10, 4, shuffle=False)
    assert batches == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batch_indices([], 4, shuffle=True) == []
    with pytest.raises(ProtegeError, match="batch size"):
        batch_indices([1, 2], 0, shuffle=False)


def _padded_tokens(lengths, batches):
    return sum(len(b) * max(lengths[i] for i in b) for b in batches)


def test_grouping_cuts_padding_and_longest_first():
    rng = random.Random(1)
    lengths = [rng.randint(4, 200) for _ in range(3000)]
    grouped = batch_indices(lengths, 32, shuffle=True, seed=0, epoch=0, group_by_length=True)
    plain = batch_indices(lengths, 32, shuffle=True, seed=0, epoch=0, group_by_length=False)
    assert _padded_tokens(lengths, grouped) < 0.75 * _padded_tokens(lengths, plain)
    assert max(lengths) in [lengths[i] for i in grouped[0]]
    # batch order is shuffled, not sorted by length
    firsts = [lengths[b[0]] for b in grouped[1:]]
    assert firsts != sorted(firsts, reverse=True)


def test_collate_shapes_and_padding():
    feats = [
        {"input_ids": [2, 7, 3], "attention_mask": [1, 1, 1], "token_type_ids": [0, 0, 0], "labels": 1},
        {"input_ids": [2, 8, 9, 10, 3], "attention_mask": [1] * 5, "token_type_ids": [0, 0, 1, 1, 1], "labels": 0},
    ]
    b = collate(feats, pad_token_id=0)
    assert set(b) == {"input_ids", "attention_mask", "token_type_ids", "labels"}
    assert b["input_ids"].shape == (2, 5) and b["input_ids"].dtype == torch.long
    assert b["input_ids"][0].tolist() == [2, 7, 3, 0, 0]
    assert b["attention_mask"][0].tolist() == [1, 1, 1, 0, 0]
    assert b["token_type_ids"][1].tolist() == [0, 0, 1, 1, 1]
    assert b["labels"].dtype == torch.long and b["labels"].tolist() == [1, 0]

    b = collate([{"input_ids": [5], "attention_mask": [1], "labels": 2.5, "index": 7},
                 {"input_ids": [5, 6], "attention_mask": [1, 1], "labels": 1.0, "index": 9}], pad_token_id=99)
    assert b["input_ids"].tolist() == [[5, 99], [5, 6]]
    assert "token_type_ids" not in b
    assert b["labels"].dtype == torch.float32 and b["labels"].tolist() == [2.5, 1.0]
    assert b["index"].tolist() == [7, 9]
    with pytest.raises(ProtegeError, match="pad token"):
        collate(feats, pad_token_id=None)


def test_iterate_batches(tiny_tokenizer, tiny_data_dir):
    ex = load_examples(tiny_data_dir / "train.tsv")
    ex = map_labels(ex, infer_label_space(ex.labels))
    feats = encode(ex, tiny_tokenizer, max_length=32)
    seen = 0
    for batch in iterate_batches(feats, 16, pad_token_id=tiny_tokenizer.pad_token_id, shuffle=True, epoch=1):
        n, width = batch["input_ids"].shape
        assert batch["attention_mask"].shape == (n, width) and batch["labels"].shape == (n,)
        assert int(batch["attention_mask"].sum(1).max()) == width  # padded to the longest only
        seen += n
    assert seen == len(feats)
    evals = list(iterate_batches(feats, 64, pad_token_id=0, shuffle=False))
    assert [b["labels"].shape[0] for b in evals] == [64, 64, 32]
    assert torch.cat([b["labels"] for b in evals]).tolist() == ex.labels
