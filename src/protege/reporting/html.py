"""A static, self-contained HTML page: the table (sortable), its notes and the plots embedded.

Nothing is fetched: CSS and a few lines of script are inline, images are ``data:`` URIs, and a
Content-Security-Policy forbids every other source, so the page opens the same offline.
"""

from __future__ import annotations

import base64
from html import escape

from protege.reporting.table import Table, cell

__all__ = ["render_html"]

_CSS = """
:root { --fg: #1d2330; --muted: #5f6b7a; --line: #dde2e8; --head: #f3f5f8; --best: #0b7a3b; --accent: #b3261e; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--fg);
       margin: 0 auto; padding: 24px 28px 48px; max-width: 1600px; }
h1 { font-size: 22px; margin: 0 0 4px; } h2 { font-size: 17px; margin: 28px 0 10px; }
.meta, .hint, figcaption { color: var(--muted); font-size: 12.5px; }
.scroll { overflow-x: auto; border: 1px solid var(--line); border-radius: 6px; }
table { border-collapse: collapse; width: 100%; font-size: 13px; font-variant-numeric: tabular-nums; }
th, td { padding: 5px 8px; border-bottom: 1px solid var(--line); white-space: nowrap; text-align: right; }
th { background: var(--head); position: sticky; top: 0; cursor: pointer; user-select: none; font-weight: 600; }
th[data-dir="1"]::after { content: " \\25B2"; } th[data-dir="-1"]::after { content: " \\25BC"; }
th.text, td.text { text-align: left; }
td.wide { white-space: normal; min-width: 12em; max-width: 24em; font-size: 12.5px; color: var(--muted); }
td.best { color: var(--best); font-weight: 600; }
tr.root td:first-child { font-weight: 600; }
tbody tr:hover { background: #f8fafc; }
ul.notes li { margin: 3px 0; } ul.skipped li { color: var(--accent); }
.plots { display: grid; grid-template-columns: repeat(auto-fill, minmax(min(100%, 600px), 1fr)); gap: 20px; }
figure { margin: 0; padding: 10px; border: 1px solid var(--line); border-radius: 6px; }
figure img { display: block; max-width: 100%; height: auto; margin: 0 auto; }
details { margin: 10px 0; } summary { cursor: pointer; color: var(--muted); }
"""

_SCRIPT = """
for (const th of document.querySelectorAll("table.runs th")) {
  th.addEventListener("click", () => {
    const table = th.closest("table"), body = table.tBodies[0], i = th.cellIndex;
    const dir = th.dataset.dir ? -Number(th.dataset.dir) : (th.dataset.better === "high" ? -1 : 1);
    for (const other of table.querySelectorAll("th")) delete other.dataset.dir;
    th.dataset.dir = dir;
    const value = (row) => row.cells[i].dataset.v;
    const rows = Array.from(body.rows).sort((a, b) => {
      const x = value(a), y = value(b);
      if (!x || !y) return (!x) - (!y);
      const nx = Number(x), ny = Number(y);
      return dir * (isNaN(nx) || isNaN(ny) ? x.localeCompare(y) : nx - ny);
    });
    for (const row of rows) body.appendChild(row);
  });
}
"""

_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'unsafe-inline'"


def render_html(table: Table, *, title: str = "protege report", plots=(), skipped=(), meta: str = "",
                sections=()) -> str:
    """The report page as one HTML string (``plots`` are :class:`~protege.reporting.plots.Plot`; ``sections``
    are HTML blocks placed after the plots, e.g. the fidelity section)."""
    out = ["<!doctype html>", '<html lang="en"><head><meta charset="utf-8">',
           f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>",
           f"<header><h1>{escape(title)}</h1>" + (f'<p class="meta">{escape(meta)}</p>' if meta else "") + "</header>",
           "<h2>Runs</h2>", '<div class="scroll">', _table_html(table), "</div>",
           '<p class="hint">Click a column header to sort (best first, click again to reverse).</p>']
    if table.notes:
        out.append('<ul class="notes">' + "".join(f"<li>{escape(n)}</li>" for n in table.notes) + "</ul>")
    if skipped:
        out.append("<h2>Not reported</h2>")
        out.append('<ul class="skipped">' + "".join(f"<li><code>{escape(str(p))}</code>: {escape(str(why))}</li>"
                                                    for p, why in skipped) + "</ul>")
    if plots:
        out.append('<h2>Plots</h2><div class="plots">')
        for p in plots:
            data = base64.b64encode(p.png).decode("ascii")
            out.append(f'<figure id="{escape(p.file)}"><img src="data:image/png;base64,{data}" alt="{escape(p.title)}">'
                       f"<figcaption>{escape(p.caption)}</figcaption></figure>")
        out.append("</div>")
    out += [s for s in sections if s]
    out.append(f"<script>{_SCRIPT}</script></body></html>")
    return "\n".join(out) + "\n"


def _table_html(table: Table) -> str:
    cols = table.columns
    best = {c.key: _best(table, c) for c in cols}
    head = "".join(f'<th class="{"text" if c.kind == "text" else "num"}" data-key="{c.key}"'
                   + (f' data-better="{c.better}"' if c.better else "") + f">{escape(c.label)}</th>" for c in cols)
    rows = []
    for r in table.rows:
        cells = []
        for c in cols:
            v = r.get(c.key)
            classes = ["text" if c.kind == "text" else "num"] + (["wide"] if c.wide else [])
            if v is not None and best[c.key] is not None and v == best[c.key]:
                classes.append("best")
            sort_value = "" if v is None else (str(v).lower() if c.kind == "text" else repr(float(v)))
            cells.append(f'<td class="{" ".join(classes)}" data-v="{escape(sort_value)}">{escape(cell(c, v))}</td>')
        rows.append(('<tr class="root">' if r.get("teacher") is None else "<tr>") + "".join(cells) + "</tr>")
    return f'<table class="runs"><thead><tr>{head}</tr></thead><tbody>' + "\n".join(rows) + "</tbody></table>"


def _best(table: Table, column):
    """The best value of a column with a direction, when at least two runs have one."""
    values = [r[column.key] for r in table.rows if r.get(column.key) is not None]
    if column.better is None or column.kind in ("text", "seconds") or len(values) < 2:
        return None
    return max(values) if column.better == "high" else min(values)
