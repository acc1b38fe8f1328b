"""Picking ``protege compress``'s winner: the candidates' points, the budget rule, the Pareto fronts, the table."""

from __future__ import annotations

__all__ = ["pick_winner", "candidate_points", "pareto", "format_candidates"]


def candidate_points(results: dict[str, dict], primary: str) -> list[dict]:
    """One point per (candidate, variant): quality, retention, latency, speedup, size, parity."""
    points = []
    for cand, metrics in results.items():
        export = metrics["export"]
        teacher_q = (((metrics.get("teacher") or {}).get("eval") or {}).get("metrics") or {}).get(primary)
        for variant, v in export["variants"].items():
            quality = ((v.get("eval") or {}).get("metrics") or {}).get(primary)
            speed = v.get("speed") or {}
            points.append({"name": f"{cand}/{variant}", "candidate": cand, "variant": variant, "quality": quality,
                           "retention": quality / teacher_q if quality is not None and teacher_q else None,
                           "agreement": ((v.get("eval") or {}).get("agreement") or {}).get("agreement"),
                           "latency_ms_p50": speed.get("latency_ms_p50"), "throughput_per_s": speed.get("throughput_per_s"),
                           "speedup": v.get("speedup_vs_teacher"), "disk_bytes": (v.get("size") or {}).get("disk_bytes"),
                           "peak_memory_mb": (v.get("memory") or {}).get("peak_memory_mb"),
                           "parity": bool((v.get("parity") or {}).get("pass"))})
    return points


def pick_winner(points: list[dict], budget: dict) -> tuple[str | None, str | None]:
    """``(winner, closest)`` point names under ``budget``; only points that pass parity count."""
    ok = [p for p in points if p["parity"] and p["quality"] is not None and p["speedup"] is not None]
    if not ok:
        return None, None
    kind, value = budget["kind"], budget["value"]
    if kind == "target_speedup":
        meets = [p for p in ok if p["speedup"] >= value]
        best = max(meets, key=lambda p: (p["quality"], p["speedup"])) if meets else None
        closest = max(ok, key=lambda p: p["speedup"])
    elif kind == "target_latency_ms":
        meets = [p for p in ok if p["latency_ms_p50"] <= value]
        best = max(meets, key=lambda p: (p["quality"], -p["latency_ms_p50"])) if meets else None
        closest = min(ok, key=lambda p: p["latency_ms_p50"])
    else:
        meets = [p for p in ok if p["retention"] is not None and p["retention"] >= value]
        best = max(meets, key=lambda p: (p["speedup"], p["quality"])) if meets else None
        closest = max(ok, key=lambda p: (p["retention"] or 0, p["speedup"]))
    return (best["name"] if best else None), closest["name"]


def pareto(points: list[dict]) -> dict:
    """The Pareto fronts of the passing points: quality vs latency and quality vs size (names, best first)."""
    from protege.reporting.pareto import pareto_front

    ok = [p for p in points if p["parity"] and p["quality"] is not None]
    out = {}
    for key, cost in (("latency", "latency_ms_p50"), ("size", "disk_bytes")):
        have = [p for p in ok if p[cost] is not None]
        front = pareto_front([p[cost] for p in have], [p["quality"] for p in have])
        out[key] = [have[i]["name"] for i in front]
    return out


def format_candidates(metrics: dict) -> str:
    """The terminal table of a compress run: every point, the Pareto fronts, the budget and the winner."""
    from protege.utils.fmt import fmt_metric, fmt_num, num

    c = metrics["compress"]
    fronts = c.get("pareto", {})
    header = ["candidate/variant", c.get("primary", "metric"), "retention", "agree", "p50 ms", "speedup", "ex/s",
              "disk MB", "parity", "front", "budget"]
    rows = []
    cell = lambda v, f: "-" if num(v) is None else f(num(v))  # noqa: E731
    for p in c["candidates"]:
        front = ("L" if p["name"] in fronts.get("latency", []) else "") + ("S" if p["name"] in fronts.get("size", []) else "")
        mark = "WINNER" if p["name"] == c["winner"] else ("closest" if p["name"] == c.get("closest") and not c["winner"] else "")
        rows.append([p["name"], cell(p["quality"], fmt_metric), cell(p["retention"], lambda x: f"{100 * x:.1f}%"),
                     cell(p["agreement"], fmt_metric), cell(p["latency_ms_p50"], fmt_num), cell(p["speedup"], lambda x: f"{x:.2f}x"),
                     cell(p["throughput_per_s"], fmt_num), cell(p["disk_bytes"], lambda b: fmt_num(b / 1e6)),
                     "pass" if p["parity"] else "FAIL", front or "-", mark])
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    line = lambda r: "  ".join(x.ljust(w) if i == 0 else x.rjust(w) for i, (x, w) in enumerate(zip(r, widths))).rstrip()  # noqa: E731
    out = [f"budget: {c['budget']['text']}", "", line(header), "  ".join("-" * w for w in widths)] + [line(r) for r in rows]
    out += ["", "front: L = on the quality-vs-latency Pareto front, S = quality-vs-size; speedup is against the fp32 "
                "PyTorch teacher timed in the same session"]
    out.append(f"winner: {c['winner']}" if c["winner"] else f"no candidate meets the budget; closest: {c.get('closest')}")
    return "\n".join(out) + "\n"


