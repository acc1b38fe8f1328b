"""Which examples hold words that are rare in the training data: token frequencies, counted once and cached.

Compression damage concentrates in the long tail (Hooker et al. 2019): a student keeps the
frequent patterns and forgets the rare ones. protege makes that measurable with one slice: an
example is *rare* when it holds at least one token (special tokens aside) that the training data
(``--train``) holds fewer than ``RARE_BELOW`` times, under the teacher's tokenizer.

Counting a large training set takes a while, so the counts (one int64 per vocabulary entry) are
cached as ``<cache>/token-counts/<fingerprint>.npy``; the fingerprint covers the file's bytes (or
a hub dataset's name and split), the columns read, ``max_length`` and the tokenizer's full
definition, so a changed file or tokenizer is recounted, never served stale. The cache folder is
``cache_dir``, else ``$PROTEGE_CACHE``, else ``~/.cache/protege``.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import numpy as np

from protege.utils.io import cache_root

__all__ = ["train_token_counts", "token_lengths", "rare_examples", "tokenizer_fingerprint", "cache_root", "RARE_BELOW"]

RARE_BELOW = 5  # a token seen fewer than 5 times in --train (0: never) makes its example "rare"
_VERSION = 1  # bump when the counting changes


def tokenizer_fingerprint(tokenizer) -> str:
    """sha256 of the tokenizer's definition (the fast tokenizer's JSON, else its vocabulary and class)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        spec = json.loads(backend.to_str())
        spec.pop("truncation", None)  # call state (the last call's max_length), not the tokenizer
        spec.pop("padding", None)
        text = json.dumps(spec, sort_keys=True)
    else:
        text = json.dumps([type(tokenizer).__name__, sorted(tokenizer.get_vocab().items())])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def train_token_counts(train: str, tokenizer, *, text_column: str | None = None, text_pair_column: str | None = None,
                       split: str | None = None, max_length: int = 128, cache_dir=None) -> tuple[np.ndarray, dict]:
    """How often each token id occurs in ``train`` (texts and pairs, truncated to ``max_length``).

    Returns ``(counts, info)``: int64 counts of shape (vocabulary size,) and ``{"source",
    "examples", "tokens", "cached", "file"}``. Served from the cache when the fingerprint matches.
    """
    from protege.data import load_examples
    from protege.data.batching import encode
    from protege.utils.io import write_atomic

    fp = _fingerprint(train, tokenizer, text_column, text_pair_column, split, max_length)
    file = cache_root(cache_dir) / "token-counts" / f"{fp}.npz"
    if file.is_file():
        try:
            with np.load(file) as saved:
                return saved["counts"], {"source": str(train), "examples": int(saved["examples"]),
                                         "tokens": int(saved["counts"].sum()), "cached": True, "file": str(file)}
        except (OSError, ValueError, KeyError):
            pass  # a damaged cache file is recounted and replaced
    examples = load_examples(train, text_column=text_column, text_pair_column=text_pair_column, split=split or "train")
    features = encode(_unlabeled(examples), tokenizer, max_length=max_length)
    ids = np.fromiter((i for f in features for i in f["input_ids"]), dtype=np.int64)
    counts = np.bincount(ids, minlength=len(tokenizer)).astype(np.int64)  # one pass over every token
    buf = io.BytesIO()
    np.savez(buf, counts=counts, examples=np.int64(len(examples)))
    write_atomic(file, buf.getvalue())
    return counts, {"source": str(train), "examples": len(examples), "tokens": int(counts.sum()), "cached": False,
                    "file": str(file)}


def token_lengths(features: list[dict]) -> np.ndarray:
    """Tokens per encoded example (special tokens included, after truncation): int array (N,)."""
    return np.asarray([len(f["input_ids"]) for f in features], dtype=np.int64)


def rare_examples(features: list[dict], counts: np.ndarray, *, special_ids=(), below: int = RARE_BELOW) -> np.ndarray:
    """Bool (N,): the example holds a non-special token that ``counts`` has fewer than ``below`` times."""
    special = set(int(i) for i in special_ids)
    out = np.zeros(len(features), dtype=bool)
    for n, f in enumerate(features):
        ids = [i for i in f["input_ids"] if i not in special]
        out[n] = any(i >= len(counts) or counts[i] < below for i in ids)
    return out


def _unlabeled(examples):
    from dataclasses import replace

    return replace(examples, labels=None)  # labels of --train are not needed and need no mapping


def _fingerprint(train, tokenizer, text_column, text_pair_column, split, max_length) -> str:
    h = hashlib.sha256()
    h.update(json.dumps([_VERSION, text_column, text_pair_column, split, max_length, tokenizer_fingerprint(tokenizer)]).encode())
    path = Path(str(train)).expanduser()
    if path.is_file():
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    else:  # a hub dataset: its name and split stand for its content
        h.update(str(train).encode())
    return h.hexdigest()[:32]
