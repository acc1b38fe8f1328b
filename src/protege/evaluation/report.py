"""Side-by-side reports: ratios, the terminal table, the model card and atomic JSON output.

A metrics dict has the layout::

    {"model": str, "problem_type": str,
     "eval": {"source": ..., "n": ..., "metrics": {...}, "agreement": {...}},
     "size": {...}, "speed": {...},
     "teacher": {"model": ..., "eval": {...}, "size": {...}, "speed": {...}},
     "ratios": {...}, "config": {...}, "command": "..."}

where every part but "model" is optional.
"""

from __future__ import annotations

import json
from pathlib import Path


from protege.errors import ProtegeError
from protege.evaluation.card import card_footer, card_view, front_matter
from protege.evaluation.metrics import LOWER_IS_BETTER, TASK_KEYS, primary_metric
from protege.utils.fmt import fmt_count, fmt_metric, fmt_num, fmt_ratio, num, ratio
from protege.utils.io import jsonable

__all__ = ["speedup_and_ratios", "format_comparison", "format_report", "model_card", "flatten_metrics"]



def speedup_and_ratios(student: dict, teacher: dict, *, problem_type: str | None = None) -> dict[str, float]:
    """Student-versus-teacher ratios from two metric dicts.

    The dicts may be flat ({"accuracy": ..., "parameters": ..., "latency_ms_p50": ...}) or use
    the "eval"/"size"/"speed" sections of the metrics layout. Returns, for the inputs present
    and usable in both: "speedup_batch1" (teacher p50 / student p50), "throughput_ratio",
    "parameter_ratio", "non_embedding_parameter_ratio", "size_ratio" (disk bytes), each
    student / teacher, and "retention" (student / teacher primary metric; the problem type
    comes from ``problem_type`` or a "problem_type" key in either dict).
    """
    if not isinstance(student, dict) or not isinstance(teacher, dict):
        raise ProtegeError("speedup_and_ratios needs two metric dicts")
    s, t = flatten_metrics(student), flatten_metrics(teacher)
    if problem_type is None:
        found = {d["problem_type"] for d in (s, t) if d.get("problem_type")}
        if len(found) > 1:
            raise ProtegeError(f"student and teacher disagree on problem_type: {sorted(found)}")
        problem_type = found.pop() if found else None
    out = {}
    speedup = ratio(t.get("latency_ms_p50"), s.get("latency_ms_p50"))
    if speedup is not None:
        out["speedup_batch1"] = speedup
    for name, key in [("throughput_ratio", "throughput_per_s"), ("parameter_ratio", "parameters"),
                      ("non_embedding_parameter_ratio", "non_embedding_parameters"), ("size_ratio", "disk_bytes")]:
        r = ratio(s.get(key), t.get(key))
        if r is not None:
            out[name] = r
    if problem_type is not None:
        key = primary_metric(problem_type)
        r = ratio(s.get(key), t.get(key))
        if r is not None:
            out["retention"] = r
    return out


def format_comparison(rows: dict[str, dict], *, primary: str) -> str:
    """An aligned plain-text table with one column per model.

    ``rows`` maps a column name (e.g. "teacher", "student") to that model's metrics (flat or
    in the metrics layout). Rows: ``primary`` first, the other task metrics, agreement with the
    teacher, parameters, non-embedding parameters, disk size, latency p50/p95 and throughput;
    a row that no model has is left out and a missing value shows "-". With a "teacher"
    column and another, a last column gives the student (the "student" column, else the last
    other one) against the teacher: % retention of quality, × smaller, × faster.
    """
    header, body, _ = _table(rows, primary)
    widths = [max(len(r[i]) for r in [header] + body) for i in range(len(header))]
    has_ratio = len(header) > len(rows) + 1

    def line(cells):
        out = [cells[0].ljust(widths[0])]
        for i in range(1, len(cells)):
            last = has_ratio and i == len(cells) - 1
            out.append(cells[i].ljust(widths[i]) if last else cells[i].rjust(widths[i]))
        return "  ".join(out).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(header), rule] + [line(r) for r in body])


