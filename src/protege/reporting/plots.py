"""PNG plots of a comparison table: trade-offs with the Pareto front, training curves, sparsity, extraction.

matplotlib (the ``report`` extra) draws them on its Agg canvas through ``matplotlib.figure.Figure``,
never through ``pyplot``, so no global backend or figure state is touched.
"""

from __future__ import annotations

import dataclasses
import io
import re

from protege.errors import ProtegeError
from protege.utils.fmt import num
from protege.reporting.pareto import pareto_front
from protege.reporting.describe import primary_of, short as _short
from protege.reporting.table import Table

__all__ = ["Plot", "require_matplotlib", "make_plots", "query_history"]

_NOT_LOSSES = {"step", "epoch", "lr", "examples_per_s", "eval"}
_QUERY_KEYS = ("queries", "queries_spent", "n_queries", "num_queries", "budget_spent")
_DPI = 90


@dataclasses.dataclass(frozen=True)
class Plot:
    """One figure: its file name in the report folder, a title, a caption and the PNG bytes.

    ``points`` are the values drawn, as ``(panel, run, x, y)`` (panel: e.g. "timed on B", or None
    for a figure of one panel), so what a plot shows can be checked against the table's numbers.
    """

    file: str
    title: str
    caption: str
    png: bytes
    points: tuple = ()


def require_matplotlib() -> None:
    """Fail with a one-line error naming the extra when matplotlib is missing."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ProtegeError("plots need matplotlib: pip install 'protege[report]' (or leave plots out with --no-plots)") from None


def make_plots(table: Table) -> list[Plot]:
    """Every plot the table's runs have data for (none that would show fewer than two points)."""
    require_matplotlib()
    plots = [_tradeoff(table, "latency_p50", "batch-1 latency p50 (ms)", "quality-vs-latency.png", "latency")]
    size_key = "disk_mb" if sum(r.get("disk_mb") is not None for r in table.rows) >= 2 else "parameters"
    plots.append(_tradeoff(table, size_key, "size on disk (MB)" if size_key == "disk_mb" else "parameters",
                           "quality-vs-size.png", "size"))
    plots += [_sparsity(table), _extraction(table)]
    plots += [_curves(row["_run"], row["run"]) for row in table.rows]
    return [p for p in plots if p is not None]


def query_history(run) -> list[tuple[float, float | None, float | None]]:
    """``(queries, agreement, primary metric)`` points of an extraction run, from its history or log."""
    metrics = run.metrics
    records = list(metrics.get("history") or []) if isinstance(metrics.get("history"), list) else []
    for section in ("extract", "extraction"):
        if isinstance(metrics.get(section), dict) and isinstance(metrics[section].get("history"), list):
            records += metrics[section]["history"]
    records += list(run.log)
    primary, points = primary_of(metrics), {}
    for r in records:
        if not isinstance(r, dict):
            continue
        flat = {**r, **(r["eval"] if isinstance(r.get("eval"), dict) else {})}
        queries = next((num(flat[k]) for k in _QUERY_KEYS if num(flat.get(k)) is not None), None)
        agreement, quality = num(flat.get("agreement")), num(flat.get(primary))
        if queries is not None and (agreement is not None or quality is not None):
            points[queries] = (queries, agreement, quality)
    return [points[q] for q in sorted(points)]


# --- the figures ----------------------------------------------------------------------------

