"""Sentence embeddings: MiniLM-L6 teacher -> 3 kept layers, wiki transfer text vs random word sequences.

Runs (all on this machine, CPU), student = teacher layers 0,3,5 (--layers):
  init-only   the kept layers, no training                              (what distillation adds)
  wiki        distilled on ../shared/data/wiki/sentences.txt            <- the headline
  random      distilled on as many random word sequences (unigram and sentence lengths of the same
              wiki file; Krishna et al. 2020's RANDOM generator)       (data-free transfer)
  random-vocab  (--vocab-run) words uniform over the teacher tokenizer's whole words
  --scratch   the same runs from a random-init 3-layer student: does random text carry signal on its own?
Each student is scored beside the teacher on STS-B dev (Spearman of cosine vs gold) and a linear
probe (logistic regression on frozen embeddings, SST-2 train subset -> SST-2 dev), with size and
CPU latency measured interleaved. Target: wiki student's STS-B Spearman >= 97% of the teacher's.

    python benchmarks/embeddings.py --out runs/bench-embeddings
    python benchmarks/embeddings.py --out runs/bench-embeddings-defaults --defaults   # protege's own defaults
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _init_only(teacher_dir: str, layers: str, data: dict, max_length: int, scratch: bool, seed: int) -> dict:
    """STS/probe of the student before any training (kept layers, or a random init with --scratch)."""
    from protege.evaluation.embeddings import scores_side_by_side
    from protege.models import keep_layers, load_tokenizer
    from protege.models.families import smaller_model
    from protege.models.sentence import SentenceEncoder, load_sentence_encoder

    teacher = load_sentence_encoder(teacher_dir)
    n = len(layers.split(","))
    transformer = smaller_model(teacher.config, "encoder", num_layers=n, seed=seed) if scratch else keep_layers(teacher.transformer, layers)
    student = SentenceEncoder(transformer, teacher.pooling, teacher.normalize, [], teacher.max_seq_length).eval()
    return scores_side_by_side(student, None, load_tokenizer(teacher_dir), data, max_length=max_length)["student"]


def _speed(teacher_dir: str, student_dir: str, data: dict, max_length: int) -> dict:
    """Batch-1 latency and throughput of teacher and student, interleaved, on STS-B sentences."""
    from protege.evaluation.speed import compare_speed
    from protege.models import load_tokenizer
    from protege.models.sentence import load_sentence_encoder

    tok = load_tokenizer(teacher_dir)
    models = {"teacher": (load_sentence_encoder(teacher_dir), tok), "student": (load_sentence_encoder(student_dir), tok)}
    return compare_speed(models, list(data["sts"].texts[:64]), max_length=max_length, max_seconds=15.0)


def main() -> None:
    """Run the benchmark; print a table and write OUT/results.json."""
    import protege
    from protege.data.assets import minilm_dir
    from protege.data.text import read_lines
    from protege.evaluation.embeddings import load_eval_data
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-embeddings")
    p.add_argument("--layers", default="0,3,5", help="kept teacher layers (0,3,5 keeps the last one; see EMBEDDINGS.md)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--probe-examples", type=int, default=2000, help="first N rows of SST-2 train for the probe")
    p.add_argument("--vocab-run", action="store_true", help="also distil on random words uniform over the tokenizer's vocabulary")
    p.add_argument("--scratch", action="store_true",
                   help="ablation: a random-init student of as many layers (full width) instead of kept layers")
    p.add_argument("--defaults", action="store_true",
                   help="only the wiki run, with --objective embedding's own defaults: no layer or lr flags")
    p.add_argument("--train-threads", type=int, default=None,
                   help="torch threads while training and scoring (e.g. 1 on a shared machine); speed is timed with the default")
    args = p.parse_args()
    import torch

    default_threads = torch.get_num_threads()
    if args.train_threads:
        torch.set_num_threads(args.train_threads)
    quiet_transformers()
    out = Path(args.out)
    teacher = str(minilm_dir())
    wiki = DATA / "wiki" / "sentences.txt"
    n_lines = len(read_lines(str(wiki)))
    evaluation = dict(sts=str(DATA / "glue" / "stsb" / "dev.tsv"), probe_train=str(DATA / "glue" / "sst2" / "train.tsv"),
                      probe_eval=str(DATA / "glue" / "sst2" / "dev.tsv"), max_probe_examples=args.probe_examples)
    student = dict(student_num_layers=len(args.layers.split(","))) if args.scratch else dict(student_layers=args.layers)
    chosen = {} if args.defaults else dict(**student, lr=args.lr)  # --defaults: protege picks layers and lr
    common = dict(objective="embedding", teacher=teacher, **chosen, epochs=args.epochs, batch_size=32,
                  max_length=args.max_length, warmup_ratio=0.1, overwrite=True, speed=False, **evaluation)
    runs = {"wiki": dict(train_text=str(wiki))}
    if not args.defaults:
        runs["random"] = dict(random_text=n_lines, random_corpus=str(wiki))
    if args.vocab_run:
        runs["random-vocab"] = dict(random_text=n_lines)
    results, seconds = {}, {}
    data = load_eval_data(**evaluation)
    t0 = time.perf_counter()
    if not args.defaults:
        results["init-only"] = _init_only(teacher, args.layers, data, args.max_length, args.scratch, seed=42)
    seconds["init-only"] = round(time.perf_counter() - t0, 1)
    for name, kw in runs.items():
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        m = protege.distill(out=str(out / name), **common, **kw)
        seconds[name] = round(time.perf_counter() - t0, 1)
        s, t = m["eval"]["metrics"], m["teacher"]["eval"]["metrics"]
        results["teacher"] = {"spearman": t["spearman"], "accuracy": t["accuracy"], "parameters": m["teacher"]["size"]["parameters"]}
        results[name] = {"spearman": s["spearman"], "accuracy": s["accuracy"],
                         "cosine_to_teacher": m["eval"]["agreement"]["cosine_to_teacher"],
                         "parameters": m["size"]["parameters"], "train_seconds": m["training"]["seconds"],
                         "steps": m["training"]["steps"], "layers": m["student"]["layer_map"], "lr": m["config"]["lr"]}
    torch.set_num_threads(default_threads)
    speed = _speed(teacher, str(out / "wiki"), data, args.max_length)
    results["teacher"]["latency_ms_p50"] = speed["teacher"]["latency_ms_p50"]
    for name in runs:  # same architecture: the wiki student's timing stands for all
        results[name]["latency_ms_p50"] = speed["student"]["latency_ms_p50"]
        results[name]["speedup_batch1"] = speed["teacher"]["latency_ms_p50"] / speed["student"]["latency_ms_p50"]
    results["speed"] = speed  # full timings: p50/p95 latency, throughput, machine
    teacher_rho = results["teacher"]["spearman"]
    for name, r in results.items():
        if name != "speed":
            r["sts_retention"] = r["spearman"] / teacher_rho
    (out / "results.json").write_text(json.dumps({"args": vars(args), "wiki_lines": n_lines, "results": results,
                                                   "wall_seconds": seconds}, indent=2))
    print(f"\n{'run':<13} {'STS-B rho':>9} {'retain':>7} {'probe acc':>9} {'cos->T':>7} {'p50 ms':>7} {'params':>7}")
    for name in [n for n in ["teacher", "init-only", *runs] if n in results]:
        r = results[name]
        cos = f"{r['cosine_to_teacher']:7.4f}" if "cosine_to_teacher" in r else f"{'-':>7}"
        ms = f"{r['latency_ms_p50']:7.2f}" if "latency_ms_p50" in r else f"{'-':>7}"
        params = f"{r['parameters'] / 1e6:6.1f}M" if "parameters" in r else f"{'-':>7}"
        print(f"{name:<13} {r['spearman']:9.4f} {r['sts_retention']:7.3f} {r['accuracy']:9.4f} {cos} {ms} {params}")
    ok = results["wiki"]["sts_retention"] >= 0.97
    print(f"target (wiki student STS-B Spearman >= 97% of the teacher's): {'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
