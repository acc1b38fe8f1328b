"""Inside the model: how much each student layer and attention head still resembles the teacher's.

For a student made of the teacher's own layers (``--student-layers``, structured pruning), each
student block has a teacher block it started from (its *mapped* layer). Two measures say how far
training moved it:

- **linear CKA** (Kornblith et al. 2019, "Similarity of neural network representations revisited")
  between hidden states on a sample of tokens: ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` on
  centred features, invariant to rotation and scale and defined across widths. Computed for every
  (student layer, teacher layer) pair so the heatmap shows where each student layer sits;
- **Jensen-Shannon distance** (base 2, in [0, 1]) between the attention distributions of each
  student head and its teacher head, averaged over the query tokens of the sample.

Attention maps need the eager attention kernel; the models are switched to it for the sample
and switched back.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from protege.errors import ProtegeError

__all__ = ["linear_cka", "attention_js", "resolve_layer_map", "model_internals", "sample_internals", "internals_figures",
           "MAX_TOKENS"]

MAX_TOKENS = 2048  # tokens of hidden states kept per layer for CKA (memory and time stay bounded)


def linear_cka(x, y) -> float:
    """Linear CKA of two representations of the same ``n`` items: ``x`` (n, d1), ``y`` (n, d2) -> [0, 1].

    Uses the feature form ``||Y^T X||_F^2 / (||X^T X||_F ||Y^T Y||_F)`` or, when ``n`` is smaller
    than the widths, the equal Gram form ``<K_x, K_y>_F / (||K_x||_F ||K_y||_F)`` with ``K = Z Z^T``.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(axis=0), y - y.mean(axis=0)
    if len(x) < min(x.shape[1], y.shape[1]):
        kx, ky = x @ x.T, y @ y.T
        num, den = np.sum(kx * ky), np.linalg.norm(kx) * np.linalg.norm(ky)
    else:
        num, den = np.linalg.norm(y.T @ x) ** 2, np.linalg.norm(x.T @ x) * np.linalg.norm(y.T @ y)
    return float(num / den) if den > 0 else 0.0


def attention_js(student, teacher, query_mask) -> np.ndarray:
    """Mean Jensen-Shannon distance (base 2) per head between two attention maps.

    ``student``, ``teacher``: attention probabilities (B, H, T, T) of the same heads; ``query_mask``:
    bool (B, T), the real (not padding) tokens. Returns (H,): each head's distance averaged over
    the real query rows.
    """
    from scipy.spatial.distance import jensenshannon

    s, t = np.asarray(student, dtype=np.float64), np.asarray(teacher, dtype=np.float64)
    rows = np.asarray(query_mask, dtype=bool)
    out = np.zeros(s.shape[1])
    for h in range(s.shape[1]):
        p, q = t[:, h][rows], s[:, h][rows]  # (real queries, T)
        out[h] = float(np.mean(np.nan_to_num(jensenshannon(p, q, axis=1, base=2))))
    return out


def resolve_layer_map(model_ref, student, teacher) -> tuple[list[int], str]:
    """The teacher layer each student layer came from, and how that was found.

    In order: the student folder's ``metrics.json`` (``student.layer_map`` of distill,
    ``pruning.structure.kept_layers`` of structured pruning); the teacher block whose weights are
    closest to each student block (a kept layer starts as an exact copy and training moves it
    little); the identity when the depths match; else a uniform spread (an assumption, said so).
    """
    from protege.losses import uniform_layer_map

    n_s, n_t = int(student.config.num_hidden_layers), int(teacher.config.num_hidden_layers)
    metrics = _read_metrics(model_ref)
    pruning = metrics.get("pruning") if isinstance(metrics.get("pruning"), dict) else {}
    structure = pruning.get("structure") if isinstance(pruning.get("structure"), dict) else {}
    student_section = metrics.get("student") if isinstance(metrics.get("student"), dict) else {}
    for where, found in (("recorded by distill", student_section.get("layer_map")),
                         ("recorded by prune", structure.get("kept_layers"))):
        if isinstance(found, list) and len(found) == n_s and all(isinstance(i, int) and 0 <= i < n_t for i in found):
            return list(found), where
    matched = _match_by_weights(student, teacher)
    if matched is not None:
        return matched, "matched by weights"
    if n_s == n_t:
        return list(range(n_s)), "same depth"
    return list(uniform_layer_map(n_s, n_t)), "assumed uniform"


