"""The pruning part of a run's report: sparsity, remaining parameters, batch-1 and batch-32 latency.

It is added to the foundation's metrics (``metrics["pruning"]``), printed under the foundation's
table, and inserted into its model card, so the speedup of a pruned model, or its absence, is
stated next to how much was removed.
"""

from __future__ import annotations

import json
import re

from torch import nn

__all__ = ["nonzero_counts", "pruning_section", "format_pruning", "pruning_card"]

# below this measured batch-1 speedup a pruned model is not called faster (timing noise is a few %)
FASTER = 1.10


def nonzero_counts(model: nn.Module) -> dict[str, int]:
    """Non-zero parameters of ``model``, all and outside the embedding tables (shared tensors once)."""
    unique, embedding = {}, set()
    for module in model.modules():
        for p in module.parameters(recurse=False):
            key = (p.data_ptr(), tuple(p.shape))
            unique.setdefault(key, p)
            if isinstance(module, nn.Embedding):
                embedding.add(key)
    nonzero = {k: int((p != 0).sum()) for k, p in unique.items()}
    total = sum(nonzero.values())
    return {"parameters": total, "non_embedding_parameters": total - sum(nonzero[k] for k in embedding)}


def _batch_ms(speed: dict) -> float | None:
    if not speed.get("throughput_per_s"):
        return None
    return 1000.0 * speed.get("throughput_batch_size", 32) / speed["throughput_per_s"]


def pruning_section(method: str, pruned: nn.Module, dense: nn.Module, metrics: dict, *, sparsity: dict | None = None,
                    structure: dict | None = None, loads_with: str, **extra) -> dict:
    """``metrics["pruning"]`` for a finished run.

    ``sparsity`` is :func:`~protege.pruning.magnitude.sparsity_report` of an unstructured run
    (zeros among the candidate weights); ``structure`` the before/after layout of a structured
    one (sparsity is then the fraction of non-embedding parameters removed). ``metrics`` is the
    foundation's comparison with the dense model, whose speed gives the latencies.
    """
    left, full = nonzero_counts(pruned), nonzero_counts(dense)
    section = {"method": method}
    if sparsity is not None:
        section.update(sparsity=sparsity["sparsity"], sparsity_of="candidate weights",
                       candidate_parameters=sparsity["parameters"], zeroed_parameters=sparsity["zeros"],
                       per_layer=sparsity["per_layer"])
    else:
        section.update(sparsity=1.0 - left["non_embedding_parameters"] / full["non_embedding_parameters"],
                       sparsity_of="non-embedding parameters removed")
    if structure is not None:
        section["structure"] = structure
    section.update(remaining_parameters=left["parameters"], remaining_non_embedding_parameters=left["non_embedding_parameters"],
                   dense_parameters=full["parameters"], dense_non_embedding_parameters=full["non_embedding_parameters"])
    speed, dense_speed = metrics.get("speed") or {}, (metrics.get("teacher") or {}).get("speed") or {}
    if speed and dense_speed:
        b1, d1, b32, d32 = speed["latency_ms_p50"], dense_speed["latency_ms_p50"], _batch_ms(speed), _batch_ms(dense_speed)
        section.update(latency_ms_batch1=b1, dense_latency_ms_batch1=d1, latency_ms_batch32=b32, dense_latency_ms_batch32=d32,
                       speedup_batch1=d1 / b1, speedup_batch32=d32 / b32 if b32 and d32 else None)
        section["faster"] = section["speedup_batch1"] >= FASTER
    else:
        section["faster"] = None
    section["speed_note"] = _speed_note(section, unstructured=sparsity is not None)
    section["loads_with"] = loads_with
    section.update(extra)
    return section


def _speed_note(s: dict, *, unstructured: bool) -> str:
    if s["faster"] is None:
        measured = "not measured (--no-speed)"
    else:
        b32 = f", {s['speedup_batch32']:.2f}x at batch 32" if s.get("speedup_batch32") else ""
        measured = f"{s['speedup_batch1']:.2f}x the dense model's speed at batch 1{b32} (measured, CPU)"
    if unstructured:
        return (f"{measured}; unstructured zeros stay in dense weight matrices, which CPU kernels multiply like any "
                "other value, so no speedup is expected (a measured difference is timing noise) and the file is no "
                "smaller; --method structured removes computation")
    if s["faster"] is None:
        return measured
    word = "faster" if s["faster"] else "slower" if s["speedup_batch1"] <= 1 / FASTER else "not faster"
    return f"{word}: {measured}"


def _pct(x) -> str:
    return f"{100 * x:.1f}%"


def _count(n) -> str:
    return f"{n / 1e6:.2f}M" if n >= 1e5 else f"{n / 1e3:.1f}K" if n >= 1e3 else str(int(n))


def _ms(x) -> str:
    return "-" if x is None else f"{x:.2f}"


