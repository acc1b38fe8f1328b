"""The layer plumbing every objective shares: layer maps, projections across widths, mapped-layer losses.

TinyBERT (Jiao et al. 2020) and DistilBERT (Sanh et al. 2019) compare a student block with the
teacher block it is mapped to; when the student is narrower a learned linear projection lifts
its states to the teacher's width. Task, TinyBERT, embedding and MLM objectives all do this, so
the checks (one teacher layer per student layer, a projection or an error naming the flag) and
the losses live here once.
"""

from __future__ import annotations

from typing import Callable, Iterator

import torch

from protege import losses
from protege.errors import ProtegeError
from protege.losses.attention_heads import head_mean_attention_mse

__all__ = ["resolve_layer_map", "projection_for", "projector", "mapped_hidden_loss", "mapped_attention_loss",
           "held_out_batches"]


def resolve_layer_map(spec: str | None, default: list[int], teacher_config, n_student: int, *, needed: bool) -> list[int]:
    """The teacher block each student block learns from: ``--layer-map`` or the student's default map.

    ``needed``: a loss reads mapped layers, so the map must name one teacher layer per student layer.
    """
    from protege.models import num_layers, parse_layer_spec

    layer_map = parse_layer_spec(spec, num_layers(teacher_config)) if spec else list(default)
    if needed and len(layer_map) != n_student:
        raise ProtegeError(f"--layer-map names {len(layer_map)} teacher layers but the student has {n_student}; "
                           "give one per student layer")
    return layer_map


def projection_for(student_config, teacher_config, points: int, *, needed: bool, allowed: bool,
                   flags: str = "--alpha-hidden 0 --alpha-embed 0") -> losses.HiddenProjection | None:
    """A learned projection from the student's width to the teacher's, when a loss needs one.

    ``points`` is how many hidden-state positions are projected (embeddings + blocks, or 1);
    ``allowed`` is ``--hidden-projection``; ``flags`` names what turns the losses off.
    """
    from protege.models import hidden_size

    hs, ht = hidden_size(student_config), hidden_size(teacher_config)
    if hs == ht or not needed:
        return None
    if not allowed:
        raise ProtegeError(f"hidden-state losses compare widths {hs} (student) and {ht} (teacher): "
                           f"drop --no-hidden-projection to learn a projection, or set {flags}")
    return losses.HiddenProjection(hs, ht, points)


def projector(projection: losses.HiddenProjection | None) -> Callable[[int], Callable | None]:
    """``i -> (x -> projection(x, i))``, or ``i -> None`` without a projection."""
    if projection is None:
        return lambda i: None
    return lambda i: (lambda x: projection(x, i))


def mapped_hidden_loss(student_states, teacher_states, layer_map: list[int], mask: torch.Tensor, *,
                       projection: losses.HiddenProjection | None = None, kind: str = "mse") -> torch.Tensor:
    """Mean hidden-state loss over mapped blocks: student block ``i`` against teacher block ``layer_map[i]``.

    ``*_states`` are HF ``hidden_states`` tuples (index 0 = embeddings, ``i + 1`` = block ``i``),
    each ``(batch, seq, width)``; ``mask`` is ``(batch, seq)``. ``kind``: ``mse`` (TinyBERT) or
    ``cosine`` (DistilBERT).
    """
    fn = losses.hidden_cosine if kind == "cosine" else losses.hidden_mse
    project = projector(projection)
    return torch.stack([fn(student_states[i + 1], teacher_states[t + 1], mask=mask, projection=project(i + 1))
                        for i, t in enumerate(layer_map)]).mean()


def mapped_attention_loss(student_attentions, teacher_attentions, layer_map: list[int], mask: torch.Tensor, *,
                          same_heads: bool = True) -> torch.Tensor:
    """Mean attention-distribution MSE over mapped blocks (TinyBERT).

    ``*_attentions`` are HF ``attentions`` tuples of ``(batch, heads, seq, seq)``; with different
    head counts the head-averaged maps are compared instead.
    """
    fn = losses.attention_mse if same_heads else head_mean_attention_mse
    return torch.stack([fn(student_attentions[i], teacher_attentions[t], mask=mask)
                        for i, t in enumerate(layer_map)]).mean()


def held_out_batches(model, features: list[dict], pad_token_id: int, device, *, batch_size: int = 16) -> Iterator[tuple[dict, int]]:
    """``(batch on device, examples in it)`` over ``features``, with ``model`` in eval mode and no grad (restored after)."""
    from protege.data.batching import collate

    was = model.training
    model.eval()
    try:
        with torch.inference_mode():
            for start in range(0, len(features), batch_size):
                chunk = features[start:start + batch_size]
                yield {k: v.to(device) for k, v in collate(chunk, pad_token_id).items()}, len(chunk)
    finally:
        model.train(was)
