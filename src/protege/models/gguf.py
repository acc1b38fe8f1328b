"""GGUF checkpoints (llama.cpp's format) as teachers: dequantized once into a plain model folder.

transformers reads a GGUF file (``from_pretrained(folder, gguf_file=...)``) and dequantizes it
to fp32, but the model it returns refuses ``save_pretrained`` ("quantized with gguf and is not
serializable"), and every later load pays the dequantization again. So a ``.gguf`` path given
anywhere a model is expected is converted once: the model is rebuilt from its config without
the ``quantization_config``, given the dequantized state dict, and saved with the tokenizer as
a stock ``save_pretrained`` folder in the cache (``$PROTEGE_CACHE/gguf/<sha256 prefix>``). The
folder is written in a hidden staging folder and renamed into place, so a failed conversion
leaves nothing behind. Students distilled from it are ordinary folders that
``AutoModelForCausalLM`` loads.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

from protege.errors import ProtegeError
from protege.utils.io import cache_root, file_sha256

__all__ = ["is_gguf", "gguf_folder", "gguf_cache_root"]

_FORMAT = 1  # bump when the converted folder's layout changes


def is_gguf(name) -> bool:
    """Whether ``name`` names a GGUF file (by its ``.gguf`` suffix); it need not exist yet."""
    return str(name).lower().endswith(".gguf")


def gguf_cache_root() -> Path:
    """``$PROTEGE_CACHE/gguf`` or ``~/.cache/protege/gguf``: where converted GGUF folders live."""
    return cache_root() / "gguf"


def _check_file(path: Path) -> None:
    if not path.is_file():
        raise ProtegeError(f"{path}: no such GGUF file; pass the path of a .gguf file")
    with path.open("rb") as f:
        if f.read(4) != b"GGUF":
            raise ProtegeError(f"{path} is not a GGUF file (it does not start with the GGUF magic bytes); "
                               "pass a llama.cpp .gguf file or a save_pretrained folder")


def gguf_folder(path, *, cache_dir=None) -> Path:
    """The plain ``save_pretrained`` folder (fp32 weights, config, tokenizer) of the GGUF file ``path``.

    Converted on first use and cached by the file's sha256; later calls return the cached folder.
    Raises :class:`ProtegeError` naming the ``gguf`` extra when the package is missing, and the
    architecture when transformers cannot dequantize it.
    """
    from protege.utils.extras import check_extra

    src = Path(path).expanduser()
    _check_file(src)
    check_extra("gguf", "gguf", what=f"reading the GGUF file {src.name}")
    digest = file_sha256(src)
    root = Path(cache_dir).expanduser() if cache_dir is not None else gguf_cache_root()
    folder = root / f"{src.stem}-{digest[:16]}"
    marker = folder / "protege_gguf.json"
    if marker.is_file():
        try:
            if json.loads(marker.read_text(encoding="utf-8")).get("format") == _FORMAT:
                return folder
        except ValueError:
            pass
    _check_architecture(src)
    created = [p for p in (root.parent, root) if not p.exists()]  # removed again if the conversion fails
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProtegeError(f"cannot create the cache folder {root} ({e.strerror}); set PROTEGE_CACHE") from None
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=root))
    print(f"protege: dequantizing {src.name} into {folder} (once; later runs reuse it)", file=sys.stderr, flush=True)
    try:
        _convert(src, staging)
        (staging / "protege_gguf.json").write_text(json.dumps({"format": _FORMAT, "source": src.name, "sha256": digest}) + "\n",
                                                   encoding="utf-8")
        if folder.exists():  # a stale or half-written earlier conversion
            shutil.rmtree(folder)
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        for made in reversed(created):
            _remove_if_empty(made)
    return folder


def _check_architecture(src: Path) -> None:
    """Refuse, before any work, a GGUF whose architecture transformers has no dequantizer for."""
    from gguf import GGUFReader
    from transformers.modeling_gguf_pytorch_utils import GGUF_SUPPORTED_ARCHITECTURES

    try:
        field = GGUFReader(str(src)).fields["general.architecture"]
        arch = bytes(field.parts[field.data[0]]).decode("utf-8")
    except (KeyError, IndexError, ValueError, OSError) as err:
        raise ProtegeError(f"could not read the architecture of the GGUF file {src} ({type(err).__name__}); re-download it") from None
    if arch not in GGUF_SUPPORTED_ARCHITECTURES:
        raise ProtegeError(f"transformers cannot dequantize {src.name}: its architecture '{arch}' is not one it reads from GGUF "
                           f"({', '.join(a for a in GGUF_SUPPORTED_ARCHITECTURES if a not in ('general', 'tokenizer'))}); "
                           "pass a save_pretrained folder instead")


def _remove_if_empty(root: Path) -> None:
    try:
        root.rmdir()  # only succeeds when nothing was converted into it
    except OSError:
        pass


def _convert(src: Path, out: Path) -> None:
    """Dequantize ``src`` with transformers, rebuild a plain model and save it (with the tokenizer) to ``out``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from protege.models.loading import quiet_transformers

    quiet_transformers()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(src.parent), gguf_file=src.name, dtype=torch.float32)
        tokenizer = AutoTokenizer.from_pretrained(str(src.parent), gguf_file=src.name)
    except ValueError as err:
        first = (str(err).strip().splitlines() or ["unknown error"])[0]
        raise ProtegeError(f"transformers cannot dequantize {src.name} ({first[:160]}); convert it to a Hugging Face "
                           "folder with llama.cpp's tools, or pass a save_pretrained folder") from None
    except (OSError, KeyError, RuntimeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ProtegeError(f"could not read the GGUF file {src} ({first[:160]}); re-download it") from None
    config = model.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    state = model.state_dict()
    plain = type(model)(config)  # the same architecture, with no GGUF quantizer attached
    missing, unexpected = plain.load_state_dict(state, strict=False)
    tied = {k for k in missing if k.endswith("lm_head.weight")} if getattr(config, "tie_word_embeddings", False) else set()
    if set(missing) - tied or unexpected:
        raise ProtegeError(f"the weights of {src.name} do not fit its own config ({len(missing)} missing, "
                           f"{len(unexpected)} unexpected); pass a save_pretrained folder instead")
    plain.tie_weights()
    plain.save_pretrained(out)
    tokenizer.save_pretrained(out)