def format_pruning(metrics: dict) -> str:
    """The pruning section as terminal text (printed under the foundation's report)."""
    s = metrics["pruning"]
    lines = [f"pruning: {s['method']}, sparsity {_pct(s['sparsity'])} of {s['sparsity_of']}"]
    rows = [("parameters (non-zero)", _count(s["dense_parameters"]), _count(s["remaining_parameters"])),
            ("non-embedding (non-zero)", _count(s["dense_non_embedding_parameters"]),
             _count(s["remaining_non_embedding_parameters"]))]
    if s.get("latency_ms_batch1") is not None:
        rows += [("latency batch 1 p50 (ms)", _ms(s["dense_latency_ms_batch1"]), _ms(s["latency_ms_batch1"])),
                 ("latency batch 32 (ms)", _ms(s["dense_latency_ms_batch32"]), _ms(s["latency_ms_batch32"]))]
    width = max(len(r[0]) for r in rows)
    lines.append(f"  {'':<{width}}  {'dense':>9}  {'pruned':>9}")
    lines += [f"  {a:<{width}}  {b:>9}  {c:>9}" for a, b, c in rows]
    lines += _detail_lines(s)
    lines.append(f"speed: {s['speed_note']}")
    lines.append(f"load with: {s['loads_with']}")
    return "\n".join(lines) + "\n"


def _detail_lines(s: dict) -> list[str]:
    out = []
    if s.get("per_layer"):
        blocks: dict[str, list[str]] = {}
        for name, v in s["per_layer"].items():
            m = re.search(r"\.(\d+)\.(.+)\.weight$", name)
            key, label = (f"layer {m.group(1)}", _short(m.group(2))) if m else (name.rsplit(".weight", 1)[0], "")
            blocks.setdefault(key, []).append(f"{label} {_pct(v['sparsity'])}".strip())
        out.append("sparsity per matrix:")
        out += [f"  {k}: {'  '.join(v)}" for k, v in blocks.items()]
    st = s.get("structure")
    if st:
        before, after = st["before"], st["after"]
        out.append(f"structure: layers {before['layers']} -> {after['layers']}, heads per layer "
                   f"{_spread(before['heads'])} -> {_spread(after['heads'])}, FFN neurons per layer "
                   f"{_spread(before['ffn'])} -> {_spread(after['ffn'])}")
    for key in ("lottery", "schedule"):
        if s.get(key):
            out.append(f"{key}: {_brief(key, s[key])}")
    return out


def _short(path: str) -> str:
    return path.replace("attention.self.", "").replace(".dense", "").replace("attention.output", "attn-out")


def _spread(values: list[int]) -> str:
    return str(values[0]) if len(set(values)) == 1 else ",".join(map(str, values))


def _brief(key: str, v: dict) -> str:
    if key == "schedule":
        return (f"cubic from {_pct(v['initial_sparsity'])} at step {v['start']} to {_pct(v['final_sparsity'])} at step "
                f"{v['end']}, every {v['every']} steps ({len(v['events'])} pruning events)")
    rounds = ", ".join(f"{_pct(r['sparsity'])}: {r['metric']:.4f}{'' if r['matching'] else ' (not matching)'}" for r in v["rounds"])
    text = (f"dense {v['reference']:.4f}, tolerance {v['tolerance']}; rounds {rounds}; kept round {v['ticket']['round']} "
            f"({_pct(v['ticket']['sparsity'])}{', matching' if v['ticket']['matching'] else ', NO round matched'})")
    if v.get("controls"):
        text += "; controls at the same sparsity: " + ", ".join(f"{k} {c['metric']:.4f}" for k, c in v["controls"].items())
    return text


def pruning_card(card: str, metrics: dict) -> str:
    """The foundation's model card, told that this model was pruned rather than distilled."""
    s = metrics["pruning"]
    name = json.dumps(str(metrics["model"]))
    card = card.replace("- distillation\n", "- pruning\n", 1)
    card = card.replace(" distilled from ", " pruned from ", 1).replace(
        ": a smaller, faster student trained to behave like its teacher.",
        f" ({s['method']} pruning, sparsity {_pct(s['sparsity'])} of {s['sparsity_of']}).", 1)
    if "load_pruned" in s["loads_with"]:
        card = card.replace(f"model = AutoModelForSequenceClassification.from_pretrained({name})",
                            f"from protege.pruning import load_pruned\n\n"
                            f"model = load_pruned({name})  # attention heads were removed: see Pruning", 1)
    section = ["## Pruning", "", f"Method: **{s['method']}**. Sparsity: **{_pct(s['sparsity'])}** of {s['sparsity_of']}.", "",
               "| | dense | pruned |", "|---|---:|---:|",
               f"| parameters (non-zero) | {_count(s['dense_parameters'])} | {_count(s['remaining_parameters'])} |",
               f"| non-embedding parameters (non-zero) | {_count(s['dense_non_embedding_parameters'])} | "
               f"{_count(s['remaining_non_embedding_parameters'])} |"]
    if s.get("latency_ms_batch1") is not None:
        section += [f"| latency, batch 1, p50 (ms) | {_ms(s['dense_latency_ms_batch1'])} | {_ms(s['latency_ms_batch1'])} |",
                    f"| latency, batch 32 (ms) | {_ms(s['dense_latency_ms_batch32'])} | {_ms(s['latency_ms_batch32'])} |"]
    section += ["", f"Speed: {s['speed_note']}.", "", f"Load with: {s['loads_with']}.", ""]
    detail = _detail_lines({k: v for k, v in s.items() if k != "per_layer"})
    if detail:
        section += [f"- {line}" for line in detail] + [""]
    text = "\n".join(section)
    marker = "\n## How to use\n"
    return card.replace(marker, "\n" + text + marker, 1) if marker in card else card + "\n" + text
