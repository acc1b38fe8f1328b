"""Distillation throughput: protege (live / cached teacher) vs TextBrewer vs a student-only fine-tune.

Same teacher (MiniLM-L6 SST-2 classifier), same 3-layer student (teacher layers 0,2,4), same
data (SST-2 train), same loss (KD at T=2 + hard CE), same batch size and steps, all measured in
one run on this machine. Each variant runs in its own process (so peak RSS is its own), and the
variants are interleaved over --rounds rounds; the best round of each is reported.

    pip install textbrewer tensorboard      # the TextBrewer baseline only
    python benchmarks/throughput.py --teacher runs/bench-sst2/teacher --steps 60

Targets: cached distillation <= 1.15x the time of the student-only fine-tune; >= 1.5x
TextBrewer's examples/s.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue" / "sst2" / "train.tsv"
VARIANTS = ("finetune-student", "protege-live", "protege-cached", "textbrewer")
# protege-live with random (not length-grouped) batches, as TextBrewer's DataLoader draws them: run with
# --variants protege-live,protege-live-ungrouped,textbrewer to see how much of the gap is padding


def _features(teacher_dir, n, max_length):
    from protege.data import load_examples
    from protege.data.batching import encode
    from protege.models import load_tokenizer

    tok = load_tokenizer(teacher_dir)
    ex = load_examples(str(DATA), max_examples=n)
    return tok, encode(ex, tok, max_length=max_length)


def _settings(args, **kw):
    from protege.engine.config import TrainSettings

    return TrainSettings(train=str(DATA), out="unused", batch_size=args.batch_size, max_steps=args.steps, max_length=args.max_length,
                         lr=5e-5, progress=False, log_every=10**9, checkpoint_every=10**9, checkpoint_minutes=0,
                         **kw)


def run_variant(name: str, args) -> dict:
    """Time one variant's training loop (model loading and cache building excluded and reported apart)."""
    import torch

    from protege.engine.trainer import train
    from protege.models import keep_layers, load_classifier
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    torch.manual_seed(0)
    n = args.steps * args.batch_size
    tok, feats = _features(args.teacher, n, args.max_length)
    extra = {}
    if name in ("protege-live", "protege-cached", "protege-live-ungrouped"):
        import protege

        work = Path(tempfile.mkdtemp())
        common = dict(teacher=args.teacher, train=str(DATA), max_train_examples=n, student_layers="0,2,4", alpha_kd=1.0,
                      alpha_ce=1.0, temperature=2.0, max_steps=args.steps, batch_size=args.batch_size, max_length=args.max_length,
                      lr=5e-5, speed=False, progress=False, log_every=10**9, group_by_length=name != "protege-live-ungrouped")
        if name == "protege-cached":
            t = time.perf_counter()
            protege.cache_teacher(teacher=args.teacher, train=str(DATA), max_train_examples=n, max_length=args.max_length,
                                  out=str(work / "cache"), progress=False)
            extra["cache_build_seconds"] = round(time.perf_counter() - t, 2)
            common["cache_teacher"] = str(work / "cache")
        metrics = protege.distill(out=str(work / "student"), **common)
        seconds = metrics["training"]["seconds"]
    elif name == "finetune-student":
        student = keep_layers(load_classifier(args.teacher), [0, 2, 4])
        result = train(student, feats, settings=_settings(args), loss_fn=lambda m, b: {"loss": m(**b).loss},
                       work_dir=tempfile.mkdtemp(), pad_token_id=tok.pad_token_id)
        seconds = result.seconds
    else:
        seconds = _textbrewer(args, tok, feats)
    return {"variant": name, "seconds": round(seconds, 2), "examples_per_s": round(n / seconds, 1),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **extra}


def _textbrewer(args, tok, feats) -> float:
    import torch
    from textbrewer import DistillationConfig, GeneralDistiller, TrainingConfig
    from transformers import get_linear_schedule_with_warmup

    from protege.data.batching import collate
    from protege.models import keep_layers, load_classifier

    teacher = load_classifier(args.teacher)
    student = keep_layers(teacher, [0, 2, 4]).train()
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(feats, batch_size=args.batch_size, shuffle=True, generator=g,
                                         collate_fn=lambda fs: collate(fs, tok.pad_token_id))

    def adaptor(batch, outputs):
        return {"logits": outputs.logits, "hidden": outputs.hidden_states if hasattr(outputs, "hidden_states") else None,
                "losses": [outputs.loss]}

    tcfg = TrainingConfig(device="cpu", log_dir=tempfile.mkdtemp(), output_dir=tempfile.mkdtemp(), ckpt_frequency=10**9, ckpt_steps=10**9,
                          ckpt_epoch_frequency=10**9)
    dcfg = DistillationConfig(temperature=2.0, hard_label_weight=1.0, kd_loss_type="ce", kd_loss_weight=1.0)
    distiller = GeneralDistiller(train_config=tcfg, distill_config=dcfg, model_T=teacher, model_S=student,
                                 adaptor_T=adaptor, adaptor_S=adaptor)
    optimizer = torch.optim.AdamW(student.parameters(), lr=5e-5)
    t = time.perf_counter()
    with distiller:
        distiller.train(optimizer, loader, num_steps=args.steps, scheduler_class=get_linear_schedule_with_warmup,
                        scheduler_args={"num_warmup_steps": 0, "num_training_steps": args.steps}, max_grad_norm=1.0)
    return time.perf_counter() - t


def main() -> None:
    """Run every variant in its own process, interleaved over rounds; print and save the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--teacher", default="runs/bench-sst2/teacher")
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default="runs/bench-throughput.json")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_variant(args.one, args)))
        return
    best: dict[str, dict] = {}
    for r in range(args.rounds):
        for name in args.variants.split(","):
            cmd = [sys.executable, __file__, "--one", name, "--teacher", args.teacher, "--steps", str(args.steps),
                   "--batch-size", str(args.batch_size), "--max-length", str(args.max_length)]
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode:
                print(f"{name}: failed\n{res.stderr[-1500:]}", file=sys.stderr)
                continue
            row = json.loads(res.stdout.strip().splitlines()[-1])
            print(f"round {r + 1} {name:<17} {row['examples_per_s']:7.1f} ex/s  peak RSS {row['peak_rss_mb']:.0f} MB", flush=True)
            if name not in best or row["seconds"] < best[name]["seconds"]:
                best[name] = row
    floor = best.get("finetune-student", {}).get("seconds")
    brewer = best.get("textbrewer", {}).get("examples_per_s")
    print(f"\n{'variant':<18} {'ex/s':>7} {'time vs floor':>14} {'vs TextBrewer':>14} {'peak RSS MB':>12}")
    for name, row in best.items():
        vs_floor = f"{row['seconds'] / floor:.2f}x" if floor else "-"
        vs_tb = f"{row['examples_per_s'] / brewer:.2f}x" if brewer else "-"
        print(f"{name:<18} {row['examples_per_s']:7.1f} {vs_floor:>14} {vs_tb:>14} {row['peak_rss_mb']:12.0f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": vars(args), "best": best}, indent=2))


if __name__ == "__main__":
    main()