def format_report(metrics: dict) -> str:
    """The terminal report for a metrics dict: what was measured, the table, how speed was measured."""
    _check_metrics(metrics)
    columns, primary = _columns(metrics)
    lines = [f"model:   {metrics['model']}"]
    teacher = metrics.get("teacher") or {}
    if teacher.get("model"):
        lines.append(f"teacher: {teacher['model']}")
    if metrics.get("runtime"):  # an exported model (protege export): what runs it, at which precision
        lines.append(f"runtime: {metrics['runtime']}, {metrics.get('precision', 'fp32')}"
                     + (f" (teacher: {teacher.get('runtime', 'pytorch')}, {teacher.get('precision', 'fp32')})" if teacher else ""))
    ev = metrics.get("eval") or {}
    if ev.get("source") is not None or ev.get("n") is not None:
        where = f"evaluated on {ev.get('source', 'the evaluation set')}"
        lines.append(where + (f" ({ev['n']} examples)" if ev.get("n") is not None else ""))
    lines += ["", format_comparison(columns, primary=primary)]
    collapsed = _collapsed(metrics)
    if collapsed:
        lines += ["", f"DEGENERATE: {collapsed}"]
    how = _speed_note(metrics.get("speed") or teacher.get("speed") or {})
    if how:
        lines += ["", "speed: " + how]
    if isinstance(metrics.get("fidelity"), dict):
        from protege.evaluation.fidelity_text import format_fidelity

        lines += ["", format_fidelity(metrics["fidelity"])]
    return "\n".join(lines) + "\n"


