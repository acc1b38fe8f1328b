"""SST-2: three MiniLM-L6 teachers, their ensemble, and a 3-layer student of each kind on the same budget.

Runs (all on this machine, CPU; a finished run folder is reused):
  teacher-1..3       all-MiniLM-L6-v2 fine-tuned on SST-2 train; they differ by seed (--diversity seeds)
                     or each sees its own random half of the rows (--diversity halves)
  student-single     layers 0,2,4 of the best single teacher, KD (T=2) + hard labels from that teacher
  student-ensemble   the same, from the ensemble of the three (mean of probabilities at T=2); the best
                     teacher is listed first, so both students start from the same layers and differ
                     only in what they learn from
Both students see the same rows, epochs, learning rate and losses. Everything is evaluated on the
official SST-2 dev set. The best single teacher is picked by its dev accuracy (the only held-out set;
this favours the single-teacher baseline, not the ensemble).
Target: the ensemble's 3-layer student matches or beats the best single 6-layer teacher.

    python benchmarks/ensemble.py --out runs/bench-ensemble [--max-train-examples 20000]
    python benchmarks/ensemble.py --out /tmp/smoke --max-train-examples 64 --max-steps 2 --max-eval-examples 64
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue" / "sst2"


def _half(train: Path, n: int | None, seed: int, folder: Path) -> Path:
    """A TSV of a random half of the first ``n`` rows of ``train`` (header kept), drawn with ``seed``."""
    header, *rows = train.read_text(encoding="utf-8").splitlines()
    rows = rows[:n] if n else rows
    keep = sorted(random.Random(seed).sample(range(len(rows)), len(rows) // 2))
    path = folder / f"half-{seed}.tsv"
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join([header] + [rows[i] for i in keep]) + "\n", encoding="utf-8")
    return path


def _accuracy(metrics: dict, *keys: str) -> float:
    for key in keys:
        metrics = metrics[key]
    return metrics["eval"]["metrics"]["accuracy"]


def main() -> None:
    """Run the benchmark and print a results table (also written to OUT/results.json)."""
    import protege
    from protege.data.assets import minilm_dir
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-ensemble")
    p.add_argument("--max-train-examples", type=int, default=20000, help="first N rows of SST-2 train (67,349 in all)")
    p.add_argument("--max-eval-examples", type=int, default=None, help="first N rows of SST-2 dev (872 in all; smoke runs)")
    p.add_argument("--max-steps", type=int, default=None, help="stop every run after N steps (smoke runs)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--members", type=int, default=3)
    p.add_argument("--diversity", choices=("seeds", "halves"), default="seeds")
    p.add_argument("--ensemble", choices=("probs", "logits"), default="probs")
    p.add_argument("--transfer-examples", type=int, default=None,
                   help="rows of SST-2 train the students distil on (default: the teachers' --max-train-examples)")
    p.add_argument("--alpha-ce", type=float, default=1.0, help="students' weight on the gold labels (0: soft targets only)")
    args = p.parse_args()
    quiet_transformers()
    out = Path(args.out)
    train = DATA / "train.tsv"
    common = dict(eval=str(DATA / "dev.tsv"), max_eval_examples=args.max_eval_examples, epochs=args.epochs, batch_size=32,
                  max_length=args.max_length, lr=1e-4, warmup_ratio=0.1, overwrite=True, speed=False)
    if args.max_steps:
        common["max_steps"] = args.max_steps
    timing = {}

    def run(name, fn, **kw):
        if (out / name / "metrics.json").exists():
            print(f"== {name}: reusing {out / name}")
        else:
            print(f"== {name}", flush=True)
            t = time.perf_counter()
            fn(out=str(out / name), **common, **kw)
            timing[name] = round(time.perf_counter() - t, 1)
        return json.loads((out / name / "metrics.json").read_text())

    teachers = {}
    for k in range(1, args.members + 1):
        if args.diversity == "seeds":
            data = dict(train=str(train), max_train_examples=args.max_train_examples)
        else:
            data = dict(train=str(_half(train, args.max_train_examples, k, out / "data")))
        teachers[f"teacher-{k}"] = run(f"teacher-{k}", protege.finetune, model=str(minilm_dir()), seed=k, **data)
    ranked = sorted(teachers, key=lambda name: -_accuracy(teachers[name]))
    best = ranked[0]
    transfer = args.transfer_examples or args.max_train_examples
    distill = dict(train=str(train), max_train_examples=transfer, student_layers="0,2,4", alpha_kd=1.0,
                   alpha_ce=args.alpha_ce, temperature=2.0)
    # the default setting keeps the plain run names; other transfer sets or label weights get their own folders
    tag = "" if (transfer, args.alpha_ce) == (args.max_train_examples, 1.0) else f"-{transfer}-ce{args.alpha_ce:g}"
    single = run(f"student-single{tag}", protege.distill, teacher=str(out / best), **distill)
    ensemble = run(f"student-ensemble{tag}", protege.distill, teacher=[str(out / name) for name in ranked], ensemble=args.ensemble,
                   **distill)

    rows = {name: {"layers": 6, "accuracy": _accuracy(m)} for name, m in teachers.items()}
    rows["ensemble"] = {"layers": 6 * args.members, "accuracy": _accuracy(ensemble, "teacher")}
    for name, m in (("student-single", single), ("student-ensemble", ensemble)):
        rows[name] = {"layers": 3, "accuracy": _accuracy(m), "agreement": m["eval"]["agreement"]["agreement"],
                      "kl": m["eval"]["agreement"]["kl"], "parameters": m["size"]["parameters"]}
    rows["student-ensemble"]["agreement_with_members"] = {
        Path(member["model"]).name: member["agreement"]["agreement"] for member in ensemble["ensemble"]["members"]}
    target = rows["student-ensemble"]["accuracy"] >= rows[best]["accuracy"]
    summary = {"args": vars(args), "best_teacher": best, "results": rows, "target_met": target, "train_seconds": timing}
    (out / f"results{tag}.json").write_text(json.dumps(summary, indent=2))
    print(f"{'run':<18} {'layers':>6} {'acc':>7} {'agree':>7} {'kl':>7}")
    for name, r in rows.items():
        agree = f"{r['agreement']:7.4f} {r['kl']:7.4f}" if "agreement" in r else f"{'':>7} {'':>7}"
        print(f"{name + (' (best)' if name == best else ''):<18} {r['layers']:>6} {r['accuracy']:7.4f} {agree}")
    print(f"target (3-layer student of the ensemble >= best single 6-layer teacher, {rows[best]['accuracy']:.4f}): "
          f"{'met' if target else 'NOT met'}")


if __name__ == "__main__":
    main()
