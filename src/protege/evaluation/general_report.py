"""Reports for general-purpose students: the terminal table, a one-line summary and the model card.

The metrics dict has the layout of :mod:`protege.evaluation.report` ("eval", "size", "speed",
"teacher", "ratios") with objective-specific quality keys: ``perplexity`` and ``accuracy``
(next-token or masked-token) plus ``agreement``/``kl`` for language models, ``spearman`` /
``sts_pearson`` (STS) and ``accuracy`` (linear probe) plus ``cosine_to_teacher`` for
embeddings, ``*_mse`` held-out distances for TinyBERT.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from protege.evaluation.card import card_footer, card_view, front_matter

__all__ = ["format_general_report", "general_model_card", "summary_line"]

_ACCURACY = {"clm": "next-token accuracy", "mlm": "masked-token accuracy", "embedding": "probe accuracy"}
_USAGE = {
    "clm": ("text-generation", "from transformers import AutoModelForCausalLM, AutoTokenizer",
            "model = AutoModelForCausalLM.from_pretrained({name})\ntokenizer = AutoTokenizer.from_pretrained({name})"),
    "mlm": ("fill-mask", "from transformers import AutoModelForMaskedLM, AutoTokenizer",
            "model = AutoModelForMaskedLM.from_pretrained({name})\ntokenizer = AutoTokenizer.from_pretrained({name})"),
    "tinybert": ("feature-extraction", "from transformers import AutoModel, AutoTokenizer",
                 "model = AutoModel.from_pretrained({name})  # fine-tune it, or: protege distill --student {plain} ..."),
    "embedding": ("sentence-similarity", "from sentence_transformers import SentenceTransformer",
                  "model = SentenceTransformer({name})\nembeddings = model.encode([\"A sentence.\", \"Another one.\"])"),
}


def _rows(objective: str | None):
    return [
        ("spearman", "STS spearman", "metric", "retention"),
        ("sts_pearson", "STS pearson", "metric", "retention"),
        ("accuracy", _ACCURACY.get(objective, "accuracy"), "metric", "retention"),
        ("perplexity", "perplexity", "num", "lower"),
        ("agreement", "agreement with teacher", "metric", None),
        ("kl", "KL to teacher", "metric", None),
        ("cosine_to_teacher", "cosine to teacher", "metric", None),
        ("embed_mse", "embedding MSE to teacher", "metric", None),
        ("hidden_mse", "hidden MSE to teacher", "metric", None),
        ("attn_mse", "attention MSE to teacher", "metric", None),
        ("parameters", "parameters", "count", "smaller"),
        ("non_embedding_parameters", "non-embedding params", "count", "smaller"),
        ("disk_bytes", "disk size (MB)", "mb", "smaller"),
        ("latency_ms_p50", "latency p50 (ms)", "num", "faster"),
        ("latency_ms_p95", "latency p95 (ms)", "num", "faster"),
        ("throughput_per_s", "throughput (ex/s)", "num", "throughput"),
        ("generate_tokens_per_s", "generation (tokens/s, batch 1)", "num", "throughput"),
        ("prefill_tokens_per_s", "prefill (tokens/s)", "num", "throughput"),
    ]


def _flat(part) -> dict:
    if not isinstance(part, dict):
        return {}
    out = {}
    ev = part.get("eval") or {}
    for key in ("metrics", "agreement"):
        out.update(ev.get(key) or {})
    for key in ("size", "speed"):
        out.update(part.get(key) or {})
    return out


def _num(v):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def _fmt(kind: str, v: float) -> str:
    if kind == "metric":
        return f"{v:.4f}"
    if kind == "mb":
        v = v / 1e6
    if kind == "count":
        for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
            if abs(v) >= div * 0.99995:
                return f"{v / div:.1f}{unit}"
        return f"{v:.0f}"
    return f"{v:.0f}" if abs(v) >= 100 else f"{v:.1f}" if abs(v) >= 10 else f"{v:.2f}"


def _ratio(kind, s, t) -> str:
    if kind is None or s is None or t is None or s <= 0 or t <= 0:
        return ""
    return {"retention": f"{100 * s / t:.1f}%", "lower": f"{s / t:.2f}x the teacher's", "smaller": f"{t / s:.1f}x smaller",
            "faster": f"{t / s:.1f}x faster", "throughput": f"{s / t:.1f}x faster"}[kind]


def _table(metrics: dict) -> list[list[str]]:
    student, teacher = _flat(metrics), _flat(metrics.get("teacher"))
    has_teacher = bool(metrics.get("teacher"))
    header = ["metric"] + (["teacher", "student", "student vs teacher"] if has_teacher else ["model"])
    body = []
    for key, label, kind, ratio in _rows(metrics.get("objective")):
        s, t = _num(student.get(key)), _num(teacher.get(key))
        if s is None and t is None:
            continue
        cell = lambda v: "-" if v is None else _fmt(kind, v)  # noqa: E731
        body.append([label, cell(t), cell(s), _ratio(ratio, s, t)] if has_teacher else [label, cell(s)])
    return [header] + body


def format_general_report(metrics: dict) -> str:
    """The terminal report: what was measured, one aligned table, how speed was measured."""
    rows = _table(metrics)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [f"model:   {metrics.get('model')}"]
    if (metrics.get("teacher") or {}).get("model"):
        lines.append(f"teacher: {metrics['teacher']['model']}")
    ev = metrics.get("eval") or {}
    if ev.get("source"):
        lines.append(f"evaluated on {ev['source']}")
    lines.append("")
    for i, row in enumerate(rows):
        cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:])]
        if len(row) == 4:
            cells[-1] = row[-1].ljust(widths[-1])
        lines.append("  ".join(cells).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    speed = metrics.get("speed") or {}
    if speed:
        lines += ["", f"speed: {speed.get('cpu', 'cpu')}, {speed.get('threads')} threads, torch {speed.get('torch')}, "
                      f"max_length {speed.get('max_length')}; batch-1 latency over {speed.get('latency_runs')} runs, "
                      f"throughput at batch size {speed.get('throughput_batch_size')}"]
    return "\n".join(lines) + "\n"


def summary_line(metrics: dict) -> str:
    """One line with the objective's headline numbers (for the log), or ''."""
    s, t = _flat(metrics), _flat(metrics.get("teacher"))
    parts = []
    for key, label in (("spearman", "STS spearman"), ("accuracy", _ACCURACY.get(metrics.get("objective"), "accuracy")),
                       ("perplexity", "perplexity")):
        if _num(s.get(key)) is not None:
            parts.append(f"{label} {s[key]:.4g}" + (f" (teacher {t[key]:.4g})" if _num(t.get(key)) is not None else ""))
    for key, label in (("agreement", "agreement"), ("kl", "KL"), ("cosine_to_teacher", "cosine to teacher"),
                       ("hidden_mse", "hidden MSE"), ("attn_mse", "attention MSE")):
        if _num(s.get(key)) is not None:
            parts.append(f"{label} {s[key]:.4g}")
    return ("student: " + ", ".join(parts)) if parts else ""


