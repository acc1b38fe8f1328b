"""Issue 12, item 8 (full disk): a full disk while checkpointing or saving is a one-line error that says how much
space is needed and that the last checkpoint is kept; the half-written temp files are removed."""

import errno
import re
from pathlib import Path

import pytest
import torch

from protege.engine.checkpoints import (
    latest_step,
    save_best,
    save_checkpoint,
    tensor_bytes,
)
from protege.engine.finish import finish_run
from protege.errors import ProtegeError


def _loop_parts():
    torch.manual_seed(0)
    model = torch.nn.Linear(64, 64)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model(torch.randn(2, 64)).sum().backward()
    optimizer.step()
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    return {"model": model}, optimizer, scheduler


def _state(step):
    return {"step": step, "epoch": 0, "history": [], "best": None}


def _full_disk_after(monkeypatch, calls_that_succeed: int):
    real, count = torch.save, {"n": 0}

    def save(obj, f, *args, **kwargs):
        count["n"] += 1
        if count["n"] > calls_that_succeed:
            if hasattr(f, "write"):
                f.write(b"partial bytes")  # the disk fills mid-file
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_while_checkpointing_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    modules, optimizer, scheduler = _loop_parts()
    save_checkpoint(tmp_path, _state(10), modules, optimizer, scheduler, None)
    _full_disk_after(monkeypatch, 1)  # step 20: modules.pt written, optim.pt hits the full disk
    with pytest.raises(ProtegeError) as info:
        save_checkpoint(tmp_path, _state(20), modules, optimizer, scheduler, None)
    msg = str(info.value)
    assert "\n" not in msg and "no space left on the disk while writing the checkpoint at step 20" in msg
    weights = tensor_bytes(modules["model"].state_dict())
    stated = float(re.search(r"needs about ([0-9.]+) kB free", msg).group(1)) * 1e3
    assert 3 * weights <= stated <= 3 * weights + 6e3  # weights, AdamW's two moments, the RNG states
    assert "the last checkpoint (step 10) is kept" in msg and "--resume" in msg
    root = tmp_path / "checkpoints"
    assert latest_step(tmp_path) == 10 and (root / "step-10" / "modules.pt").is_file()
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-10"]  # no .step-20.tmp left


def test_a_full_disk_before_any_checkpoint_says_nothing_is_kept(tmp_path, monkeypatch):
    modules, optimizer, scheduler = _loop_parts()
    _full_disk_after(monkeypatch, 0)
    with pytest.raises(ProtegeError, match="no checkpoint had been written yet"):
        save_checkpoint(tmp_path, _state(5), modules, optimizer, scheduler, None)
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_a_full_disk_while_keeping_the_best_weights(tmp_path, monkeypatch):
    modules, optimizer, scheduler = _loop_parts()
    save_checkpoint(tmp_path, _state(3), modules, optimizer, scheduler, None)
    _full_disk_after(monkeypatch, 0)
    with pytest.raises(ProtegeError, match=r"while keeping the best weights .*step 3\) is kept"):
        save_best(tmp_path, modules["model"])
    assert not (tmp_path / ".best.pt.tmp").exists() and not (tmp_path / "best.pt").exists()


def test_other_write_errors_are_not_called_a_full_disk(tmp_path, monkeypatch):
    modules, optimizer, scheduler = _loop_parts()

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(torch, "save", denied)
    with pytest.raises(PermissionError):
        save_checkpoint(tmp_path, _state(1), modules, optimizer, scheduler, None)
    assert not list((tmp_path / "checkpoints").glob(".step-*"))


def _staged_run(tmp_path, tiny_teacher):
    stage = tmp_path / ".out.partial"
    modules, optimizer, scheduler = _loop_parts()
    save_checkpoint(stage, _state(7), modules, optimizer, scheduler, None)
    (stage / "train_log.jsonl").write_text("{}\n")
    return stage


def _finish(stage, out, **kwargs):
    return finish_run(stage, out, method="distill", measure=dict, config={}, **kwargs)


def test_a_full_disk_while_saving_the_model_removes_what_it_wrote(tmp_path, tiny_teacher, monkeypatch):
    stage = _staged_run(tmp_path, tiny_teacher)

    def save_pretrained(folder, *a, **k):
        (Path(folder) / "config.json").write_text("{}")
        (Path(folder) / "model.safetensors").write_bytes(b"\0" * 1000)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tiny_teacher, "save_pretrained", save_pretrained)
    with pytest.raises(ProtegeError) as info:
        _finish(stage, tmp_path / "out", model=tiny_teacher)
    msg = str(info.value)
    needed = tensor_bytes(tiny_teacher.state_dict())
    assert "\n" not in msg and "while saving the model" in msg and f"about {needed / 1e3:.1f} kB" in msg
    assert "the last checkpoint (step 7) is kept" in msg
    assert sorted(p.name for p in stage.iterdir()) == ["checkpoints", "train_log.jsonl"]
    assert not (tmp_path / "out").exists()


def test_a_weights_file_that_came_out_short_is_a_full_disk(tmp_path, tiny_teacher, monkeypatch):
    stage = _staged_run(tmp_path, tiny_teacher)

    def save(folder):  # the write "succeeded" but the file is cut: what a full disk can do silently
        tiny_teacher.save_pretrained(folder)
        weights = Path(folder) / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:500])

    with pytest.raises(ProtegeError, match=r"no space left on the disk while saving the model.*step 7\) is kept"):
        _finish(stage, tmp_path / "out", save=save)
    assert sorted(p.name for p in stage.iterdir()) == ["checkpoints", "train_log.jsonl"]


def test_a_full_disk_while_writing_metrics(tmp_path, tiny_teacher, monkeypatch):
    from protege.engine import finish

    stage = _staged_run(tmp_path, tiny_teacher)

    def full(*a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(finish, "write_json_atomic", full)
    with pytest.raises(ProtegeError, match="while writing metrics.json"):
        _finish(stage, tmp_path / "out", model=tiny_teacher, tokenizer=None)
    assert (stage / "checkpoints").is_dir() and (stage / "model.safetensors").is_file()  # saved before: kept
