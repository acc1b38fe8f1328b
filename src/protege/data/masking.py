"""Dynamic masking for masked-LM distillation, with DistilBERT's token-frequency smoothing.

BERT (Devlin et al. 2019) picks 15% of the tokens to predict and replaces 80% of those with
[MASK], keeps 10% and swaps 10% for random tokens. RoBERTa (Liu et al. 2019) re-draws the mask
every time a sequence is seen (dynamic masking). DistilBERT (Sanh et al. 2019, the released
``distiller.py``) draws the positions with probability proportional to ``count(token) ** -0.7``
(counts over the training corpus), so frequent tokens are masked less often; special tokens are
never picked.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from protege.errors import ProtegeError

__all__ = ["MaskingSpec", "masking_weights", "mask_tokens", "IGNORE_INDEX"]

IGNORE_INDEX = -100


@dataclass(frozen=True)
class MaskingSpec:
    """How to mask: the rate, the 80/10/10 split, the [MASK] id, and per-token sampling weights.

    ``weights`` (float tensor of the vocabulary size) is 0 for tokens that must never be picked
    (special tokens) and gives the relative chance of the others; ``random_ids`` are the tokens
    a "random" replacement may use.
    """

    mask_token_id: int
    weights: torch.Tensor
    random_ids: torch.Tensor
    probability: float = 0.15
    replace_mask: float = 0.8
    replace_random: float = 0.1

    def __post_init__(self):
        if not 0 < self.probability < 1:
            raise ProtegeError(f"--mlm-probability must be in (0, 1), got {self.probability}")
        if self.replace_mask < 0 or self.replace_random < 0 or self.replace_mask + self.replace_random > 1:
            raise ProtegeError("the [MASK]/random replacement shares must be >= 0 and sum to at most 1")
        if not (self.weights > 0).any():
            raise ProtegeError("every token has masking weight 0; the vocabulary holds only special tokens")

    def to(self, device) -> "MaskingSpec":
        """The same spec with its tensors on ``device``."""
        return MaskingSpec(self.mask_token_id, self.weights.to(device), self.random_ids.to(device), self.probability,
                           self.replace_mask, self.replace_random)


def masking_weights(counts: np.ndarray, special_ids, *, smoothing: float = 0.7) -> torch.Tensor:
    """DistilBERT's sampling weights ``max(count, 1) ** -smoothing`` with special tokens at 0.

    ``smoothing=0`` masks every (non-special) token alike; larger values mask rare tokens more.
    Tokens absent from the corpus never occur in a batch, so their weight does not matter.
    """
    if not smoothing >= 0:
        raise ProtegeError(f"--mask-smoothing must be >= 0, got {smoothing}")
    w = np.power(np.maximum(np.asarray(counts, dtype=np.float64), 1.0), -float(smoothing))
    special = [int(i) for i in special_ids if i is not None and 0 <= int(i) < len(w)]
    w[special] = 0.0
    return torch.from_numpy(w.astype(np.float32))


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, spec: MaskingSpec, *,
                generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Mask a batch: ``(masked_input_ids, labels, selected)``.

    Exactly ``round(probability * n)`` positions are drawn without replacement (at least one),
    where ``n`` counts the tokens with non-zero weight under ``attention_mask``; each is picked
    with probability proportional to its token's weight. ``labels`` hold the original ids at
    the selected positions and ``IGNORE_INDEX`` elsewhere; ``selected`` is the (B, L) bool mask.

    Args:
        input_ids: (B, L) long.
        attention_mask: (B, L) 0/1.
        generator: optional torch generator (else the global RNG, which checkpoints restore).
    """
    flat = input_ids.reshape(-1)
    weights = spec.weights[flat] * attention_mask.reshape(-1).to(spec.weights.dtype)
    candidates = int((weights > 0).sum())
    selected = torch.zeros_like(flat, dtype=torch.bool)
    if candidates:
        n = min(candidates, max(1, int(round(spec.probability * candidates))))
        picked = torch.multinomial(weights, n, replacement=False, generator=generator)
        selected[picked] = True
    labels = torch.where(selected, flat, torch.full_like(flat, IGNORE_INDEX))
    masked = flat.clone()
    idx = selected.nonzero(as_tuple=True)[0]
    if idx.numel():
        draw = torch.rand(idx.numel(), device=flat.device, generator=generator)
        to_mask = idx[draw < spec.replace_mask]
        to_random = idx[(draw >= spec.replace_mask) & (draw < spec.replace_mask + spec.replace_random)]
        masked[to_mask] = spec.mask_token_id
        if to_random.numel():
            pick = torch.randint(len(spec.random_ids), (to_random.numel(),), device=flat.device, generator=generator)
            masked[to_random] = spec.random_ids[pick]
    shape = input_ids.shape
    return masked.view(shape), labels.view(shape), selected.view(shape)