def _match_by_weights(student, teacher) -> list[int] | None:
    """For each student block, the teacher block with the nearest weights (relative L2), when shapes allow."""
    import torch

    from protege.models.adapters import block_list

    try:
        s_blocks, t_blocks = block_list(student)[2], block_list(teacher)[2]
    except ProtegeError:  # an architecture without a findable block list: no match
        return None
    flat = lambda block: torch.cat([p.detach().float().flatten().cpu() for p in block.parameters()])  # noqa: E731
    t_flat = [flat(b) for b in t_blocks]
    out = []
    for block in s_blocks:
        v = flat(block)
        dists = [float(torch.linalg.vector_norm(v - t) / (torch.linalg.vector_norm(t) + 1e-12)) if t.shape == v.shape
                 else float("inf") for t in t_flat]
        best = int(np.argmin(dists))
        if not np.isfinite(dists[best]) or dists[best] > 0.5:  # nothing close: not a kept-layer student
            return None
        out.append(best)
    return out


def model_internals(student, teacher, features: list[dict], *, layer_map: list[int], pad_token_id: int = 0,
                    batch_size: int = 16, max_tokens: int = MAX_TOKENS, seed: int = 0) -> dict:
    """CKA of hidden states and attention JS distance per head on ``features`` (the same tokens for both).

    Returns ``{"examples", "tokens", "layer_map", "cka": (L_s, L_t) matrix, "cka_mapped": (L_s,),
    "attention_js": per student layer a list of per-head distances (None where heads cannot be
    matched), "attention_heads": the teacher head each student head is compared with}``.
    """
    import torch

    from protege.data.batching import collate

    rng = np.random.default_rng(seed)
    per_example = max(1, -(-max_tokens // max(len(features), 1)))
    n_s, n_t = int(student.config.num_hidden_layers), int(teacher.config.num_hidden_layers)
    heads = [_head_map(student.config, teacher.config, j) for j in range(n_s)]
    hidden_s, hidden_t = [[] for _ in range(n_s)], [[] for _ in range(n_t)]
    js_sum, js_n = [np.zeros(len(h)) if h else None for h in heads], np.zeros(n_s)
    with _eager(student), _eager(teacher), torch.inference_mode():
        for start in range(0, len(features), batch_size):
            batch = collate(features[start:start + batch_size], pad_token_id)
            batch.pop("labels", None)
            outs = [m(**{k: v.to(_device(m)) for k, v in batch.items()}, output_hidden_states=True, output_attentions=True)
                    for m in (student, teacher)]
            mask = batch["attention_mask"].bool().numpy()
            # the same random token positions for both models, at most per_example per example
            pick = np.zeros_like(mask)
            for b in range(len(mask)):
                real = np.flatnonzero(mask[b])
                pick[b, rng.choice(real, size=min(per_example, len(real)), replace=False)] = True
            for j in range(n_s):
                hidden_s[j].append(outs[0].hidden_states[j + 1].float().cpu().numpy()[pick])
            for i in range(n_t):
                hidden_t[i].append(outs[1].hidden_states[i + 1].float().cpu().numpy()[pick])
            for j, teacher_heads in enumerate(heads):
                att_s, att_t = outs[0].attentions[j], outs[1].attentions[layer_map[j]]
                if teacher_heads is None or att_s is None or att_t is None:
                    continue
                d = attention_js(att_s.float().cpu().numpy(), att_t.float().cpu().numpy()[:, teacher_heads], mask)
                js_sum[j] += d * mask.sum()
                js_n[j] += mask.sum()
    xs, ys = [np.concatenate(h) for h in hidden_s], [np.concatenate(h) for h in hidden_t]
    cka = [[linear_cka(x, y) for y in ys] for x in xs]
    js = [None if s is None or n == 0 else (s / n).tolist() for s, n in zip(js_sum, js_n)]
    return {"examples": len(features), "tokens": int(len(xs[0])) if xs else 0, "layer_map": list(layer_map), "cka": cka,
            "cka_mapped": [cka[j][layer_map[j]] for j in range(n_s)], "attention_js": js, "attention_heads": heads}


def sample_internals(student, teacher, examples, features: list[dict], *, sample: int, max_length: int) -> dict:
    """:func:`model_internals` on ``sample`` evenly spaced examples, or ``{"skipped": why}``.

    ``student``/``teacher`` are ``(name, model, tokenizer, folder_or_None)``; ``features`` are
    ``examples`` encoded by the teacher's tokenizer. Skipped when a model is not a PyTorch module
    (an exported student) or the student tokenizes differently (hidden states would not align).
    """
    import torch

    from protege.data.batching import encode

    s_name, s_model, s_tok, s_folder = student
    _, t_model, t_tok, _ = teacher
    # an exported student (ONNX Runtime behind a parameter-free module) has no hidden states to compare
    if not all(isinstance(m, torch.nn.Module) and _device(m) is not None for m in (s_model, t_model)):
        return {"skipped": "the student is not a PyTorch model (an exported runtime has no hidden states)"}
    n = min(sample, len(examples))
    idx = np.unique(np.linspace(0, len(examples) - 1, n).round().astype(int))
    chosen = [features[i] for i in idx]
    if [f["input_ids"] for f in encode(examples.select(idx), s_tok, max_length=max_length)] != [f["input_ids"] for f in chosen]:
        return {"skipped": "the student tokenizes differently from the teacher, so hidden states do not align"}
    layer_map, source = resolve_layer_map(s_folder or s_name, s_model, t_model)
    try:
        out = model_internals(s_model, t_model, chosen, layer_map=layer_map, pad_token_id=t_tok.pad_token_id or 0)
    except (TypeError, ValueError, AttributeError, IndexError) as err:  # an architecture without these outputs
        return {"skipped": f"hidden states or attention maps unavailable ({type(err).__name__}: {str(err)[:120]})"}
    return {**out, "layer_map_source": source}


def internals_figures(internals: dict) -> dict[str, float]:
    """``cka_min``, ``cka_mean`` (over mapped layers), ``attention_js_mean`` and ``attention_js_max`` (over heads)."""
    out = {}
    cka = [c for c in internals.get("cka_mapped") or [] if c is not None]
    if cka:
        out.update(cka_min=float(min(cka)), cka_mean=float(np.mean(cka)))
    js = [d for layer in internals.get("attention_js") or [] if layer for d in layer]
    if js:
        out.update(attention_js_mean=float(np.mean(js)), attention_js_max=float(max(js)))
    return out


def _head_map(student_config, teacher_config, layer: int) -> list[int] | None:
    """Teacher head indices for student layer ``layer``'s heads (after head pruning, the heads left)."""
    from protege.pruning.structured import PRUNED_HEADS_KEY

    n_t = int(teacher_config.num_attention_heads)
    pruned = getattr(student_config, PRUNED_HEADS_KEY, None) or {}
    removed = set(pruned.get(str(layer), pruned.get(layer, [])) or [])
    if removed:
        return [h for h in range(n_t) if h not in removed]
    return list(range(n_t)) if int(student_config.num_attention_heads) == n_t else None


class _eager:
    """Switch a model to eager attention (the kernel that returns attention maps) for a block."""

    def __init__(self, model):
        self.model, self.before = model, getattr(model.config, "_attn_implementation", None)

    def __enter__(self):
        if self.before not in (None, "eager") and hasattr(self.model, "set_attn_implementation"):
            self.model.set_attn_implementation("eager")

    def __exit__(self, *exc):
        if self.before not in (None, "eager") and hasattr(self.model, "set_attn_implementation"):
            try:
                self.model.set_attn_implementation(self.before)
            except (ValueError, ImportError):
                pass
        return False


def _device(model):
    """The device of a model's first parameter, or None for a model without parameters."""
    first = next(iter(model.parameters()), None)
    return None if first is None else first.device


def _read_metrics(model_ref) -> dict:
    if model_ref is None:
        return {}
    file = Path(str(model_ref)) / "metrics.json"
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
