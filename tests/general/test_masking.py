"""Dynamic masking: the rate, the 80/10/10 split, special tokens never masked, and DistilBERT's smoothing direction."""

import numpy as np
import pytest
import torch

from protege.data.masking import IGNORE_INDEX, MaskingSpec, mask_tokens, masking_weights
from protege.errors import ProtegeError

VOCAB, MASK, CLS, SEP, PAD = 50, 4, 2, 3, 0
SPECIAL = [PAD, 1, CLS, SEP, MASK]


def _spec(counts=None, smoothing=0.7, probability=0.15):
    counts = np.ones(VOCAB) if counts is None else counts
    weights = masking_weights(counts, SPECIAL, smoothing=smoothing)
    random_ids = torch.tensor([i for i in range(VOCAB) if i not in SPECIAL])
    return MaskingSpec(MASK, weights, random_ids, probability)


def _batch(seed=0, b=64, length=40):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, VOCAB, (b, length), generator=g)
    ids[:, 0], ids[:, -1] = CLS, SEP
    mask = torch.ones(b, length, dtype=torch.long)
    mask[: b // 2, length // 2:] = 0  # half the rows padded
    ids[mask == 0] = PAD
    return ids, mask


def test_rate_is_exact_and_special_and_padding_never_selected():
    ids, mask = _batch()
    masked, labels, selected = mask_tokens(ids, mask, _spec(), generator=torch.Generator().manual_seed(1))
    candidates = int(((mask == 1) & ~torch.isin(ids, torch.tensor(SPECIAL))).sum())
    assert int(selected.sum()) == round(0.15 * candidates)
    assert not selected[torch.isin(ids, torch.tensor(SPECIAL))].any()
    assert not selected[mask == 0].any()
    assert torch.equal(labels[selected], ids[selected])
    assert (labels[~selected] == IGNORE_INDEX).all()
    assert torch.equal(masked[~selected], ids[~selected])  # only selected positions change


def test_80_10_10_split_and_random_tokens_are_never_special():
    ids, mask = _batch(b=256, length=64)
    g = torch.Generator().manual_seed(2)
    n_mask = n_keep = n_rand = 0
    for _ in range(5):
        masked, _, selected = mask_tokens(ids, mask, _spec(), generator=g)
        new, old = masked[selected], ids[selected]
        n_mask += int((new == MASK).sum())
        n_keep += int((new == old).sum())
        changed = (new != MASK) & (new != old)
        n_rand += int(changed.sum())
        assert not torch.isin(new[changed], torch.tensor(SPECIAL)).any()
    total = n_mask + n_keep + n_rand
    assert n_mask / total == pytest.approx(0.8, abs=0.02)
    # a random draw equals the original token 1 time in 45: "keep" is 10% + that, "random" 10% minus it
    assert n_keep / total == pytest.approx(0.1 + 0.1 / 45, abs=0.015)
    assert n_rand / total == pytest.approx(0.1 - 0.1 / 45, abs=0.015)


def test_frequency_smoothing_masks_rare_tokens_more_often():
    counts = np.ones(VOCAB)
    frequent, rare = 10, 11
    counts[frequent], counts[rare] = 10_000, 10
    ids = torch.tensor([[CLS] + [frequent, rare] * 20 + [SEP]] * 32)
    mask = torch.ones_like(ids)
    g = torch.Generator().manual_seed(3)
    picked = {0.7: [0, 0], 0.0: [0, 0]}
    for smoothing in picked:
        for _ in range(20):
            _, _, selected = mask_tokens(ids, mask, _spec(counts, smoothing), generator=g)
            picked[smoothing][0] += int(selected[ids == frequent].sum())
            picked[smoothing][1] += int(selected[ids == rare].sum())
    assert picked[0.7][1] > 5 * picked[0.7][0]  # weight ratio (10 / 10000) ** -0.7 ~ 126
    assert picked[0.0][1] == pytest.approx(picked[0.0][0], rel=0.15)  # no smoothing: alike


def test_weights_formula_and_validation():
    counts = np.array([0, 1, 8, 1000] + [1] * (VOCAB - 4))
    w = masking_weights(counts, [1], smoothing=0.5).numpy()
    assert w[0] == pytest.approx(1.0) and w[1] == 0.0
    assert w[2] == pytest.approx(8 ** -0.5) and w[3] == pytest.approx(1000 ** -0.5)
    with pytest.raises(ProtegeError, match="mask-smoothing"):
        masking_weights(counts, [], smoothing=-1)
    with pytest.raises(ProtegeError, match="mlm-probability"):
        _spec(probability=0.0)


def test_same_generator_seed_gives_the_same_mask():
    ids, mask = _batch(seed=5)
    a = mask_tokens(ids, mask, _spec(), generator=torch.Generator().manual_seed(9))
    b = mask_tokens(ids, mask, _spec(), generator=torch.Generator().manual_seed(9))
    assert all(torch.equal(x, y) for x, y in zip(a, b))
