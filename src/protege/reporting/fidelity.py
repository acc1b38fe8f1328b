"""The fidelity report drawn: reliability diagrams, slice bars, CKA and attention heatmaps, text and HTML.

Everything here reads the ``fidelity`` section of a metrics.json (what :func:`protege.evaluation.
fidelity.measure_fidelity` wrote), so ``protege evaluate --fidelity`` (PNGs and ``fidelity.jsonl``
in ``--fidelity-dir``) and ``protege report`` (a section of the HTML page) draw the same figures
from the same numbers. matplotlib draws on its Agg canvas through ``Figure``, never ``pyplot``.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from html import escape
from pathlib import Path

from protege.reporting.plots import Plot, _png, _slug
from protege.utils.fmt import num
from protege.utils.io import jsonable, write_atomic

__all__ = ["fidelity_plots", "write_fidelity_files", "fidelity_section", "Section"]

_DPI = 90
_SLICE_KINDS = ("length", "label", "confidence", "rarity")
# the summary columns of the HTML section: (figure, label, format)
_COLUMNS = [("agreement", "agreement", ".4f"), ("flips_lost", "lost", ".2%"), ("flips_gained", "gained", ".2%"),
            ("mcnemar_p_worse", "McNemar p (worse)", ".3g"), ("kl_mean", "KL mean", ".4f"), ("kl_p95", "KL p95", ".4f"),
            ("tv_mean", "TV mean", ".4f"), ("ece_teacher", "ECE teacher", ".4f"), ("ece_student", "ECE student", ".4f"),
            ("mae_delta", "MAE Δ", ".4f"), ("errors_worse", "error grew", ".2%"), ("diff_mean", "|s−t| mean", ".4f"),
            ("rare_accuracy_delta", "rare acc Δ", "+.4f"), ("rare_accuracy_gap", "rare gap", "+.4f"),
            ("ood.agreement", "OOD agreement", ".4f"), ("ood.flips_lost", "OOD lost", ".2%"), ("cka_min", "CKA min", ".3f"),
            ("attention_js_mean", "attn JS", ".3f")]


# --- plots -------------------------------------------------------------------------------------------

def fidelity_plots(fidelity: dict, *, name: str | None = None) -> list[Plot]:
    """The figures a fidelity section has data for: reliability, slices, internals (file names prefixed by ``name``)."""
    from protege.reporting.plots import require_matplotlib

    require_matplotlib()
    prefix = f"fidelity-{_slug(name)}-" if name else ""
    who = f"{name}: " if name else ""
    plots = [_reliability(fidelity, prefix, who), _slices(fidelity, prefix, who), _internals(fidelity, prefix, who)]
    return [p for p in plots if p is not None]


def _reliability(fid: dict, prefix: str, who: str) -> Plot | None:
    sets = [(label, s["calibration"]) for label, s in (("", fid), ("OOD ", fid.get("ood") or {})) if s.get("calibration")]
    if not sets:
        return None
    fig, axes = _figure((7.6, 3.5 * len(sets)), nrows=len(sets), ncols=2)
    for row, (label, cal) in zip(axes, sets):
        width = 1.0 / cal.get("bins", 15)
        for ax, role in zip(row, ("teacher", "student")):
            bins = cal[role]["bins"]
            mids = [(b["lo"] + b["hi"]) / 2 for b in bins]
            ax.bar(mids, [b["accuracy"] for b in bins], width=width * 0.95, color="C0" if role == "teacher" else "C1",
                   edgecolor="white", label="accuracy")
            ax.bar(mids, [b["confidence"] - b["accuracy"] for b in bins], bottom=[b["accuracy"] for b in bins],
                   width=width * 0.95, color="none", edgecolor="crimson", hatch="//", lw=0.6, label="gap to confidence")
            ax.plot([0, 1], [0, 1], "--", color="grey", lw=1)
            ax.set_xlim(0, 1)
            ax.set_ylim(0, 1)
            ax.set_xlabel("confidence")
            ax.set_ylabel("accuracy")
            ax.set_title(f"{label}{role}: ECE {cal[role]['ece']:.3f}, Brier {cal[role]['brier']:.3f}", fontsize=8)
            ax.legend(fontsize=6, loc="upper left")
    fig.suptitle(f"{who}reliability, teacher beside student", fontsize=9)
    return Plot(f"{prefix}reliability.png", f"{who}Reliability", "Reliability diagrams (Guo et al. 2017): accuracy per "
                "confidence bin; the hatched part is the gap to the bin's mean confidence; the dashed line is perfect "
                "calibration. ECE weighs each gap by the bin's share of examples.", _png(fig))


def _slices(fid: dict, prefix: str, who: str) -> Plot | None:
    regression = fid.get("problem_type") == "regression"
    panels = [(kind, fid["slices"][kind]) for kind in _SLICE_KINDS if len(fid.get("slices", {}).get(kind, [])) > 0]
    if fid.get("ood"):
        whole = lambda s: dict(s.get("slices", {}).get("all", [{}])[0])  # noqa: E731
        panels.append(("in vs out of distribution", [{**whole(fid), "name": "eval"}, {**whole(fid["ood"]), "name": "OOD"}]))
    if not panels:
        return None
    keys = [("mae_teacher", "teacher MAE"), ("mae_student", "student MAE")] if regression else \
        [("accuracy_teacher", "teacher accuracy"), ("accuracy_student", "student accuracy"), ("agreement", "agreement")]
    cols = min(len(panels), 3)
    rows = -(-len(panels) // cols)
    fig, axes = _figure((4.0 * cols, 3.2 * rows), nrows=rows, ncols=cols)
    flat = [ax for row in axes for ax in row]
    for ax, (kind, buckets) in zip(flat, panels):
        shown = [(k, label) for k, label in keys if any(num(b.get(k)) is not None for b in buckets)]
        w = 0.8 / max(len(shown), 1)
        for j, (k, label) in enumerate(shown):
            ax.bar([i + (j - (len(shown) - 1) / 2) * w for i in range(len(buckets))],
                   [num(b.get(k)) or 0.0 for b in buckets], width=w, label=label, color=f"C{j}")
        ax.set_xticks(range(len(buckets)), [f"{b['name']}\nn={b['n']}" for b in buckets], fontsize=6)
        if not regression:
            values = [num(b.get(k)) for b in buckets for k, _ in shown if num(b.get(k)) is not None]
            ax.set_ylim(max(0.0, min(values, default=0.0) - 0.1), 1.0)
        ax.set_title(kind, fontsize=8)
        ax.grid(axis="y", alpha=0.3)
    for ax in flat[len(panels):]:
        ax.set_visible(False)
    flat[0].legend(fontsize=6)
    fig.suptitle(f"{who}slices", fontsize=9)
    caption = ("Teacher and student by slice: input length (tokens, quartiles), gold label, the teacher's confidence, "
               "examples holding a token rare in the training data against the rest"
               + (", and the out-of-distribution set against the evaluation set." if fid.get("ood") else "."))
    return Plot(f"{prefix}slices.png", f"{who}Slices", caption, _png(fig))


def _internals(fid: dict, prefix: str, who: str) -> Plot | None:
    inside = fid.get("internals") or {}
    cka = inside.get("cka")
    if not cka:
        return None
    js = [layer for layer in inside.get("attention_js") or []]
    has_js = any(js)
    fig, axes = _figure((8.0 if has_js else 4.4, 0.5 * len(cka) + 2.4), ncols=2 if has_js else 1)
    ax = axes[0][0]
    im = ax.imshow(cka, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for j, t in enumerate(inside.get("layer_map") or []):
        ax.add_patch(_rect(t, j))
        ax.text(t, j, f"{cka[j][t]:.2f}", ha="center", va="center", fontsize=6, color="white")
    ax.set_xticks(range(len(cka[0])))
    ax.set_yticks(range(len(cka)))
    ax.set_xlabel("teacher layer")
    ax.set_ylabel("student layer")
    ax.set_title("linear CKA (mapped layers outlined)", fontsize=8)
    fig.colorbar(im, ax=ax, shrink=0.8)
    if has_js:
        ax = axes[0][1]
        width = max(len(layer) for layer in js if layer)
        grid = [[(layer[h] if layer and h < len(layer) else float("nan")) for h in range(width)] for layer in js]
        im = ax.imshow(grid, vmin=0, vmax=1, cmap="magma_r", aspect="auto")
        ax.set_xticks(range(width))
        ax.set_yticks(range(len(grid)))
        ax.set_xlabel("head (student)")
        ax.set_ylabel("student layer")
        ax.set_title("attention Jensen-Shannon distance to the mapped teacher head", fontsize=8)
        fig.colorbar(im, ax=ax, shrink=0.8)
    fig.suptitle(f"{who}inside the model ({inside.get('examples')} examples, {inside.get('tokens')} tokens; "
                 f"layer map {inside.get('layer_map_source', '')})", fontsize=8)
    return Plot(f"{prefix}internals.png", f"{who}Internals", "Linear CKA (Kornblith et al. 2019) of each student "
                "layer's hidden states with every teacher layer (1 = the same representation up to rotation and "
                "scale), and the Jensen-Shannon distance of each head's attention maps to its teacher head (0 = same).",
                _png(fig))


# --- files -------------------------------------------------------------------------------------------

def write_fidelity_files(folder, summary: dict, records: list[dict]) -> list[Path]:
    """``fidelity.jsonl`` (every changed example, most changed first) and the PNG plots, in ``folder``."""
    folder = Path(folder)
    text = "".join(json.dumps(jsonable(r), ensure_ascii=False, allow_nan=False) + "\n" for r in records)
    files = [write_atomic(folder / "fidelity.jsonl", text.encode("utf-8"))]
    try:
        import matplotlib  # noqa: F401
    except ImportError:  # plots are a convenience: the numbers are in metrics.json and fidelity.jsonl
        return files
    plots = fidelity_plots(summary)
    files += [write_atomic(folder / p.file, p.png) for p in plots]
    return files


# --- the HTML section of ``protege report`` ------------------------------------------------------------

@dataclass(frozen=True)
class Section:
    """An HTML block for the report page and the PNGs it shows (written beside the page too)."""

    html: str
    plots: list


def fidelity_section(runs, *, plots: bool = True) -> Section:
    """The "Fidelity" section for the runs whose metrics.json holds a ``fidelity`` object (empty if none)."""
    found = [(r.name, r.metrics["fidelity"]) for r in runs if isinstance(r.metrics.get("fidelity"), dict)]
    if not found:
        return Section("", [])
    cols = [(k, label, fmt) for k, label, fmt in _COLUMNS
            if any(num((f.get("figures") or {}).get(k)) is not None for _, f in found)]
    head = "".join(f"<th>{escape(label)}</th>" for _, label, _ in cols)
    rows = []
    for name, f in found:
        figs = f.get("figures") or {}
        cells = "".join(f"<td>{'-' if num(figs.get(k)) is None else format(figs[k], fmt)}</td>" for k, _, fmt in cols)
        gates = f.get("gates")
        verdict = "" if not gates else ("passed" if gates.get("passed") else "FAILED")
        rows.append(f'<tr><td class="text">{escape(name)}</td><td class="text">{escape(str(f.get("source", "")))}</td>'
                    f'{cells}<td class="text">{verdict}</td></tr>')
    out = ['<h2 id="fidelity">Fidelity</h2>',
           '<p class="hint">What each student lost against its teacher (Hooker et al. 2019; Dutta et al. 2024): flips '
           "are examples the teacher got right and the student wrong (lost) or the reverse (gained), with McNemar's "
           "exact test that the student is worse; KL and TV compare the output distributions; rare = examples holding a "
           "token rare in the training data; Δ = student − teacher.</p>",
           '<div class="scroll"><table class="fidelity"><thead><tr><th class="text">run</th><th class="text">data</th>'
           f'{head}<th class="text">gates</th></tr></thead><tbody>' + "\n".join(rows) + "</tbody></table></div>"]
    figures = []
    for name, f in found:
        out.append(_examples_html(name, f))
        if plots:
            figures += fidelity_plots(f, name=name)
    if figures:
        out.append('<div class="plots">')
        for p in figures:
            data = base64.b64encode(p.png).decode("ascii")
            out.append(f'<figure id="{escape(p.file)}"><img src="data:image/png;base64,{data}" alt="{escape(p.title)}">'
                       f"<figcaption>{escape(p.caption)}</figcaption></figure>")
        out.append("</div>")
    return Section("\n".join(out), figures)


def _examples_html(name: str, f: dict) -> str:
    changed = f.get("most_changed") or []
    if not changed:
        return ""
    classification = "p_teacher" in changed[0]
    head = ["change", "text", "gold", "teacher", "student"] + (["p teacher → student", "flip"] if classification else [])
    rows = []
    for r in changed:
        text = r.get("text") or ""
        if r.get("text_pair"):
            text += " ‖ " + r["text_pair"]
        gold = "" if r.get("label") is None else str(r["label"])
        cells = [f"{r['change']:+.3f}", text, gold, str(r["teacher"]), str(r["student"])]
        if classification:
            cells += [f"{r['p_teacher']:.3f} → {r['p_student']:.3f}", r.get("flip") or ""]
        rows.append("<tr>" + "".join(f'<td class="{"text wide" if i == 1 else "text" if i > 1 else "num"}">{escape(c)}</td>'
                                     for i, c in enumerate(cells)) + "</tr>")
    return (f"<details><summary>{escape(name)}: the {len(changed)} most changed examples (largest drop in the probability "
            "of the teacher's answer)</summary><div class=\"scroll\"><table class=\"fidelity\"><thead><tr>"
            + "".join(f"<th>{escape(h)}</th>" for h in head) + "</tr></thead><tbody>" + "".join(rows)
            + "</tbody></table></div></details>")


# --- helpers -----------------------------------------------------------------------------------------

def _figure(size, nrows: int = 1, ncols: int = 1):
    from matplotlib.figure import Figure

    fig = Figure(figsize=size, dpi=_DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False)
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
        ax.xaxis.label.set_size(8)
        ax.yaxis.label.set_size(8)
    return fig, [list(row) for row in axes]


def _rect(x, y):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor="crimson", lw=1.5)
