"""SST-2 pruning: accuracy vs sparsity, and which kinds of pruning make the MiniLM-L6 teacher faster on a CPU.

Teacher: the SST-2 MiniLM-L6 classifier made by benchmarks/sst2.py (runs/bench-sst2/teacher). Runs, all
through ``protege.prune`` and all recovered the same way (distillation from the dense teacher, KD at
T=2 + hard labels, --recover-steps steps; 0 = one-shot, no training):
  global-S      unstructured magnitude pruning to sparsity S, ranked over all encoder matrices (Chen et al. 2020)
  layer-S       the same sparsity S in every matrix
  random-S      control: random masks with global-S's count in every matrix (--method masks)
  heads-ffn     structured: 6 of 12 heads and 768 of 1536 FFN neurons per layer (gradient importance, Michel et al. 2019)
  ffn           structured: 384 of 1536 FFN neurons per layer (a stock config: loads with from_pretrained)
  layers        structured: layers 0,2,4 of 6
  layers-ffn    structured: layers 0,1,3,5 of 6, each with 960 of 1536 FFN neurons
The four structured runs each remove about half of the encoder's non-embedding parameters. Every run
is evaluated on the SST-2 dev set and timed against the dense teacher, interleaved in one process
(batch-1 p50 latency, batch-32 latency from throughput; CPU, all threads).
Target: structured pruning that removes half of the non-embedding parameters runs >= 1.6x faster
at batch 1 and loses <= 1.5 accuracy points after recovery.

    python benchmarks/pruning.py --teacher runs/bench-sst2/teacher --out runs/bench-prune
    python benchmarks/pruning.py --recover-steps 0 --sparsities 0.2,0.4,0.6,0.8 --skip-structured   # one-shot curve
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue" / "sst2"
STRUCTURED = {
    "heads-ffn": dict(keep_heads=6, keep_ffn=768),
    "ffn": dict(keep_ffn=384),
    "layers": dict(keep_layers="0,2,4"),
    # depth is what batch-1 CPU latency pays for most: 4 layers, each with a narrower FFN
    "layers-ffn": dict(keep_layers="0,1,3,5", keep_ffn=960),
}


def _random_masks(teacher: str, like: Path, dest: Path, seed: int) -> Path:
    """Masks with the same number of zeros per matrix as ``like``, at random positions."""
    from protege.models import load_classifier
    from protege.pruning import get_masks, load_masks, random_prune_, save_masks

    zeros = {k: int((~m).sum()) for k, m in load_masks(like).items()}
    model = random_prune_(load_classifier(teacher), zeros, seed=seed)
    return save_masks(get_masks(model), dest)


def _row(m: dict, dense_accuracy: float) -> dict:
    p = m["pruning"]
    accuracy = m["eval"]["metrics"]["accuracy"]
    return {"sparsity": p["sparsity"], "sparsity_of": p["sparsity_of"], "accuracy": accuracy,
            "points_lost": 100 * (dense_accuracy - accuracy), "agreement": m["eval"]["agreement"]["agreement"],
            "latency_ms_batch1": p.get("latency_ms_batch1"), "latency_ms_batch32": p.get("latency_ms_batch32"),
            "dense_latency_ms_batch1": p.get("dense_latency_ms_batch1"), "dense_latency_ms_batch32": p.get("dense_latency_ms_batch32"),
            "speedup_batch1": p.get("speedup_batch1"), "speedup_batch32": p.get("speedup_batch32"),
            "remaining_non_embedding_parameters": p["remaining_non_embedding_parameters"],
            "dense_non_embedding_parameters": p["dense_non_embedding_parameters"], "loads_with": p["loads_with"]}


def retime(args) -> None:
    """Time the teacher and finished runs interleaved in one session; print and save the speedups."""
    from protege.data import load_examples
    from protege.reporting.remeasure import remeasure

    out = Path(args.out)
    runs = args.retime or sorted(d.name for d in out.iterdir() if (d / "metrics.json").is_file())
    folders = [Path(args.teacher)] + [out / r for r in runs]
    texts = list(load_examples(str(DATA / "dev.tsv"), max_examples=64).texts)
    timings, problems = remeasure(folders, texts=texts, max_length=args.max_length, speed_seconds=args.speed_seconds)
    for line in problems:
        print(line)
    dense = timings[Path(args.teacher).resolve()]
    rows = {}
    for name in runs:
        t = timings.get((out / name).resolve())
        if t is None:
            continue
        rows[name] = {"latency_ms_batch1": t["latency_ms_p50"], "throughput_batch32": t["throughput_per_s"],
                      "speedup_batch1": dense["latency_ms_p50"] / t["latency_ms_p50"],
                      "speedup_batch32": t["throughput_per_s"] / dense["throughput_per_s"]}
        print(f"{name:<12} b1 {t['latency_ms_p50']:6.2f} ms ({rows[name]['speedup_batch1']:.2f}x)   "
              f"b32 {t['throughput_per_s']:6.1f} ex/s ({rows[name]['speedup_batch32']:.2f}x)")
    print(f"dense teacher b1 {dense['latency_ms_p50']:.2f} ms, b32 {dense['throughput_per_s']:.1f} ex/s")
    (out / "retimed.json").write_text(json.dumps({"dense": dense, "runs": rows, "speed_seconds": args.speed_seconds}, indent=2))


def main() -> None:
    """Run the benchmark and print a results table (also written to OUT/results.json)."""
    import protege.pruning
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="runs/bench-sst2/teacher")
    p.add_argument("--out", default="runs/bench-prune")
    p.add_argument("--sparsities", default="0.4,0.6,0.8", help="unstructured sparsities, comma-separated")
    p.add_argument("--recover-steps", type=int, default=300, help="distillation steps after pruning (0: one-shot)")
    p.add_argument("--train-examples", type=int, default=20000, help="first N rows of SST-2 train")
    p.add_argument("--eval-examples", type=int, default=None, help="first N rows of SST-2 dev (872 in all)")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--speed-seconds", type=float, default=10.0, help="timing budget per model and run")
    p.add_argument("--skip-unstructured", action="store_true")
    p.add_argument("--skip-structured", action="store_true")
    p.add_argument("--only", default=None, help="comma-separated structured runs to make (default: all of them)")
    p.add_argument("--retime", nargs="*", metavar="RUN",
                   help="only re-time the dense teacher and these finished runs of --out (default: all), interleaved "
                        "in one session, and write OUT/retimed.json (for numbers taken while the machine was busy)")
    args = p.parse_args()
    if args.retime is not None:
        retime(args)
        return
    if not (Path(args.teacher) / "config.json").is_file():
        raise SystemExit(f"no teacher at {args.teacher}: run `python benchmarks/sst2.py --out runs/bench-sst2` first")
    quiet_transformers()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    common = dict(train=str(DATA / "train.tsv"), max_train_examples=args.train_examples, eval=str(DATA / "dev.tsv"),
                  max_eval_examples=args.eval_examples, max_length=args.max_length, speed_seconds=args.speed_seconds,
                  overwrite=True, progress=False, batch_size=32, recover="none")
    if args.recover_steps:
        common.update(recover="distill", max_steps=args.recover_steps, lr=1e-4, warmup_ratio=0.1, alpha_kd=1.0, alpha_ce=1.0,
                      temperature=2.0)
    timing = {}

    def run(name, **kw):
        if (out / name / "metrics.json").exists():
            print(f"== {name}: reusing {out / name}", flush=True)
        else:
            print(f"== {name}", flush=True)
            t = time.perf_counter()
            protege.prune(args.teacher, out=str(out / name), **common, **kw)
            timing[name] = round(time.perf_counter() - t, 1)
        return json.loads((out / name / "metrics.json").read_text())

    metrics = {}
    if not args.skip_unstructured:
        for s in [float(x) for x in args.sparsities.split(",")]:
            for scope in ("global", "layer"):
                metrics[f"{scope}-{s:g}"] = run(f"{scope}-{s:g}", method="magnitude", sparsity=s, scope=scope)
            masks = _random_masks(args.teacher, out / f"global-{s:g}", out / f"random-{s:g}.masks.safetensors", seed=0)
            metrics[f"random-{s:g}"] = run(f"random-{s:g}", method="masks", masks=str(masks))
    if not args.skip_structured:
        only = set(args.only.split(",")) if args.only else set(STRUCTURED)
        if only - set(STRUCTURED):
            raise SystemExit(f"--only: unknown runs {sorted(only - set(STRUCTURED))}; choose from {', '.join(STRUCTURED)}")
        for name, kw in STRUCTURED.items():
            if name in only:
                metrics[name] = run(name, method="structured", **kw)
    if not metrics:
        raise SystemExit("nothing to run: drop --skip-unstructured or --skip-structured")
    dense = next(iter(metrics.values()))["teacher"]["eval"]["metrics"]["accuracy"]
    results = {name: _row(m, dense) for name, m in metrics.items()}
    (out / "results.json").write_text(json.dumps({"args": vars(args), "dense_accuracy": dense, "results": results,
                                                  "seconds": timing}, indent=2))
    print(f"dense teacher: accuracy {dense:.4f}")
    print(f"{'run':<12} {'sparsity':>9} {'acc':>7} {'lost':>6} {'b1 ms':>7} {'b32 ms':>7} {'b1 x':>6} {'b32 x':>6} {'non-emb':>8}")
    for name, r in results.items():
        fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
        print(f"{name:<12} {100 * r['sparsity']:8.1f}% {r['accuracy']:7.4f} {r['points_lost']:6.2f} "
              f"{fmt(r['latency_ms_batch1'], '7.2f')} {fmt(r['latency_ms_batch32'], '7.1f')} {fmt(r['speedup_batch1'], '5.2f')}x "
              f"{fmt(r['speedup_batch32'], '5.2f')}x {r['remaining_non_embedding_parameters'] / 1e6:7.2f}M")
    for name in STRUCTURED:
        r = results.get(name)
        if r is None or r["speedup_batch1"] is None:
            continue
        half = r["remaining_non_embedding_parameters"] <= 0.55 * r["dense_non_embedding_parameters"]
        ok = half and r["speedup_batch1"] >= 1.6 and r["points_lost"] <= 1.5
        print(f"target ({name}: half the non-embedding parameters, >= 1.6x at batch 1, <= 1.5 points lost): "
              f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
