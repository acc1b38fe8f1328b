"""Runs that never lose data (issue 12): interrupted runs, --out over inputs, crashes while replacing, empty staging."""

import json
import os

import pytest

import protege.engine.staging as staging
from protege.cli.main import main

ARGS = ["--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "8", "--max-steps", "6",
        "--checkpoint-every", "2", "--lr", "1e-3"]


def _distill(teacher, data, out, *extra):
    return ["distill", "--teacher", str(teacher), "--train", str(data / "train.tsv"), "--student-layers", "0,2",
            "--out", str(out), *ARGS, *extra]


def _interrupted(teacher, data, out, monkeypatch):
    """A real run stopped by Ctrl-C just after its first checkpoint."""
    import protege.engine.trainer as trainer

    real = trainer.save_checkpoint

    def save_then_stop(*a, **kw):
        real(*a, **kw)
        raise KeyboardInterrupt

    monkeypatch.setattr(trainer, "save_checkpoint", save_then_stop)
    assert main(_distill(teacher, data, out)) == 130
    monkeypatch.setattr(trainer, "save_checkpoint", real)
    return out.parent / f".{out.name}.partial"


def test_rerun_without_resume_refuses_and_keeps_the_checkpoint(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "s"
    stage = _interrupted(tiny_teacher_dir, tiny_data_dir, out, monkeypatch)
    assert "checkpoint at step 2 is kept" in capsys.readouterr().err
    before = sorted(p.name for p in (stage / "checkpoints").iterdir())
    bad = _distill(tiny_teacher_dir, tiny_data_dir, out)
    bad[bad.index("--train") + 1] = str(tmp_path / "typo.tsv")  # a typo must not cost the checkpoint
    assert main(bad) == 2
    err = capsys.readouterr().err
    assert "--resume" in err and "--overwrite" in err and "step 2" in err
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, out)) == 2
    assert sorted(p.name for p in (stage / "checkpoints").iterdir()) == before
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, out, "--resume")) == 0
    assert json.loads((out / "metrics.json").read_text())["training"]["steps"] == 6 and not stage.exists()


def test_overwrite_starts_an_interrupted_run_over_on_purpose(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch):
    out = tmp_path / "s"
    _interrupted(tiny_teacher_dir, tiny_data_dir, out, monkeypatch)
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, out, "--overwrite")) == 0
    assert (out / "model.safetensors").exists()


def test_ctrl_c_before_any_checkpoint_says_nothing_is_resumable_and_leaves_nothing(tiny_teacher_dir, tiny_data_dir, tmp_path,
                                                                                   monkeypatch, capsys):
    import protege.objectives.task as task

    def stop(*a, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(task, "distillation_losses", stop)
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, tmp_path / "s")) == 130
    assert "nothing can be resumed" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["teacher", "inside-teacher", "contains-data"])
def test_out_may_not_be_contain_or_lie_inside_an_input(where, tiny_teacher, tiny_tokenizer, tiny_data_dir, tmp_path, capsys):
    teacher = tmp_path / "teacher"
    tiny_teacher.save_pretrained(teacher)
    tiny_tokenizer.save_pretrained(teacher)
    data = tmp_path / "data"
    data.mkdir()
    (data / "train.tsv").write_text((tiny_data_dir / "train.tsv").read_text())
    out = {"teacher": teacher, "inside-teacher": teacher / "student", "contains-data": data}[where]
    files = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    argv = ["distill", "--teacher", str(teacher), "--train", str(data / "train.tsv"), "--out", str(out), "--overwrite", *ARGS]
    assert main(argv) == 2
    assert "--out" in capsys.readouterr().err
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == files  # nothing replaced, nothing added


