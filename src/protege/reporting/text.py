"""The comparison table as terminal text and as Markdown (for a pull request or a model card)."""

from __future__ import annotations

from protege.reporting.table import Table, cell

__all__ = ["format_text", "format_markdown"]


def format_text(table: Table) -> str:
    """An aligned plain-text table; long columns (data, settings) are listed under it, then the notes."""
    cols = [c for c in table.columns if not c.wide]
    header = [c.label for c in cols]
    body = [[cell(c, r.get(c.key)) for c in cols] for r in table.rows]
    widths = [max(len(row[i]) for row in [header] + body) for i in range(len(cols))]

    def line(cells):
        return "  ".join(s.ljust(w) if c.kind == "text" else s.rjust(w)
                         for s, w, c in zip(cells, widths, cols)).rstrip()

    out = [line(header), "  ".join("-" * w for w in widths)] + [line(row) for row in body]
    wide = [c for c in table.columns if c.wide]
    if wide:
        out += ["", "how each run was made:"]
        width = max(len(r["run"]) for r in table.rows)
        for r in table.rows:
            what = [cell(c, r.get(c.key)) for c in wide if r.get(c.key) is not None]
            out.append(f"  {r['run'].ljust(width)}  {' | '.join(what) or '-'}")
    if table.notes:
        out += [""] + [f"* {note}" for note in table.notes]
    return "\n".join(out) + "\n"


def format_markdown(table: Table, *, title: str = "protege report", plots=()) -> str:
    """A Markdown page: the whole table, the notes, and the plots as images beside the file."""
    cols = table.columns
    align = [":--" if c.kind == "text" else "--:" for c in cols]
    rows = [[c.label for c in cols], align] + [[_md(cell(c, r.get(c.key))) for c in cols] for r in table.rows]
    out = [f"# {title}", ""] + ["| " + " | ".join(row) + " |" for row in rows]
    if table.notes:
        out += [""] + [f"- {_md(note)}" for note in table.notes]
    for p in plots:
        out += ["", f"## {p.title}", "", f"![{p.title}]({p.file})", "", _md(p.caption)]
    return "\n".join(out) + "\n"


def _md(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")
