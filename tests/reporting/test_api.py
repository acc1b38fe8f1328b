"""``protege report`` end to end: the page, the Markdown, the plots, broken folders, --remeasure."""

import base64
import json
import re
import shutil
import sys

import pytest

import protege
from protege.cli.main import main
from protege.errors import ProtegeError
from protege.reporting import Report

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def zoo(pair, fx):
    """The teacher and student of ``pair``, two pruned runs and an extraction run with its query history."""
    for name, sparsity, acc, p50 in [("p50", 0.5, 0.87, 9.0), ("p80", 0.8, 0.80, 8.5)]:
        fx.write(pair / name, fx.student(out=f"runs/{name}", method="prune", accuracy=acc, p50=p50, training=None,
                                         pruning={"method": "magnitude", "sparsity": sparsity, "remaining_parameters": 9e6},
                                         config={"method": "magnitude", "sparsity": 0.9}))
    for budget, agreement, acc in [(1000, 0.7, 0.82), (5000, 0.8, 0.85)]:  # one attack at two budgets, as extract writes it
        fx.write(pair / f"random{budget}", fx.student(
            out=f"runs/random{budget}", method="extract", accuracy=acc, eval={"agreement": {"agreement": agreement}}, student=None,
            extraction={"victim": "http://127.0.0.1:8000", "queries": "random", "targets": "hard", "budget": budget}))
    history = [{"step": s, "queries": q, "eval": {"accuracy": a, "agreement": g}}
               for s, q, a, g in [(10, 1000, 0.7, 0.75), (20, 5000, 0.8, 0.86), (30, 10000, 0.84, 0.91)]]
    fx.write(pair / "stolen", fx.student(out="runs/stolen", method="extract", history=history, accuracy=0.84,
                                         config={"victim": "http://127.0.0.1:8000", "api_key": "K-123", "budget": 10000}))
    return pair


def test_cli_writes_a_self_contained_page_markdown_and_plots(zoo, tmp_path, capsys):
    broken = zoo / "broken"
    broken.mkdir()
    (broken / "metrics.json").write_text("{not json")
    out = tmp_path / "report"
    assert main(["report", str(zoo / "teacher"), str(zoo), "--out", str(out), "--sort", "accuracy"]) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [f"protege: skipped {broken}: metrics.json is not valid JSON (line 1: "
                                                 "Expecting property name enclosed in double quotes)"]
    pngs = {"quality-vs-latency.png", "quality-vs-size.png", "sparsity.png", "extraction.png",
            "curves-teacher.png", "curves-student.png", "curves-stolen.png"}
    assert {"index.html", "report.md", "report.json"} | pngs <= {p.name for p in out.iterdir()}
    assert all((out / p).read_bytes().startswith(PNG) for p in pngs)

    table = json.loads((out / "report.json").read_text())
    names = [r["run"] for r in table["rows"]]
    assert names == ["teacher", "student", "p50", "random5000", "stolen", "random1000", "p80"]  # --sort accuracy
    assert table["skipped"] == [[str(broken), "metrics.json is not valid JSON (line 1: Expecting property name "
                                 "enclosed in double quotes)"]]
    assert re.search(r"^teacher +- +finetune +0.9000", captured.out, re.M) and "0.8800" in captured.out
    assert f"report written to {out / 'index.html'}" in captured.out

    page = (out / "index.html").read_text()
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert not re.search(r"<link\b|<script[^>]+src=|@import|url\(", page, re.I)
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    images = re.findall(r'<img src="data:image/png;base64,([A-Za-z0-9+/=]+)"', page)
    assert len(images) == len(pngs) == page.count("<img ")
    assert {base64.b64decode(i) for i in images} == {(out / p).read_bytes() for p in pngs}
    assert "K-123" not in page and "not valid JSON" in page
    assert "outlined in red: student, teacher." in page  # the front of quality vs latency
    rows = {r["run"]: r for r in table["rows"]}
    assert rows["p80"]["sparsity"] == 0.8 and rows["p80"]["remaining_parameters"] == 9e6  # measured, not asked for
    assert "loss" not in rows["p80"]["settings"] and "sparsity 0.9" in rows["p80"]["settings"]  # no training
    assert '<th class="num" data-key="accuracy" data-better="high">' in page and "<script>" in page

    md = (out / "report.md").read_text()
    assert md.startswith("# protege report\n\n| run | teacher | method | accuracy |")
    for p in pngs:
        assert f"]({p})" in md


