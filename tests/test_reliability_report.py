"""Issue 12, item 16 (report): runs scored on different evaluation rows are flagged (a fingerprint of the
evaluation set is recorded), and timings too noisy to trust are said to be."""

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from protege.data import Examples
from protege.evaluation.fingerprint import eval_fingerprint
from protege.evaluation.speed import measure_speed, timing_spread
from protege.reporting.collect import collect_runs
from protege.reporting.table import build_table


def _builders():
    """The run-folder builders of tests/reporting/conftest.py, loaded by path (not as a second "conftest")."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("reporting_builders", Path(__file__).parent / "reporting" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.student_metrics, module.teacher_metrics, module.write_run


student_metrics, teacher_metrics, write_run = _builders()


def _examples(texts, labels, pairs=None, source="dev.tsv"):
    return Examples(list(texts), pairs, list(labels), source, "sentence", "sentence2" if pairs else None, "label")


def test_the_fingerprint_changes_with_rows_order_and_labels_but_not_the_name():
    base = eval_fingerprint(_examples(["a", "b"], [0, 1]))
    assert base.startswith("sha256:") and len(base) == 7 + 64
    assert eval_fingerprint(_examples(["a", "b"], [0, 1], source="elsewhere.tsv")) == base
    assert eval_fingerprint(_examples(["a", "b"], np.array([0, 1]))) == base  # numpy labels hash like ints
    for other in (_examples(["b", "a"], [1, 0]), _examples(["a", "b"], [0, 0]), _examples(["a"], [0]),
                  _examples(["a", "b"], [0, 1], pairs=["x", "y"])):
        assert eval_fingerprint(other) != base


def test_compare_models_records_the_fingerprint(tiny_teacher, tiny_tokenizer):
    from protege.evaluation import compare_models

    ex = _examples(["a good film", "a dull plot"], [1, 0])
    m = compare_models(("s", tiny_teacher, tiny_tokenizer, None), ("t", copy.deepcopy(tiny_teacher), tiny_tokenizer, None),
                       examples=ex, problem_type="single_label_classification", speed=False)
    assert m["eval"]["fingerprint"] == m["teacher"]["eval"]["fingerprint"] == eval_fingerprint(ex)


def _with_fp(metrics, fp):
    metrics["eval"]["fingerprint"] = fp
    return metrics


def test_report_flags_runs_scored_on_different_rows_under_one_name(tmp_path):
    teacher = _with_fp(teacher_metrics(), "sha256:" + "a" * 64)
    student = _with_fp(student_metrics(), "sha256:" + "b" * 64)  # same file name, other rows
    del student["teacher"]["eval"]  # no same-session teacher score: the teacher run's would be used
    write_run(tmp_path / "runs" / "teacher", teacher)
    write_run(tmp_path / "runs" / "student", student)
    runs, _ = collect_runs([tmp_path / "runs"])
    table = build_table(runs)
    rows = {r["run"]: r for r in table.rows}
    assert rows["teacher"]["eval_data"] == "data/dev.tsv [set A]" and rows["student"]["eval_data"] == "data/dev.tsv [set B]"
    assert rows["student"].get("retention") is None  # not against a teacher scored on other rows
    notes = "\n".join(table.notes)
    assert "2 different data sets" in notes and "student: no retention" in notes and "different rows" in notes


def test_report_trusts_equal_fingerprints_and_runs_without_one(tmp_path):
    fp = "sha256:" + "c" * 64
    student = _with_fp(student_metrics(), fp)
    del student["teacher"]["eval"]
    write_run(tmp_path / "runs" / "teacher", _with_fp(teacher_metrics(), fp))
    write_run(tmp_path / "runs" / "student", student)
    write_run(tmp_path / "runs" / "old", student_metrics(out="runs/old"))  # made before fingerprints: not flagged
    table = build_table(collect_runs([tmp_path / "runs"])[0])
    assert all("eval_data" not in r for r in table.rows)
    assert {r["run"]: r for r in table.rows}["student"]["retention"] == pytest.approx(0.88 / 0.90)


@pytest.mark.parametrize("cv, noisy", [(0.25, True), (0.02, False)])
def test_report_says_when_timings_are_too_noisy(tmp_path, cv, noisy):
    student = student_metrics()
    student["speed"]["latency_cv"] = cv
    write_run(tmp_path / "runs" / "teacher", teacher_metrics())
    write_run(tmp_path / "runs" / "student", student)
    notes = "\n".join(build_table(collect_runs([tmp_path / "runs"])[0]).notes)
    assert ("student: timings too noisy to trust (repeated rounds varied 25%" in notes) is noisy


def test_remeasured_noisy_timings_are_flagged_too(tmp_path):
    write_run(tmp_path / "runs" / "teacher", teacher_metrics())
    runs = collect_runs([tmp_path / "runs"])[0]
    timings = {Path(tmp_path / "runs" / "teacher").resolve(): {**runs[0].metrics["speed"], "throughput_cv": 0.4}}
    notes = "\n".join(build_table(runs, timings=timings).notes)
    assert "teacher: timings too noisy to trust (repeated rounds varied 40%" in notes


def test_timing_spread_separates_noise_from_input_length():
    rng = np.random.default_rng(0)
    inputs = np.arange(400) % 64
    steady = (1 + inputs / 16) * (1 + 0.01 * rng.standard_normal(400))  # lengths vary 5x, noise 1%
    assert timing_spread(steady, inputs) < 0.02
    busy = steady.copy()
    busy[160:240] *= 2  # another process took the CPU for one round
    assert timing_spread(busy, inputs) > 0.10
    assert timing_spread(steady[:64], inputs[:64]) is None  # no input ran twice: cannot tell


def test_measure_speed_reports_its_spread(tiny_teacher, tiny_tokenizer):
    r = measure_speed(tiny_teacher, tiny_tokenizer, ["a good film", "dull"], max_seconds=0.2, min_runs=20)
    assert r["latency_cv"] is not None and r["latency_cv"] >= 0
    assert r["throughput_cv"] is not None and json.dumps(r)
