"""``protege serve``, ``extract``, ``verify-watermark`` and ``detect``: thin wrappers over the library functions."""

from __future__ import annotations

import argparse
import dataclasses
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
    from protege.recipes.extract import ExtractConfig

    cfg = config_from_args(ExtractConfig, args, verb="extract")  # bad flags fail before torch is imported
    from protege.evaluation.report import format_report
    from protege.recipes.extract import extract

    metrics = extract(cfg)
    x = metrics["extraction"]
    print(format_report(metrics))
    print(f"queries: {x['budget']} {x['queries']} ({x['sent']} sent now, {x['from_log']} from {x['query_log']}); "
          f"victim answered with {x['output']} -> {x['targets']} targets")
    print(f"saved to {metrics['model']}")
    from protege.cli.verdict import degenerate_status

    return degenerate_status(metrics, strict=cfg.strict)


def add_verify_watermark(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege verify-watermark`` (the fields of VerifyWatermarkConfig)."""
    from protege.extraction.config import VerifyWatermarkConfig

    add_config_arguments(parser, VerifyWatermarkConfig, recipes=False)


def run_verify_watermark(args: argparse.Namespace) -> int:
    """Test the suspect and print the verdict."""
    from protege.errors import ProtegeError
    from protege.extraction.config import VerifyWatermarkConfig
    from protege.recipes.evaluate import check_output_file

    cfg = config_from_args(VerifyWatermarkConfig, args, verb="verify-watermark")
    key = cfg.key or os.environ.get("PROTEGE_WATERMARK_KEY")
    if not key:
        raise ProtegeError("verify-watermark needs the server's key: pass --key or set PROTEGE_WATERMARK_KEY")
    if cfg.out:
        check_output_file(cfg.out)
    from protege.extraction.defenses.watermark import verify_watermark
    from protege.models.loading import quiet_transformers
    from protege.utils.io import write_json_atomic

    quiet_transformers()
    r = verify_watermark(cfg.suspect, cfg.log, key=key, fraction=cfg.fraction, alpha=cfg.alpha,
                         max_controls=cfg.max_controls, max_length=cfg.max_length, batch_size=cfg.batch_size)
    print(f"suspect: {r['suspect']}")
    rate = lambda v: "n/a" if v is None else f"{v:.1%}"  # noqa: E731 - no controls, no rate
    print(f"watermarked queries: {r['watermarked']} of {r['logged']}; the suspect gives the watermark answer on "
          f"{r['matches']} ({rate(r['match_rate'])}) vs {r['control_matches']} of {r['control']} controls ({rate(r['control_rate'])})")
    print(f"p-value {r['p_value']:.3g} (one-sided Fisher exact); verdict at alpha {r['alpha']:g}: "
          + ("WATERMARKED: the suspect memorised the watermark" if r["verdict"] else "no evidence of the watermark"))
    if cfg.out:
        write_json_atomic(cfg.out, r)
    return 0


def add_detect(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege detect`` (the fields of DetectConfig, the arguments of :func:`protege.extraction.defenses.detector.detect`)."""
    from protege.extraction.config import DetectConfig

    add_config_arguments(parser, DetectConfig, recipes=False)


def run_detect(args: argparse.Namespace) -> int:
    """Train and measure the detector, print the rates."""
    from protege.extraction.config import DetectConfig
    from protege.recipes.evaluate import check_output_file

    cfg = config_from_args(DetectConfig, args, verb="detect")
    if cfg.out:
        check_output_file(cfg.out)
    from protege.extraction.defenses.detector import detect
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    options = dataclasses.asdict(cfg)
    victim = options.pop("victim")
    options["ood"] = list(options["ood"]) if options["ood"] else None
    r = detect(victim, **options)
    print(f"query detector for {r['victim']}: {r['features']}; threshold set for {r['target_fpr']:.0%} false positives")
    rows = [(f"{k} queries", "detected", v) for k, v in r["detection_rate"].items()]
    rows += [(f"{k} users" if k != "genuine" else "genuine users (held out)", "false positives", v)
             for k, v in r["false_positive_rate"].items()]
    width = max(len(name) for name, _, _ in rows)
    for name, what, value in rows:
        print(f"  {name.ljust(width)}  {what:<15} {value:6.1%}")
    if cfg.out:
        print(f"detector written to {cfg.out}")
    return 0
