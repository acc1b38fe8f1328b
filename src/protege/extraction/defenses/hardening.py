"""Output hardening: what a prediction API reveals per query, and what an attacker recovers from it.

A server computes class probabilities and answers in one of three modes (less information,
less for a thief to learn from; Tramèr et al. 2016, Krishna et al. 2020, section 6):

- ``label``: the argmax only, ``{"label": 1, "name": "positive"}``;
- ``probs``: every class probability, optionally rounded to ``decimals``;
- ``top-k``: the ``k`` most likely classes with their probabilities, ``[[id, p], ...]``.

:func:`harden` is the server side. :func:`targets_from_answers` is the attacker's side: a
target distribution per answer (one-hot for labels, the probabilities when given, and for
top-k the listed ones with the rest of the mass spread over the unlisted classes).
"""

from __future__ import annotations

import numpy as np

from protege.errors import ProtegeError

__all__ = ["OUTPUT_MODES", "check_output_mode", "harden", "targets_from_answers", "answers_are_soft"]

OUTPUT_MODES = ("label", "probs", "top-k")


def check_output_mode(output: str, *, top_k: int | None = None, decimals: int | None = None, num_labels: int | None = None) -> None:
    """Fail with one line when an output mode and its options do not fit together."""
    if output not in OUTPUT_MODES:
        raise ProtegeError(f"--output must be one of {', '.join(OUTPUT_MODES)}, got {output!r}")
    if top_k is not None:
        if output != "top-k":
            raise ProtegeError(f"--top-k only applies to --output top-k (got --output {output})")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or top_k < 1:
            raise ProtegeError(f"--top-k must be a positive integer, got {top_k!r}")
        if num_labels is not None and top_k > num_labels:
            raise ProtegeError(f"--top-k {top_k} exceeds the model's {num_labels} classes; use at most {num_labels}")
    if decimals is not None:
        if output == "label":
            raise ProtegeError("--decimals rounds probabilities, which --output label never returns; drop it or use probs/top-k")
        if not isinstance(decimals, int) or isinstance(decimals, bool) or not 0 <= decimals <= 8:
            raise ProtegeError(f"--decimals must be an integer in 0..8, got {decimals!r}")


def harden(probs: np.ndarray, names: list[str], *, output: str = "label", top_k: int | None = None,
           decimals: int | None = None) -> list[dict]:
    """JSON-able answers for rows of class probabilities ``probs`` (N, C).

    Every answer holds ``label`` (the argmax id) and ``name`` (its label name); ``probs`` mode
    adds ``probs`` (C floats) and ``top-k`` mode adds ``top_k`` (``[[id, p], ...]``, most likely
    first). ``decimals`` rounds the returned probabilities (the label is taken before rounding).
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 2 or probs.shape[1] != len(names):
        raise ProtegeError(f"probabilities of shape {probs.shape} do not match {len(names)} label names")
    check_output_mode(output, top_k=top_k, decimals=decimals, num_labels=probs.shape[1])
    labels = probs.argmax(axis=1)
    shown = np.round(probs, decimals) if decimals is not None else probs
    answers = []
    for row, label in enumerate(labels.tolist()):
        answer = {"label": label, "name": names[label]}
        if output == "probs":
            answer["probs"] = [float(p) for p in shown[row]]
        elif output == "top-k":
            order = np.argsort(-probs[row], kind="stable")[: top_k or 1]
            answer["top_k"] = [[int(c), float(shown[row, c])] for c in order]
        answers.append(answer)
    return answers


def answers_are_soft(answers: list[dict]) -> bool:
    """Whether the answers carry probabilities (soft targets) rather than labels only."""
    return any("probs" in a or "top_k" in a for a in answers)


def targets_from_answers(answers: list[dict], num_labels: int) -> np.ndarray:
    """A target distribution (N, C) per answer: what an attacker can train on.

    Labels become one-hot rows; ``probs`` are clipped at 0 and renormalised (rounding can make
    them sum to slightly more or less than 1); ``top_k`` keeps the listed probabilities and
    spreads the remaining mass evenly over the unlisted classes.
    """
    out = np.zeros((len(answers), num_labels), dtype=np.float64)
    for i, answer in enumerate(answers):
        label = _label_of(answer, num_labels, i)
        if "probs" in answer:
            row = np.asarray(answer["probs"], dtype=np.float64)
            if row.shape != (num_labels,) or not np.all(np.isfinite(row)):
                raise ProtegeError(f"answer {i + 1}: 'probs' must hold {num_labels} finite numbers")
            row = np.clip(row, 0.0, None)
            out[i] = row / row.sum() if row.sum() > 0 else np.eye(num_labels)[label]
        elif "top_k" in answer:
            listed = {}
            for entry in answer["top_k"]:
                cid, p = int(entry[0]), float(entry[1])
                if not 0 <= cid < num_labels:
                    raise ProtegeError(f"answer {i + 1}: class {cid} in 'top_k' is outside 0..{num_labels - 1}")
                listed[cid] = min(max(p, 0.0), 1.0)
            rest = [c for c in range(num_labels) if c not in listed]
            for cid, p in listed.items():
                out[i, cid] = p
            left = max(0.0, 1.0 - sum(listed.values()))
            if rest:
                out[i, rest] = left / len(rest)
            total = out[i].sum()
            out[i] = out[i] / total if total > 0 else np.eye(num_labels)[label]
        else:
            out[i, label] = 1.0
    return out


def _label_of(answer: dict, num_labels: int, i: int) -> int:
    label = answer.get("label") if isinstance(answer, dict) else None
    if isinstance(label, bool) or not isinstance(label, int) or not 0 <= label < num_labels:
        raise ProtegeError(f"answer {i + 1} has no valid 'label' in 0..{num_labels - 1}; is the query log from this victim?")
    return label
