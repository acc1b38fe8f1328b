"""Running a classifier over encoded examples, fast: no gradients, length-sorted batches."""

from __future__ import annotations

import numpy as np
import torch

from protege.data.batching import collate

__all__ = ["predict"]


def predict(model, features: list[dict], *, pad_token_id: int, batch_size: int = 64, device=None) -> np.ndarray:
    """Logits of ``model`` for every feature, in input order: float32 array (N, num_labels).

    Batches are formed from length-sorted examples so padding stays small; results are put
    back in the original order.
    """
    device = device or next(model.parameters()).device
    order = sorted(range(len(features)), key=lambda i: len(features[i]["input_ids"]))
    out = np.zeros((len(features), model.config.num_labels), dtype=np.float32)
    was_training = model.training
    model.eval()
    with torch.inference_mode():
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            batch = collate([features[i] for i in idx], pad_token_id)
            batch.pop("labels", None)
            logits = model(**{k: v.to(device) for k, v in batch.items()}).logits
            out[idx] = logits.float().cpu().numpy()
    model.train(was_training)
    return out
