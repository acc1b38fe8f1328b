"""Held-out scores of language models: perplexity, token accuracy, and agreement with a teacher.

Causal LMs are scored on next-token prediction over every position of the held-out text;
masked LMs on a fixed 15% mask of it (uniform over non-special tokens, 80/10/10, seed 0), the
same for teacher and student, so their numbers compare. Agreement is the share of scored
positions where the student's most likely token is the teacher's; KL is the mean
``KL(teacher || student)`` per scored token at T = 1.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from protege.errors import ProtegeError

__all__ = ["mask_for_eval", "lm_scores"]


def mask_for_eval(features: list[dict], tokenizer, *, probability: float = 0.15, seed: int = 0) -> list[dict]:
    """A fixed masking of ``features`` for masked-LM scoring: features with ``input_ids`` masked and ``labels``."""
    from protege.data.masking import MaskingSpec, mask_tokens, masking_weights

    if tokenizer.mask_token_id is None:
        raise ProtegeError("the tokenizer has no mask token, so masked-LM scores cannot be computed; use a masked-LM tokenizer")
    vocab = len(tokenizer)
    special = set(tokenizer.all_special_ids)
    weights = masking_weights(np.ones(vocab), special, smoothing=0.0)
    random_ids = torch.tensor([i for i in range(vocab) if i not in special])
    spec = MaskingSpec(tokenizer.mask_token_id, weights, random_ids, probability)
    gen = torch.Generator().manual_seed(seed)
    out = []
    for f in features:
        ids = torch.tensor([f["input_ids"]])
        masked, labels, _ = mask_tokens(ids, torch.tensor([f["attention_mask"]]), spec, generator=gen)
        out.append({"input_ids": masked[0].tolist(), "attention_mask": list(f["attention_mask"]), "labels": labels[0].tolist()})
    return out


def _pad(seqs, value) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.tensor([list(s) + [value] * (width - len(s)) for s in seqs], dtype=torch.long)


def _rows(logits, batch, kind):
    """Scored rows of the logits and their gold tokens: masked positions, or next-token positions."""
    ids, mask = batch["input_ids"], batch["attention_mask"].bool()
    if kind == "mlm":
        sel = batch["labels"] != -100
        return sel, batch["labels"][sel]
    sel = torch.zeros_like(mask)
    sel[:, :-1] = mask[:, :-1] & mask[:, 1:]
    gold = torch.zeros_like(ids)
    gold[:, :-1] = ids[:, 1:]
    return sel, gold[sel]


def lm_scores(model, features: list[dict], *, kind: str, pad_token_id: int, teacher=None, batch_size: int = 16,
              device=None) -> dict:
    """Perplexity and token accuracy of ``model`` (and ``teacher``), plus the model's agreement with the teacher.

    Args:
        features: dicts with ``input_ids``, ``attention_mask`` (and ``labels`` for ``kind="mlm"``,
            see :func:`mask_for_eval`).
        kind: ``"clm"`` (next token) or ``"mlm"`` (masked tokens).

    Returns:
        ``{"model": {"perplexity", "accuracy", "loss", "tokens"}, "teacher": {...}, "agreement":
        {"agreement", "kl"}}`` (the last two only with a teacher).
    """
    if kind not in ("clm", "mlm"):
        raise ProtegeError(f"kind must be clm or mlm, got {kind!r}")
    device = device or next(model.parameters()).device
    models = {"model": model} | ({"teacher": teacher} if teacher is not None else {})
    sums = {name: {"nll": 0.0, "correct": 0, "tokens": 0} for name in models}
    agree, kl, n_rows = 0, 0.0, 0
    modes = {name: m.training for name, m in models.items()}
    for m in models.values():
        m.eval()
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    try:
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                chunk = [features[i] for i in order[start:start + batch_size]]
                batch = {"input_ids": _pad([f["input_ids"] for f in chunk], pad_token_id),
                         "attention_mask": _pad([f["attention_mask"] for f in chunk], 0)}
                if kind == "mlm":
                    batch["labels"] = _pad([f["labels"] for f in chunk], -100)
                batch = {k: v.to(device) for k, v in batch.items()}
                sel, gold = _rows(None, batch, kind)
                if not sel.any():
                    continue
                logp = {}
                for name, m in models.items():
                    logits = m(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
                    logp[name] = torch.log_softmax(logits[sel].float(), dim=-1)
                    s = sums[name]
                    s["nll"] += float(-logp[name].gather(-1, gold[:, None]).sum())
                    s["correct"] += int((logp[name].argmax(-1) == gold).sum())
                    s["tokens"] += int(gold.numel())
                if teacher is not None:
                    lt, ls = logp["teacher"], logp["model"]
                    agree += int((lt.argmax(-1) == ls.argmax(-1)).sum())
                    kl += float((lt.exp() * (lt - ls)).sum())
                    n_rows += int(gold.numel())
    finally:
        for name, m in models.items():
            m.train(modes[name])
    out = {}
    for name, s in sums.items():
        if not s["tokens"]:
            raise ProtegeError("the held-out text has no scorable tokens; pass a longer --eval-text")
        loss = s["nll"] / s["tokens"]
        out[name] = {"perplexity": float(math.exp(min(loss, 700.0))), "accuracy": s["correct"] / s["tokens"],
                     "loss": loss, "tokens": s["tokens"]}
    if teacher is not None:
        out["agreement"] = {"agreement": agree / n_rows, "kl": kl / n_rows}
    return out
