"""The fidelity section of the terminal report (``protege evaluate --fidelity``)."""

from __future__ import annotations

__all__ = ["format_fidelity"]

_SLICE_KINDS = ("length", "label", "confidence", "rarity")


def format_fidelity(fid: dict, *, examples: int = 5) -> str:
    """The fidelity section of the terminal report."""
    f = fid.get("figures") or {}
    out = [f"fidelity on {fid.get('source', 'the evaluation set')} ({fid.get('n')} examples):"]
    out += ["  " + line for line in _summary_lines(fid, f)]
    ood = fid.get("ood")
    if ood:
        out.append(f"  out of distribution, {ood.get('source')} ({ood.get('n')} examples):")
        out += ["    " + line for line in _summary_lines(ood, ood.get("figures") or {})]
    for kind in _SLICE_KINDS:
        buckets = fid.get("slices", {}).get(kind)
        if buckets:
            out.append(f"  by {kind}: " + "; ".join(_bucket(b) for b in buckets))
    inside = fid.get("internals") or {}
    if inside.get("skipped"):
        out.append(f"  internals: skipped ({inside['skipped']})")
    elif inside.get("cka_mapped"):
        out.append("  internals: CKA per mapped layer " + " ".join(f"{c:.3f}" for c in inside["cka_mapped"])
                   + (f"; attention JS mean {f['attention_js_mean']:.3f}, max {f['attention_js_max']:.3f}"
                      if "attention_js_mean" in f else ""))
    changed = fid.get("most_changed") or []
    if changed and examples:
        out.append("  most changed:")
        for r in changed[:examples]:
            text = (r.get("text") or "")[:70]
            if "p_teacher" in r:
                out.append(f"    {r['change']:+.3f}  {r['teacher']} {r['p_teacher']:.2f} -> {r['p_student']:.2f}"
                           f" ({r['student']}{', ' + r['flip'] if r.get('flip') else ''})  {text!r}")
            else:
                out.append(f"    {r['change']:.3f}  teacher {r['teacher']:.3g}, student {r['student']:.3g}  {text!r}")
    if fid.get("files"):
        out.append(f"  written: {', '.join(fid['files'])}")
    return "\n".join(out)


def _summary_lines(s: dict, f: dict) -> list[str]:
    lines = []
    fl = s.get("flips")
    if fl:
        lines.append(f"flips: {fl['lost']} lost ({fl['lost_rate']:.2%}), {fl['gained']} gained ({fl['gained_rate']:.2%}); "
                     f"McNemar exact p = {fl['mcnemar_p']:.3g} (student worse: p = {fl['mcnemar_p_worse']:.3g})")
    if "agreement" in f:
        lines.append(f"agreement {f['agreement']:.4f}; KL mean {f['kl_mean']:.4f}, p95 {f['kl_p95']:.4f}; "
                     f"TV mean {f['tv_mean']:.4f}, p95 {f['tv_p95']:.4f}")
    if "ece_teacher" in f:
        lines.append(f"calibration: ECE {f['ece_teacher']:.4f} -> {f['ece_student']:.4f} ({f['ece_delta']:+.4f}); "
                     f"Brier {f['brier_teacher']:.4f} -> {f['brier_student']:.4f}")
    err = s.get("errors")
    if err:
        lines.append(f"errors: MAE {err['mae_teacher']:.4f} -> {err['mae_student']:.4f}; |error| grew on "
                     f"{err['worse_rate']:.2%}, shrank on {err['better_rate']:.2%} (tolerance {err['tolerance']:.3g}; "
                     f"sign test p = {err['sign_p_worse']:.3g})")
    if "diff_mean" in f:
        lines.append(f"|student - teacher|: mean {f['diff_mean']:.4f}, p95 {f['diff_p95']:.4f}")
    if "rare_share" in f:
        gap = f.get("rare_accuracy_gap", f.get("rare_mae_gap"))
        lines.append(f"rare-word examples: {f['rare_share']:.1%} of the set"
                     + (f"; gap vs the rest {gap:+.4f}" if gap is not None else ""))
    return lines


def _bucket(b: dict) -> str:
    if "accuracy_student" in b:
        return f"{b['name']} (n={b['n']}) {b['accuracy_teacher']:.2f}->{b['accuracy_student']:.2f}"
    if "mae_student" in b:
        return f"{b['name']} (n={b['n']}) MAE {b['mae_teacher']:.3g}->{b['mae_student']:.3g}"
    return f"{b['name']} (n={b['n']}) agree {b.get('agreement', float('nan')):.2f}"
