"""Detecting extraction queries: a membership classifier on the victim's own view of an input.

Krishna et al. (2020, section 6.1): the owner trains a classifier to tell genuine inputs from
generated queries, on features the victim computes anyway: here the mean-pooled last hidden
state, the top probability and the entropy of the output, into a standardised logistic
regression. Its threshold is set on held-out genuine inputs for a target false-positive rate.
What matters is measured by :func:`detection_report`: the detection rate on RANDOM and WIKI
queries it was not trained on, and the false-positive rate on genuine users who are simply
out of distribution (e.g. news sentences sent to a sentiment model).

The detector is stored as JSON (weights and threshold), never pickled.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from protege.errors import ProtegeError

__all__ = ["victim_features", "Detector", "train_detector", "detection_report", "detect", "FEATURES"]

FEATURES = "mean-pooled last hidden state + top probability + output entropy"


def victim_features(victim, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
    """Features (N, H + 2) of inputs as the victim sees them (needs an in-process Victim)."""
    if not hasattr(victim, "embed"):
        raise ProtegeError("the detector needs the victim's hidden states: pass the model folder, not a URL")
    pooled, probs = victim.embed(texts, pairs)
    entropy = -(probs * np.log(np.clip(probs, 1e-12, None))).sum(axis=1)
    return np.hstack([pooled, probs.max(axis=1, keepdims=True), entropy[:, None]]).astype(np.float64)


@dataclass
class Detector:
    """A logistic regression on standardised victim features; ``flags`` marks extraction queries."""

    mean: list[float]
    scale: list[float]
    coef: list[float]
    intercept: float
    threshold: float
    target_fpr: float
    features: str = FEATURES

    def scores(self, victim, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Probability that each input is an extraction query."""
        return self.scores_of(victim_features(victim, texts, pairs))

    def scores_of(self, features: np.ndarray) -> np.ndarray:
        """Scores of precomputed :func:`victim_features`."""
        if features.shape[1] != len(self.coef):
            raise ProtegeError(f"the detector expects {len(self.coef)} features, got {features.shape[1]}; "
                               "it was trained for another victim")
        z = (features - np.asarray(self.mean)) / np.asarray(self.scale)
        return 1.0 / (1.0 + np.exp(-(z @ np.asarray(self.coef) + self.intercept)))

    def flags(self, victim, texts: list[str], pairs: list[str] | None = None) -> np.ndarray:
        """Whether each input is flagged as an extraction query."""
        return self.scores(victim, texts, pairs) >= self.threshold

    def save(self, path: str | Path) -> None:
        """Write the detector as JSON (atomically)."""
        from protege.utils.io import write_json_atomic

        write_json_atomic(path, asdict(self))

    @classmethod
    def load(cls, path: str | Path) -> "Detector":
        """Read a detector written by :meth:`save` or by ``protege detect --out``."""
        try:
            data = json.loads(Path(path).read_text())
            return cls(**data.get("detector", data))
        except (OSError, ValueError, TypeError) as err:
            raise ProtegeError(f"{path}: not a protege detector file ({err}); train one with protege detect") from None


def _fit(genuine: np.ndarray, queries: np.ndarray, calibration: np.ndarray, *, target_fpr: float, seed: int) -> Detector:
    from sklearn.linear_model import LogisticRegression

    x = np.vstack([genuine, queries])
    y = np.r_[np.zeros(len(genuine)), np.ones(len(queries))]
    mean, scale = x.mean(axis=0), x.std(axis=0)
    scale[scale < 1e-8] = 1.0
    clf = LogisticRegression(C=1.0, max_iter=2000, class_weight="balanced", random_state=seed).fit((x - mean) / scale, y)
    detector = Detector(mean.tolist(), scale.tolist(), clf.coef_[0].tolist(), float(clf.intercept_[0]), 0.5, target_fpr)
    # the threshold: the (1 - target_fpr) quantile of held-out genuine scores
    detector.threshold = float(np.quantile(detector.scores_of(calibration), 1.0 - target_fpr, method="higher")) + 1e-12
    return detector


def train_detector(victim, genuine: list[str], queries: list[str], *, target_fpr: float = 0.05, seed: int = 0) -> Detector:
    """Fit a detector on ``genuine`` inputs versus generated ``queries``.

    A quarter of ``genuine`` (seeded) is held out to set the threshold at ``target_fpr``.
    """
    if not 0 < target_fpr < 1:
        raise ProtegeError(f"--target-fpr must be in (0, 1), got {target_fpr}")
    if len(genuine) < 8 or len(queries) < 4:
        raise ProtegeError("the detector needs at least 8 genuine inputs and 4 queries to learn from")
    order = np.random.default_rng(seed).permutation(len(genuine))
    cut = len(genuine) * 3 // 4
    feats = victim_features(victim, list(genuine))
    return _fit(feats[order[:cut]], victim_features(victim, list(queries)), feats[order[cut:]], target_fpr=target_fpr, seed=seed)


