"""SST-2: MiniLM-L6 teacher -> 3-layer student, plus the DistilBERT ablations on the same budget.

Runs (all on this machine, CPU):
  teacher       all-MiniLM-L6-v2 fine-tuned on SST-2 train (first --train-examples rows)
  student       layers 0,2,4 kept, KD (T=2) + hard labels           <- the headline
  random-init   same 3-layer shape, random weights, same losses     (initialisation ablation)
  hard-only     layers 0,2,4 kept, hard labels only (no KD)         (loss ablation)
Each is evaluated on the official SST-2 dev set, timed interleaved against the teacher.
Target: student accuracy >= 97% of the teacher's at >= 1.8x its batch-1 CPU speed.

    python benchmarks/sst2.py --out runs/bench-sst2 [--train-examples 20000]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue" / "sst2"


def main() -> None:
    """Run the benchmark and print a results table (also written to OUT/results.json)."""
    import protege
    from protege.data.assets import minilm_dir
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-sst2")
    p.add_argument("--train-examples", type=int, default=20000, help="first N rows of SST-2 train (67,349 in all)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--skip-ablations", action="store_true")
    args = p.parse_args()
    quiet_transformers()
    out = Path(args.out)
    common = dict(train=str(DATA / "train.tsv"), eval=str(DATA / "dev.tsv"), max_train_examples=args.train_examples,
                  epochs=args.epochs, batch_size=32, max_length=args.max_length, lr=1e-4, warmup_ratio=0.1,
                  overwrite=True, speed=False)
    results, timing = {}, {}

    def run(name, fn, **kw):
        if (out / name / "metrics.json").exists():
            print(f"== {name}: reusing {out / name}")
            return
        print(f"== {name}", flush=True)
        t = time.perf_counter()
        fn(out=str(out / name), **common, **kw)
        timing[name] = round(time.perf_counter() - t, 1)

    run("teacher", protege.finetune, model=str(minilm_dir()))
    teacher = str(out / "teacher")
    students = {"student": dict(student_layers="0,2,4", alpha_kd=1.0, alpha_ce=1.0)}
    if not args.skip_ablations:
        students["random-init"] = dict(student_num_layers=3, alpha_kd=1.0, alpha_ce=1.0)
        students["hard-only"] = dict(student_layers="0,2,4", alpha_kd=0.0, alpha_ce=1.0)
    for name, kw in students.items():
        run(name, protege.distill, teacher=teacher, temperature=2.0, **kw)
    for name in students:
        m = protege.evaluate(str(out / name), eval=str(DATA / "dev.tsv"), compare=teacher, max_length=args.max_length,
                             speed_seconds=20.0)
        results[name] = {
            "accuracy": m["eval"]["metrics"]["accuracy"], "teacher_accuracy": m["teacher"]["eval"]["metrics"]["accuracy"],
            "retention": m["ratios"].get("retention"), "agreement": m["eval"]["agreement"]["agreement"],
            "speedup_batch1": m["ratios"].get("speedup_batch1"), "throughput_ratio": m["ratios"].get("throughput_ratio"),
            "latency_ms_p50": m["speed"]["latency_ms_p50"], "teacher_latency_ms_p50": m["teacher"]["speed"]["latency_ms_p50"],
            "parameters": m["size"]["parameters"], "teacher_parameters": m["teacher"]["size"]["parameters"],
        }
    summary = {"args": vars(args), "results": results, "train_seconds": timing}
    (out / "results.json").write_text(json.dumps(summary, indent=2))
    print(f"{'run':<12} {'acc':>7} {'teacher':>8} {'retain':>7} {'agree':>7} {'speedup':>8} {'params':>8}")
    for name, r in results.items():
        print(f"{name:<12} {r['accuracy']:7.4f} {r['teacher_accuracy']:8.4f} {r['retention']:7.3f} {r['agreement']:7.4f} "
              f"{r['speedup_batch1']:7.2f}x {r['parameters'] / 1e6:7.1f}M")
    head = results["student"]
    ok = head["retention"] >= 0.97 and head["speedup_batch1"] >= 1.8
    print(f"target (retention >= 0.97 and speedup >= 1.8x): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
