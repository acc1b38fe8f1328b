"""A fingerprint of an evaluation set, so that scores measured on different rows are never compared.

Two runs can name the same file and still be scored on different rows (the file changed,
``--max-eval-examples`` differed, labels were mapped differently). ``metrics.json`` records the
fingerprint beside the source, and ``protege report`` flags runs whose fingerprints differ.
"""

from __future__ import annotations

import hashlib
import json

__all__ = ["eval_fingerprint", "text_fingerprint"]

_VERSION = "v1"


def eval_fingerprint(examples) -> str:
    """``"sha256:<hex>"`` of the texts, pairs and labels of ``examples``, in order.

    Each row is hashed as one JSON line ``[text, pair, label]`` (``null`` for a missing pair or
    label), so the fingerprint changes with any row, its order, or its label; it ignores the
    source's name and the column names.
    """
    digest = hashlib.sha256(f"protege-eval-{_VERSION}\n".encode())
    pairs = examples.text_pairs
    labels = examples.labels
    for i, text in enumerate(examples.texts):
        row = [text, None if pairs is None else pairs[i], None if labels is None else _plain(labels[i])]
        digest.update(json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        digest.update(b"\n")
    return "sha256:" + digest.hexdigest()


def text_fingerprint(lines) -> str:
    """:func:`eval_fingerprint` of unlabeled text lines (held-out text of general objectives)."""
    from types import SimpleNamespace

    return eval_fingerprint(SimpleNamespace(texts=list(lines), text_pairs=None, labels=None))


def _plain(label):
    # numpy / torch scalars hash like the Python number they hold
    return label.item() if hasattr(label, "item") else label
