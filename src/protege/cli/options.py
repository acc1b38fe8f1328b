"""CLI flags generated from a config dataclass, merged over an optional YAML recipe.

Every verb's flags come from its config's fields (name, type, default and help), so the flags,
the YAML keys and the keyword arguments of the library function cannot drift apart. Field
metadata shapes a flag: ``positional`` (an argument, not a flag), ``metavar``, ``group`` (a help
section), ``hidden`` (accepted from Python only).
"""

from __future__ import annotations

import argparse
import dataclasses
import re
from pathlib import Path

from protege.utils.config import TRAINER_NAMES, build_config, coerce, field_kind, flag, load_recipe

__all__ = ["add_config_arguments", "add_variant_group", "config_from_args", "config_values", "options_from_args", "plain"]

_GROUP_TITLES = {"general": "general-purpose models (sentence-transformers folders, causal and masked LMs)"}

# reStructuredText in docstrings and help texts: :class:`~a.b.Name`, ``code``, `text`
_ROLE = re.compile(r":[a-z]+:`(~?)([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``|`([^`]+)`")


def plain(text: str) -> str:
    """``text`` without reStructuredText markup, as ``--help`` prints it (:class:`~a.B` -> B, ``x`` -> x)."""
    text = _ROLE.sub(lambda m: m.group(2).rsplit(".", 1)[-1] if m.group(1) else m.group(2), text)
    return _LITERAL.sub(lambda m: m.group(1) or m.group(2), text)


def add_variant_group(parser: argparse.ArgumentParser, choice: str, name: str, cls):
    """The help section of one variant (``--method imp``), described by the first line of its config's docstring."""
    lines = (cls.__doc__ or "").strip().splitlines()
    summary = plain(lines[0]).removeprefix(f"{flag(choice)} {name}:").strip() if lines else ""  # the title says it
    return parser.add_argument_group(f"{flag(choice)} {name}", summary[:1].upper() + summary[1:])


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
        help_text = plain(meta["help"] + default).replace("%", "%%")
        target = group or parser
        if meta.get("group"):
            name = meta["group"]
            target = groups.setdefault(name, parser.add_argument_group(_GROUP_TITLES.get(name, name)))
        if meta.get("positional"):
            target.add_argument(f.name, nargs="+" if meta.get("many") else "?", default=argparse.SUPPRESS,
                                metavar=meta.get("metavar"), help=help_text)
        elif meta.get("many"):
            target.add_argument(flag(f.name), action="append", default=argparse.SUPPRESS, metavar=meta.get("metavar") or "FILE",
                                help=help_text + " (repeatable)")
        elif kind == "bool":
            target.add_argument(flag(f.name), action=argparse.BooleanOptionalAction, default=argparse.SUPPRESS, help=help_text)
        else:
            metavar = meta.get("metavar") or {"int": "N", "float": "X"}.get(kind, "VALUE")
            target.add_argument(flag(f.name), default=argparse.SUPPRESS, metavar=metavar, help=help_text)
    return added


def config_values(args: argparse.Namespace) -> dict:
    """The options given on the command line (flags never given are absent)."""
    return {k: v for k, v in vars(args).items() if k not in ("config", "verb", "_protege_hints")}


def _recipe(args: argparse.Namespace, classes) -> dict:
    """The ``--config`` recipe, its relative input paths resolved against the recipe's own folder."""
    if not getattr(args, "config", None):
        return {}
    recipe = load_recipe(args.config)
    here = Path(args.config).resolve().parent
    paths = {f.name for cls in classes for f in dataclasses.fields(cls) if f.metadata.get("path")}
    beside = lambda v: str(here / v) if isinstance(v, str) and v and not Path(v).is_absolute() and (here / v).exists() else v  # noqa: E731
    for key, value in recipe.items():
        if key in paths:  # a recipe names files beside itself, wherever it is run from
            recipe[key] = [beside(v) for v in value] if isinstance(value, list) else beside(value)
    return recipe


def config_from_args(cls, args: argparse.Namespace, *, verb: str | None = None):
    """Build ``cls`` from a recipe (if ``--config``) with the given flags on top."""
    return build_config(cls, options_from_args(args, [cls], verb=verb), source="arguments", verb=verb)


def options_from_args(args: argparse.Namespace, classes=(), *, verb: str | None = None) -> dict:
    """The recipe's options (if ``--config``) with the given flags on top, as one flat dict.

    Every recipe value is type-checked against the field one of ``classes`` declares, even one a
    flag overrides; a key none of them declares is refused, naming the recipe.
    """
    recipe = _recipe(args, classes)
    fields = {f.name: f for cls in reversed(list(classes)) for f in dataclasses.fields(cls)}
    for key, value in recipe.items():
        if key not in fields:  # the one-line "unknown option" error, with a did-you-mean
            build_config(classes[0], {key: value}, source=f"recipe {args.config}", verb=verb)
        coerce(key, value, fields[key], f"recipe {args.config}")
    return {**recipe, **config_values(args)}