def _tradeoff(table: Table, cost_key: str, cost_label: str, file: str, what: str) -> Plot | None:
    """Quality against a cost, one Pareto front per evaluation data set (quality on different data
    does not compare). Latency timed under different settings does not compare either: each setting
    ("timed on A", "B", ... as in the table) gets its own panel, axis and fronts, never one shared axis."""
    q = table.primary
    rows = [r for r in table.rows if r.get(q) is not None and r.get(cost_key) is not None and r[cost_key] > 0]
    if len(rows) < 2:
        return None
    lower_better = next((c.better == "low" for c in table.columns if c.key == q), False)
    sessions = sorted({r.get("timed_on") for r in rows} - {None}) if what == "latency" else []
    panels = [(s, [r for r in rows if r.get("timed_on") == s]) for s in sessions] if len(sessions) > 1 else [(None, rows)]
    data = list(dict.fromkeys(r["_source"] for r in rows))  # one colour per data set, the same in every panel
    fig, axes = _figure((6.4, 4.2) if len(panels) == 1 else (4.2 * len(panels), 4.2), ncols=len(panels))
    on_front, points = [], []
    for ax, (setting, panel_rows) in zip(axes, panels):
        panel = f"timed on {setting}" if setting else None
        for g, source in enumerate(data):
            group = [r for r in panel_rows if r["_source"] == source]
            if not group:
                continue
            front = pareto_front([r[cost_key] for r in group], [r[q] for r in group],
                                 higher_quality_is_better=not lower_better)
            color = f"C{g}"
            for i, r in enumerate(group):
                ax.scatter(r[cost_key], r[q], s=60 if i in front else 30, marker="s" if r.get("teacher") is None else "o",
                           color=color, edgecolors="crimson" if i in front else "none", linewidths=1.5, zorder=3)
                ax.annotate(r["run"], (r[cost_key], r[q]), textcoords="offset points", xytext=(5, 4), fontsize=7)
                points.append((panel, r["run"], r[cost_key], r[q]))
            ax.step([group[i][cost_key] for i in front], [group[i][q] for i in front], where="post", color=color, lw=1,
                    alpha=0.8, zorder=2, label=f"front on {_short(source) or 'unknown data'}" if len(data) > 1 else "Pareto front")
            on_front += [group[i]["run"] + (f" [{setting}]" if setting else "") for i in front]
        ax.scatter([], [], marker="s", color="grey", label="teacher / no teacher")
        costs = [r[cost_key] for r in panel_rows]
        if max(costs) / min(costs) > 20:
            ax.set_xscale("log")
        ax.margins(x=0.12, y=0.08)
        ax.set_xlabel(cost_label)
        ax.set_ylabel(q)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
        ax.set_title(f"{q} vs {what}" + (f", {panel}" if panel else ""), fontsize=9)
    caption = (f"{q} against {cost_label}; runs on the Pareto front (no other run is both better and cheaper) are "
               f"outlined in red: {', '.join(on_front)}.")
    if len(data) > 1:
        caption += " Runs scored on different data are coloured apart, each with its own front."
    if len(panels) > 1:
        caption += (f" Latency was timed under {len(panels)} different settings ({', '.join(sessions)}, as in the table's "
                    "'timed on' column), which do not compare: one panel each, with its own axis and front. The table's "
                    "speedups compare each run with its teacher timed in the same session; --remeasure re-times every "
                    "model here, on one axis.")
    return Plot(file, f"Quality vs {what}", caption, _png(fig), tuple(points))


def _sparsity(table: Table) -> Plot | None:
    q = table.primary
    sparse = [r for r in table.rows if r.get("sparsity") is not None]
    by_name = {r["run"]: r for r in table.rows}
    lines: dict[tuple, list[dict]] = {}  # one line per teacher and method, starting at the dense teacher
    for r in sparse:
        dense = by_name.get(r["teacher"])
        start = [{**dense, "sparsity": 0.0}] if dense is not None and dense.get("sparsity") is None else []
        lines.setdefault((r["teacher"], r["method"]), start).append(r)
    if sum(r.get(q) is not None for pts in lines.values() for r in pts) < 2:
        return None
    panels = [(q, q, None)]
    if any(r.get("latency_p50") for r in sparse):  # one latency panel per timing setting: they do not compare
        settings = sorted({r.get("timed_on") for pts in lines.values() for r in pts if r.get("latency_p50")} - {None})
        panels += [("latency_p50", "latency p50 (ms)", None)] if len(settings) < 2 else \
            [("latency_p50", f"latency p50 (ms), timed on {s}", s) for s in settings]
    fig, axes = _figure((4.0 * len(panels), 3.6), ncols=len(panels))
    drawn = []
    for ax, (key, label, setting) in zip(axes, panels):
        for (teacher, method), rows in lines.items():
            pts = sorted((r for r in rows if r.get(key) is not None and setting in (None, r.get("timed_on"))),
                         key=lambda r: r["sparsity"])
            drawn += [(label, r["run"], 100 * r["sparsity"], r[key]) for r in pts]
            ax.plot([100 * r["sparsity"] for r in pts], [r[key] for r in pts], "o-", ms=4,
                    label=f"{method or 'pruned'} from {teacher}" if teacher else (method or "pruned"))
            for r in pts:
                ax.annotate(r["run"], (100 * r["sparsity"], r[key]), textcoords="offset points", xytext=(4, 3), fontsize=7)
        ax.set_xlabel("sparsity (%)")
        ax.set_ylabel(label)
        ax.margins(x=0.1, y=0.08)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{q} and latency vs sparsity" if len(panels) > 1 else f"{q} vs sparsity", fontsize=9)
    caption = ("Pruned runs by sparsity, one line per teacher and method, starting at the dense teacher (0%) when it is "
               "in the report.")
    if len(panels) > 2:
        caption += " Latency timed under different settings (as in the table's 'timed on' column) has one panel each."
    return Plot("sparsity.png", "Sparsity", caption, _png(fig), tuple(drawn))


