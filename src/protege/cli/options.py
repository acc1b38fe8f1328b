"""CLI flags generated from a config dataclass, merged over an optional YAML recipe.

Every verb's flags come from its config's fields (name, type, default and help), so the flags,
the YAML keys and the keyword arguments of the library function cannot drift apart. Field
metadata shapes a flag: ``positional`` (an argument, not a flag), ``metavar``, ``group`` (a help
section), ``hidden`` (accepted from Python only).
"""

from __future__ import annotations

import argparse
import dataclasses

from protege.utils.config import TRAINER_NAMES, build_config, field_kind, flag, load_recipe

__all__ = ["add_config_arguments", "config_from_args", "config_values"]

_GROUP_TITLES = {"general": "general-purpose models (sentence-transformers folders, causal and masked LMs)"}


def add_config_arguments(parser: argparse.ArgumentParser, cls, *, recipes: bool = True, group=None,
                         skip=frozenset()) -> set[str]:
    """One ``--flag`` per field of ``cls`` (defaults suppressed so only given flags override the recipe).

    ``group`` puts the flags in a help section; fields named in ``skip`` (already added by another
    config) are left out. Returns the field names added.
    """
    if recipes:
        parser.add_argument("--config", metavar="RECIPE.yaml", help="YAML recipe with the same options; flags override it")
    groups: dict[str, object] = {}
    names = {f.name for f in dataclasses.fields(cls)}
    # what to say about a flag this verb does not have: the config's own hints, then Trainer spellings
    hints = {flag(k): f"{flag(k)} is the transformers Trainer spelling; protege's flag is {flag(v)}"
             for k, v in TRAINER_NAMES.items() if v in names and k != v}
    hints.update({flag(k): v for k, v in getattr(cls, "HINTS", {}).items()})
    parser.set_defaults(_protege_hints={**hints, **(parser.get_default("_protege_hints") or {})})
    added = set()
    for f in dataclasses.fields(cls):
        meta = f.metadata
        if meta.get("hidden") or "help" not in meta or f.name in skip:
            continue
        added.add(f.name)
        kind = field_kind(f)
        default = "" if f.default is None or meta.get("required") else f" (default: {f.default})"
        help_text = (meta["help"] + default).replace("%", "%")
        target = group or parser
        if meta.get("group"):
            name = meta["group"]
            target = groups.setdefault(name, parser.add_argument_group(_GROUP_TITLES.get(name, name)))
        if meta.get("positional"):
            target.add_argument(f.name, nargs="?", default=argparse.SUPPRESS, help=help_text)
        elif kind == "bool":
            target.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            metavar = meta.get("metavar") or {"int": "N", "float": "X"}.get(kind, "VALUE")
            target.add_argument(flag(f.name), default=argparse.SUPPRESS, metavar=metavar, help=help_text)
    return added


def config_values(args: argparse.Namespace) -> dict:
    """The options given on the command line (flags never given are absent)."""
    return {k: v for k, v in vars(args).items() if k not in ("config", "verb", "_protege_hints")}


def config_from_args(cls, args: argparse.Namespace, *, verb: str | None = None):
    """Build ``cls`` from a recipe (if ``--config``) with the given flags on top."""
    recipe = load_recipe(args.config) if getattr(args, "config", None) else {}
    flags = config_values(args)
    if recipe:
        build_config(cls, {**recipe, **flags}, source=f"recipe {args.config}", verb=verb)
    return build_config(cls, {**recipe, **flags}, source="arguments", verb=verb)
