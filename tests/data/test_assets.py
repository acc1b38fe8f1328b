"""The built-in assets: all-MiniLM-L6-v2 from PyPI and the Rotten Tomatoes snippets (needs PyPI access)."""

import io
import json
import subprocess
import tarfile

import pytest

from protege.data import assets
from protege.data.assets import ROTTEN_TOMATOES_ROWS, minilm_dir, rotten_tomatoes
from protege.data.tables import load_examples
from protege.errors import ProtegeError


def test_minilm_dir():
    d = minilm_dir()
    config = json.loads((d / "config.json").read_text())
    assert config["model_type"] == "bert"
    assert config["num_hidden_layers"] == 6 and config["hidden_size"] == 384
    assert (d / "model.safetensors").is_file() and (d / "tokenizer.json").is_file()


def test_minilm_check_rejects_wrong_model(tmp_path):
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json", "vocab.txt"):
        (tmp_path / name).write_text("{}")
    with pytest.raises(ProtegeError, match="lacks model.safetensors"):
        assets._check_minilm(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\0" * 2_000_000)
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "bert", "num_hidden_layers": 12,
                                                       "hidden_size": 384}))
    with pytest.raises(ProtegeError, match=r"num_hidden_layers=12.*reinstall"):
        assets._check_minilm(tmp_path)


def _count_rows(path):
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[0] == "sentence\tlabel" and lines[-1] == ""
    return len(lines) - 2


def test_rotten_tomatoes(tmp_path, monkeypatch):
    paths = rotten_tomatoes(tmp_path)
    assert set(paths) == {"train", "dev", "test"}
    counts = {name: _count_rows(p) for name, p in paths.items()}
    assert sum(counts.values()) == ROTTEN_TOMATOES_ROWS == 10568
    assert counts == {"train": 8454, "dev": 1057, "test": 1057}
    texts = set()
    for name, p in paths.items():
        ex = load_examples(p, require_labels=True)
        assert set(ex.labels) == {0, 1}
        texts.update(ex.texts)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["files"]["train"]["rows"] == 8454
    before = {name: p.read_bytes() for name, p in paths.items()}

    # cached: a second call must not download
    def no_download(*args, **kwargs):
        raise AssertionError("downloaded again")

    monkeypatch.setattr(assets, "_pip_download", no_download)
    again = rotten_tomatoes(tmp_path)
    assert again == paths and {n: p.read_bytes() for n, p in again.items()} == before

    # a tampered cache is rebuilt (here: the rebuild's download is refused)
    paths["dev"].write_text("sentence\tlabel\nhacked\t1\n")
    with pytest.raises(AssertionError, match="downloaded again"):
        rotten_tomatoes(tmp_path)


def _tar_gz(members):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_tampered_archives_are_rejected(tmp_path):
    import hashlib

    bad = tmp_path / "vaderSentiment-3.3.2.tar.gz"
    bad.write_bytes(b"not the real sdist")
    with pytest.raises(ProtegeError, match=r"sha256 .* expected 5d7c06e0"):
        assets._read_rotten_tomatoes(bad)

    # right layout, wrong inner archive
    inner = _tar_gz({assets._SNIPPETS_MEMBER: b"1\t2.0\tgreat film\r\n"})
    outer = _tar_gz({assets._ARCHIVE_MEMBER: inner})
    bad.write_bytes(outer)
    with pytest.raises(ProtegeError, match="fails its sha256 check"):
        assets._read_rotten_tomatoes(bad, sdist_sha256=hashlib.sha256(outer).hexdigest())

    # an archive missing the member
    outer = _tar_gz({"vaderSentiment-3.3.2/setup.py": b"print()"})
    bad.write_bytes(outer)
    with pytest.raises(ProtegeError, match="has no member"):
        assets._read_rotten_tomatoes(bad, sdist_sha256=hashlib.sha256(outer).hexdigest())


def test_failed_download_names_package_and_fix(tmp_path, monkeypatch):
    def fake_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for vaderSentiment\n")

    monkeypatch.setattr(assets.subprocess, "run", fake_run)
    with pytest.raises(ProtegeError) as e:
        rotten_tomatoes(tmp_path / "cache")
    msg = str(e.value)
    assert "\n" not in msg
    assert "vaderSentiment==3.3.2" in msg and "check network access to PyPI, or pass --train/--eval files" in msg