def detection_report(victim, *, genuine: list[str], queries: dict[str, list[str]], ood: dict[str, list[str]] | None = None,
                     target_fpr: float = 0.05, seed: int = 0) -> tuple[Detector, dict]:
    """Train on half of each set, measure on the other half: detection and false-positive rates.

    ``genuine`` are real inputs of the victim's task, ``queries`` generated ones by kind (e.g.
    ``{"random": [...], "wiki": [...]}``), ``ood`` genuine users of another distribution (never
    trained on). Genuine inputs split 50% fit / 25% threshold / 25% test. Returns the detector
    and ``{"detection_rate": {kind: rate}, "false_positive_rate": {"genuine": rate, name: rate}, ...}``.
    """
    if not 0 < target_fpr < 1:
        raise ProtegeError(f"--target-fpr must be in (0, 1), got {target_fpr}")
    rng = np.random.default_rng(seed)
    g = victim_features(victim, list(genuine))
    order = rng.permutation(len(g))
    fit, calib, test = np.split(order, [len(g) // 2, len(g) * 3 // 4])
    if min(len(fit), len(calib), len(test)) < 2:
        raise ProtegeError("too few genuine inputs to train and measure a detector; pass at least 8")
    train_q, test_q = [], {}
    for kind, texts in queries.items():
        f = victim_features(victim, list(texts))
        half = rng.permutation(len(f))
        train_q.append(f[half[: len(f) // 2]])
        test_q[kind] = f[half[len(f) // 2:]]
    detector = _fit(g[fit], np.vstack(train_q), g[calib], target_fpr=target_fpr, seed=seed)
    rate = lambda feats: float(np.mean(detector.scores_of(feats) >= detector.threshold))  # noqa: E731
    report = {
        "features": FEATURES, "target_fpr": target_fpr, "threshold": detector.threshold,
        "detection_rate": {kind: rate(f) for kind, f in test_q.items()},
        "false_positive_rate": {"genuine": rate(g[test]),
                                **{name: rate(victim_features(victim, list(t))) for name, t in (ood or {}).items()}},
        "n": {"genuine_fit": len(fit), "genuine_threshold": len(calib), "genuine_test": len(test),
              **{f"{kind}_test": len(f) for kind, f in test_q.items()}, **{name: len(t) for name, t in (ood or {}).items()}},
    }
    return detector, report


def detect(victim: str, *, genuine: str, ood: list[str] | None = None, queries: str = "random,wiki",
           query_corpus: str | None = None, n: int = 2000, target_fpr: float = 0.05, seed: int = 0,
           out: str | None = None, max_length: int = 128, batch_size: int = 32, device: str = "cpu") -> dict:
    """``protege detect``: train and measure a query detector for the classifier folder ``victim``.

    ``genuine`` is a file of the victim's real inputs (table or one text per line; ``n`` are
    sampled), ``queries`` the generated kinds to detect (``random``, ``wiki``, files; ``n``
    each, drawn from ``query_corpus``), ``ood`` files of genuine out-of-distribution users.
    Writes the detector with its report to ``out`` (JSON) when given; returns the report.
    """
    from protege.data.queries import make_queries, read_corpus
    from protege.extraction.victim import Victim

    if not isinstance(n, int) or n < 8:
        raise ProtegeError(f"--n must be an integer of at least 8, got {n!r}")
    model = Victim(victim, output="probs", max_length=max_length, batch_size=batch_size, device=device)
    real = _sample(read_corpus(genuine), n, seed)
    generated = {}
    for kind in [k.strip() for k in queries.split(",") if k.strip()]:
        name = kind if kind in ("random", "wiki") else Path(kind).stem
        generated[name] = make_queries(kind, n, seed=seed, corpus=query_corpus, tokenizer=model.tokenizer)[0]
    if not generated:
        raise ProtegeError("--queries names no query kind; use e.g. random,wiki")
    others = {_set_name(path): _sample(read_corpus(path), n, seed) for path in (ood or [])}
    detector, report = detection_report(model, genuine=real, queries=generated, ood=others, target_fpr=target_fpr, seed=seed)
    report = {"victim": victim, "genuine": genuine, **report}
    if out:
        from protege.utils.io import write_json_atomic

        write_json_atomic(out, {"detector": asdict(detector), "report": report})
    return report


def _set_name(path: str) -> str:
    p = Path(path).resolve()
    return f"{p.parent.name}/{p.stem}" if p.parent.name else p.stem  # agnews/dev.tsv -> "agnews/dev"


def _sample(texts: list[str], n: int, seed: int) -> list[str]:
    if len(texts) <= n:
        return list(texts)
    pick = np.random.default_rng(seed).choice(len(texts), size=n, replace=False)
    return [texts[i] for i in sorted(pick)]
