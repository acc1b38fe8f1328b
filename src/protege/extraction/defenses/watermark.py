"""API watermarking: answer a small keyed fraction of queries wrong, then test a suspect for them.

Krishna et al. (2020, section 6.2), after Szyller et al. (2019, "DAWN"): the server answers a
fraction of queries, chosen by a keyed hash of the text, with a wrong label, always the same one
for the same text. A model trained on those answers learns some of the wrong labels by heart;
an independent model has no reason to.

The test (:func:`verify_watermark`) needs only the served log (text and answer of each query)
and the key. For the watermarked queries the served label is the watermark; for every other
query the key tells which wrong label *would* have been served. Both sets are chosen by the
hash alone, so for a model that never saw the watermark the rate of predicting "the watermark
label" is the same on both (its disagreement with the victim); a model that memorised them
predicts it far more often on the watermarked set. Fisher's exact test (one-sided) on the 2x2
table gives the p-value.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from protege.errors import ProtegeError

__all__ = ["Watermark", "verify_watermark", "DEFAULT_FRACTION"]

DEFAULT_FRACTION = 0.01
_DOMAIN = b"protege-watermark-v1\x00"


@dataclass(frozen=True)
class Watermark:
    """A secret ``key`` and the ``fraction`` of queries answered wrong (the key never shows in repr)."""

    key: str = field(repr=False)
    fraction: float = DEFAULT_FRACTION

    def __post_init__(self):
        if not isinstance(self.key, str) or len(self.key) < 8:
            raise ProtegeError("the watermark key must be a string of at least 8 characters; pass --watermark-key")
        if not 0 < self.fraction < 0.5:
            raise ProtegeError(f"--watermark-fraction must be in (0, 0.5), got {self.fraction}")

    def _digest(self, text: str, pair: str | None) -> bytes:
        message = _DOMAIN + text.encode("utf-8") + b"\x00" + (b"\x01" + pair.encode("utf-8") if pair is not None else b"")
        return hmac.new(self.key.encode("utf-8"), message, hashlib.sha256).digest()

    def selects(self, text: str, pair: str | None = None) -> bool:
        """Whether this query is one of the watermarked ones."""
        return int.from_bytes(self._digest(text, pair)[:8], "big") / 2.0**64 < self.fraction

    def wrong_label(self, text: str, pair: str | None, true_label: int, num_labels: int) -> int:
        """The wrong label served for this query: a keyed choice among the other classes."""
        if num_labels < 2:
            raise ProtegeError("watermarking needs a classifier with at least 2 classes")
        offset = 1 + int.from_bytes(self._digest(text, pair)[8:16], "big") % (num_labels - 1)
        return (int(true_label) + offset) % num_labels

    def apply(self, probs: np.ndarray, texts: list[str], pairs: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities with the watermarked rows altered, and the boolean mask of those rows.

        In an altered row the true argmax and the watermark label swap probabilities, so every
        output mode (label, probs, top-k) serves the same wrong answer, confidently.
        """
        probs = np.array(probs, dtype=np.float64, copy=True)
        mask = np.zeros(len(texts), dtype=bool)
        for i, text in enumerate(texts):
            pair = pairs[i] if pairs is not None else None
            if not self.selects(text, pair):
                continue
            true = int(probs[i].argmax())
            wrong = self.wrong_label(text, pair, true, probs.shape[1])
            probs[i, [true, wrong]] = probs[i, [wrong, true]]
            mask[i] = True
        return probs, mask


def verify_watermark(suspect, log, *, key: str, fraction: float = DEFAULT_FRACTION, alpha: float = 1e-3,
                     max_controls: int = 5000, num_labels: int | None = None, max_length: int = 128,
                     batch_size: int = 64, seed: int = 0) -> dict:
    """Does ``suspect`` know the watermark of the answers in ``log``? Returns the test and a verdict.

    ``suspect`` is a classifier folder, a :class:`~protege.extraction.Victim`, an object with
    ``predict(texts, pairs)`` returning answers, or a callable returning label ids. ``log`` is a
    query log (path, :class:`~protege.extraction.querylog.QueryLog` or its records) of served
    answers, the server's (``serve --answer-log``) or the client's. ``key`` and ``fraction``
    are the server's. At most ``max_controls`` unwatermarked queries (a seeded sample) are used.

    The result holds ``watermarked`` (n), ``matches`` (suspect predicts the watermark label),
    ``match_rate``, the same for ``control``, the one-sided Fisher ``p_value`` and ``verdict``
    (True when ``p_value < alpha``: the suspect memorised the watermark).
    """
    from scipy.stats import fisher_exact

    wm = Watermark(key, fraction)
    if not 0 < alpha < 1:
        raise ProtegeError(f"--alpha must be in (0, 1), got {alpha}")
    records, where = _records(log)
    predict, name, labels = _suspect(suspect, max_length=max_length, batch_size=batch_size)
    n_classes = num_labels or (len(labels) if labels else _num_labels(records))
    _check_labels(records, n_classes, name, where)
    marked, controls = [], []
    for r in records:
        text, pair, served = r["text"], r.get("text_pair"), r["answer"]["label"]
        if wm.selects(text, pair):
            marked.append((text, pair, served))
        else:
            controls.append((text, pair, wm.wrong_label(text, pair, served, n_classes)))
    if not marked:
        raise ProtegeError(f"none of the {len(records)} logged queries is watermarked under this key and fraction "
                           f"({fraction}); check --key/--fraction against the server's, or use a longer log")
    if len(controls) > max_controls:
        pick = np.random.default_rng(seed).choice(len(controls), size=max_controls, replace=False)
        controls = [controls[i] for i in sorted(pick)]
    k_w, n_w = _matches(predict, marked)
    k_c, n_c = _matches(predict, controls) if controls else (0, 0)
    p_value = float(fisher_exact([[k_w, n_w - k_w], [k_c, n_c - k_c]], alternative="greater")[1]) if n_c else 1.0
    return {"suspect": name, "key_fingerprint": hashlib.sha256(key.encode()).hexdigest()[:12], "fraction": fraction,
            "logged": len(records), "watermarked": n_w, "matches": k_w, "match_rate": k_w / n_w,
            "control": n_c, "control_matches": k_c, "control_rate": k_c / n_c if n_c else None,
            "p_value": p_value, "alpha": alpha, "verdict": bool(p_value < alpha)}


