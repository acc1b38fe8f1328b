"""``protege evaluate MODEL --eval FILE [--compare TEACHER]`` (or ``--sts``/``--probe-*``/``--eval-text`` for general models)."""

from __future__ import annotations

import argparse

__all__ = ["add_evaluate", "run_evaluate"]


def add_evaluate(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege evaluate`` (the arguments of :func:`protege.evaluate`)."""
    parser.add_argument("model", help="classifier folder or hub id to evaluate")
    parser.add_argument("--eval", help="labeled data (TSV/CSV/JSONL/Parquet or datasets name)")
    parser.add_argument("--compare", metavar="TEACHER", help="a reference model (the teacher) measured side by side")
    parser.add_argument("--text-column")
    parser.add_argument("--text-pair-column")
    parser.add_argument("--label-column")
    parser.add_argument("--split", help="split of a datasets hub name (default validation)")
    parser.add_argument("--max-eval-examples", type=int, metavar="N")
    parser.add_argument("--max-length", type=int, default=128, metavar="N")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N")
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=True, help="measure CPU latency and throughput")
    parser.add_argument("--speed-seconds", type=float, default=10.0, metavar="X", help="time budget per model for the speed measurement")
    parser.add_argument("--out", metavar="FILE.json", help="also write the metrics to this JSON file")
    parser.add_argument("--device", default="auto")
    general = parser.add_argument_group("general-purpose models (sentence-transformers folders, causal and masked LMs)")
    general.add_argument("--sts", metavar="FILE", help="sentence embeddings: STS-B style pairs scored by Spearman of cosine vs gold")
    general.add_argument("--probe-train", metavar="FILE", help="sentence embeddings: labeled data to fit a logistic-regression probe on")
    general.add_argument("--probe-eval", metavar="FILE", help="sentence embeddings: labeled data the probe is scored on (accuracy)")
    general.add_argument("--max-probe-examples", type=int, metavar="N", help="use only the first N probe training examples")
    general.add_argument("--eval-text", metavar="FILE", help="causal/masked LMs: held-out text for perplexity, accuracy and agreement")


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    from protege.errors import ProtegeError
    from protege.evaluate.api import evaluate
    from protege.evaluate.report import format_report
    from protege.models.loading import quiet_transformers

    for name in ("max_length", "batch_size", "max_eval_examples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ProtegeError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    quiet_transformers()
    general = ("sts", "probe_train", "probe_eval", "max_probe_examples", "eval_text")
    if any(getattr(args, k) is not None for k in general):  # a general-purpose model (issue 3)
        from protege.evaluate.general import evaluate_general
        from protege.evaluate.general_report import format_general_report

        keep = general + ("compare", "max_eval_examples", "max_length", "speed", "speed_seconds", "out", "device")
        print(format_general_report(evaluate_general(args.model, **{k: getattr(args, k) for k in keep})))
        if args.out:
            print(f"metrics written to {args.out}")
        return 0
    kwargs = {k: v for k, v in vars(args).items() if k not in ("verb", "model") + general}
    metrics = evaluate(args.model, **kwargs)
    print(format_report(metrics))
    if args.out:
        print(f"metrics written to {args.out}")
    return 0