def general_model_card(metrics: dict, objective=None) -> str:
    """A Hugging Face README.md for a general-purpose student."""
    metrics = card_view(metrics)  # no absolute local paths
    kind = metrics.get("objective") or getattr(objective, "kind", None)
    tag, imports, code = _USAGE.get(kind, _USAGE["tinybert"])
    name = str(metrics.get("model"))
    teacher = (metrics.get("teacher") or {}).get("model")
    library = "sentence-transformers" if kind == "embedding" else "transformers"
    scores = _flat(metrics)
    out = front_matter(metrics, library=library, pipeline_tag=tag, tags=["distillation"],
                       results={k: scores.get(k) for k in ("spearman", "sts_pearson", "accuracy", "perplexity")})
    out += ["", f"# {Path(name).name or name}", ""]
    what = {"clm": "A causal language model", "mlm": "A masked language model", "tinybert": "A general-purpose encoder",
            "embedding": "A sentence-embedding model"}.get(kind, "A model")
    out.append(f"{what} distilled from `{teacher}` with protege ({metrics.get('method', 'distill')})." if teacher else f"{what}.")
    student = metrics.get("student") or {}
    if student.get("description"):
        out += ["", f"Student: {student['description']}."]
    training = metrics.get("training") or {}
    if training.get("steps") is not None:
        out += ["", f"Trained for {training['steps']} steps ({training.get('seconds')} s) on {training.get('transfer_text')}."]
    out += ["", "## Results", ""]
    ev = metrics.get("eval") or {}
    if ev.get("source"):
        out += [f"Evaluated on {ev['source']}.", ""]
    rows = _table(metrics)
    align = ["---"] + ["---:"] * (len(rows[0]) - 1)
    if len(rows[0]) == 4:
        align[-1] = "---"
    out += ["| " + " | ".join(r) + " |" for r in [rows[0], align] + rows[1:]]
    plain = name
    out += ["", "## How to use", "", "```python", imports, "", code.format(name=json.dumps(name), plain=plain), "```"]
    config = metrics.get("config") or {}
    if config:
        out += ["", "## Settings", ""] + [f"- `{k}`: `{v}`" for k, v in config.items()]
    out += card_footer(metrics)
    return "\n".join(out) + "\n"
