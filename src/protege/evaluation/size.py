"""Model size: parameter counts and bytes on disk."""

from __future__ import annotations

from pathlib import Path

from torch import nn

from protege.errors import ProtegeError

__all__ = ["parameter_counts", "disk_size"]

# files that save_pretrained / Trainer may leave beside the weights but that hold no weights
_NOT_WEIGHTS = {"training_args.bin"}


def parameter_counts(model: nn.Module) -> dict[str, int]:
    """Parameter counts of ``model``.

    Returns {"parameters": every unique parameter (tensors shared or tied between modules are
    counted once), "non_embedding_parameters": the same minus the parameters of
    ``nn.Embedding`` modules (word, position and token-type embeddings)}.
    """
    if not isinstance(model, nn.Module):
        raise ProtegeError(f"parameter_counts needs a torch.nn.Module, got {type(model).__name__}")
    unique = _unique(model.parameters())
    embedding = {}
    for module in model.modules():
        if isinstance(module, nn.Embedding):
            embedding.update(_unique(module.parameters(recurse=False)))
    total = sum(p.numel() for p in unique.values())
    return {
        "parameters": int(total),
        "non_embedding_parameters": int(total - sum(p.numel() for p in embedding.values())),
    }


def disk_size(folder) -> int:
    """Bytes of the weight files in a ``save_pretrained`` folder.

    Counts the ``*.safetensors`` files (shards included); only when there are none, the
    ``*.bin`` files, so a folder saved in both formats is not counted twice.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise ProtegeError(f"model folder not found: {folder}")
    # model weights only: *model*.safetensors (shards included), not side files such as pruning masks
    files = sorted(p for p in folder.glob("*.safetensors") if p.is_file() and "model" in p.name)
    if not files:
        files = sorted(p for p in folder.glob("*.safetensors") if p.is_file() and "mask" not in p.name)
    if not files:
        files = sorted(p for p in folder.glob("*.bin") if p.is_file() and p.name not in _NOT_WEIGHTS)
    if not files:
        raise ProtegeError(f"no weight files (*.safetensors or *.bin) in {folder}; save the model with save_pretrained")
    return int(sum(p.stat().st_size for p in files))


def _unique(params) -> dict:
    # keyed by storage, not object: tied weights may be distinct Parameters over one tensor
    out = {}
    for p in params:
        if p.device.type == "meta":
            key = id(p)
        else:
            key = (str(p.device), p.data_ptr(), tuple(p.shape), p.stride())
        out.setdefault(key, p)
    return out
