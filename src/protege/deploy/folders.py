"""Exported folders: what is in them, how to recognise them, how to load them.

``protege export --out DIR`` writes one folder per variant and a ``metrics.json`` over all::

    DIR/metrics.json, README.md, protege_config.json        (every variant, measured; the recommended one)
    DIR/pytorch-fp32/    model.safetensors + config.json + tokenizer   (the reference)
    DIR/onnx-fp32/       model.onnx + config.json + tokenizer + protege_export.json
    DIR/onnx-int8-dynamic/, DIR/onnx-int8-static/, DIR/onnx-int8-mixed/  (the same layout)

``protege_export.json`` (the manifest) says which runtime and precision the folder holds.
Anything that takes a model folder (``evaluate``, ``serve``, ``report``) accepts a variant folder
or the export folder itself, which stands for its recommended variant. This module imports
neither torch nor onnxruntime, so recognising a folder is cheap.
"""

from __future__ import annotations

import json
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["MANIFEST", "ONNX_FILE", "VARIANTS", "DEFAULT_VARIANTS", "is_exported", "exported_folder", "read_manifest",
           "write_manifest", "load_exported", "load_model", "variant_disk_size"]

MANIFEST = "protege_export.json"
ONNX_FILE = "model.onnx"

# variant -> (runtime, precision): what each one is
VARIANTS = {
    "pytorch-fp32": ("pytorch", "fp32"),
    "onnx-fp32": ("onnxruntime", "fp32"),
    "onnx-int8-dynamic": ("onnxruntime", "int8-dynamic"),
    "onnx-int8-static": ("onnxruntime", "int8-static"),
    "onnx-int8-mixed": ("onnxruntime", "int8-mixed"),  # dynamic int8, sensitive MatMuls in fp32 (deploy.mixed)
}
DEFAULT_VARIANTS = tuple(VARIANTS)  # onnx-int8-static and -mixed only when --calibration is given


def read_manifest(folder: str | Path) -> dict | None:
    """The manifest of an exported variant folder, or None when ``folder`` is not one."""
    file = Path(folder) / MANIFEST
    if not file.is_file():
        return None
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ProtegeError(f"{file}: unreadable export manifest ({err}); re-export the model with protege export") from None
    if not isinstance(data, dict) or data.get("variant") not in VARIANTS:
        raise ProtegeError(f"{file}: not a protege export manifest (variant must be one of {', '.join(VARIANTS)})")
    return data


def write_manifest(folder: str | Path, info: dict) -> None:
    """Write ``info`` (variant, runtime, precision, file, parameters ...) as the folder's manifest."""
    from protege.utils.io import write_json_atomic

    write_json_atomic(Path(folder) / MANIFEST, info)


def _recommended(folder: Path) -> Path | None:
    """For an export folder: its recommended variant's folder (None if it is not an export folder)."""
    file = folder / "metrics.json"
    if not file.is_file() or (folder / "config.json").exists():
        return None
    try:
        metrics = json.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    export = metrics.get("export") if isinstance(metrics, dict) else None
    if not isinstance(export, dict) or "variants" not in export:
        return None
    pick = export.get("recommended")
    if not pick:
        raise ProtegeError(f"{folder}: no variant of this export passed verification, so none is recommended; "
                           f"pass one of its variant folders ({', '.join(export['variants'])}) explicitly")
    if not (folder / str(pick)).is_dir():
        raise ProtegeError(f"{folder}: the recommended variant {pick!r} is missing; re-run protege export")
    return folder / str(pick)


def exported_folder(path: str | Path) -> Path | None:
    """The variant folder ``path`` stands for: itself (a variant), its recommended variant (an export or
    compress folder), or None when ``path`` is an ordinary model folder or hub id."""
    p = Path(path).expanduser()
    if not p.is_dir():
        return None
    if (p / MANIFEST).is_file():
        return p
    pick = _recommended(p)
    if pick is not None:
        return pick if (pick / MANIFEST).is_file() or (pick / "config.json").is_file() else None
    return None


def is_exported(path: str | Path) -> bool:
    """Whether ``path`` is an export variant folder or an export/compress folder (cheap: reads JSON only)."""
    return exported_folder(path) is not None


def load_exported(path: str | Path, *, threads: int | None = None):
    """The model of an exported folder: an :class:`~protege.deploy.runtime.OrtClassifier` for ONNX variants,
    the PyTorch classifier for ``pytorch-fp32``. Returns ``(model, folder)``; the folder holds the tokenizer."""
    folder = exported_folder(path)
    if folder is None:
        raise ProtegeError(f"{path}: not an exported folder (no {MANIFEST}); export it with protege export")
    info = read_manifest(folder)
    if info is None or info.get("runtime") == "pytorch":
        from protege.models.loading import load_classifier

        model = load_classifier(str(folder), role="model")
        variant = (info or {}).get("variant", "pytorch-fp32")
        # what compare_models records beside the measurements, as for an ONNX variant
        model.runtime_info = lambda: {"runtime": "pytorch", "precision": "fp32", "variant": variant}
        return model, folder
    from protege.utils.extras import require_extra

    require_extra("export", "onnxruntime", what=f"running the ONNX model in {folder}")
    from protege.deploy.runtime import OrtClassifier
    from protege.models.loading import load_config

    onnx_file = folder / info.get("file", ONNX_FILE)
    if not onnx_file.is_file():
        raise ProtegeError(f"{folder}: {onnx_file.name} is missing; re-export the model with protege export")
    return OrtClassifier(onnx_file, load_config(str(folder)), info, threads=threads), folder


def load_model(name: str, *, role: str = "model"):
    """Any classifier protege can measure: an exported folder, or a model folder / hub id.

    Returns ``(model, folder_with_tokenizer_or_name)``.
    """
    if is_exported(name):
        return load_exported(name)
    from protege.models.loading import load_classifier

    return load_classifier(name, role=role), name


def variant_disk_size(folder: str | Path) -> int:
    """Bytes of the weights of a variant folder: the ONNX file (and external data), else the safetensors."""
    folder = Path(folder)
    info = read_manifest(folder)
    if info is not None and info.get("runtime") == "onnxruntime":
        files = [folder / info.get("file", ONNX_FILE)] + [folder / f for f in info.get("external_data", [])]
        return int(sum(f.stat().st_size for f in files if f.is_file()))
    from protege.evaluation.size import disk_size

    return disk_size(folder)
