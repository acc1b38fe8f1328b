"""The variant table (terminal and Markdown) and the model card of an exported folder."""

from __future__ import annotations

import json
from pathlib import Path

from protege.utils.fmt import fmt_metric, fmt_num, num

__all__ = ["variant_rows", "format_variants", "export_card"]


def _cell(v, fmt) -> str:
    v = num(v)
    return "-" if v is None else fmt(v)


def variant_rows(export: dict, teacher: dict | None, primary: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the variant table: teacher first (when measured), then every variant."""
    header = ["variant", "runtime", "precision", primary, "agree fp32", "max abs dlogit", "agree teacher", "p50 ms",
              "p95 ms", "ex/s", "speedup", "peak MB", "disk MB", "parity"]
    rows = []
    speedup_key = "speedup_vs_teacher" if teacher else "speedup_vs_reference"
    if teacher:
        rows.append(_row("teacher", teacher, primary, None, ratio="1.00x"))
    for name, v in export.get("variants", {}).items():
        parity = v.get("parity") or {}
        verdict = "pass" if parity.get("pass") else "FAIL"
        if name == export.get("recommended"):
            verdict += " *"
        rows.append(_row(name, v, primary, verdict, ratio=_cell(v.get(speedup_key), lambda x: f"{x:.2f}x")))
    return header, rows


def _row(name, part, primary, verdict, *, ratio) -> list[str]:
    ev = part.get("eval") or {}
    stat = (ev.get("agreement_with_reference") or {})
    agree_key = "agreement" if "agreement" in stat else "pearson_to_teacher"
    speed, size, mem = part.get("speed") or {}, part.get("size") or {}, part.get("memory") or {}
    return [name, str(part.get("runtime", "pytorch")), str(part.get("precision", "fp32")),
            _cell((ev.get("metrics") or {}).get(primary), fmt_metric),
            _cell(stat.get(agree_key), fmt_metric) if stat else "-",
            _cell(part.get("max_abs_logit_diff"), lambda x: f"{x:.1e}"),
            _cell((ev.get("agreement") or {}).get(agree_key), fmt_metric),
            _cell(speed.get("latency_ms_p50"), fmt_num), _cell(speed.get("latency_ms_p95"), fmt_num),
            _cell(speed.get("throughput_per_s"), fmt_num), ratio, _cell(mem.get("peak_memory_mb"), fmt_num),
            _cell(size.get("disk_bytes"), lambda b: fmt_num(b / 1e6)), verdict or "-"]


def format_variants(metrics: dict) -> str:
    """The terminal report of an export: one row per variant (and the teacher), the verdict, the pick."""
    from protege.evaluation.metrics import primary_metric

    export = metrics.get("export") or {}
    primary = primary_metric(metrics.get("problem_type") or "single_label_classification")
    header, rows = variant_rows(export, metrics.get("teacher"), primary)
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda cells: "  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))  # noqa: E731
    out = [f"exported: {metrics.get('model')}"]
    ev = (metrics.get("eval") or {})
    if ev.get("source"):
        out.append(f"verified on {ev['source']} ({ev.get('n')} examples) against the fp32 PyTorch model; "
                   f"parity: {_parity_words(export)}")
    out += ["", line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
    pick = export.get("recommended")
    out += ["", _speedup_words(metrics)]
    out.append(f"recommended: {pick} ({export.get('recommended_by')})" if pick
               else "recommended: none - no variant passed parity")
    return "\n".join(out) + "\n"


def _speedup_words(metrics: dict) -> str:
    against = "the fp32 PyTorch teacher" if metrics.get("teacher") else "the fp32 PyTorch model (pytorch-fp32)"
    return f"speedup: batch-1 p50 latency of {against} / the variant's, timed in the same interleaved session"


def _parity_words(export: dict) -> str:
    stat = next(iter(export.get("variants", {}).values()), {}).get("parity", {}).get("statistic", "agreement")
    return f"{stat} with it >= {export.get('min_agreement')}"


def export_card(metrics: dict) -> str:
    """The README.md of an export folder: every variant, measured, and the recommended one with how to load it."""
    from protege.evaluation.card import METHOD_TAGS, card_footer, card_view, front_matter
    from protege.evaluation.metrics import TASK_KEYS, primary_metric

    metrics = card_view(metrics)  # no absolute local paths
    export = metrics.get("export") or {}
    primary = primary_metric(metrics.get("problem_type") or "single_label_classification")
    header, rows = variant_rows(export, metrics.get("teacher"), primary)
    config = metrics.get("config") or {}
    pick = export.get("recommended")
    scores = (((export.get("variants") or {}).get(pick) or {}).get("eval") or {}).get("metrics") or {}
    has_int8 = any("int8" in str(v.get("precision", "")) for v in (export.get("variants") or {}).values())
    front = front_matter(metrics, library="onnxruntime", pipeline_tag="text-classification",
                         tags=METHOD_TAGS.get(str(metrics.get("method")), ["onnx"]) + (["int8"] if has_int8 else []),
                         results={k: scores.get(k) for k in TASK_KEYS})
    if metrics.get("method") == "compress":
        intro = (f"`{config.get('teacher')}` compressed with protege: candidate students distilled from it (and pruned), "
                 "then exported and quantized; the one below is the winner under the budget, verified against its fp32 "
                 "PyTorch model and timed in one interleaved session with the teacher.")
    else:
        intro = (f"`{config.get('model')}` exported with protege to every runtime and precision below, each verified against "
                 "the fp32 PyTorch model and timed in one interleaved session"
                 + (" with the teacher." if metrics.get("teacher") else "."))
    out = front + ["", f"# {Path(str(metrics.get('model', 'export'))).name}", "", intro, ""]
    out.append(f"**Recommended: `{pick}`** ({export.get('recommended_by')})." if pick
               else "**No variant passed parity; none is recommended.**")
    out += ["", "## Variants", "", "| " + " | ".join(header) + " |", "|" + "---|" * 3 + "---:|" * (len(header) - 3)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    out += ["", f"Parity: {_parity_words(export)} (the fp32 PyTorch model's own predictions on "
                f"`{(metrics.get('eval') or {}).get('source')}`); a variant below it is never recommended. "
                f"`*` marks the recommended variant. {_speedup_words(metrics).replace('speedup', 'Speedup', 1)}. Peak MB is the memory a fresh process gains loading the variant and "
                f"running one batch; disk MB the weight file (1 MB = 10^6 bytes).",
            "", "## How to use", "", "```python"]
    if pick and (export.get("variants", {}).get(pick) or {}).get("runtime") == "onnxruntime":
        out += ["import onnxruntime as ort", "from transformers import AutoTokenizer", "",
                f"tokenizer = AutoTokenizer.from_pretrained({json.dumps(pick)})",
                f"session = ort.InferenceSession({json.dumps(pick + '/model.onnx')}, providers=['CPUExecutionProvider'])",
                "inputs = tokenizer(['a sentence'], return_tensors='np')",
                "logits = session.run(None, {i.name: inputs[i.name] for i in session.get_inputs()})[0]"]
    else:
        out += ["from transformers import AutoModelForSequenceClassification, AutoTokenizer", "",
                f"model = AutoModelForSequenceClassification.from_pretrained({json.dumps(pick or 'pytorch-fp32')})"]
    out += ["```", "", "`protege evaluate`, `protege serve` and `protege report` take this folder (the recommended "
            "variant) or any variant folder."]
    out += card_footer(metrics)
    return "\n".join(out) + "\n"
