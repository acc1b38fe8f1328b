"""Model extraction of an SST-2 classifier served over HTTP, and the defenses (Krishna et al. 2020).

Victim    all-MiniLM-L6-v2 fine-tuned on SST-2 (runs/bench-sst2/teacher when it exists, else
          fine-tuned here on the first --victim-train-examples rows), served by `protege serve`
          in a subprocess on 127.0.0.1 with an API key, one server per output condition.
Attacker  the all-MiniLM-L6-v2 backbone with a new head, trained by `protege extract` on the
          answers to RANDOM and WIKI queries at 0.1x, 0.5x and 1x the victim's training-set size
          (67,349), from label-only (argmax) and from probability answers. One query log per
          condition holds the largest budget; smaller budgets train on its first entries (the
          generators are prefix-stable), so nothing is queried twice.
Measured  accuracy on the official SST-2 dev set (872) and agreement with the victim there,
          beside the paper's BERT-large numbers (victim 93.1; RANDOM 1x 90.1; WIKI 1x 91.4).
          Target: agreement >= 90% with RANDOM queries at 1x.
Defenses  (a) a query detector (logistic regression on the victim's pooled hidden state, top
          probability and entropy) trained on SST-2 train sentences vs RANDOM+WIKI queries:
          detection rates on held-out queries, false positives on held-out SST-2 sentences and on
          AG News sentences (genuine users of another domain); (b) output hardening at
          --defense-budget: probabilities rounded to 1 decimal, label only, against full
          probabilities; (c) a watermark (1% of answers wrong, keyed): verify-watermark on the
          student trained on the watermarked answers and on one trained on clean answers.

    python benchmarks/extraction.py --out runs/bench-extraction                 # the full grid (hours on CPU)
    python benchmarks/extraction.py --out runs/bench-extraction-smoke --smoke   # minutes: tiny budgets, a few steps
"""

from __future__ import annotations

import argparse
import json
import os
import re
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SST2_TRAIN_SIZE = 67_349
PAPER = {"victim": 93.1, ("random", 1.0): 90.1, ("wiki", 1.0): 91.4}


def parse_budgets(text: str) -> list[tuple[str, int]]:
    """``0.1x,0.5x,1x`` (multiples of SST-2 train) or absolute counts -> [(name, queries)]."""
    out = []
    for part in text.split(","):
        part = part.strip()
        n = round(float(part[:-1]) * SST2_TRAIN_SIZE) if part.endswith("x") else int(part)
        out.append((part, n))
    return out


class Server:
    """``protege serve`` in a subprocess on loopback; ``url`` once it listens."""

    def __init__(self, model: str, keys: Path, usage: Path, *extra: str):
        cmd = [sys.executable, "-m", "protege", "serve", model, "--port", "0", "--keys", str(keys), "--usage", str(usage),
               "--max-texts", "64", "--max-length", "128", *extra]
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
        deadline = time.monotonic() + 300
        self.url = None
        while self.url is None:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"protege serve did not start: {line}")
            found = re.search(r"at (http://\S+) ", line)
            self.url = found.group(1) if found else None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=60)


