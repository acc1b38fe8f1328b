"""Re-time every model of a report on this machine, interleaved in one session, so latency ratios hold."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from protege.errors import ProtegeError
from protege.utils.fmt import num
from protege.reporting.collect import Run

__all__ = ["remeasure", "timing_texts", "timing_max_length"]

# used when no run's evaluation data is readable here: varied lengths, like real inputs
FALLBACK_TEXTS = [
    "a gripping , beautifully acted film .",
    "the plot is thin and the jokes fall flat , but the cast keeps it watchable for most of its running time .",
    "not worth the ticket .",
    "one of the most inventive and heartfelt movies of the year , with a final act that earns every tear .",
    "dull .",
    "the director never decides whether this is a comedy or a thriller , and the film suffers for it .",
    "an absolute delight from start to finish .",
    "it looks expensive , sounds loud and says nothing at all about the people it claims to care about .",
]


def remeasure(folders, *, texts: list[str], max_length: int, speed_seconds: float = 10.0) -> tuple[dict, list[str]]:
    """Latency and throughput of the models in ``folders``, all timed interleaved in one session.

    Uses :func:`protege.evaluation.speed.compare_speed` on the CPU (``speed_seconds`` per model, so
    the whole call takes about ``len(folders) * speed_seconds``). Returns ``(timings, problems)``:
    timings keyed by resolved folder, and one line for each folder that could not be loaded.
    """
    from protege.deploy.folders import is_exported, load_exported
    from protege.evaluation.speed import compare_speed
    from protege.models import load_classifier, load_tokenizer
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    models, problems = {}, []
    for folder in dict.fromkeys(Path(f).resolve() for f in folders):
        try:
            if is_exported(folder):  # an export folder: its (recommended) variant, in its own runtime
                model, where = load_exported(folder)
                models[folder] = (model, load_tokenizer(str(where)))
            else:
                models[folder] = (load_classifier(str(folder), role="model"), load_tokenizer(str(folder)))
        except ProtegeError as err:
            problems.append(f"{folder}: not re-timed ({err})")
    if not models:
        return {}, problems
    named = {str(f): pair for f, pair in models.items()}
    timings = compare_speed(named, texts, max_length=max_length, max_seconds=speed_seconds)
    return {f: timings[str(f)] for f in models}, problems


def timing_texts(runs: list[Run], n: int = 64) -> list[str]:
    """Texts to time on: the first ``n`` of a run's evaluation data when it is a file here, else a fixed set."""
    from protege.data import load_examples

    for run in runs:
        source = (run.metrics.get("eval") or {}).get("source")
        if isinstance(source, str) and Path(source).is_file():
            try:
                return list(load_examples(source, max_examples=n).texts)
            except ProtegeError:
                continue
    return list(FALLBACK_TEXTS)


def timing_max_length(runs: list[Run], given: int | None = None) -> int:
    """The max length to time with: ``given``, else the one most runs were timed (or trained) with, else 128."""
    if given is not None:
        return given
    for section in ("speed", "config"):
        seen = Counter(int(v) for r in runs
                       if (v := num((r.metrics.get(section) or {}).get("max_length"))) is not None and v >= 1)
        if seen:
            return seen.most_common(1)[0][0]
    return 128
