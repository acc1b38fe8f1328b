"""Deployment on SST-2: the MiniLM-L6 teacher and its 3-layer student exported, quantized and compressed.

Uses the teacher and student of ``benchmarks/sst2.py`` (run it first, or pass --teacher/--student),
then, on the official SST-2 dev set:
  teacher-deploy   protege export of the teacher: ORT fp32 / int8 (what a user does without protege)
  student-deploy   protege export of the 3-layer student: PyTorch fp32, ORT fp32, ORT int8 dynamic and static
  shipped          protege compress --target-speedup 8 (the default candidate grid)
and finally times them all in ONE interleaved session (fp32 PyTorch teacher, teacher ORT int8,
student fp32 / ORT fp32 / ORT int8, compress's pick), with peak memory and disk size beside
every speed. Target: an artifact at >= 8x the teacher's batch-1 CPU speed that keeps >= 97% of
its dev accuracy, and >= 2.5x faster than the teacher's own ONNX int8. Not part of CI (about
1-2 hours on 2 cores, most of it compress's distillations).

    python benchmarks/sst2.py --out runs/bench-sst2 --skip-ablations
    python benchmarks/deploy.py --sst2 runs/bench-sst2 --out runs/bench-deploy [--speed-seconds 20]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "glue" / "sst2"


def _export(protege, model, out: Path, args, teacher: str):
    if (out / "metrics.json").exists():
        print(f"== {out.name}: reusing {out}")
        return json.loads((out / "metrics.json").read_text())
    print(f"== {out.name}", flush=True)
    return protege.export(model, eval=args.eval, compare=teacher, calibration=args.train, calibration_examples=256,
                          max_length=args.max_length, speed_seconds=args.speed_seconds, out=str(out))


def main() -> None:
    """Run the benchmark; print the final interleaved table (also written to OUT/results.json)."""
    import protege
    from protege.deploy.folders import load_model, variant_disk_size
    from protege.deploy.memory import peak_memory
    from protege.evaluation.size import disk_size
    from protege.evaluation.speed import compare_speed
    from protege.models import load_tokenizer
    from protege.models.loading import quiet_transformers

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sst2", default="runs/bench-sst2", help="output folder of benchmarks/sst2.py (teacher/, student/)")
    p.add_argument("--teacher", help="default: SST2/teacher")
    p.add_argument("--student", help="default: SST2/student")
    p.add_argument("--train", default=str(DATA / "train.tsv"))
    p.add_argument("--eval", default=str(DATA / "dev.tsv"))
    p.add_argument("--out", default="runs/bench-deploy")
    p.add_argument("--max-length", type=int, default=64)
    p.add_argument("--max-train-examples", type=int, default=20000, help="compress's distillation data (as sst2.py)")
    p.add_argument("--epochs", type=float, default=1.0)
    p.add_argument("--target-speedup", type=float, default=8.0)
    p.add_argument("--candidates", default=None, help="compress --candidates YAML (default: compress's own grid)")
    p.add_argument("--speed-seconds", type=float, default=20.0, help="per model, in the final interleaved session")
    p.add_argument("--skip-compress", action="store_true",
                   help="only the exports of the given teacher and student, and the final session (no compress run)")
    args = p.parse_args()
    quiet_transformers()
    out = Path(args.out)
    teacher = args.teacher or str(Path(args.sst2) / "teacher")
    student = args.student or str(Path(args.sst2) / "student")

    teacher_deploy = _export(protege, teacher, out / "teacher-deploy", args, teacher)
    student_deploy = _export(protege, student, out / "student-deploy", args, teacher)
    shipped = out / "shipped"
    if not args.skip_compress and not (shipped / "metrics.json").exists():
        print("== shipped (compress)", flush=True)
        protege.compress(teacher=teacher, train=args.train, eval=args.eval, target_speedup=args.target_speedup,
                         calibration=args.train, max_train_examples=args.max_train_examples, epochs=args.epochs,
                         batch_size=32, lr=1e-4, warmup_ratio=0.1, max_length=args.max_length, out=str(shipped),
                         candidates=args.candidates,
                         resume=(shipped.parent / f".{shipped.name}.partial").exists(), progress=False)
    shipped_metrics = None
    if not args.skip_compress:
        if not (shipped / "metrics.json").is_file():  # no candidate met the budget: compress kept its table there
            partial = json.loads((shipped.parent / f".{shipped.name}.partial" / "compress.json").read_text())
            closest = partial["compress"]["closest"]
            print(f"compress: no candidate meets the budget; closest {closest} (timed below)")
            shipped = shipped.parent / f".{shipped.name}.partial" / "candidates" / closest.split("/")[0] / "export" / closest.split("/")[1]
            point = next(p for p in partial["compress"]["candidates"] if p["name"] == closest)
            shipped_metrics = {"compress": {"winner": closest + " (closest, budget not met)"},
                               "eval": {"metrics": {"accuracy": point["quality"]}}}
        else:
            shipped_metrics = json.loads((shipped / "metrics.json").read_text())

    # one session: every artifact timed round-robin beside the fp32 PyTorch teacher
    folders = {"teacher (PyTorch fp32)": teacher,
               "teacher ORT int8": str(out / "teacher-deploy" / "onnx-int8-dynamic"),
               "student (PyTorch fp32)": str(out / "student-deploy" / "pytorch-fp32"),
               "student ORT fp32": str(out / "student-deploy" / "onnx-fp32"),
               "student ORT int8 dynamic": str(out / "student-deploy" / "onnx-int8-dynamic"),
               f"student recommended ({student_deploy['export']['recommended']})":
                   str(out / "student-deploy" / student_deploy["export"]["recommended"])}
    if shipped_metrics is not None:
        folders[f"compress pick ({shipped_metrics['compress']['winner']})"] = str(shipped)
    models, quality = {}, {}
    for name, folder in folders.items():
        model, where = load_model(folder)
        models[name] = (model, load_tokenizer(str(where)))
        folders[name] = str(where)
    for m, key in ((teacher_deploy, "teacher"), (student_deploy, "student")):
        for variant, v in m["export"]["variants"].items():
            quality[f"{key}:{variant}"] = v["eval"]["metrics"]["accuracy"]
    quality_of = {"teacher (PyTorch fp32)": teacher_deploy["teacher"]["eval"]["metrics"]["accuracy"],
                  "teacher ORT int8": quality["teacher:onnx-int8-dynamic"],
                  "student (PyTorch fp32)": quality["student:pytorch-fp32"], "student ORT fp32": quality["student:onnx-fp32"],
                  "student ORT int8 dynamic": quality["student:onnx-int8-dynamic"],
                  f"student recommended ({student_deploy['export']['recommended']})":
                      quality[f"student:{student_deploy['export']['recommended']}"]}
    if shipped_metrics is not None:
        quality_of[list(folders)[-1]] = shipped_metrics["eval"]["metrics"]["accuracy"]
    from protege.data import load_examples

    texts = load_examples(args.eval, max_examples=64).texts
    print(f"== one interleaved session, {args.speed_seconds:g} s per model", flush=True)
    timings = compare_speed(models, texts, max_length=args.max_length, max_seconds=args.speed_seconds)
    t50 = timings["teacher (PyTorch fp32)"]["latency_ms_p50"]
    i50 = timings["teacher ORT int8"]["latency_ms_p50"]
    base_q = quality_of["teacher (PyTorch fp32)"]
    enc = models["teacher (PyTorch fp32)"][1](list(texts[:32]), padding=True, truncation=True, max_length=args.max_length,
                                              return_tensors="np")
    feed = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    rows = {}
    for name, folder in folders.items():
        p50 = timings[name]["latency_ms_p50"]
        disk = variant_disk_size(folder) if (Path(folder) / "protege_export.json").is_file() else disk_size(folder)
        rows[name] = {"accuracy": quality_of[name], "retention": quality_of[name] / base_q, "latency_ms_p50": p50,
                      "latency_ms_p95": timings[name]["latency_ms_p95"], "throughput_per_s": timings[name]["throughput_per_s"],
                      "speedup_vs_teacher": t50 / p50, "speedup_vs_teacher_int8": i50 / p50, "disk_mb": disk / 1e6,
                      "peak_memory_mb": peak_memory(folder, feed, threads=timings[name]["threads"]).get("peak_memory_mb")}
    (out / "results.json").write_text(json.dumps({"args": vars(args), "rows": rows, "speed": timings}, indent=2))
    print(f"{'artifact':<48} {'acc':>7} {'retain':>7} {'p50 ms':>7} {'x teacher':>9} {'x t-int8':>8} {'ex/s':>7} "
          f"{'peak MB':>8} {'disk MB':>8}")
    for name, r in rows.items():
        print(f"{name:<48} {r['accuracy']:7.4f} {100 * r['retention']:6.1f}% {r['latency_ms_p50']:7.2f} "
              f"{r['speedup_vs_teacher']:8.2f}x {r['speedup_vs_teacher_int8']:7.2f}x {r['throughput_per_s']:7.0f} "
              f"{(r['peak_memory_mb'] or 0):8.1f} {r['disk_mb']:8.1f}")
    pick = rows[list(rows)[-1]]  # compress's pick, or the student's recommended variant with --skip-compress
    ok = pick["speedup_vs_teacher"] >= 8 and pick["retention"] >= 0.97 and pick["speedup_vs_teacher_int8"] >= 2.5
    print(f"target (>= 8x the teacher, >= 97% of its accuracy, >= 2.5x its ORT int8), {list(rows)[-1]}: "
          f"{'met' if ok else 'NOT met'}")


if __name__ == "__main__":
    main()
