"""Finding run folders, reading them, and telling which run is which run's teacher.

A *run* is a folder with a ``metrics.json`` (every protege verb writes one) and usually a
``train_log.jsonl``; a metrics JSON file written by ``protege evaluate --out`` is a run too.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["Run", "collect_runs", "read_run", "teacher_of", "teacher_ref", "teacher_folder", "eval_fingerprint_of",
           "eval_sets", "timing_noise", "NOISY_TIMING"]

METRICS = "metrics.json"
LOG = "train_log.jsonl"
# the sections of the metrics layout that must be objects when present
_SECTIONS = ("eval", "size", "speed", "teacher", "ratios", "training", "config", "fidelity")


@dataclass(frozen=True)
class Run:
    """One run: where it is, its short display ``name``, ``metrics.json`` and the training log."""

    name: str
    path: Path
    metrics: dict
    log: tuple = ()
    notes: tuple = field(default=())

    @property
    def folder(self) -> Path | None:
        """The model folder: the run folder, or for a metrics file the folder its "model" names."""
        if self.path.is_dir():
            return self.path
        model = Path(str(self.metrics.get("model", "")))
        return model if str(model) and model.is_dir() else None


def collect_runs(paths, *, exclude=()) -> tuple[list[Run], list[tuple[str, str]]]:
    """Read every run in ``paths``: run folders, folders searched recursively for them, metrics files.

    Hidden folders (``.NAME.partial`` staging folders of unfinished runs) are not searched and
    the folders in ``exclude`` (e.g. the report's own output) are left out; a run given twice
    is read once. Returns ``(runs, skipped)``: runs in the order found, with short unique names,
    and ``(path, reason)`` for every path that could not be reported, so one broken folder does
    not hide the others.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    excluded = {Path(p).resolve() for p in exclude}
    found: dict[Path, Path] = {}  # resolved -> as given
    skipped: list[tuple[str, str]] = []
    for given in paths:
        p = Path(given)
        if p.is_file() and p.name == METRICS:
            p = p.parent
        for run_path, reason in _discover(p, excluded):
            if reason:
                skipped.append((str(run_path), reason))
            else:
                found.setdefault(run_path.resolve(), run_path)
    names = _short_names(list(found))
    runs = []
    for resolved, given in found.items():
        try:
            runs.append(read_run(given, name=names[resolved]))
        except ProtegeError as err:
            skipped.append((str(given), str(err)))
    return runs, skipped


def read_run(path, *, name: str | None = None) -> Run:
    """Read one run folder (or metrics JSON file); raises ProtegeError saying what is wrong with it."""
    path = Path(path)
    file = path / METRICS if path.is_dir() else path
    try:
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtegeError(f"no {METRICS}: not a protege run folder") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ProtegeError(f"cannot read {file.name}: {getattr(err, 'strerror', None) or err}") from None
    try:
        metrics = json.loads(text)
    except json.JSONDecodeError as err:
        raise ProtegeError(f"{file.name} is not valid JSON (line {err.lineno}: {err.msg})") from None
    if not isinstance(metrics, dict):
        raise ProtegeError(f"{file.name} holds a JSON {type(metrics).__name__}, not a metrics object")
    bad = [k for k in _SECTIONS if k in metrics and metrics[k] is not None and not isinstance(metrics[k], dict)]
    if bad:
        raise ProtegeError(f"{file.name} is malformed: {', '.join(repr(k) for k in bad)} must be objects")
    if not any(isinstance(metrics.get(k), dict) for k in ("eval", "size", "speed")):
        raise ProtegeError(f"{file.name} has no measurements (no 'eval', 'size' or 'speed' section)")
    log, notes = (), ()
    if path.is_dir() and (path / LOG).is_file():
        log, unreadable = _read_log(path / LOG)
        if unreadable:
            notes = (f"{LOG}: {unreadable} unreadable line{'s' if unreadable > 1 else ''} skipped",)
    return Run(name=name or path.name, path=path, metrics=metrics, log=log, notes=notes)


def teacher_ref(metrics: dict) -> str | None:
    """The teacher a run was measured against or trained from, as recorded (a path or hub id)."""
    teacher = metrics.get("teacher")
    if isinstance(teacher, dict) and teacher.get("model"):
        return str(teacher["model"])
    config = metrics.get("config")
    if isinstance(config, dict) and isinstance(config.get("teacher"), str) and config["teacher"]:
        return config["teacher"]
    return None


def teacher_of(run: Run, runs: list[Run]) -> Run | None:
    """The run among ``runs`` that is ``run``'s teacher, matched by resolved path, else by recorded name.

    Paths in metrics.json are as typed when the run was made, so a relative teacher path is
    resolved against the folder the run was made from (worked out from the run's own recorded
    "model" path) and against the current folder.
    """
    ref = teacher_ref(run.metrics)
    if ref is None:
        return None
    by_path = {_resolve(r.folder or r.path): r for r in runs if r is not run}
    for candidate in _candidates(ref, run):
        hit = by_path.get(candidate)
        if hit is not None:
            return hit
    named = [r for r in runs if r is not run and str(r.metrics.get("model")) == ref]
    return named[0] if len(named) == 1 else None


def teacher_folder(run: Run, runs: list[Run]) -> Path | None:
    """The folder of ``run``'s teacher model on this machine (a run in ``runs`` or not), or None."""
    teacher = teacher_of(run, runs)
    if teacher is not None:
        return teacher.folder
    ref = teacher_ref(run.metrics)
    return next((c for c in _candidates(ref, run) if c.is_dir()), None) if ref else None


# --- what the recorded numbers can be compared with -----------------------------------------

NOISY_TIMING = 0.10  # a timing whose repeated rounds vary more than this (coefficient of variation) is not trusted


def eval_fingerprint_of(metrics: dict) -> str | None:
    """The fingerprint of the rows a run was scored on (``eval.fingerprint``), or None for runs made before it was recorded."""
    ev = metrics.get("eval")
    fp = ev.get("fingerprint") if isinstance(ev, dict) else None
    return fp if isinstance(fp, str) and fp else None


def eval_sets(runs: list[Run]) -> dict[str, str]:
    """``{run name: letter}`` when the runs were scored on different rows (their fingerprints differ), else ``{}``.

    The same file name can hide different rows (the file changed, ``--max-eval-examples``
    differed), so the fingerprint, not the name, decides. Runs without one are left out.
    """
    letters: dict[str, str] = {}
    for r in runs:
        fp = eval_fingerprint_of(r.metrics)
        if fp:
            letters.setdefault(fp, chr(ord("A") + len(letters)))
    if len(letters) < 2:
        return {}
    return {r.name: letters[fp] for r in runs if (fp := eval_fingerprint_of(r.metrics))}


def timing_noise(speed: dict) -> float | None:
    """How much a timing's repeated rounds varied: the larger coefficient of variation of its latency and
    throughput (``latency_cv``, ``throughput_cv`` from :mod:`protege.evaluation.speed`), or None if not recorded."""
    if not isinstance(speed, dict):
        return None
    values = [speed.get(k) for k in ("latency_cv", "throughput_cv")]
    values = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    return max(values) if values else None


# --- helpers --------------------------------------------------------------------------------

def _discover(p: Path, excluded: set[Path]):
    """Yield ``(path, None)`` for each run at or under ``p``, or ``(p, reason)`` when there is none."""
    if not p.exists():
        yield p, "no such file or folder"
        return
    if p.resolve() in excluded:
        return
    if p.is_file():
        if p.suffix.lower() == ".json":
            yield p, None
        else:
            yield p, "not a run folder or a metrics .json file"
        return
    if p.name.startswith(".") and p.name.endswith(".partial"):
        yield p, "an unfinished run (a staging folder); finish it with --resume"
        return
    if (p / METRICS).exists():
        yield p, None
        return
    hits, unfinished = [], []
    for root, dirs, files in os.walk(p):
        unfinished += [d for d in dirs if d.startswith(".") and d.endswith(".partial")]
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and (Path(root) / d).resolve() not in excluded)
        if METRICS in files:
            hits.append(Path(root))
            dirs[:] = []  # a run folder holds no other runs
    if hits:
        yield from ((h, None) for h in hits)
    elif (p / "config.json").exists():
        yield p, f"no {METRICS}: measure it first with `protege evaluate {p} --eval DATA --out {p / METRICS}`"
    elif unfinished:
        yield p, f"no finished run in it yet (unfinished: {', '.join(sorted(unfinished))})"
    else:
        yield p, f"no {METRICS} in it or in any folder under it"


