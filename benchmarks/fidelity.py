"""What each compression method loses: the fidelity report of four SST-2 students against their teacher.

Teacher   the SST-2 MiniLM-L6 classifier of benchmarks/sst2.py (runs/bench-sst2/teacher).
Students  (each skipped with a note when its folder is missing; --run NAME=FOLDER adds or replaces one)
  distilled   layers 0,2,4 kept, KD + hard labels           runs/bench-sst2/student       (benchmarks/sst2.py)
  pruned      structured: 6 of 12 heads, 768 of 1536 FFN    runs/bench-prune/heads-ffn    (benchmarks/pruning.py)
  extracted   RANDOM queries at 1x, label-only answers      runs/bench-extraction/runs/random-1x-label
  int8        the distilled student exported to int8        runs/bench-export/int8        (issue "Ship the fast model")
Data      SST-2 dev (872) in distribution; the Rotten Tomatoes test split of the demo assets (1,057
          sentences, protege.data.assets.rotten_tomatoes) out of distribution; token frequencies of
          SST-2 train (67,349) for the rare-word slice (counted once, cached in $PROTEGE_CACHE).
Measured  per student: flips both ways with McNemar's exact p, ECE of teacher and student, the
          accuracy delta (student - teacher) on rare-word examples against the rest, KL mean/p95,
          agreement in and out of distribution, CKA of kept layers. Every run's metrics.json holds
          the whole ``fidelity`` section; OUT/report/index.html shows them side by side.

    python benchmarks/fidelity.py --out runs/bench-fidelity            # ~2 min per student on 2 CPU cores
    python benchmarks/fidelity.py --run int8=runs/export/int8 --max-eval-examples 200   # a quick look
    RT=~/.cache/protege/rotten_tomatoes   # the demo's models: in distribution RT test, out of it SST-2 dev
    python benchmarks/fidelity.py --teacher runs/demo/teacher --only --run distilled=runs/demo/student \
        --run int8=runs/bench-deploy-demo/student-deploy/onnx-int8-dynamic --eval $RT/test.tsv \
        --ood ../shared/data/glue/sst2/dev.tsv --train $RT/train.tsv --out runs/bench-fidelity-demo
    python benchmarks/report_screenshot.py runs/bench-fidelity/report/index.html --out benchmarks/fidelity_report.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "glue" / "sst2"
STUDENTS = {
    "distilled": "runs/bench-sst2/student",
    "pruned": "runs/bench-prune/heads-ffn",
    "extracted": "runs/bench-extraction/runs/random-1x-label",
    "int8": "runs/bench-export/int8",
}
COLUMNS = [("flips_lost_count", "lost", "{:.0f}"), ("flips_gained_count", "gained", "{:.0f}"),
           ("mcnemar_p_worse", "McNemar p", "{:.3g}"), ("ece_teacher", "ECE t", "{:.4f}"), ("ece_student", "ECE s", "{:.4f}"),
           ("kl_mean", "KL mean", "{:.4f}"), ("kl_p95", "KL p95", "{:.4f}"), ("rare_accuracy_delta", "rare acc Δ", "{:+.4f}"),
           ("rare_accuracy_gap", "rare gap", "{:+.4f}"), ("agreement", "agree", "{:.4f}"),
           ("ood.agreement", "OOD agree", "{:.4f}"), ("ood.accuracy_delta", "OOD acc Δ", "{:+.4f}"),
           ("cka_min", "CKA min", "{:.3f}")]


def main() -> None:
    """Evaluate every student with --fidelity, print one table, write OUT/results.json and OUT/report/."""
    import protege
    from protege.data.assets import rotten_tomatoes
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="runs/bench-sst2/teacher")
    p.add_argument("--out", default="runs/bench-fidelity")
    p.add_argument("--run", action="append", default=[], metavar="NAME=FOLDER", help="a student to add or replace")
    p.add_argument("--max-eval-examples", type=int, default=None)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--eval", default=str(DATA / "dev.tsv"), help="in-distribution data (default SST-2 dev)")
    p.add_argument("--ood", default=None, help="out-of-distribution data (default: the demo's Rotten Tomatoes test split)")
    p.add_argument("--train", default=str(DATA / "train.tsv"), help="the teacher's training data, for the rare-word slice")
    p.add_argument("--only", action="store_true", help="only the --run students, not the SST-2 defaults")
    p.add_argument("--gate", default=None, help="budgets checked for every student (reported, not enforced)")
    args = p.parse_args()
    quiet_transformers()
    if not Path(args.teacher, "config.json").exists():
        raise SystemExit(f"no teacher at {args.teacher}: run `python benchmarks/sst2.py --out runs/bench-sst2` first")
    students = {} if args.only else dict(STUDENTS)
    for item in args.run:
        name, _, folder = item.partition("=")
        students[name] = folder
    ood = args.ood or rotten_tomatoes()["test"]
    out = Path(args.out)
    results = {}
    for name, folder in students.items():
        if not Path(folder, "config.json").exists() and not Path(folder).is_file():
            print(f"== {name}: skipped, no model at {folder}")
            continue
        print(f"== {name}: {folder}", flush=True)
        metrics = protege.evaluate(folder, eval=args.eval, compare=args.teacher, fidelity=True, ood=str(ood),
                                   train=args.train, max_eval_examples=args.max_eval_examples,
                                   max_length=args.max_length, speed=False, gate=args.gate,
                                   out=str(out / name / "metrics.json"), fidelity_dir=str(out / name / "fidelity"))
        results[name] = {"model": folder, "figures": metrics["fidelity"]["figures"],
                         "gates": metrics["fidelity"].get("gates")}
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    print_table(results)
    if results:
        report = protege.report([str(out / name) for name in results], out=str(out / "report"), title="Fidelity on SST-2")
        print(f"\nreport: {report.out / 'index.html'}")


def print_table(results: dict) -> None:
    """One row per student: the figures the benchmark README quotes."""
    header = ["student"] + [label for _, label, _ in COLUMNS]
    rows = [[name] + [fmt.format(r["figures"][k]) if r["figures"].get(k) is not None else "-" for k, _, fmt in COLUMNS]
            for name, r in results.items()]
    widths = [max(len(row[i]) for row in [header] + rows) for i in range(len(header))]
    for row in [header, ["-" * w for w in widths]] + rows:
        print("  ".join(cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths))))


if __name__ == "__main__":
    main()
