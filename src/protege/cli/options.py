"""CLI flags generated from a config dataclass, merged over an optional YAML recipe."""

from __future__ import annotations

import argparse
import dataclasses

from protege.distill.config import build_config, load_recipe

__all__ = ["add_config_arguments", "config_from_args"]


def add_config_arguments(parser: argparse.ArgumentParser, cls) -> None:
    """One ``--flag`` per field of ``cls`` (defaults suppressed so only given flags override the recipe)."""
    parser.add_argument("--config", metavar="RECIPE.yaml", help="YAML recipe with the same options; flags override it")
    for f in dataclasses.fields(cls):
        flag = "--" + f.name.replace("_", "-")
        kind = str(f.type)
        default = "" if f.default is None else f" (default: {f.default})"
        help_text = f.metadata.get("help", "") + ("" if f.metadata.get("required") else default)
        if kind.startswith("bool"):
            parser.add_argument(flag, action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            metavar = {"int": "N", "float": "X"}.get(kind.split(" ")[0], "VALUE")
            parser.add_argument(flag, default=argparse.SUPPRESS, metavar=metavar, help=help_text)


def config_from_args(cls, args: argparse.Namespace):
    """Build ``cls`` from a recipe (if ``--config``) with the given flags on top."""
    recipe = load_recipe(args.config) if getattr(args, "config", None) else {}
    flags = {k: v for k, v in vars(args).items() if k not in ("config", "verb")}
    if recipe:
        build_config(cls, {**recipe, **flags}, source=f"recipe {args.config}")
    return build_config(cls, {**recipe, **flags}, source="arguments")