def _extraction(table: Table) -> Plot | None:
    """Agreement and quality against queries spent: one line per kind of extraction across runs
    (e.g. RANDOM vs WIKI queries at several budgets), and each run's own history when it logged one."""
    lines: dict[str, list[tuple]] = {}
    for r in table.rows:
        ex = r["_run"].metrics.get("extraction")
        spent = num(ex.get("budget")) if isinstance(ex, dict) else None
        if spent is not None:
            kind = ", ".join(str(ex[k]) + suffix for k, suffix in (("queries", " queries"), ("targets", " labels")) if ex.get(k))
            lines.setdefault(kind or "extraction", []).append((spent, r.get("agreement"), r.get(table.primary)))
    for r in table.rows:
        if query_history(r["_run"]):
            lines[f"{r['run']} (during training)"] = query_history(r["_run"])
    if sum(len(points) for points in lines.values()) < 2:
        return None
    fig, axes = _figure((8.0, 3.6), ncols=2)
    for ax, idx, label in ((axes[0], 1, "agreement with the victim"), (axes[1], 2, table.primary)):
        for name, points in lines.items():
            pts = sorted((p[0], p[idx]) for p in points if p[idx] is not None)
            if pts:
                ax.plot([x for x, _ in pts], [y for _, y in pts], "o--" if "(during" in name else "o-", ms=3, label=name)
        ax.set_xlabel("queries spent")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Extraction: agreement and quality vs queries spent", fontsize=9)
    return Plot("extraction.png", "Extraction", "Agreement with the victim and task quality against the number of "
                "queries spent: one line per kind of query and answer across runs, dashed lines for a run's own "
                "history.", _png(fig))


def _curves(run, name: str) -> Plot | None:
    records = [r for r in run.log if isinstance(r, dict)]
    losses = [r for r in records if "eval" not in r and num(r.get("step")) is not None]
    evals = [r for r in records if isinstance(r.get("eval"), dict) and num(r.get("step")) is not None]
    if not evals and isinstance(run.metrics.get("history"), list):
        evals = [r for r in run.metrics["history"] if isinstance(r, dict) and isinstance(r.get("eval"), dict)
                 and num(r.get("step")) is not None]
    terms = list(dict.fromkeys(k for r in losses for k, v in r.items()
                               if k not in _NOT_LOSSES and k not in _QUERY_KEYS and num(v) is not None))
    primary = primary_of(run.metrics)
    shown = [k for k in (primary, "agreement") if any(num(r["eval"].get(k)) is not None for r in evals)]
    if not terms and not shown:
        return None
    panels = (["loss"] if terms else []) + (["eval"] if shown else [])
    fig, axes = _figure((4.0 * len(panels), 3.2), ncols=len(panels))
    for ax, panel in zip(axes, panels):
        keys, rows = (terms, losses) if panel == "loss" else (shown, [r["eval"] | {"step": r["step"]} for r in evals])
        for k in keys:
            pts = [(r["step"], num(r.get(k))) for r in rows if num(r.get(k)) is not None]
            style = "o-" if len(pts) < 12 else "-"
            ax.plot([x for x, _ in pts], [y for _, y in pts], style, ms=3, label=k, lw=2 if k == "loss" else 1)
        ax.set_xlabel("step")
        ax.set_ylabel("loss terms" if panel == "loss" else "eval")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(f"{name}: training", fontsize=9)
    what = ", ".join(terms) if terms else "no loss log"
    return Plot(f"curves-{_slug(name)}.png", f"Training: {name}", f"Loss terms ({what}) and evaluations "
                f"({', '.join(shown) or 'none'}) by step.", _png(fig))


def _figure(size, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    axes = fig.subplots(1, ncols, squeeze=False)[0]
    for ax in axes:
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
    return fig, list(axes)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI, metadata={"Software": None})
    return buf.getvalue()


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "run"
