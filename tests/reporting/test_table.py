"""The comparison table: its numbers are the metrics files', ratios only from comparable numbers."""

import pytest

from protege.errors import ProtegeError
from protege.reporting.collect import collect_runs
from protege.reporting.table import build_table, sort_rows
from protege.reporting.text import format_markdown, format_text


def table_of(*paths):
    runs, skipped = collect_runs(list(paths))
    assert not skipped
    return build_table(runs)


def rows_by_name(table):
    return {r["run"]: r for r in table.rows}


def test_numbers_equal_the_metrics_files(pair):
    table = table_of(pair)
    assert [r["run"] for r in table.rows] == ["teacher", "student"]  # teacher first, then its students
    t, s = table.rows
    assert s["teacher"] == "teacher" and t["teacher"] is None
    for row, run in ((t, "teacher"), (s, "student")):
        m = row["_run"].metrics
        assert row["accuracy"] == m["eval"]["metrics"]["accuracy"]
        assert row["f1"] == m["eval"]["metrics"]["f1"]
        assert row["parameters"] == m["size"]["parameters"]
        assert row["non_embedding_parameters"] == m["size"]["non_embedding_parameters"]
        assert row["disk_mb"] == m["size"]["disk_bytes"] / 1e6
        assert row["latency_p50"] == m["speed"]["latency_ms_p50"]
        assert row["latency_p95"] == m["speed"]["latency_ms_p95"]
        assert row["throughput"] == m["speed"]["throughput_per_s"]
        assert row["train_time"] == m["training"]["seconds"]
        assert row["method"] == m["method"]
    m = s["_run"].metrics
    assert s["agreement"] == m["eval"]["agreement"]["agreement"]
    assert s["retention"] == pytest.approx(m["eval"]["metrics"]["accuracy"] / m["teacher"]["eval"]["metrics"]["accuracy"])
    assert s["speedup"] == pytest.approx(m["teacher"]["speed"]["latency_ms_p50"] / m["speed"]["latency_ms_p50"])
    assert t.get("retention") is None and t.get("speedup") is None
    assert "loss kd 1 + ce 0.5" in s["settings"] and "T 2" in s["settings"] and "hidden" not in s["settings"]
    assert s["data"] == "data/train.tsv"
    assert {r["timed_on"] for r in table.rows} == {"A"}
    assert "sparsity" not in [c.key for c in table.columns]  # no run has one


def test_the_teacher_run_is_the_reference_only_on_the_same_data_and_setting(tmp_path, fx):
    runs = tmp_path / "runs"
    fx.write(runs / "teacher", fx.teacher(accuracy=0.80, p50=8.0))
    bare = fx.student(out="runs/same", accuracy=0.76, p50=4.0)
    del bare["teacher"]  # only the config names it: the teacher run's own numbers are the reference
    fx.write(runs / "same", bare)
    fx.write(runs / "other_data", {**bare, "model": "runs/other_data",
                                   "eval": {**bare["eval"], "source": "data/test.tsv"}})
    fx.write(runs / "other_cpu", {**bare, "model": "runs/other_cpu", "speed": fx.speed(2.0, 3.0, 500.0, threads=16)})
    table = table_of(runs)
    rows = rows_by_name(table)
    assert rows["same"]["retention"] == pytest.approx(0.76 / 0.80)
    assert rows["same"]["speedup"] == pytest.approx(8.0 / 4.0)
    assert rows["other_data"]["retention"] is None
    assert rows["other_data"]["eval_data"] == "data/test.tsv"
    assert rows["other_cpu"]["speedup"] is None and rows["other_cpu"]["retention"] == pytest.approx(0.76 / 0.80)
    assert rows["other_cpu"]["timed_on"] == "B" and rows["same"]["timed_on"] == "A"
    notes = "\n".join(table.notes)
    assert "2 different machines or settings (A, B)" in notes and "--remeasure" in notes
    assert "timed on B: Test CPU, 16 threads" in notes
    assert "other_data: no retention" in notes and "other_cpu: no speedup" in notes
    assert "2 different data sets" in notes


def test_sort_is_best_first_with_missing_values_last(tmp_path, fx):
    for name, acc, p50 in [("a", 0.85, 6.0), ("b", 0.89, 3.0), ("c", 0.87, 4.0)]:
        fx.write(tmp_path / name, fx.student(out=name, accuracy=acc, p50=p50))
    fx.write(tmp_path / "teacher", fx.teacher(out="teacher", speed=None))
    table = table_of(tmp_path)
    sort_rows(table, "accuracy")
    assert [r["run"] for r in table.rows] == ["teacher", "b", "c", "a"]
    sort_rows(table, "latency")
    assert [r["run"] for r in table.rows] == ["b", "c", "a", "teacher"]
    sort_rows(table, "run")
    assert [r["run"] for r in table.rows] == ["a", "b", "c", "teacher"]
    with pytest.raises(ProtegeError, match="cannot sort by 'speed'.*latency_p50"):
        sort_rows(table, "speed")


def test_sparsity_secrets_and_unknown_methods(tmp_path, fx):
    fx.write(tmp_path / "teacher", fx.teacher(out="teacher"))
    pruned = fx.student(out="p60", teacher="teacher", method="prune", sparsity={"overall": 0.6, "per_layer": {}},
                        config={"method": "magnitude", "scope": "global", "api_key": "SECRET", "student_layers": None})
    fx.write(tmp_path / "p60", pruned)
    fx.write(tmp_path / "p30", fx.student(out="p30", teacher="teacher", method="prune", sparsity=30.0))
    rows = rows_by_name(table_of(tmp_path))
    assert rows["p60"]["sparsity"] == 0.6 and rows["p30"]["sparsity"] == 0.3
    assert rows["p60"]["method"] == "prune (magnitude)"
    assert "scope global" in rows["p60"]["settings"] and "SECRET" not in rows["p60"]["settings"]
    assert rows["teacher"]["sparsity"] is None


def test_text_and_markdown_show_the_same_cells(pair):
    table = table_of(pair)
    text, md = format_text(table), format_markdown(table, title="T")
    for needle in ("0.8800", "0.9500", "97.8%", "17.4M", "70.0", "5.00", "7.00", "2.00x", "1m 01s", "2m 05s"):
        assert needle in text and needle in md, needle
    header = md.splitlines()[2]
    assert header.startswith("| run | teacher | method | accuracy |")
    assert md.count("\n| ") == 4  # header, alignment and two rows
    assert "how each run was made" in text and "3 layers kept" in text


def test_no_runs_is_an_error():
    with pytest.raises(ProtegeError):
        build_table([])
