"""Teacher-output cache: run the teacher once, reuse its outputs across epochs and runs.

Distillation spends most of its time in the teacher. The cache stores exactly what the
objective needs (logits; hidden states and attention maps of the mapped layers, in fp16) in
memory-mapped ``.npy`` files, one folder per fingerprint. The fingerprint covers the teacher's
weights and config, the token ids of every example (so the data, the tokenizer and
``max_length``), and the requested outputs: a change to any of them makes a new cache, never a
stale read. Folders are built under a temporary name and renamed when complete.

A cache holding more layers than a run needs is reused. Layout of ``ROOT/<fingerprint>-<spec>/``::

    manifest.json      what is stored, shapes, sizes
    logits.npy         (N, C) float32           (or topk_values/topk_indices/rest_mass for big vocabularies)
    offsets.npy        (N+1,) int64 token offsets of each example
    hidden_<j>.npy     (total_tokens, H) float16, j = index into HF ``hidden_states``
    attn_offsets.npy   (N+1,) int64 offsets into the flattened attention maps
    attn_<l>.npy       (sum_i heads * L_i * L_i,) float16, l = block index
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from protege.errors import ProtegeError

__all__ = ["CacheSpec", "TeacherCache", "fingerprint", "estimate_bytes", "build_cache", "open_or_build_cache"]

FORMAT = 1


@dataclass(frozen=True)
class CacheSpec:
    """What to store: hidden-state indices (0 = embeddings), attention block indices, top-k for big vocabularies."""

    hidden: tuple[int, ...] = ()
    attentions: tuple[int, ...] = ()
    topk: int | None = None

    @classmethod
    def for_losses(cls, *, alpha_hidden: float, alpha_attn: float, alpha_embed: float, layer_map) -> "CacheSpec":
        """What the task objective's loss terms read: mapped hidden states (+ embeddings), mapped attention maps."""
        hidden = ([0] if alpha_embed else []) + ([t + 1 for t in layer_map] if alpha_hidden else [])
        return cls(hidden=tuple(sorted(set(hidden))), attentions=tuple(sorted(set(layer_map))) if alpha_attn else ())

    def describe(self) -> dict:
        """JSON-able form, part of the fingerprint."""
        return {"hidden": list(self.hidden), "attentions": list(self.attentions), "topk": self.topk}


def _hash_features(h, features) -> None:
    lengths = np.fromiter((len(f["input_ids"]) for f in features), dtype=np.int64, count=len(features))
    h.update(lengths.tobytes())
    for key in ("input_ids", "token_type_ids"):
        if key in features[0]:
            h.update(np.fromiter((t for f in features for t in f[key]), dtype=np.int64, count=int(lengths.sum())).tobytes())


def fingerprint(teacher, features: list[dict]) -> str:
    """sha256 over the teacher's weights and config and every example's token ids."""
    h = hashlib.sha256(f"protege-teacher-cache-v{FORMAT}".encode())
    h.update(json.dumps(teacher.config.to_dict(), sort_keys=True, default=str).encode())
    for name, tensor in sorted(teacher.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes())
    _hash_features(h, features)
    return h.hexdigest()[:32]


def _covers(have: dict, want: CacheSpec) -> bool:
    return (set(want.hidden) <= set(have["hidden"]) and set(want.attentions) <= set(have["attentions"])
            and have["topk"] == want.topk)


def estimate_bytes(config, features: list[dict], spec: CacheSpec) -> int:
    """Bytes the cache will take on disk, computed before running the teacher."""
    n = len(features)
    lengths = np.array([len(f["input_ids"]) for f in features], dtype=np.int64)
    labels = spec.topk if spec.topk else config.num_labels
    total = n * labels * (4 + (8 if spec.topk else 0)) + (n * 4 if spec.topk else 0) + (n + 1) * 16
    total += int(lengths.sum()) * config.hidden_size * 2 * len(spec.hidden)
    total += int((lengths ** 2).sum()) * config.num_attention_heads * 2 * len(spec.attentions)
    return int(total)