def main() -> None:
    """Run the benchmark; print the tables and write OUT/results.json."""
    import protege
    from protege.data.assets import minilm_dir
    from protege.extraction import Victim, verify_watermark
    from protege.extraction.defenses.detector import detection_report
    from protege.data.queries import read_corpus
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-extraction")
    p.add_argument("--victim", default="runs/bench-sst2/teacher", help="victim classifier (fine-tuned here when missing)")
    p.add_argument("--victim-train-examples", type=int, default=20000)
    p.add_argument("--budgets", default="0.1x,0.5x,1x", help="multiples of 67,349 (0.5x) or absolute counts")
    p.add_argument("--queries", default="random,wiki")
    p.add_argument("--outputs", default="label,probs")
    p.add_argument("--defense-budget", default="0.1x")
    p.add_argument("--epochs", type=float, default=3.0)
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--lr", type=float, default=1e-4)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--detector-n", type=int, default=2000)
    p.add_argument("--max-eval-examples", type=int, default=None, help="first N rows of SST-2 dev (872 in all)")
    p.add_argument("--smoke", action="store_true", help="tiny budgets and steps: checks the pipeline, measures nothing")
    p.add_argument("--skip-defenses", action="store_true")
    args = p.parse_args()
    if args.smoke:
        args.budgets, args.defense_budget, args.max_steps, args.detector_n, args.max_eval_examples = "200", "200", 4, 200, 200
    quiet_transformers()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sst2, wiki, agnews = SHARED / "glue" / "sst2", SHARED / "wiki" / "sentences.txt", SHARED / "agnews" / "dev.tsv"
    budgets = parse_budgets(args.budgets)
    kinds = [k.strip() for k in args.queries.split(",")]
    outputs = [o.strip() for o in args.outputs.split(",")]

    victim = Path(args.victim)
    if not (victim / "metrics.json").exists():
        victim = out / "victim"
        if not (victim / "metrics.json").exists():
            print(f"== fine-tuning the victim into {victim}", flush=True)
            protege.finetune(model=str(minilm_dir()), train=str(sst2 / "train.tsv"), eval=str(sst2 / "dev.tsv"), out=str(victim),
                             max_train_examples=args.victim_train_examples, epochs=1.0, batch_size=32, max_length=64, lr=1e-4,
                             warmup_ratio=0.1, overwrite=True, speed=False)
    key = secrets.token_urlsafe(24)
    keys = out / "keys.json"
    keys.write_text(json.dumps({key: {"budget": None, "rate": None}}))
    keys.chmod(0o600)
    backbone = str(minilm_dir())
    train_kw = dict(student=backbone, api_key=key, eval=str(sst2 / "dev.tsv"), max_eval_examples=args.max_eval_examples,
                    epochs=args.epochs, max_steps=args.max_steps,
                    lr=args.lr, warmup_ratio=0.1, batch_size=args.batch_size, max_length=args.max_length, query_batch=64,
                    query_corpus=str(wiki), keep_best=False, eval_every=10**9, speed=False, overwrite=True, progress=True)
    results: dict = {"victim": str(victim), "budgets": dict(budgets), "runs": {}, "defenses": {}}

    def attack(name: str, url: str, kind: str, budget: int, log: Path, **kw) -> dict:
        t = time.perf_counter()
        m = protege.extract(victim=url, queries=kind, budget=budget, out=str(out / "runs" / name), query_log=str(log),
                            **{**train_kw, **kw})
        row = {"accuracy": m["eval"]["metrics"]["accuracy"], "agreement": m["eval"]["agreement"]["agreement"],
               "victim_accuracy": m["teacher"]["eval"]["metrics"]["accuracy"], "queries": budget, "output": m["extraction"]["output"],
               "targets": m["extraction"]["targets"], "sent": m["extraction"]["sent"], "seconds": round(time.perf_counter() - t, 1)}
        results["runs"][name] = row
        print(f"   {name}: accuracy {row['accuracy']:.4f}, agreement {row['agreement']:.4f}", flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=2))
        return row

    for output in outputs:  # one server per output mode; one log per (mode, kind) at the largest budget
        with Server(str(victim), keys, out / "usage.sqlite", "--output", output) as server:
            for kind in kinds:
                for label, n in sorted(budgets, key=lambda b: -b[1]):
                    print(f"== {kind} {label} ({n} queries), {output} answers, from {server.url}", flush=True)
                    attack(f"{kind}-{label}-{output}", server.url, kind, n, out / "logs" / f"{kind}-{output}.jsonl")

    if not args.skip_defenses:
        (label, n) = parse_budgets(args.defense_budget)[0]
        wm_key = secrets.token_urlsafe(16)
        conditions = {"probs": ("--output", "probs"), "probs-1dp": ("--output", "probs", "--decimals", "1"),
                      "label": ("--output", "label"),
                      "label-watermark": ("--output", "label", "--watermark-key", wm_key, "--watermark-fraction", "0.01")}
        hardening = {}
        for cond, flags in conditions.items():
            with Server(str(victim), keys, out / "usage.sqlite", *flags) as server:
                print(f"== defense {cond}: random {label} ({n} queries)", flush=True)
                hardening[cond] = attack(f"defense-{cond}-{label}", server.url, "random", n,
                                         out / "logs" / f"defense-{cond}.jsonl")
        wm_log = out / "logs" / "defense-label-watermark.jsonl"
        watermark = {who: verify_watermark(str(out / "runs" / f"defense-{who}-{label}"), wm_log, key=wm_key, fraction=0.01)
                     for who in ("label-watermark", "label")}
        print("== detector", flush=True)
        model = Victim(str(victim), output="probs", max_length=args.max_length)
        n_det = args.detector_n
        logs = {kind: out / "logs" / f"{kind}-{outputs[0]}.jsonl" for kind in kinds}
        queries = {kind: [json.loads(line)["text"] for line in path.read_text().splitlines()[1:n_det + 1]]
                   for kind, path in logs.items()}
        genuine = read_corpus(sst2 / "train.tsv")[-n_det * 2:]  # SST-2 train rows the victim never saw in bench-sst2
        ood = {"agnews": read_corpus(agnews)[:n_det]}
        _, detection = detection_report(model, genuine=genuine, queries=queries, ood=ood, target_fpr=0.05)
        results["defenses"] = {"hardening": hardening, "watermark": watermark, "detector": detection}
        (out / "results.json").write_text(json.dumps(results, indent=2))
    print_tables(results, budgets, kinds, outputs)


