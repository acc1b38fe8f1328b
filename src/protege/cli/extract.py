"""``protege serve``, ``extract``, ``verify-watermark`` and ``detect``: thin wrappers over the library functions."""

from __future__ import annotations

import argparse
import os

from protege.cli.options import add_config_arguments, config_from_args

__all__ = ["add_serve", "run_serve", "add_extract", "run_extract", "add_verify_watermark", "run_verify_watermark",
           "add_detect", "run_detect"]


def add_serve(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege serve`` (the fields of ServeConfig; the model may also come first)."""
    from protege.extraction.config import ServeConfig

    add_config_arguments(parser, ServeConfig)


def run_serve(args: argparse.Namespace) -> int:
    """Serve until interrupted."""
    from protege.extraction.config import ServeConfig
    from protege.extraction.server import serve

    serve(config_from_args(ServeConfig, args))
    return 0


def add_extract(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege extract`` (the fields of ExtractConfig: the query flags and distill's training flags)."""
    from protege.recipes.extract import ExtractConfig

    add_config_arguments(parser, ExtractConfig)


def run_extract(args: argparse.Namespace) -> int:
    """Query the victim, train the student, print the report."""
    from protege.evaluation.report import format_report
    from protege.recipes.extract import ExtractConfig, extract

    metrics = extract(config_from_args(ExtractConfig, args, verb="extract"))
    x = metrics["extraction"]
    print(format_report(metrics))
    print(f"queries: {x['budget']} {x['queries']} ({x['sent']} sent now, {x['from_log']} from {x['query_log']}); "
          f"victim answered with {x['output']} -> {x['targets']} targets")
    print(f"saved to {metrics['model']}")
    return 0


def add_verify_watermark(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege verify-watermark`` (the arguments of :func:`protege.extraction.verify_watermark`)."""
    from protege.extraction.defenses.watermark import DEFAULT_FRACTION

    parser.add_argument("suspect", help="the model suspected of being extracted: classifier folder or hub id")
    parser.add_argument("--log", required=True, help="query log of served answers (serve --answer-log, or a client's log)")
    parser.add_argument("--key", help="the server's --watermark-key (default: $PROTEGE_WATERMARK_KEY)")
    parser.add_argument("--fraction", type=float, default=DEFAULT_FRACTION,
                        help=f"the server's --watermark-fraction (default {DEFAULT_FRACTION})")
    parser.add_argument("--alpha", type=float, default=1e-3, help="significance level of the verdict (default 0.001)")
    parser.add_argument("--max-controls", type=int, default=5000, metavar="N",
                        help="unwatermarked queries used as the control (default 5000)")
    parser.add_argument("--max-length", type=int, default=128, metavar="N")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N")
    parser.add_argument("--out", metavar="FILE.json", help="also write the result to this JSON file")


def run_verify_watermark(args: argparse.Namespace) -> int:
    """Test the suspect and print the verdict."""
    from protege.errors import ProtegeError
    from protege.utils.io import write_json_atomic
    from protege.extraction.defenses.watermark import verify_watermark
    from protege.models.loading import quiet_transformers

    key = args.key or os.environ.get("PROTEGE_WATERMARK_KEY")
    if not key:
        raise ProtegeError("verify-watermark needs the server's key: pass --key or set PROTEGE_WATERMARK_KEY")
    for name in ("max_controls", "max_length", "batch_size"):
        if getattr(args, name) < 1:
            raise ProtegeError(f"--{name.replace('_', '-')} must be a positive integer, got {getattr(args, name)}")
    quiet_transformers()
    r = verify_watermark(args.suspect, args.log, key=key, fraction=args.fraction, alpha=args.alpha,
                         max_controls=args.max_controls, max_length=args.max_length, batch_size=args.batch_size)
    print(f"suspect: {r['suspect']}")
    print(f"watermarked queries: {r['watermarked']} of {r['logged']}; the suspect gives the watermark answer on "
          f"{r['matches']} ({r['match_rate']:.1%}) vs {r['control_matches']} of {r['control']} controls ({r['control_rate']:.1%})")
    print(f"p-value {r['p_value']:.3g} (one-sided Fisher exact); verdict at alpha {r['alpha']:g}: "
          + ("WATERMARKED: the suspect memorised the watermark" if r["verdict"] else "no evidence of the watermark"))
    if args.out:
        write_json_atomic(args.out, r)
    return 0


def add_detect(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege detect`` (the arguments of :func:`protege.extraction.defenses.detector.detect`)."""
    parser.add_argument("victim", help="the served classifier (folder): its hidden states are the detector's features")
    parser.add_argument("--genuine", required=True, help="real inputs of the victim's task (table or one text per line)")
    parser.add_argument("--ood", action="append", metavar="FILE", help="genuine out-of-distribution users (repeatable)")
    parser.add_argument("--queries", default="random,wiki", help="generated query kinds to detect (default random,wiki)")
    parser.add_argument("--query-corpus", help="corpus for the generated queries (one sentence per line)")
    parser.add_argument("--n", type=int, default=2000, help="texts per set (default 2000)")
    parser.add_argument("--target-fpr", type=float, default=0.05, help="false-positive rate on genuine inputs the threshold is set for")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-length", type=int, default=128, metavar="N")
    parser.add_argument("--out", metavar="FILE.json", help="write the detector and its report here")


def run_detect(args: argparse.Namespace) -> int:
    """Train and measure the detector, print the rates."""
    from protege.extraction.defenses.detector import detect
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    kwargs = {k: v for k, v in vars(args).items() if k not in ("verb", "victim")}
    r = detect(args.victim, **kwargs)
    print(f"query detector for {r['victim']}: {r['features']}; threshold set for {r['target_fpr']:.0%} false positives")
    rows = [(f"{k} queries", "detected", v) for k, v in r["detection_rate"].items()]
    rows += [(f"{k} users" if k != "genuine" else "genuine users (held out)", "false positives", v)
             for k, v in r["false_positive_rate"].items()]
    width = max(len(name) for name, _, _ in rows)
    for name, what, value in rows:
        print(f"  {name.ljust(width)}  {what:<15} {value:6.1%}")
    if args.out:
        print(f"detector written to {args.out}")
    return 0
