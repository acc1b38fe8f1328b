"""The plots draw exactly the table's numbers, and latencies timed under different settings never share an axis."""

import pytest

import protege.reporting.plots as plots
from protege.reporting.collect import collect_runs
from protege.reporting.table import build_table


@pytest.fixture
def figures(monkeypatch):
    """The matplotlib figures behind the PNGs, by file name, as :func:`make_plots` drew them."""
    drawn = []
    real = plots._png
    monkeypatch.setattr(plots, "_png", lambda fig: drawn.append(fig) or real(fig))

    def make(table):
        made = plots.make_plots(table)
        assert len(made) == len(drawn)
        return made, {p.file: fig for p, fig in zip(made, drawn)}

    return make


def table_of(folder):
    runs, skipped = collect_runs([folder])
    assert not skipped
    return build_table(runs)


def scattered(ax) -> set:
    """The (x, y) points an axes shows as markers."""
    return {(float(x), float(y)) for c in ax.collections for x, y in c.get_offsets()}


def test_latency_from_two_settings_is_two_panels_of_the_tables_numbers(tmp_path, fx, figures):
    # the teacher run was timed on another machine (40 ms); the student timed itself and its teacher here
    fx.write(tmp_path / "teacher", fx.teacher(out="teacher", p50=40.0, speed=fx.speed(40.0, 60.0, 25.0, threads=1)))
    fx.write(tmp_path / "student", fx.student(out="student", teacher="teacher", p50=1.0, teacher_p50=1.87))
    table = table_of(tmp_path)
    rows = {r["run"]: r for r in table.rows}
    assert rows["student"]["speedup"] == pytest.approx(1.87)  # the table's honest pair
    assert rows["teacher"]["timed_on"] != rows["student"]["timed_on"]

    made, figs = figures(table)
    latency = next(p for p in made if p.file == "quality-vs-latency.png")
    expected = {(f"timed on {r['timed_on']}", r["run"], r["latency_p50"], r["accuracy"]) for r in table.rows}
    assert set(latency.points) == expected and len(latency.points) == len(table.rows)

    axes = [ax for ax in figs["quality-vs-latency.png"].axes if ax.collections]
    assert len(axes) == 2  # one per setting: 40 ms and 1 ms are never on one axis
    for ax in axes:
        setting = ax.get_title().rsplit("timed on ", 1)[1]
        assert scattered(ax) == {(r["latency_p50"], r["accuracy"]) for r in table.rows if r["timed_on"] == setting}
    assert "2 different settings" in latency.caption and "--remeasure" in latency.caption


def test_latency_from_one_setting_is_one_axis_of_the_tables_numbers(pair, fx, figures):
    fx.write(pair / "small", fx.student(out="runs/small", accuracy=0.80, p50=2.5, teacher_p50=10.0))
    table = table_of(pair)
    assert len({r["timed_on"] for r in table.rows}) == 1
    made, figs = figures(table)
    latency = next(p for p in made if p.file == "quality-vs-latency.png")
    assert sorted(latency.points) == sorted((None, r["run"], r["latency_p50"], r["accuracy"]) for r in table.rows)
    (ax,) = [ax for ax in figs["quality-vs-latency.png"].axes if ax.collections]
    assert scattered(ax) == {(r["latency_p50"], r["accuracy"]) for r in table.rows}
    size = next(p for p in made if p.file == "quality-vs-size.png")
    assert sorted(size.points) == sorted((None, r["run"], r["disk_mb"], r["accuracy"]) for r in table.rows)


def test_the_sparsity_plot_keeps_latency_settings_apart(tmp_path, fx, figures):
    fx.write(tmp_path / "teacher", fx.teacher(out="teacher", p50=40.0, speed=fx.speed(40.0, 60.0, 25.0, threads=1)))
    for name, sparsity, p50 in (("p50", 0.5, 9.0), ("p80", 0.8, 8.0)):
        fx.write(tmp_path / name, fx.student(out=name, teacher="teacher", method="prune", p50=p50,
                                             pruning={"method": "magnitude", "sparsity": sparsity}))
    table = table_of(tmp_path)
    made, figs = figures(table)
    sparsity = next(p for p in made if p.file == "sparsity.png")
    latency_panels = {panel for panel, *_ in sparsity.points if panel.startswith("latency")}
    assert len(latency_panels) == 2  # the dense teacher (other machine) is not on the pruned runs' latency axis
    for panel, run, x, y in sparsity.points:
        row = next(r for r in table.rows if r["run"] == run)
        assert y == (row["latency_p50"] if panel.startswith("latency") else row["accuracy"])
        assert x == 100 * (row["sparsity"] or 0.0)
        if panel.startswith("latency"):
            assert panel.endswith(f"timed on {row['timed_on']}")
    assert len(figs["sparsity.png"].axes) == 3
