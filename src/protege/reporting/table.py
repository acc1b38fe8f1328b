"""The comparison table: one row per run, each against its teacher, with honest latency columns.

Quality ratios use the teacher's numbers from the run's own metrics.json when it has them (same
data, same session), else the teacher run's, and only when both were scored on the same data.
Latency is labelled with where it was measured (a letter per machine and setting); a speedup
is computed only from timings made under the same setting. Runs scored on different rows (their
evaluation fingerprints differ) and timings too noisy to trust are flagged.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from pathlib import Path

from protege.errors import ProtegeError
from protege.evaluation.metrics import LOWER_IS_BETTER, TASK_KEYS
from protege.reporting.describe import (key_settings, method_of, part, primary_of, short, source_of, sparsity_of,
                                        train_data_of)
from protege.utils.fmt import fmt_count, fmt_num, num
from protege.reporting.collect import NOISY_TIMING, Run, eval_fingerprint_of, eval_sets, teacher_of, teacher_ref, timing_noise

__all__ = ["Column", "Table", "build_table", "sort_rows", "cell", "speed_setting", "primary_of"]


@dataclasses.dataclass(frozen=True)
class Column:
    """A column: ``key`` (also the ``--sort`` name), its label, how to format it, which way is better."""

    key: str
    label: str
    kind: str = "text"  # text, metric, percent, count, num, ratio, seconds
    better: str | None = None  # "high", "low" or None
    wide: bool = False  # long text: listed under the terminal table rather than in it


@dataclasses.dataclass
class Table:
    """Columns (only those some run has), rows (column key -> raw value; "_run": the Run, "_source": its
    evaluation data) and notes."""

    columns: list[Column]
    rows: list[dict]
    notes: list[str]
    primary: str


_BEFORE = [Column("run", "run"), Column("teacher", "teacher"), Column("method", "method"), Column("runtime", "runtime"),
           Column("precision", "precision")]
_AFTER = [
    Column("agreement", "agreement", "metric", "high"),
    Column("pearson_to_teacher", "pearson to teacher", "metric", "high"),
    Column("retention", "retention", "percent", "high"),
    Column("parameters", "params", "count", "low"),
    Column("non_embedding_parameters", "non-emb params", "count", "low"),
    Column("remaining_parameters", "non-zero params", "count", "low"),
    Column("disk_mb", "disk MB", "num", "low"),
    Column("latency_p50", "p50 ms", "num", "low"),
    Column("latency_p95", "p95 ms", "num", "low"),
    Column("throughput", "ex/s", "num", "high"),
    Column("speedup", "speedup", "ratio", "high"),
    Column("timed_on", "timed on"),
    Column("sparsity", "sparsity", "percent"),
    Column("eval_data", "eval data"),
    Column("train_time", "train time", "seconds", "low"),
    Column("data", "train data", wide=True),
    Column("settings", "settings", wide=True),
]
ALIASES = {"name": "run", "latency": "latency_p50", "p50": "latency_p50", "p95": "latency_p95", "size": "disk_mb",
           "disk": "disk_mb", "params": "parameters", "time": "train_time"}
_SPEED_KEYS = ("cpu", "threads", "device", "accelerator", "torch", "max_length", "throughput_batch_size")
# configuration shown elsewhere in the row or not worth a reader's attention


def metric_columns(runs: list[Run]) -> list[Column]:
    """One column per task metric any run has: primary metrics first, then the usual order, then others."""
    present = {k for r in runs for k, v in part(part(r.metrics, "eval"), "metrics").items() if num(v) is not None}
    order = [primary_of(r.metrics) for r in runs] + [k for k in TASK_KEYS if k in present] + sorted(present)
    return [Column(k, k, "metric", "low" if k in LOWER_IS_BETTER else "high") for k in dict.fromkeys(order)]


def all_columns(runs: list[Run]) -> list[Column]:
    """Every column the table of ``runs`` can have, in order."""
    return _BEFORE + metric_columns(runs) + _AFTER


def build_table(runs: list[Run], *, timings: dict | None = None, teacher_folders: dict | None = None) -> Table:
    """The comparison table of ``runs``, teachers first and each followed by its students.

    ``timings`` (from a re-measurement) maps a resolved model folder to a speed dict and
    replaces every recorded timing; ``teacher_folders`` maps a run name to its teacher's folder
    so the teacher's new timing gives the speedup.
    """
    if not runs:
        raise ProtegeError("no runs to put in a table")
    teachers = {r.name: teacher_of(r, runs) for r in runs}
    notes: list[str] = []
    speeds = {}
    for r in runs:
        if timings is None:
            speeds[r.name] = part(r.metrics, "speed")
        else:
            speeds[r.name] = timings.get(_key(r.folder)) or {}
    ordered = _grouped(runs, teachers)
    sessions: dict[tuple, str] = {}
    for r in ordered:
        if _has_speed(speeds[r.name]):
            sessions.setdefault(speed_setting(speeds[r.name]), chr(ord("A") + len(sessions)))
    sources = {source_of(r.metrics) for r in runs} - {None}
    sets = eval_sets(ordered)  # rows that differ even under one file name; teachers get the first letters

    rows = []
    for run in ordered:
        m, teacher = run.metrics, teachers[run.name]
        speed = speeds[run.name]
        flat = {**part(part(m, "eval"), "metrics"), **part(part(m, "eval"), "agreement"), **part(m, "size")}
        row = {"_run": run, "_source": source_of(m), "run": run.name, "method": method_of(m),
               "teacher": teacher.name if teacher else short(teacher_ref(m)),
               "runtime": m.get("runtime") if isinstance(m.get("runtime"), str) else None,
               "precision": m.get("precision") if isinstance(m.get("precision"), str) else None}
        row.update({k: num(v) for k, v in flat.items() if num(v) is not None})
        disk = num(flat.get("disk_bytes"))
        row["disk_mb"] = disk / 1e6 if disk is not None else None
        if _has_speed(speed):
            row.update(latency_p50=num(speed.get("latency_ms_p50")), latency_p95=num(speed.get("latency_ms_p95")),
                       throughput=num(speed.get("throughput_per_s")), timed_on=sessions[speed_setting(speed)])
        row["remaining_parameters"] = num(part(m, "pruning").get("remaining_parameters"))
        row.update(sparsity=sparsity_of(m), train_time=num(part(m, "training").get("seconds")),
                   data=train_data_of(m), settings=key_settings(m))
        if len(sources) > 1 or sets:
            tag = f"[set {sets[run.name]}]" if run.name in sets else None
            row["eval_data"] = " ".join(x for x in (short(source_of(m)), tag) if x) or None
        noise = timing_noise(speed)
        if noise is not None and noise > NOISY_TIMING:
            notes.append(f"{run.name}: timings too noisy to trust (repeated rounds varied {noise:.0%}, over "
                         f"{NOISY_TIMING:.0%}); re-time on an idle machine or with more --speed-seconds")
        ref_speed = None
        if timings is not None:
            ref_speed = timings.get(_key((teacher_folders or {}).get(run.name)))
        row.update(_against_teacher(run, teacher, {**flat, **speed}, ref_speed, timings is not None, notes))
        collapsed = part(m, "degenerate")
        if collapsed.get("found"):  # a collapsed model's accuracy is the majority share, not a success
            notes.append(f"{run.name}: DEGENERATE, {'; '.join(map(str, collapsed.get('reasons') or []))}: its quality and "
                         "retention reflect the data, not what it learned")
        rows.append(row)

    if any(r.get("runtime") for r in rows):  # exported runs beside PyTorch ones: say what each ran in
        for r in rows:
            r["runtime"], r["precision"] = r.get("runtime") or "pytorch", r.get("precision") or "fp32"
    columns = [c for c in all_columns(runs) if c.key == "run" or any(r.get(c.key) is not None for r in rows)]
    notes[:0] = _speed_notes(sessions, timings is not None)
    if len(sources) > 1 or sets:
        notes.insert(0, f"Quality was measured on {max(len(sources), len(set(sets.values())))} different data sets (see "
                        "'eval data'; [set X] tells apart different rows under one name): compare task metrics only "
                        "between runs scored on the same data.")
    elif sources:
        n = {part(r.metrics, "eval").get("n") for r in runs} - {None}
        notes.insert(0, f"Quality on {next(iter(sources))}" + (f" ({n.pop()} examples)." if len(n) == 1 else "."))
    notes += [f"{r.name}: {note}" for r in runs for note in r.notes]
    primary = Counter(primary_of(r.metrics) for r in runs).most_common(1)[0][0]
    return Table(columns, rows, notes, primary)


def sort_rows(table: Table, key: str) -> None:
    """Sort the rows in place by column ``key``, best first (runs without a value last)."""
    key = ALIASES.get(key, key)
    column = {c.key: c for c in all_columns([r["_run"] for r in table.rows])}.get(key)
    if column is None:
        raise ProtegeError(f"cannot sort by {key!r}; choose one of: {', '.join(sort_keys([r['_run'] for r in table.rows]))}")
    have = [r for r in table.rows if r.get(key) is not None]
    value = (lambda r: str(r[key]).lower()) if column.kind == "text" else (lambda r: r[key])
    have.sort(key=value, reverse=column.better == "high")
    table.rows[:] = have + [r for r in table.rows if r.get(key) is None]


def sort_keys(runs: list[Run]) -> list[str]:
    """The names ``sort`` accepts for ``runs``."""
    return [c.key for c in all_columns(runs)]


def cell(column: Column, value) -> str:
    """A value as the table shows it ("-" when missing)."""
    if value is None:
        return "-"
    kind = column.kind
    if kind == "text":
        return str(value)
    if kind == "metric":
        return f"{value:.4f}"
    if kind == "percent":
        return f"{100 * value:.1f}%"
    if kind == "count":
        return fmt_count(value)
    if kind == "ratio":
        return f"{value:.2f}x"
    if kind == "seconds":
        return _fmt_duration(value)
    return fmt_num(value)


def speed_setting(speed: dict) -> tuple:
    """What a timing depends on besides the model: machine, threads, device, torch, max length, batch."""
    return tuple((k, speed.get(k)) for k in _SPEED_KEYS if speed.get(k) is not None)


def describe_setting(setting: tuple) -> str:
    d = dict(setting)
    parts = [str(d["cpu"]) if "cpu" in d else "unknown CPU"]
    if "threads" in d:
        parts.append(f"{d['threads']} threads")
    if "accelerator" in d or d.get("device", "cpu") != "cpu":
        parts.append(str(d.get("accelerator") or d.get("device")))
    parts += [f"torch {d['torch']}"] if "torch" in d else []
    parts += [f"max_length {d['max_length']}"] if "max_length" in d else []
    parts += [f"throughput at batch {d['throughput_batch_size']}"] if "throughput_batch_size" in d else []
    return ", ".join(parts)


# --- pieces ---------------------------------------------------------------------------------

def _against_teacher(run, teacher, own: dict, ref_speed, remeasured: bool, notes: list[str]) -> dict:
    """Retention and speedup of ``run`` against its teacher, from comparable numbers only."""
    m = run.metrics
    if teacher_ref(m) is None:
        return {}
    recorded = part(m, "teacher")
    ref_quality = part(part(recorded, "eval"), "metrics")
    if not ref_quality and teacher is not None:
        fps = eval_fingerprint_of(m), eval_fingerprint_of(teacher.metrics)
        same = fps[0] == fps[1] if all(fps) else _same(source_of(m), source_of(teacher.metrics))
        if same:
            ref_quality = part(teacher.metrics.get("eval") or {}, "metrics")
        elif source_of(m) and source_of(teacher.metrics):
            notes.append(f"{run.name}: no retention, it and its teacher were scored on different data"
                         + (" (same name, different rows)" if _same(source_of(m), source_of(teacher.metrics)) else ""))
    if not remeasured:
        ref_speed = part(recorded, "speed")  # timed with the run, interleaved: the honest pair
        if not _has_speed(ref_speed) and teacher is not None and _has_speed(part(teacher.metrics, "speed")):
            if speed_setting(part(teacher.metrics, "speed")) == speed_setting(own):
                ref_speed = part(teacher.metrics, "speed")
            elif _has_speed(own):
                notes.append(f"{run.name}: no speedup, it and its teacher were timed under different settings "
                             "(use --remeasure)")
    elif _has_speed(own) and not _has_speed(ref_speed):
        notes.append(f"{run.name}: no speedup, its teacher's model folder was not found to re-time")
    key = primary_of(m)
    return {"retention": ratio(own.get(key), ref_quality.get(key)),
            "speedup": ratio((ref_speed or {}).get("latency_ms_p50"), own.get("latency_ms_p50"))}


def _speed_notes(sessions: dict, remeasured: bool) -> list[str]:
    if not sessions:
        return ["No model could be re-timed here (see below)." if remeasured else
                "No latency recorded (runs made with --no-speed); re-time every model here with --remeasure."]
    if remeasured:  # one session: one setting
        return [f"Latency re-timed here, all models interleaved in one session ({describe_setting(next(iter(sessions)))})."]
    legend = [f"timed on {label}: {describe_setting(s)}" for s, label in sessions.items()]
    how = ("Speedups compare each run with its teacher timed in the same session (or, when the run recorded no "
           "teacher timing, with the teacher run's own timing under the same setting).")
    if len(sessions) > 1:
        return [f"Latency comes from {len(sessions)} different machines or settings ({', '.join(sessions.values())}): "
                "compare latency only between rows with the same 'timed on' letter, or re-time all models here with "
                "--remeasure."] + legend + [how]
    return legend + [how]


def _grouped(runs, teachers) -> list[Run]:
    """Runs in their order, but each teacher first and followed by its students (recursively)."""
    children: dict[str, list[Run]] = {r.name: [] for r in runs}
    for r in runs:
        if teachers[r.name] is not None:
            children[teachers[r.name].name].append(r)
    out, seen = [], set()

    def place(r):
        if r.name not in seen:
            seen.add(r.name)
            out.append(r)
            for c in children[r.name]:
                place(c)

    for r in runs:
        root, chain = r, {r.name}
        while teachers[root.name] is not None and teachers[root.name].name not in chain:
            root = teachers[root.name]
            chain.add(root.name)
        place(root)
        place(r)
    return out


def _has_speed(speed) -> bool:
    return isinstance(speed, dict) and num(speed.get("latency_ms_p50")) is not None


def _key(folder):
    return Path(folder).resolve() if folder else None


def _same(a, b) -> bool:
    if a is None or b is None:
        return a == b
    return a == b or Path(a).expanduser().resolve() == Path(b).expanduser().resolve()


def ratio(a, b):
    a, b = num(a), num(b)
    return a / b if a is not None and b else None


def _fmt_duration(seconds: float) -> str:
    s = int(round(seconds))
    if s < 60:
        return f"{seconds:.0f}s" if seconds >= 1 else f"{seconds:.1f}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"