def test_nothing_to_report_is_one_line_and_exit_code_2(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", str(tmp_path / "missing"), str(tmp_path), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("protege: error: nothing to report: ")
    assert str(tmp_path / "missing") in err[0] and "no such file or folder" in err[0]
    assert not out.exists()


def test_output_folder_is_checked_and_a_rerun_replaces_old_plots(pair, tmp_path, fx, capsys):
    assert main(["report", str(pair), "--out", str(pair / "student")]) == 2
    assert "is a run folder" in capsys.readouterr().err
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "mine.txt").write_text("keep")
    assert main(["report", str(pair), "--out", str(busy)]) == 2
    assert "not empty" in capsys.readouterr().err and (busy / "mine.txt").read_text() == "keep"
    assert main(["report", str(pair), "--out", str(tmp_path / "r"), "--sort", "speed"]) == 2
    assert "cannot sort by 'speed'" in capsys.readouterr().err

    out = tmp_path / "r"
    report = protege.report(pair, out=out)
    assert isinstance(report, Report) and (out / "curves-student.png").exists()
    shutil.rmtree(pair / "student")
    again = protege.report([pair], out=out, plots=False)  # the package is callable too, once imported
    assert [r["run"] for r in again.rows] == ["teacher"]
    assert not list(out.glob("*.png"))
    with pytest.raises(ProtegeError, match="max.length"):  # the flag spelling, --max-length
        protege.report(pair, out=out, max_length=0)
    for _ in range(2):  # a report folder among the runs is not a broken run
        assert protege.report(pair, out=pair / "report", plots=False).skipped == []


def test_missing_matplotlib_names_the_extra(pair, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(ProtegeError, match=r"pip install 'protege\[report\]'"):
        protege.report(pair, out=tmp_path / "r")
    assert not (tmp_path / "r").exists()
    assert protege.report(pair, out=tmp_path / "r", plots=False).files[-1].name == "index.html"


def test_remeasure_times_every_model_in_one_session(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    runs = tmp_path / "runs"
    teacher = runs / "teacher"
    shutil.copytree(tiny_teacher_dir, teacher)
    dev = str(tiny_data_dir / "dev.tsv")
    # a model folder without metrics.json is not a run yet: evaluate writes one, made with no timing
    assert main(["report", str(teacher), "--out", str(tmp_path / "r")]) == 2
    assert "protege evaluate" in capsys.readouterr().err
    assert main(["evaluate", str(teacher), "--eval", dev, "--no-speed", "--out", str(teacher / "metrics.json")]) == 0
    assert main(["distill", "--teacher", str(teacher), "--train", str(tiny_data_dir / "train.tsv"), "--eval", dev,
                 "--student-layers", "0,2", "--max-steps", "2", "--no-speed", "--no-progress", "--max-length", "32",
                 "--out", str(runs / "student")]) == 0
    capsys.readouterr()
    out = tmp_path / "r"
    assert main(["report", str(runs), "--out", str(out), "--plots"]) == 0
    rows = {r["run"]: r for r in json.loads((out / "report.json").read_text())["rows"]}
    assert "latency_p50" not in rows["student"] and "--remeasure" in capsys.readouterr().out

    assert main(["report", str(runs), "--out", str(out), "--remeasure", "--speed-seconds", "0.05", "--no-plots"]) == 0
    table = json.loads((out / "report.json").read_text())
    rows = {r["run"]: r for r in table["rows"]}
    assert rows["student"]["teacher"] == "teacher"
    assert rows["student"]["speedup"] == pytest.approx(rows["teacher"]["latency_p50"] / rows["student"]["latency_p50"])
    assert rows["student"]["timed_on"] == rows["teacher"]["timed_on"] == "A"
    assert any("re-timed here" in n and "max_length 32" in n for n in table["notes"])
    assert not list(out.glob("*.png"))
