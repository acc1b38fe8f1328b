"""Model surgery: slice attention heads, FFN neurons and layers out of a model, and load such a model back.

Weights are physically sliced (smaller ``nn.Linear`` matrices), so a sliced model does less work.
What a saved folder needs to load (transformers v5):

- fewer FFN neurons, the same count in every layer: ``intermediate_size`` says so, and stock
  ``from_pretrained`` loads it;
- fewer layers: ``num_hidden_layers`` says so, stock ``from_pretrained`` loads it;
- fewer attention heads: *not expressible in a stock config* (BERT computes the head size as
  ``hidden_size / num_attention_heads``), so the removed heads are recorded in ``config.json`` as
  ``protege_pruned_heads`` ({layer: [original head indices removed]}) and :func:`load_pruned`
  builds the stock model, slices it to that layout, then loads the weights.

Which heads and neurons to remove is :mod:`protege.pruning.structured`'s business.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from protege.errors import ProtegeError
from protege.models.adapters import block_list, ffn_size_key, hidden_size, num_heads, replace_blocks

__all__ = ["prune_heads_", "prune_ffn_", "drop_layers_", "layout", "load_pruned", "block_parts", "head_dim",
           "PRUNED_HEADS_KEY", "FFN_SIZES_KEY", "ANATOMY", "MASKS_FILE"]

MASKS_FILE = "pruning_masks.safetensors"  # unstructured masks beside the weights: not weights themselves

PRUNED_HEADS_KEY = "protege_pruned_heads"
FFN_SIZES_KEY = "protege_ffn_sizes"

# where a block keeps its attention projections and FFN, per family (BERT covers RoBERTa, ELECTRA, MiniLM ...)
ANATOMY = {
    "bert": dict(attn="attention.self", q="attention.self.query", k="attention.self.key", v="attention.self.value",
                 o="attention.output.dense", ffn_in="intermediate.dense", ffn_out="output.dense"),
    "distilbert": dict(attn="attention", q="attention.q_lin", k="attention.k_lin", v="attention.v_lin",
                       o="attention.out_lin", ffn_in="ffn.lin1", ffn_out="ffn.lin2"),
    "mpnet": dict(attn="attention.attn", q="attention.attn.q", k="attention.attn.k", v="attention.attn.v",
                  o="attention.attn.o", ffn_in="intermediate.dense", ffn_out="output.dense"),
}


def _anatomy(model) -> dict[str, str]:
    _, _, blocks = block_list(model)
    parts = dict(blocks[0].named_modules())
    for paths in ANATOMY.values():
        if all(isinstance(parts.get(p), nn.Linear) for k, p in paths.items() if k != "attn"):
            return paths
    raise ProtegeError(f"structured pruning does not know where {type(model).__name__} keeps its attention and FFN "
                       f"weights (known: {', '.join(ANATOMY)}); use --method magnitude")


def block_parts(model) -> list[dict[str, nn.Module]]:
    """Per block: the attention module and its q, k, v, o and FFN linears."""
    paths = _anatomy(model)
    _, _, blocks = block_list(model)
    out = []
    for block in blocks:
        lookup = dict(block.named_modules())
        parts = {k: lookup[p] for k, p in paths.items()}
        if any(hasattr(m, "weight_mask") for m in parts.values()):
            raise ProtegeError("this model carries unstructured pruning masks; make them permanent before structured pruning")
        out.append(parts)
    return out


def head_dim(model) -> int:
    return hidden_size(model.config) // num_heads(model.config)


def layout(model) -> dict:
    """Layers, attention heads per layer and FFN neurons per layer of ``model`` as it is now."""
    d = head_dim(model)
    parts = block_parts(model)
    return {"layers": len(parts), "heads": [p["q"].out_features // d for p in parts],
            "ffn": [p["ffn_in"].out_features for p in parts]}


def _slice(linear: nn.Linear, index: torch.Tensor, dim: int) -> None:
    """Keep rows (dim 0: outputs) or columns (dim 1: inputs) ``index`` of ``linear``, in place."""
    index = index.to(linear.weight.device)
    linear.weight = nn.Parameter(linear.weight.index_select(dim, index).clone(), requires_grad=linear.weight.requires_grad)
    if dim == 0:
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.index_select(0, index).clone(), requires_grad=linear.bias.requires_grad)
        linear.out_features = len(index)
    else:
        linear.in_features = len(index)


def _slice_heads(parts: dict, keep: list[int], head_dim: int) -> None:
    rows = torch.cat([torch.arange(h * head_dim, (h + 1) * head_dim) for h in keep])
    for name in ("q", "k", "v"):
        _slice(parts[name], rows, 0)
    _slice(parts["o"], rows, 1)
    attn = parts["attn"]
    for attr in ("num_attention_heads", "n_heads"):  # some attention modules reshape with these
        if isinstance(getattr(attn, attr, None), int):
            setattr(attn, attr, len(keep))
    if isinstance(getattr(attn, "all_head_size", None), int):
        attn.all_head_size = len(keep) * head_dim


def _slice_ffn(parts: dict, keep: list[int]) -> None:
    index = torch.as_tensor(keep, dtype=torch.long)
    _slice(parts["ffn_in"], index, 0)
    _slice(parts["ffn_out"], index, 1)


def _check_keep(keep: dict, parts: list, sizes: list[int], what: str) -> dict[int, list[int]]:
    clean = {}
    for layer, idx in keep.items():
        layer = int(layer)
        if not 0 <= layer < len(parts):
            raise ProtegeError(f"layer {layer} is outside 0..{len(parts) - 1}")
        idx = sorted(int(i) for i in idx)
        if not idx or len(set(idx)) != len(idx) or idx[0] < 0 or idx[-1] >= sizes[layer]:
            raise ProtegeError(f"layer {layer}: keep 1..{sizes[layer]} distinct {what} indices in 0..{sizes[layer] - 1}, got {idx}")
        clean[layer] = idx
    return clean


def prune_heads_(model, keep: dict[int, list[int]]) -> nn.Module:
    """Keep only heads ``keep[layer]`` (current positions) in each listed layer, slicing Q/K/V and the output.

    Records the removed heads (as original indices) in ``model.config.protege_pruned_heads``.
    """
    parts, d = block_parts(model), head_dim(model)
    shape = layout(model)
    keep = _check_keep(keep, parts, shape["heads"], "head")
    n = num_heads(model.config)
    record = {int(k): set(v) for k, v in (getattr(model.config, PRUNED_HEADS_KEY, None) or {}).items()}
    for layer, idx in keep.items():
        original = [h for h in range(n) if h not in record.get(layer, set())]
        _slice_heads(parts[layer], idx, d)
        record[layer] = set(range(n)) - {original[i] for i in idx}
    _record_heads(model.config, record)
    return model


def _record_heads(config, record: dict) -> None:
    _set_extra(config, PRUNED_HEADS_KEY, {str(k): sorted(v) for k, v in sorted(record.items()) if v})


def _set_extra(config, key: str, value) -> None:
    # protege's own config.json fields appear only when they say something
    if value:
        setattr(config, key, value)
    elif hasattr(config, key):
        delattr(config, key)


def prune_ffn_(model, keep: dict[int, list[int]]) -> nn.Module:
    """Keep only FFN neurons ``keep[layer]`` in each listed layer, slicing the FFN's two linears.

    When every layer ends with the same width, ``intermediate_size`` (or its alias) is set to it
    and the model stays stock; otherwise the widths go to ``config.protege_ffn_sizes``.
    """
    parts = block_parts(model)
    keep = _check_keep(keep, parts, layout(model)["ffn"], "neuron")
    for layer, idx in keep.items():
        _slice_ffn(parts[layer], idx)
    _record_ffn(model)
    return model


def _record_ffn(model) -> None:
    sizes = layout(model)["ffn"]
    if len(set(sizes)) == 1:
        setattr(model.config, ffn_size_key(model.config), sizes[0])
        _set_extra(model.config, FFN_SIZES_KEY, None)
    else:
        _set_extra(model.config, FFN_SIZES_KEY, sizes)


def drop_layers_(model, keep: list[int]) -> nn.Module:
    """Keep only blocks ``keep`` (in order), fixing ``num_hidden_layers`` and the pruned-head record."""
    record = getattr(model.config, PRUNED_HEADS_KEY, None) or {}
    sizes = getattr(model.config, FFN_SIZES_KEY, None)
    replace_blocks(model, list(keep))
    _record_heads(model.config, {new: set(record.get(str(old), [])) for new, old in enumerate(keep)})
    if sizes:
        _record_ffn(model)
    return model


def load_pruned(path: str | Path):
    """Load a folder saved by protege's pruning, whatever it removed.

    Stock folders (unstructured, FFN or layer pruning) go through ``from_pretrained``. A folder
    whose ``config.json`` lists ``protege_pruned_heads`` (or uneven ``protege_ffn_sizes``) is
    built as the stock architecture, sliced to that layout, and then given its weights.
    Returns the model in eval mode.
    """
    import transformers

    from protege.models.loading import load_classifier, load_config

    path = Path(path)
    config = load_config(str(path))
    heads = getattr(config, PRUNED_HEADS_KEY, None) or {}
    sizes = getattr(config, FFN_SIZES_KEY, None)
    if not heads and not sizes:
        return load_classifier(str(path), role="model")
    arch = (config.architectures or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        raise ProtegeError(f"{path}: config.json names no known architecture ({arch}); it was not saved by protege prune")
    model = cls(config)
    parts, d, n = block_parts(model), head_dim(model), num_heads(config)
    for layer, removed in heads.items():
        _slice_heads(parts[int(layer)], list(range(n - len(removed))), d)
    for layer, size in enumerate(sizes or []):
        _slice_ffn(parts[layer], list(range(size)))
    try:
        model.load_state_dict(_read_weights(path), strict=True)
    except RuntimeError as err:
        raise ProtegeError(f"{path}: the weights do not fit the pruned layout in config.json "
                           f"({str(err).splitlines()[1].strip()[:160] if len(str(err).splitlines()) > 1 else err})") from None
    return model.eval()


def _read_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(p for p in path.glob("*.safetensors") if p.name != MASKS_FILE)
    if not files:
        raise ProtegeError(f"{path}: no *.safetensors weights; load_pruned reads folders written by protege prune")
    state = {}
    for f in files:
        state.update(load_file(str(f)))
    return state