def _read_log(file: Path) -> tuple[tuple, int]:
    records, bad = [], 0
    with file.open(encoding="utf-8", errors="replace") as f:
        for line in f:
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                bad += 1  # e.g. the last line of a run killed mid-write
                continue
            if isinstance(record, dict):
                records.append(record)
            else:
                bad += 1
    return tuple(records), bad


def _short_names(paths: list[Path]) -> dict[Path, str]:
    """The fewest trailing path parts that tell the runs apart ("student", "sst2/student")."""
    parts = {p: (p.with_suffix("") if p.suffix.lower() == ".json" else p).parts for p in paths}
    names = {}
    for p, ps in parts.items():
        for k in range(1, len(ps) + 1):
            tail = ps[-k:]
            if all(q == p or qs[-k:] != tail for q, qs in parts.items()):
                break
        names[p] = "/".join(tail)
    return names


def _resolve(p) -> Path:
    return Path(p).expanduser().resolve()


def _candidates(ref: str, run: Run) -> list[Path]:
    ref_path = Path(ref).expanduser()
    if ref_path.is_absolute():
        return [_resolve(ref_path)]
    out = []
    origin = _origin(run)
    if origin is not None:
        out.append(_resolve(origin / ref_path))
    out.append(_resolve(ref_path))
    return out


def _origin(run: Run) -> Path | None:
    """The folder a run was made from: its resolved path minus its recorded relative "model" path."""
    model = run.metrics.get("model")
    if not run.path.is_dir() or not isinstance(model, str) or not model:
        return None
    recorded = [q for q in Path(model).parts if q != "."]
    if Path(model).is_absolute() or ".." in recorded or not recorded:
        return None
    here = _resolve(run.path)
    if list(here.parts[-len(recorded):]) != recorded:
        return None
    return here.parents[len(recorded) - 1]
