"""The ``protege`` console script: one verb per capability, each a thin wrapper over a library function.

Imports are lazy so that ``protege --help`` answers at once; torch and transformers load only
when a verb runs.
"""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main", "VERBS"]

# verb -> (module, add-arguments function, run function, one-line help)
VERBS = {
    "demo": ("protege.cli.demo", "add_demo", "run_demo", "run the built-in default end to end (MiniLM teacher, 3-layer student, Rotten Tomatoes)"),
    "finetune": ("protege.cli.train_verbs", "add_finetune", "run_finetune", "fine-tune a pretrained backbone into a classifier (a teacher)"),
    "distill": ("protege.cli.train_verbs", "add_distill", "run_distill", "distil a classifier into a smaller student"),
    "cache-teacher": ("protege.cli.train_verbs", "add_cache", "run_cache", "run the teacher once over a dataset and cache its outputs for distill"),
    "evaluate": ("protege.cli.evaluate", "add_evaluate", "run_evaluate", "quality, agreement, size and speed of a model, vs its teacher"),
    "prune": ("protege.cli.prune", "add_prune", "run_prune", "prune a classifier: magnitude, lottery tickets (imp), gradual, structured (heads, FFN, layers); a causal LM: structured"),
    "export": ("protege.cli.export", "add_export", "run_export", "export a classifier to ONNX / int8 variants, each verified against it and timed"),
    "compress": ("protege.cli.export", "add_compress", "run_compress", "teacher to shipped model: distil, prune, export, quantize, verify; pick by a budget"),
    "report": ("protege.cli.report", "add_report", "run_report", "compare runs against their teachers: table, plots, an HTML page"),
    "serve": ("protege.cli.extract", "add_serve", "run_serve", "serve a classifier over HTTP: API keys, budgets, rate limits, output hardening, watermark"),
    "extract": ("protege.cli.extract", "add_extract", "run_extract", "steal a classifier through its prediction API: query it, train a student on the answers"),
    "verify-watermark": ("protege.cli.extract", "add_verify_watermark", "run_verify_watermark", "test whether a suspect model memorised a server's watermark"),
    "detect": ("protege.cli.extract", "add_detect", "run_detect", "train and measure a detector of extraction queries for a classifier"),
}


def _parser(verb: str | None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="protege", description="Turn a large transformer into a small, fast one that behaves like it.")
    from protege import __version__

    parser.add_argument("--version", action="version", version=f"protege {__version__}")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    for name, (module, add, _, help_text) in VERBS.items():
        p = sub.add_parser(name, help=help_text, description=help_text)
        if name == verb:  # only the chosen verb's flags are built (cheap --help for the rest)
            getattr(importlib.import_module(module), add)(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (0 ok, 2 bad input, 130 interrupted)."""
    from protege.errors import NothingToDo, ProtegeError

    argv = list(sys.argv[1:] if argv is None else argv)
    verb = next((a for a in argv if not a.startswith("-")), None)
    parser = _parser(verb if verb in VERBS else None)
    try:
        args, unknown = parser.parse_known_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    if not args.verb:
        parser.print_help()
        return 2
    if unknown:
        option = unknown[0].split("=", 1)[0]
        hint = getattr(args, "_protege_hints", {}).get(option)
        print(f"protege: error: {hint or f'unknown option {option!r} for protege {args.verb}; see protege {args.verb} --help'}",
              file=sys.stderr)
        return 2
    module, _, run, _ = VERBS[args.verb]
    try:
        return getattr(importlib.import_module(module), run)(args)
    except ProtegeError as err:
        print(f"protege: error: {err}", file=sys.stderr)
        return 2
    except NothingToDo as done:
        print(f"protege: {done}", file=sys.stderr)
        return 0
    except KeyboardInterrupt:  # a run's staging guard has already said what can be resumed
        print("protege: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