def test_a_crash_while_replacing_is_rolled_forward(tmp_path, monkeypatch):
    out = tmp_path / "run"
    out.mkdir()
    (out / "old.txt").write_text("old")
    stage = staging.prepare_output(out, overwrite=True, resume=False)
    stage.begin()
    (stage.path / "new.txt").write_text("new")
    real, calls = os.replace, {"n": 0}

    def crash_on_second(a, b):
        calls["n"] += 1
        if calls["n"] == 2:  # the old result moved aside, the new one not yet in place
            raise OSError("power cut")
        return real(a, b)

    monkeypatch.setattr(staging.os, "replace", crash_on_second)
    with pytest.raises(OSError):
        staging.finalize_output(stage, out)
    monkeypatch.setattr(staging.os, "replace", real)
    assert not out.exists()
    from protege.errors import NothingToDo

    with pytest.raises(NothingToDo):  # --resume finishes the move, then has nothing left to do
        staging.prepare_output(out, overwrite=False, resume=True)
    assert (out / "new.txt").read_text() == "new" and not (out / "old.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and not (out / ".complete").exists()


def test_a_crash_before_the_new_result_is_complete_puts_the_old_one_back(tmp_path):
    out = tmp_path / "run"
    (tmp_path / ".run.old").mkdir()
    (tmp_path / ".run.old" / "old.txt").write_text("old")
    staging.recover_output(out)
    assert (out / "old.txt").read_text() == "old"


@pytest.mark.parametrize("args, needle", [
    (["--train", "missing.tsv"], "no such file"),
    (["--student-layers", "0,9"], "layer"),
    (["--text-column", "nope"], "nope"),
    (["--lr", "inf"], "--lr"),
    (["--weight-decay", "nan"], "--weight-decay"),
    (["--seed", "-1"], "--seed"),
    (["--seed", str(2 ** 32)], "--seed"),
    (["--speed-seconds", "inf"], "--speed-seconds"),
])
def test_bad_input_leaves_nothing_on_disk(args, needle, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "runs" / "s"
    argv = _distill(tiny_teacher_dir, tiny_data_dir, out)
    for flag, value in zip(args[::2], args[1::2]):
        if flag in argv:
            argv[argv.index(flag) + 1] = value if flag != "--train" else str(tmp_path / value)
        else:
            argv += [flag, value]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or list((tmp_path / "runs").iterdir()) == []


def test_yaml_types_are_strict(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("lr: yes\n")
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, tmp_path / "s", "--config", str(recipe))) == 2
    assert "--lr" in capsys.readouterr().err
    recipe.write_bytes(b"\xff\xfe\x00binary")
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, tmp_path / "s", "--config", str(recipe))) == 2
    assert "UTF-8" in capsys.readouterr().err or "binary" in capsys.readouterr().err
    assert not any(tmp_path.glob(".s*"))


def test_bad_flags_fail_before_torch_is_imported():
    import subprocess
    import sys

    code = ("import sys; from protege.cli.main import main; "
            "rc = main(['distill', '--teacher', 't', '--train', 'x', '--out', 'o', '--temperature', '0']); "
            "print(rc, 'torch' in sys.modules, 'transformers' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.split() == ["2", "False", "False"]


def test_an_empty_student_layers_is_refused_not_read_as_the_default(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, tmp_path / "s", "--student-layers", "")) == 2
    assert "--student-layers is empty" in capsys.readouterr().err and not any(tmp_path.iterdir())


@pytest.mark.parametrize("verb", ["evaluate", "detect", "verify-watermark"])
def test_a_json_out_that_is_a_folder_is_refused_before_any_work(verb, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    argv = {"evaluate": ["evaluate", str(tiny_teacher_dir), "--eval", str(tiny_data_dir / "dev.tsv")],
            "detect": ["detect", str(tiny_teacher_dir), "--genuine", str(tiny_data_dir / "dev.tsv")],
            "verify-watermark": ["verify-watermark", str(tiny_teacher_dir), "--log", str(tiny_data_dir / "dev.tsv"),
                                 "--key", "k"]}[verb]
    assert main(argv + ["--out", str(folder)]) == 2
    assert "is a folder" in capsys.readouterr().err and list(folder.iterdir()) == []


def test_a_missing_local_folder_fails_at_once_not_after_the_hubs_retries(tiny_data_dir, tmp_path, capsys, monkeypatch):
    import time

    (tmp_path / "runs").mkdir()
    monkeypatch.chdir(tmp_path)
    started = time.perf_counter()
    assert main(["evaluate", "runs/nope", "--eval", str(tiny_data_dir / "dev.tsv"), "--no-speed"]) == 2
    assert "runs/nope: no such model folder" in capsys.readouterr().err
    assert time.perf_counter() - started < 10  # the hub path took ~30 s of retries here


def test_written_files_are_readable_by_others(tiny_teacher_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "s"
    assert main(_distill(tiny_teacher_dir, tiny_data_dir, out)) == 0
    modes = {p.name: p.stat().st_mode & 0o777 for p in out.iterdir() if p.is_file()}
    assert modes["model.safetensors"] == 0o644 and all(m & 0o044 == 0o044 for m in modes.values()), modes
