"""Tokenise once, then batch with length grouping and dynamic padding.

Features are plain dicts of python lists (cheap to cache and to extend, e.g. with teacher
logits); ``collate`` turns a list of them into padded tensors.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Iterator

from protege.errors import ProtegeError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from protege.data.tables import Examples

__all__ = ["encode", "batch_indices", "collate", "iterate_batches", "MEGABATCH_FACTOR"]

MEGABATCH_FACTOR = 50  # length grouping sorts within chunks of 50 * batch_size
_TOKEN_KEYS = ("input_ids", "attention_mask", "token_type_ids")
_CHUNK = 8192  # texts per tokenizer call


def encode(examples: "Examples", tokenizer, *, max_length: int) -> list[dict]:
    """Tokenise ``examples`` (truncated to ``max_length``, unpadded) into one feature dict per example.

    Each feature holds ``input_ids``, ``attention_mask``, ``token_type_ids`` (when the tokenizer
    makes them) as lists of ints, and ``labels`` (int, float, or a multi-hot list of floats for
    multi-label examples) when the examples are labelled.
    Text pairs go in as the second sequence.
    """
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
        raise ProtegeError(f"max_length must be an integer of at least 2, got {max_length!r}; pass --max-length")
    labels = None if examples.labels is None else [_label(v, examples.source, i) for i, v in enumerate(examples.labels)]
    features: list[dict] = []
    n = len(examples.texts)
    for start in range(0, n, _CHUNK):
        texts = examples.texts[start:start + _CHUNK]
        pairs = None if examples.text_pairs is None else examples.text_pairs[start:start + _CHUNK]
        enc = tokenizer(texts, pairs, truncation=True, max_length=max_length, padding=False)
        keys = [k for k in _TOKEN_KEYS if k in enc]
        for j in range(len(texts)):
            feat = {k: list(enc[k][j]) for k in keys}
            if labels is not None:
                feat["labels"] = labels[start + j]
            features.append(feat)
    return features


def _label(v, source: str, i: int):
    if isinstance(v, bool):
        return int(v)
    if hasattr(v, "item") and not isinstance(v, str):
        v = v.item()
    if isinstance(v, (int, float)):
        return v
    if isinstance(v, (list, tuple)) and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
        return [float(x) for x in v]  # multi-hot (multi-label): BCE needs float targets
    raise ProtegeError(
        f"{source} row {i + 1}: label {v!r} is not a class id or number; map the labels (map_labels) before encoding"
    )


def batch_indices(
    lengths: list[int],
    batch_size: int,
    *,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    group_by_length: bool = True,
) -> list[list[int]]:
    """Split ``range(len(lengths))`` into batches; the order depends only on (seed, epoch).

    ``shuffle=False``: sequential batches (evaluation). ``shuffle=True, group_by_length=True``:
    shuffle, sort chunks of ``50 * batch_size`` by length (longest first), cut into batches,
    shuffle the batch order and put the batch holding the longest example first (OOM shows early).
    """
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        raise ProtegeError(f"batch size must be a positive integer, got {batch_size!r}; pass --batch-size")
    n = len(lengths)
    if not shuffle:
        return [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    rng = random.Random(f"protege-batches:{seed}:{epoch}")
    order = list(range(n))
    rng.shuffle(order)
    if not group_by_length:
        return [order[i:i + batch_size] for i in range(0, n, batch_size)]
    mega = MEGABATCH_FACTOR * batch_size
    batches: list[list[int]] = []
    for start in range(0, n, mega):
        chunk = sorted(order[start:start + mega], key=lambda i: -lengths[i])  # stable
        batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    if batches:
        longest = max(range(len(batches)), key=lambda b: lengths[batches[b][0]])
        batches[0], batches[longest] = batches[longest], batches[0]
    return batches


def collate(features: list[dict], pad_token_id: int) -> dict[str, "torch.Tensor"]:
    """Pad a list of features (right padding, to the longest) into a dict of tensors.

    ``input_ids`` pad with ``pad_token_id``, ``attention_mask`` / ``token_type_ids`` with 0;
    ``labels`` become a LongTensor (ints) or FloatTensor (any float, or multi-hot lists). Other keys are stacked
    with ``torch.tensor`` as they are (scalars or equal-length lists).
    """
    import torch

    if not features:
        raise ValueError("collate needs at least one feature")
    if pad_token_id is None:
        raise ProtegeError("the tokenizer has no pad token; set tokenizer.pad_token (e.g. to the eos token)")
    width = max(len(f["input_ids"]) for f in features)
    batch: dict[str, torch.Tensor] = {}
    for key in features[0]:
        values = [f[key] for f in features]
        if key in _TOKEN_KEYS:
            pad = pad_token_id if key == "input_ids" else 0
            batch[key] = torch.tensor([list(seq) + [pad] * (width - len(seq)) for seq in values], dtype=torch.long)
        elif key == "labels":
            is_float = any(isinstance(v, (float, list)) for v in values)
            batch[key] = torch.tensor(values, dtype=torch.float32 if is_float else torch.long)
        else:
            batch[key] = torch.tensor(values)
    return batch


def iterate_batches(
    features: list[dict],
    batch_size: int,
    *,
    pad_token_id: int,
    shuffle: bool,
    seed: int = 0,
    epoch: int = 0,
    group_by_length: bool = True,
) -> Iterator[dict[str, "torch.Tensor"]]:
    """Yield collated batches of ``features`` in :func:`batch_indices` order."""
    lengths = [len(f["input_ids"]) for f in features]
    for idx in batch_indices(lengths, batch_size, shuffle=shuffle, seed=seed, epoch=epoch,
                             group_by_length=group_by_length):
        yield collate([features[i] for i in idx], pad_token_id)
