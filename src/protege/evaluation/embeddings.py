"""Quality of sentence embeddings: STS correlation, a linear probe, and closeness to a teacher.

- STS (Cer et al. 2017, STS-B): cosine similarity of the two sentences' embeddings against the
  gold 0-5 score, Spearman's rank correlation (the SentEval / Sentence-BERT convention).
- Linear probe (Conneau & Kiela 2018, SentEval): a logistic regression on frozen, standardised
  embeddings, fit on one labeled set and scored (accuracy) on another.
- Cosine to the teacher: mean cosine between student and teacher embeddings of the same texts.
"""

from __future__ import annotations

import numpy as np
import torch

from protege.errors import ProtegeError

__all__ = ["embed", "sts_scores", "linear_probe", "cosine_to_teacher", "load_eval_data", "scores_side_by_side"]


def embed(encoder, tokenizer, texts: list[str], *, max_length: int = 128, batch_size: int = 64, device=None) -> np.ndarray:
    """Embeddings (N, D) float32 of ``texts`` from a :class:`~protege.models.sentence.SentenceEncoder`, in input order."""
    device = device or next(encoder.parameters()).device
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    out = None
    was_training = encoder.training
    encoder.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                enc = tokenizer([texts[i] for i in idx], truncation=True, max_length=max_length, padding=True,
                                return_tensors="pt")
                enc = {k: v.to(device) for k, v in enc.items()}
                vectors = encoder(**enc).embeddings.float().cpu().numpy()
                if out is None:
                    out = np.zeros((len(texts), vectors.shape[1]), dtype=np.float32)
                out[idx] = vectors
    finally:
        encoder.train(was_training)
    return out if out is not None else np.zeros((0, 0), dtype=np.float32)


def _cosine_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    na = np.linalg.norm(a, axis=1).clip(min=1e-12)
    nb = np.linalg.norm(b, axis=1).clip(min=1e-12)
    return (a * b).sum(1) / (na * nb)


def sts_scores(encoder, tokenizer, examples, *, max_length: int = 128, device=None) -> dict[str, float]:
    """Spearman and Pearson correlation of cosine(e1, e2) with the gold scores of sentence-pair ``examples``."""
    from scipy import stats

    if examples.text_pairs is None or examples.labels is None:
        raise ProtegeError(f"{examples.source}: STS data needs two sentence columns and a score (sentence1, sentence2, label)")
    try:
        gold = np.asarray([float(v) for v in examples.labels], dtype=np.float64)
    except (TypeError, ValueError):
        raise ProtegeError(f"{examples.source}: STS scores must be numbers (e.g. 0-5)") from None
    e1 = embed(encoder, tokenizer, list(examples.texts), max_length=max_length, device=device)
    e2 = embed(encoder, tokenizer, list(examples.text_pairs), max_length=max_length, device=device)
    cos = _cosine_rows(e1, e2)
    return {"spearman": float(stats.spearmanr(cos, gold).statistic), "pearson": float(stats.pearsonr(cos, gold).statistic)}


def linear_probe(encoder, tokenizer, train, evaluation, *, max_length: int = 128, seed: int = 0, device=None) -> dict[str, float]:
    """Accuracy of a logistic regression fit on frozen embeddings of ``train`` and scored on ``evaluation``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    for ex in (train, evaluation):
        if ex.labels is None:
            raise ProtegeError(f"{ex.source}: the linear probe needs labels; pass a labeled file (or --label-column)")
    y_train = [str(v) for v in train.labels]
    if len(set(y_train)) < 2:
        raise ProtegeError(f"{train.source}: the probe's training data has a single class; pass data with at least two labels")
    x_train = embed(encoder, tokenizer, _texts(train), max_length=max_length, device=device)
    x_eval = embed(encoder, tokenizer, _texts(evaluation), max_length=max_length, device=device)
    probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    probe.fit(x_train, y_train)
    accuracy = float((probe.predict(x_eval) == np.asarray([str(v) for v in evaluation.labels])).mean())
    return {"accuracy": accuracy, "train_examples": len(y_train), "eval_examples": len(evaluation)}


def _texts(examples) -> list[str]:
    if examples.text_pairs is None:
        return list(examples.texts)
    return [f"{a} {b}" for a, b in zip(examples.texts, examples.text_pairs)]


def cosine_to_teacher(student, teacher, tokenizer, texts: list[str], *, max_length: int = 128, device=None) -> float:
    """Mean cosine between the student's and the teacher's embeddings of ``texts``."""
    s = embed(student, tokenizer, texts, max_length=max_length, device=device)
    t = embed(teacher, tokenizer, texts, max_length=max_length, device=device)
    if s.shape != t.shape:
        raise ProtegeError(f"student embeddings have dimension {s.shape[1]}, the teacher's {t.shape[1]}; they cannot be compared")
    return float(_cosine_rows(s, t).mean())


def load_eval_data(*, sts: str | None = None, probe_train: str | None = None, probe_eval: str | None = None,
                   max_probe_examples: int | None = None) -> dict:
    """Read and check the STS and probe files up front: ``{"sts": Examples | None, "probe": (train, eval) | None}``."""
    from protege.data import load_examples

    data = {"sts": None, "probe": None}
    if sts:
        ex = load_examples(sts, require_labels=True)
        if ex.text_pairs is None:
            raise ProtegeError(f"{sts}: STS data needs two sentence columns (sentence1, sentence2) and a score")
        try:
            [float(v) for v in ex.labels]
        except (TypeError, ValueError):
            raise ProtegeError(f"{sts}: STS scores must be numbers (e.g. 0-5); pass an STS-B style file") from None
        data["sts"] = ex
    if probe_train or probe_eval:
        if not (probe_train and probe_eval):
            raise ProtegeError("the linear probe needs both --probe-train and --probe-eval")
        data["probe"] = (load_examples(probe_train, require_labels=True, max_examples=max_probe_examples),
                         load_examples(probe_eval, split="validation", require_labels=True))
    return data


def scores_side_by_side(student, teacher, tokenizer, data: dict, *, max_length: int = 128, seed: int = 0, device=None) -> dict:
    """STS and probe scores of ``student`` and ``teacher`` (either may be None) on ``data`` from :func:`load_eval_data`.

    Returns ``{"source": str, "n": int, "student": {...}, "teacher": {...}}`` with "spearman",
    "pearson" (STS) and "accuracy" (probe) where the data was given.
    """
    out = {"student": {}, "teacher": {}, "source": [], "n": 0}
    for role, model in (("student", student), ("teacher", teacher)):
        if model is None:
            continue
        if data.get("sts") is not None:
            out[role].update({f"sts_{k}" if k == "pearson" else k: v for k, v in
                              sts_scores(model, tokenizer, data["sts"], max_length=max_length, device=device).items()})
        if data.get("probe") is not None:
            train, evaluation = data["probe"]
            probe = linear_probe(model, tokenizer, train, evaluation, max_length=max_length, seed=seed, device=device)
            out[role]["accuracy"] = probe["accuracy"]
    if data.get("sts") is not None:
        out["source"].append(f"STS {data['sts'].source} ({len(data['sts'])} pairs)")
        out["n"] += len(data["sts"])
    if data.get("probe") is not None:
        train, evaluation = data["probe"]
        out["source"].append(f"probe {train.source} ({len(train)}) -> {evaluation.source} ({len(evaluation)})")
        out["n"] += len(evaluation)
    out["source"] = "; ".join(out["source"])
    return out
