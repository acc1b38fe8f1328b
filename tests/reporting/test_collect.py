"""Finding and reading run folders; broken ones are named and skipped; teachers are matched by path."""

import json

import pytest

from protege.errors import ProtegeError
from protege.reporting.collect import collect_runs, read_run, teacher_folder, teacher_of


def test_folders_are_found_recursively_once_each_without_staging_folders(pair, fx):
    fx.write(pair / ".unfinished.partial", fx.student(out="runs/unfinished"))
    fx.write(pair / "sweep" / "a", fx.student(out="runs/sweep/a"))
    runs, skipped = collect_runs([pair / "teacher", pair, pair / "student" / "metrics.json"])
    assert [r.name for r in runs] == ["teacher", "student", "a"]
    assert skipped == []
    assert runs[1].metrics["eval"]["metrics"]["accuracy"] == 0.88
    assert [r["step"] for r in runs[1].log] == [10, 20, 20]


def test_short_names_tell_runs_apart(tmp_path, fx):
    for group in ("sst2", "imdb"):
        fx.write(tmp_path / group / "student", fx.student(out=f"{group}/student"))
    fx.write(tmp_path / "sst2" / "teacher", fx.teacher(out="sst2/teacher"))
    runs, _ = collect_runs([tmp_path])
    assert sorted(r.name for r in runs) == ["imdb/student", "sst2/student", "teacher"]


def test_broken_and_missing_folders_are_named_and_the_others_kept(pair, tmp_path, fx):
    bad_json = pair / "bad_json"
    bad_json.mkdir()
    (bad_json / "metrics.json").write_text('{"model": "x",\n "eval": {')
    not_object = fx.write(pair / "list", [1, 2])
    bad_section = fx.write(pair / "bad_section", {"model": "x", "eval": "high"})
    empty = fx.write(pair / "empty", {"model": "x"})
    model_only = pair / "model_only"
    model_only.mkdir()
    (model_only / "config.json").write_text("{}")
    nothing = tmp_path / "nothing"
    nothing.mkdir()
    fx.write(tmp_path / "busy" / ".teacher.partial", fx.teacher())
    given = [pair, model_only, nothing, tmp_path / "busy", tmp_path / "busy" / ".teacher.partial", tmp_path / "missing",
             tmp_path / "notes.txt"]
    (tmp_path / "notes.txt").write_text("hello")
    runs, skipped = collect_runs(given)
    assert {r.name for r in runs} == {"teacher", "student"}
    reasons = dict(skipped)
    assert "not valid JSON (line 2" in reasons[str(bad_json)]
    assert "not a metrics object" in reasons[str(not_object)]
    assert "'eval'" in reasons[str(bad_section)]
    assert "no measurements" in reasons[str(empty)]
    assert "protege evaluate" in reasons[str(model_only)]
    assert "no metrics.json" in reasons[str(nothing)]
    assert "no finished run in it yet (unfinished: .teacher.partial)" in reasons[str(tmp_path / "busy")]
    assert "unfinished run" in reasons[str(tmp_path / "busy" / ".teacher.partial")]
    assert "no such file" in reasons[str(tmp_path / "missing")]
    assert "not a run folder" in reasons[str(tmp_path / "notes.txt")]
    assert all("\n" not in r for r in reasons.values())


def test_a_truncated_log_line_is_skipped_with_a_note(pair):
    with (pair / "student" / "train_log.jsonl").open("a") as f:
        f.write('{"step": 30, "lo')
    run = read_run(pair / "student")
    assert len(run.log) == 3 and "1 unreadable line" in run.notes[0]


def test_a_metrics_file_is_a_run(tmp_path, pair, fx):
    file = tmp_path / "test_report.json"
    file.write_text(json.dumps(fx.student(out=str(pair / "student"))))
    run = read_run(file)
    assert run.folder == pair / "student"
    with pytest.raises(ProtegeError, match="no metrics.json"):
        read_run(tmp_path)


def test_teacher_matched_by_path_recorded_relative_to_where_the_run_was_made(pair, tmp_path, monkeypatch, fx):
    monkeypatch.chdir(tmp_path.parent)  # not where the runs were made: the recorded paths do not resolve from here
    runs, _ = collect_runs([pair])
    student, teacher = runs  # found in name order
    assert teacher_of(student, runs) is teacher
    assert teacher_of(teacher, runs) is None
    assert teacher_folder(student, runs) == pair / "teacher"
    # absolute paths, and a teacher that is not among the runs
    fx.write(pair / "abs", fx.student(out=str(pair / "abs"), teacher=str(pair / "teacher")))
    fx.write(pair / "hub", fx.student(out="runs/hub", teacher="textattack/bert-base-uncased-SST-2"))
    runs, _ = collect_runs([pair])
    by = {r.name: r for r in runs}
    assert teacher_of(by["abs"], runs) is by["teacher"]
    assert teacher_of(by["hub"], runs) is None and teacher_folder(by["hub"], runs) is None