def model_card(metrics: dict) -> str:
    """A Hugging Face README.md model card for the model described by ``metrics``."""
    _check_metrics(metrics)
    metrics = card_view(metrics)  # no absolute local paths; hub ids told apart from local folders
    name = str(metrics["model"])
    teacher = metrics.get("teacher") or {}
    teacher_name = str(teacher["model"]) if teacher.get("model") else None
    columns, primary = _columns(metrics)
    scores = ((metrics.get("eval") or {}).get("metrics") or {})
    front = front_matter(metrics, library="transformers", pipeline_tag="text-classification",
                         results={k: scores.get(k) for k in TASK_KEYS})

    out = front + ["", f"# {Path(name).name or name}", ""]
    task = {"single_label_classification": "text classifier", "regression": "text regression model",
            "multi_label_classification": "multi-label text classifier"}.get(
        metrics.get("problem_type"), "text classifier")
    if teacher_name:
        link = f"[{teacher_name}](https://huggingface.co/{teacher_name})" \
            if teacher_name in metrics["hub_metadata"]["base_model"] else f"`{teacher_name}`"
        how = {
            "distill": f"distilled from {link} with protege: a student trained to behave like its teacher.",
            "prune": f"pruned from {link} with protege; the reference column is the dense model.",
            "extract": f"extracted with protege from the prediction API of {link} (a copy trained on its answers to "
                       "generated queries); the reference column is the victim.",
        }.get(metrics.get("method"), f"compared with protege against {link}.")
        out.append(f"A {task} {how}")
    elif metrics.get("method") == "finetune":
        out.append(f"A {task} fine-tuned with protege.")
    else:
        out.append(f"A {task} measured with protege.")
    summary = _summary(metrics, columns, primary)
    if summary:
        out += ["", summary]

    config = metrics.get("config") or {}
    training = metrics.get("training") or {}
    if config or training.get("steps") is not None or metrics.get("method"):
        out += ["", "## How it was made", ""]
        if training.get("steps") is not None:
            took = f" ({training['seconds']} s)" if training.get("seconds") is not None else ""
            out += [f"Trained for {training['steps']} steps{took}.", ""]
        method = metrics.get("method") or config.get("method")
        if method is not None:
            out.append(f"Method: **{method}**" + (f", teacher `{teacher_name}`." if teacher_name else "."))
            out.append("")
        settings = [(k, v) for k, v in _leaves(config) if k != "method"]
        if settings:
            out.append("Key settings:")
            out.append("")
            out += [f"- `{k}`: `{_setting(v)}`" for k, v in settings]

    out += ["", "## Results", ""]
    ev = metrics.get("eval") or {}
    if ev.get("source") is not None or ev.get("n") is not None:
        src = f"`{ev['source']}`" if ev.get("source") is not None else "the evaluation set"
        out += [f"Evaluated on {src}" + (f" ({ev['n']} examples)." if ev.get("n") is not None else "."), ""]
    out.append(_markdown_table(columns, primary))
    if any(k in flatten_metrics(metrics) for k in ("agreement", "kl")):
        out += ["", "Agreement is the fraction of examples where the student predicts the teacher's label; "
                    "KL is the mean KL(teacher || student) of their output distributions."]

    out += ["", "## How to use", "", "```python",
            "from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
            f"model = AutoModelForSequenceClassification.from_pretrained({json.dumps(name)})",
            f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(name)})", "```"]

    measured = _measured(metrics)
    if measured:
        out += ["", "## How it was measured", ""] + measured

    out += card_footer(metrics)
    return "\n".join(out) + "\n"


# --- table building -------------------------------------------------------------------------

def _table(rows, primary):
    """Header and body (lists of cells) plus the ratio pair (student, teacher) or None."""
    if not isinstance(rows, dict) or not rows or not all(isinstance(v, dict) for v in rows.values()):
        raise ProtegeError("rows must be a non-empty dict of column name -> metrics dict")
    if not isinstance(primary, str) or not primary:
        raise ProtegeError("primary must name a metric, e.g. 'accuracy'")
    names = [str(n) for n in rows]
    flat = [flatten_metrics(v) for v in rows.values()]
    pair = _ratio_pair(names)

    specs = [(primary, primary, fmt_metric, "retention")]
    specs += [(k, k, fmt_metric, None if k in LOWER_IS_BETTER else "retention") for k in TASK_KEYS if k != primary]
    specs += [
        ("agreement", "agreement with teacher", fmt_metric, None),
        ("label_agreement", "per-label agreement", fmt_metric, None),
        ("kl", "KL to teacher", fmt_metric, None),
        ("pearson_to_teacher", "pearson to teacher", fmt_metric, None),
        ("mse_to_teacher", "MSE to teacher", fmt_metric, None),
        ("parameters", "parameters", fmt_count, "smaller"),
        ("non_embedding_parameters", "non-embedding params", fmt_count, "smaller"),
        ("disk_bytes", "disk size (MB)", lambda b: fmt_num(b / 1e6), "smaller"),
        ("latency_ms_p50", "latency p50 (ms)", fmt_num, "faster"),
        ("latency_ms_p95", "latency p95 (ms)", fmt_num, "faster"),
        ("throughput_per_s", "throughput (ex/s)", fmt_num, "throughput"),
        ("generate_tokens_per_s", "generation (tokens/s, batch 1)", fmt_num, "throughput"),
        ("prefill_tokens_per_s", "prefill (tokens/s)", fmt_num, "throughput"),
    ]
    header = ["metric"] + names
    if pair:
        header.append(f"{names[pair[0]]} vs {names[pair[1]]}")
    body = []
    for key, label, fmt, kind in specs:
        values = [num(f.get(key)) for f in flat]
        if all(v is None for v in values):
            continue
        row = [label] + ["-" if v is None else fmt(v) for v in values]
        if pair:
            row.append(fmt_ratio(kind, values[pair[0]], values[pair[1]]))
        body.append(row)
    return header, body, pair


def _ratio_pair(names):
    if "teacher" not in names or len(names) < 2:
        return None
    others = [i for i, n in enumerate(names) if n != "teacher"]
    student = names.index("student") if "student" in names else others[-1]
    return student, names.index("teacher")


def _markdown_table(columns, primary) -> str:
    header, body, pair = _table(columns, primary)
    align = ["---"] + ["---:"] * len(columns) + (["---"] if pair else [])
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, align] + body)


def _columns(metrics):
    """Table columns (teacher, student or just the model) and the primary metric."""
    student = flatten_metrics(metrics)
    teacher = metrics.get("teacher")
    columns = {"teacher": flatten_metrics(teacher), "student": student} if isinstance(teacher, dict) and teacher else \
        {"model": student}
    if metrics.get("problem_type"):
        primary = primary_metric(metrics["problem_type"])
    else:
        primary = "pearson" if any("pearson" in c for c in columns.values()) else "accuracy"
    return columns, primary


def flatten_metrics(d) -> dict:
    """One level of metrics: top-level scalars plus eval.metrics, eval.agreement, size and speed."""
    if not isinstance(d, dict):
        return {}
    out = {k: v for k, v in d.items() if not isinstance(v, dict)}
    ev = d.get("eval")
    if isinstance(ev, dict):
        for part in ("metrics", "agreement"):
            if isinstance(ev.get(part), dict):
                out.update(ev[part])
    for part in ("size", "speed"):
        if isinstance(d.get(part), dict):
            out.update(d[part])
    return out


# --- model card pieces ----------------------------------------------------------------------

def _summary(metrics, columns, primary) -> str:
    collapsed = _collapsed(metrics)
    if collapsed:  # never "keeps 88% of the teacher's accuracy" for a model that predicts one class
        return f"**Warning: this model is degenerate.** {collapsed[0].upper()}{collapsed[1:]}"
    if "teacher" not in columns:
        return ""
    ratios = speedup_and_ratios(columns["student"], columns["teacher"],
                                problem_type=metrics.get("problem_type"))
    ratios.update({k: v for k, v in (metrics.get("ratios") or {}).items() if num(v) is not None})
    parts = []
    if "retention" in ratios:
        parts.append(f"keeps {100 * ratios['retention']:.1f}% of the teacher's {primary}")
    if "speedup_batch1" in ratios:
        parts.append(f"runs {ratios['speedup_batch1']:.1f}x faster at batch size 1")
    if ratios.get("parameter_ratio"):
        parts.append(f"has {1 / ratios['parameter_ratio']:.1f}x fewer parameters")
    if not parts:
        return ""
    text = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    return f"The student {text}."


def _collapsed(metrics) -> str:
    """What is wrong with a degenerate model, as a sentence, or "" when its ``degenerate`` finding is negative."""
    finding = metrics.get("degenerate")
    if not isinstance(finding, dict) or not finding.get("found"):
        return ""
    return ("; ".join(finding.get("reasons") or ["see metrics.json"]) + ". Its scores reflect the data (e.g. the share "
            "of the majority class), not what it learned: do not ship it; check the learning rate, the steps and the "
            "data, or train again with another seed.")


def _measured(metrics) -> list[str]:
    out = []
    ev = metrics.get("eval") or {}
    if ev:
        src = f"`{ev['source']}`" if ev.get("source") is not None else "the evaluation set"
        n = f", {ev['n']} examples" if ev.get("n") is not None else ""
        who = "teacher and student are scored on" if metrics.get("teacher") else "scored on"
        out.append(f"- Quality: {who} {src}{n}.")
    speed = metrics.get("speed") or (metrics.get("teacher") or {}).get("speed") or {}
    note = _speed_note(speed)
    if note:
        out.append(f"- Speed: {note}.")
    if metrics.get("size") or (metrics.get("teacher") or {}).get("size"):
        out.append("- Size: tensors shared between modules count once; non-embedding parameters leave out "
                   "the embedding tables; disk size is the saved weight files (1 MB = 10^6 bytes).")
    return out


def _speed_note(speed: dict) -> str:
    if not speed:
        return ""
    where = []
    if speed.get("cpu"):
        where.append(f"{speed['cpu']}")
    if speed.get("threads") is not None:
        where.append(f"{speed['threads']} threads")
    if speed.get("device") and speed.get("device") != "cpu":
        where.append(f"device {speed['device']}")
    if speed.get("torch"):
        where.append(f"torch {speed['torch']}")
    if speed.get("max_length") is not None:
        where.append(f"max_length {speed['max_length']}")
    what = []
    if speed.get("latency_runs") is not None:
        what.append(f"batch-1 latency p50/p95 over {speed['latency_runs']} runs after warm-up")
    if speed.get("throughput_batch_size") is not None:
        what.append(f"throughput at batch size {speed['throughput_batch_size']} with dynamic padding")
    return "; ".join(p for p in (", ".join(where), ", ".join(what)) if p)


def _leaves(d, prefix=""):
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            yield from _leaves(v, key + ".")
        elif v is not None:
            yield key, v


def _setting(v) -> str:
    return v if isinstance(v, str) else json.dumps(jsonable(v))


def _check_metrics(metrics) -> None:
    if not isinstance(metrics, dict) or not metrics.get("model"):
        raise ProtegeError("metrics must be a dict with a 'model' entry")


# --- small helpers --------------------------------------------------------------------------