class TeacherCache:
    """Read side: memory-mapped teacher outputs, assembled per batch with dynamic padding."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.manifest = json.loads((self.folder / "manifest.json").read_text())
        spec = self.manifest["spec"]
        self.spec = CacheSpec(tuple(spec["hidden"]), tuple(spec["attentions"]), spec["topk"])
        load = lambda name: np.load(self.folder / f"{name}.npy", mmap_mode="r")  # noqa: E731
        self.offsets = load("offsets")
        if self.spec.topk:
            self.topk_values, self.topk_indices, self.rest_mass = load("topk_values"), load("topk_indices"), load("rest_mass")
        else:
            self.logits = load("logits")
        self.hidden = {j: load(f"hidden_{j}") for j in self.spec.hidden}
        self.attn_offsets = load("attn_offsets") if self.spec.attentions else None
        self.attn = {layer: load(f"attn_{layer}") for layer in self.spec.attentions}
        self.heads = self.manifest["num_heads"]

    def __len__(self) -> int:
        return int(self.manifest["n"])

    def outputs(self, index: torch.Tensor, seq_len: int, device) -> SimpleNamespace:
        """Teacher outputs for examples ``index`` padded to ``seq_len``: ``logits``, ``hidden_states``, ``attentions``.

        ``hidden_states``/``attentions`` are lists indexed like HF outputs, holding None for
        what was not cached. Padded positions are zero (they are masked out by the losses).
        """
        idx = index.tolist()
        out = SimpleNamespace(logits=None, hidden_states=None, attentions=None)
        if self.spec.topk:
            out.topk_values = torch.from_numpy(np.asarray(self.topk_values[idx], dtype=np.float32)).to(device)
            out.topk_indices = torch.from_numpy(np.asarray(self.topk_indices[idx])).to(device)
            out.rest_mass = torch.from_numpy(np.asarray(self.rest_mass[idx], dtype=np.float32)).to(device)
        else:
            out.logits = torch.from_numpy(np.asarray(self.logits[idx], dtype=np.float32)).to(device)
        if self.hidden:
            size = max(j for j in self.hidden) + 1
            out.hidden_states = [None] * size
            for j, arr in self.hidden.items():
                block = np.zeros((len(idx), seq_len, arr.shape[1]), dtype=np.float32)
                for row, i in enumerate(idx):
                    a, b = int(self.offsets[i]), int(self.offsets[i + 1])
                    block[row, : b - a] = arr[a:b]
                out.hidden_states[j] = torch.from_numpy(block).to(device)
        if self.attn:
            out.attentions = [None] * (max(self.attn) + 1)
            for layer, arr in self.attn.items():
                block = np.zeros((len(idx), self.heads, seq_len, seq_len), dtype=np.float32)
                for row, i in enumerate(idx):
                    n = int(self.offsets[i + 1] - self.offsets[i])
                    a = int(self.attn_offsets[i])
                    block[row, :, :n, :n] = np.asarray(arr[a:a + self.heads * n * n]).reshape(self.heads, n, n)
                out.attentions[layer] = torch.from_numpy(block).to(device)
        return out


def build_cache(teacher, features: list[dict], spec: CacheSpec, folder: Path, *, pad_token_id: int, key: str = "",
                batch_size: int = 64, device=None, progress: bool = True) -> TeacherCache:
    """Run ``teacher`` once over ``features`` and write the cache into ``folder`` atomically."""
    from protege.data.batching import collate

    device = device or next(teacher.parameters()).device
    n = len(features)
    lengths = np.array([len(f["input_ids"]) for f in features], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    heads, hidden = teacher.config.num_attention_heads, teacher.config.hidden_size
    attn_offsets = np.concatenate([[0], np.cumsum(heads * lengths ** 2)])
    tmp = folder.parent / f".{folder.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    mm = lambda name, shape, dtype: np.lib.format.open_memmap(tmp / f"{name}.npy", mode="w+", dtype=dtype, shape=shape)  # noqa: E731
    np.save(tmp / "offsets.npy", offsets)
    if spec.attentions:
        np.save(tmp / "attn_offsets.npy", attn_offsets)
    if spec.topk:
        tv, ti, rm = mm("topk_values", (n, spec.topk), np.float32), mm("topk_indices", (n, spec.topk), np.int64), mm("rest_mass", (n,), np.float32)
    else:
        logits_mm = mm("logits", (n, teacher.config.num_labels), np.float32)
    hid = {j: mm(f"hidden_{j}", (int(offsets[-1]), hidden), np.float16) for j in spec.hidden}
    att = {layer: mm(f"attn_{layer}", (int(attn_offsets[-1]),), np.float16) for layer in spec.attentions}
    order = sorted(range(n), key=lambda i: lengths[i])
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=n, desc="teacher cache", unit="ex", file=sys.stderr, mininterval=0.5 if sys.stderr.isatty() else 10.0)
    teacher.eval()
    with torch.inference_mode():
        for start in range(0, n, batch_size):
            idx = order[start:start + batch_size]
            batch = collate([{k: v for k, v in features[i].items() if k != "labels"} for i in idx], pad_token_id)
            batch = {k: v.to(device) for k, v in batch.items() if k != "index"}
            out = teacher(**batch, output_hidden_states=bool(spec.hidden), output_attentions=bool(spec.attentions))
            logits = out.logits.float()
            if spec.topk:
                logp = torch.log_softmax(logits, dim=-1)
                values, indices = logp.topk(spec.topk, dim=-1)
                tv[idx], ti[idx] = values.cpu().numpy(), indices.cpu().numpy()
                rm[idx] = (1 - values.exp().sum(-1)).clamp_min(0).cpu().numpy()
            else:
                logits_mm[idx] = logits.cpu().numpy()
            for j in spec.hidden:
                states = out.hidden_states[j].to(torch.float16).cpu().numpy()
                for row, i in enumerate(idx):
                    hid[j][offsets[i]:offsets[i + 1]] = states[row, : lengths[i]]
            for layer in spec.attentions:
                maps = out.attentions[layer].to(torch.float16).cpu().numpy()
                for row, i in enumerate(idx):
                    L = lengths[i]
                    att[layer][attn_offsets[i]:attn_offsets[i + 1]] = maps[row, :, :L, :L].reshape(-1)
            if bar is not None:
                bar.update(len(idx))
    if bar is not None:
        bar.close()
    for arr in [*hid.values(), *att.values()] + ([tv, ti, rm] if spec.topk else [logits_mm]):
        arr.flush()
    manifest = {"format": FORMAT, "fingerprint": key, "n": n, "spec": spec.describe(), "num_labels": teacher.config.num_labels,
                "hidden_size": hidden, "num_heads": heads, "tokens": int(offsets[-1]),
                "bytes": sum(p.stat().st_size for p in tmp.iterdir())}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    return TeacherCache(folder)


def open_or_build_cache(root: str | Path, teacher, features: list[dict], spec: CacheSpec, *, pad_token_id: int,
                        budget_gb: float | None = None, device=None, progress: bool = True, log=print) -> TeacherCache:
    """The cache for this teacher/data/spec under ``root``: reused if its fingerprint exists, else built.

    Raises ProtegeError before running the teacher when the cache would exceed ``budget_gb``.
    """
    root = Path(root)
    key = fingerprint(teacher, features)
    for manifest in sorted(root.glob(f"{key}-*/manifest.json")):
        cache = TeacherCache(manifest.parent)
        if cache.manifest.get("fingerprint") == key and len(cache) == len(features) and _covers(cache.manifest["spec"], spec):
            log(f"teacher cache: reusing {cache.folder} ({cache.manifest['bytes'] / 1e6:.1f} MB)")
            return cache
    tag = hashlib.sha256(json.dumps(spec.describe(), sort_keys=True).encode()).hexdigest()[:8]
    folder = root / f"{key}-{tag}"
    need = estimate_bytes(teacher.config, features, spec)
    if budget_gb is not None and need > budget_gb * 1e9:
        raise ProtegeError(f"the teacher cache would take {need / 1e9:.2f} GB, above --cache-budget {budget_gb} GB; "
                           "raise --cache-budget, cache fewer layers (--alpha-hidden/--alpha-attn), or drop --cache-teacher")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ProtegeError(f"cannot create the teacher cache folder {root} ({err.strerror}); pass a writable --cache-teacher") from None
    log(f"teacher cache: building {folder} ({need / 1e6:.1f} MB) ...")
    return build_cache(teacher, features, spec, folder, pad_token_id=pad_token_id, key=key, device=device, progress=progress)