def print_tables(results: dict, budgets, kinds, outputs) -> None:
    """The results as markdown tables (what goes into benchmarks/README.md)."""
    runs = results["runs"]
    any_run = next(iter(runs.values()), None)
    if any_run:
        print(f"\nvictim accuracy on SST-2 dev: {100 * any_run['victim_accuracy']:.1f} (paper's BERT-large victim: {PAPER['victim']})\n")
    print("| queries | budget | answers | accuracy | agreement | paper accuracy |")
    print("|---|---|---|---:|---:|---:|")
    for kind in kinds:
        for label, n in budgets:
            for output in outputs:
                r = runs.get(f"{kind}-{label}-{output}")
                if r:
                    paper = PAPER.get((kind, float(label[:-1]) if label.endswith("x") else None), "")
                    print(f"| {kind.upper()} | {label} ({n:,}) | {output} | {100 * r['accuracy']:.1f} "
                          f"| {100 * r['agreement']:.1f} | {paper} |")
    d = results.get("defenses") or {}
    if d:
        print("\n| defense (RANDOM queries) | attacker accuracy | agreement |")
        print("|---|---:|---:|")
        for cond, r in d["hardening"].items():
            print(f"| {cond} | {100 * r['accuracy']:.1f} | {100 * r['agreement']:.1f} |")
        print("\n| watermark test on | watermarked | matches | control rate | p-value | verdict |")
        print("|---|---:|---:|---:|---:|---|")
        for who, w in d["watermark"].items():
            print(f"| student of {who} answers | {w['watermarked']} | {w['matches']} | {100 * (w['control_rate'] or 0):.1f}% | "
                  f"{w['p_value']:.2g} | {'watermarked' if w['verdict'] else 'not'} |")
        det = d["detector"]
        print("\n| detector (threshold at 5% FPR on SST-2) | flagged |")
        print("|---|---:|")
        for kind, rate in det["detection_rate"].items():
            print(f"| {kind.upper()} queries (detection rate) | {100 * rate:.1f}% |")
        for name, rate in det["false_positive_rate"].items():
            who = "SST-2 sentences (held out)" if name == "genuine" else f"{name} sentences"
            print(f"| genuine users: {who} (false positives) | {100 * rate:.1f}% |")
    target = runs.get(f"random-1x-{outputs[0]}") or runs.get("random-1x-label")
    if target:
        print(f"\ntarget (agreement >= 90% with RANDOM at 1x): {'met' if target['agreement'] >= 0.9 else 'NOT met'}")


if __name__ == "__main__":
    main()