def _matches(predict, rows) -> tuple[int, int]:
    texts = [t for t, _, _ in rows]
    pairs = [p for _, p, _ in rows]
    predicted = np.asarray(predict(texts, pairs if any(p is not None for p in pairs) else None))
    return int(np.sum(predicted == np.asarray([y for _, _, y in rows]))), len(rows)


def _records(log) -> tuple[list[dict], str]:
    """``(records, where)``: the log's records, each checked to hold what the test reads (a text, maybe a
    pair, a served label id), and how to name the log in messages."""
    from protege.extraction.querylog import QueryLog

    if isinstance(log, (str, Path)):
        if not Path(log).is_file():
            raise ProtegeError(f"{log}: no such query log; pass the JSONL log of served answers")
        records, where = QueryLog(log, readonly=True).records(), str(log)
    elif isinstance(log, QueryLog):
        records, where = log.records(), str(log.path)
    else:
        records, where = list(log), "the query log"
    if not records:
        raise ProtegeError(f"{where} holds no answered queries; pass the log of a server that answered some")
    for i, r in enumerate(records, start=1):
        problem = _record_problem(r)
        if problem:
            raise ProtegeError(f"{where}: record {i} {problem}; pass a log of served answers "
                               "(serve --answer-log, or the client's --query-log)")
    return records, where


def _record_problem(r) -> str | None:
    """What is wrong with one log record, or None."""
    if not isinstance(r, dict):
        return f"is a JSON {type(r).__name__}, not an object"
    if not isinstance(r.get("text"), str):
        return "has no 'text' string" if "text" not in r else "has a 'text' that is not a string"
    if r.get("text_pair") is not None and not isinstance(r["text_pair"], str):
        return "has a 'text_pair' that is not a string"
    answer = r.get("answer")
    if not isinstance(answer, dict):
        return "has no 'answer' object" if answer is None else "has an 'answer' that is not an object"
    label = answer.get("label")
    if isinstance(label, bool) or not isinstance(label, int):
        return "has no answer 'label'" if label is None else f"has an answer label {label!r} that is not a class id"
    probs = answer.get("probs")
    if probs is not None and (not isinstance(probs, list) or not all(isinstance(p, (int, float)) for p in probs)):
        return "has answer 'probs' that are not a list of numbers"
    return None


def _check_labels(records, n_classes: int, suspect: str, where: str) -> None:
    """Refuse served labels the suspect cannot predict: the log is not from a server of the suspect's task,
    and a verdict on it would mean nothing."""
    for i, r in enumerate(records, start=1):
        label = r["answer"]["label"]
        if not 0 <= label < n_classes:
            raise ProtegeError(f"{where}: record {i} has served label {label}, outside the suspect's {n_classes} classes "
                               f"(0..{n_classes - 1}); the log is not from a server of {suspect}'s task: pass the "
                               "answers served for this task")


def _suspect(suspect, *, max_length: int, batch_size: int):
    """``(predict(texts, pairs) -> label ids, name, label names or None)`` for any kind of suspect."""
    from protege.extraction.victim import Victim

    if isinstance(suspect, (str, Path)):
        suspect = Victim(str(suspect), output="label", max_length=max_length, batch_size=batch_size)
    if hasattr(suspect, "predict"):
        return (lambda texts, pairs: [a["label"] for a in suspect.predict(texts, pairs)],
                getattr(suspect, "name", type(suspect).__name__), getattr(suspect, "labels", None))
    if callable(suspect):
        return suspect, getattr(suspect, "__name__", type(suspect).__name__), None
    raise ProtegeError("the suspect must be a model folder, a Victim, or a function of (texts, pairs) returning labels")


def _num_labels(records) -> int:
    for r in records:
        if "probs" in r["answer"]:
            return len(r["answer"]["probs"])
    return max(2, 1 + max(r["answer"]["label"] for r in records))
