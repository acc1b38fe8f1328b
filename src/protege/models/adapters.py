"""Where an encoder's embeddings, block list and width live, found generically.

Hugging Face encoders differ in attribute names (``bert.encoder.layer``,
``distilbert.transformer.layer``, ``transformer.h`` ...) but all keep their blocks in one
``nn.ModuleList`` whose length is ``config.num_hidden_layers``; we look for that instead of
keeping a table per architecture.
"""

from __future__ import annotations

from torch import nn

from protege.errors import ProtegeError

__all__ = ["block_list", "replace_blocks", "hidden_size", "num_heads", "num_layers", "ffn_size_key"]


def num_layers(config) -> int:
    """Number of transformer blocks in ``config`` (``num_hidden_layers`` or its alias)."""
    return int(config.num_hidden_layers)


def hidden_size(config) -> int:
    """Model width (``hidden_size``, ``dim`` or ``n_embd`` via the config's attribute map)."""
    return int(config.hidden_size)


def num_heads(config) -> int:
    """Attention heads per block."""
    return int(config.num_attention_heads)


def ffn_size_key(config) -> str:
    """Name of the config field holding the FFN inner width."""
    for key in ("intermediate_size", "hidden_dim", "n_inner", "ffn_dim"):
        if key in config.to_dict():
            return key
    raise ProtegeError(f"cannot find the FFN size in a {config.model_type} config; pass --student-ffn-size only for BERT-style models")


def block_list(model) -> tuple[nn.Module, str, nn.ModuleList]:
    """Return ``(parent, attribute, blocks)``: the ModuleList holding the transformer blocks.

    Picks the first ModuleList under the base model whose length equals the configured
    number of layers, preferring the shallowest one (e.g. ``encoder.layer`` over a list
    nested inside a block).
    """
    n = num_layers(model.config)
    base = getattr(model, "base_model", model)
    found = []
    for name, module in base.named_modules():
        for attr, child in module.named_children():
            if isinstance(child, nn.ModuleList) and len(child) == n:
                found.append((name.count("."), name, module, attr, child))
    if not found:
        raise ProtegeError(
            f"cannot find the block list of a {type(model).__name__} ({n} layers); "
            "this architecture is not supported for layer selection, use --student or --student-num-layers"
        )
    found.sort(key=lambda f: (f[0], f[1] != "" and 0))
    _, _, parent, attr, blocks = found[0]
    return parent, attr, blocks


def replace_blocks(model, keep: list[int]) -> None:
    """Keep only blocks ``keep`` (in that order) of ``model``, in place, and fix the config.

    Attention modules that carry a ``layer_idx`` (used for KV caches) are renumbered so the
    kept blocks index 0..len(keep)-1.
    """
    parent, attr, blocks = block_list(model)
    kept = nn.ModuleList([blocks[i] for i in keep])
    setattr(parent, attr, kept)
    for new_idx, block in enumerate(kept):
        for module in block.modules():
            if hasattr(module, "layer_idx") and isinstance(module.layer_idx, int):
                module.layer_idx = new_idx
    model.config.num_hidden_layers = len(keep)
    layer_types = getattr(model.config, "layer_types", None)
    if isinstance(layer_types, (list, tuple)) and len(layer_types) == len(blocks):
        model.config.layer_types = [layer_types[i] for i in keep]
