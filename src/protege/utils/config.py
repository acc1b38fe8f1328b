"""Config dataclasses that are also CLI flags, YAML keys and keyword arguments.

A config is a frozen, keyword-only dataclass built from :class:`Section` s; each section checks
its own fields in ``_check`` and :meth:`Section.__post_init__` runs every section's check, base
sections first. One field is one ``--flag`` (``student_layers`` -> ``--student-layers``), one YAML
key and one keyword argument; :func:`option` carries its help text. :func:`build_config` turns a
dict (flags, a YAML recipe, keyword arguments) into a config with strict types: a YAML ``yes``
is not a learning rate, and a float is not a layer count.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protege.errors import ProtegeError

__all__ = ["option", "Section", "split_options", "given_options", "unused_settings", "check_positive", "check_number", "check_choice", "flag", "load_recipe", "build_config",
           "coerce", "field_kind", "TRAINER_NAMES"]

# common transformers.TrainingArguments names -> ours, for a "did you mean"
TRAINER_NAMES = {"learning_rate": "lr", "num_train_epochs": "epochs", "per_device_train_batch_size": "batch_size",
                 "train_batch_size": "batch_size", "gradient_accumulation_steps": "grad_accum",
                 "warmup_ratio": "warmup_ratio", "output_dir": "out", "max_seq_length": "max_length",
                 "eval_steps": "eval_every", "save_steps": "checkpoint_every", "logging_steps": "log_every",
                 "early_stopping_patience": "patience", "resume_from_checkpoint": "resume",
                 "overwrite_output_dir": "overwrite", "load_best_model_at_end": "keep_best"}


def option(default, help: str, **metadata):
    """A config field with its ``--help`` text (``required=True`` marks a flag that must be given)."""
    return field(default=default, metadata={"help": help, **metadata})


def flag(name: str) -> str:
    """The CLI spelling of a field name."""
    return "--" + name.replace("_", "-")


@dataclass(frozen=True, kw_only=True)
class Section:
    """A group of config fields with its own validation (``_check``); configs are made of sections."""

    def __post_init__(self):
        done = set()
        for cls in reversed(type(self).__mro__):
            check = cls.__dict__.get("_check")
            if check is not None and check not in done:
                done.add(check)
                check(self)


def check_positive(cfg, *names: str, optional: bool = False) -> None:
    """Each field is a positive integer (or None, with ``optional``)."""
    for name in names:
        value = getattr(cfg, name)
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ProtegeError(f"{flag(name)} must be a positive integer, got {value!r}")


def check_number(cfg, name: str, *, low: float | None = None, high: float | None = None, low_open: bool = False,
                 high_open: bool = False, optional: bool = False) -> None:
    """The field is a finite number within ``[low, high]`` (open ends with ``low_open`` / ``high_open``)."""
    value = getattr(cfg, name)
    if value is None and optional:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if ok and low is not None:
        ok = value > low if low_open else value >= low
    if ok and high is not None:
        ok = value < high if high_open else value <= high
    if not ok:
        lo = "" if low is None else ("(" if low_open else "[") + f"{low:g}"
        hi = "" if high is None else f"{high:g}" + (")" if high_open else "]")
        where = (f"a number in {lo}, {hi}" if lo and hi else f"{'>' if low_open else '>='} {low:g}" if lo
                 else f"{'<' if high_open else '<='} {high:g}")
        raise ProtegeError(f"{flag(name)} must be {where}, got {value!r}")


def check_choice(cfg, name: str, choices) -> None:
    """The field is one of ``choices``."""
    value = getattr(cfg, name)
    if value not in choices:
        raise ProtegeError(f"{flag(name)} must be one of {', '.join(map(str, choices))}, got {value!r}")


def load_recipe(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe into a dict of config fields (keys may use - or _)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ProtegeError(f"{path}: no such recipe file")
    try:
        text = p.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise ProtegeError(f"{path}: not a UTF-8 text file; a recipe is YAML text of option: value lines") from None
    if "\x00" in text:
        raise ProtegeError(f"{path}: a binary file, not a YAML recipe")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise ProtegeError(f"{path}: not valid YAML ({str(err).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ProtegeError(f"{path}: a recipe must be a mapping of option: value")
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def field_kind(f: dataclasses.Field) -> str:
    """``bool``, ``int``, ``float`` or ``str`` for a config field's annotation."""
    kind = str(f.type).split(" ")[0].split("|")[0]
    return kind if kind in ("bool", "int", "float") else "str"


def build_config(cls, values: dict[str, Any], *, source: str = "arguments", verb: str | None = None):
    """Construct ``cls`` from a dict, turning unknown keys and wrong types into one-line errors."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        key = unknown[0]
        verb = verb or cls.__name__.removesuffix("Config").lower()
        hint = TRAINER_NAMES.get(key)
        if hint in fields:
            raise ProtegeError(f"unknown option '{key}' in {source}; did you mean '{hint}' ({flag(hint)})?")
        raise ProtegeError(f"unknown option '{key}' in {source}; see protege {verb} --help")
    cfg = cls(**{name: coerce(name, value, fields[name], source) for name, value in values.items()})
    object.__setattr__(cfg, "_protege_given", frozenset(values))  # which options the user chose (see given_options)
    return cfg


def given_options(cfg) -> frozenset | None:
    """The option names given when ``cfg`` was built by :func:`build_config` (None for a config built directly)."""
    return getattr(cfg, "_protege_given", None)


def unused_settings(*configs) -> frozenset[str]:
    """The settings of ``configs`` that did not act on the run's model: what its model card leaves out.

    A loss weight (``alpha_*``) of 0, and whatever a section's ``_unused()`` names (each section
    of a config's class hierarchy answers for its own fields, as with ``_check``): the knobs of an
    unused term, training settings of a run that does not train, output and display plumbing.
    Nested configs (fields marked ``object``, e.g. an objective's options) answer too.
    """
    names = set()
    for cfg in configs:
        if not dataclasses.is_dataclass(cfg):
            continue
        for f in dataclasses.fields(cfg):
            value = getattr(cfg, f.name)
            if f.metadata.get("object"):
                names |= unused_settings(value)
            elif f.name.startswith("alpha_") and isinstance(value, (int, float)) and not isinstance(value, bool) and value == 0:
                names.add(f.name)
        done = set()
        for cls in type(cfg).__mro__:
            hook = cls.__dict__.get("_unused")
            if hook is not None and hook not in done:
                done.add(hook)
                names |= set(hook(cfg))
    return frozenset(names)


def split_options(options: dict, run_cls, table: dict, *, choice: str, default: str, source: str = "arguments",
                  verb: str | None = None) -> tuple[str, dict, dict]:
    """Split one flat dict of options into the run's and the chosen variant's: ``(chosen, run values, own values)``.

    ``table`` maps a ``--choice`` value (a pruning method, an objective) to its config class; an
    option that belongs to another variant is refused by name, an unknown one with "see --help".
    """
    chosen = str(options.get(choice) or default)
    if chosen not in table:
        raise ProtegeError(f"{flag(choice)} must be one of {', '.join(table)}, got {chosen!r}")
    run_fields = {f.name for f in dataclasses.fields(run_cls) if not f.metadata.get("object")}
    own_fields = {f.name for f in dataclasses.fields(table[chosen])}
    run, own = {}, {}
    for key, value in options.items():
        if key in own_fields:
            own[key] = value
        elif key in run_fields:
            run[key] = value
        else:
            owners = [name for name, cls in table.items() if key in {f.name for f in dataclasses.fields(cls)}]
            if owners:
                raise ProtegeError(f"{flag(key)} applies to {flag(choice)} {' / '.join(owners)}; it does not apply to "
                                   f"{flag(choice)} {chosen}: drop it or change {flag(choice)}")
            build_config(run_cls, {key: value}, source=source, verb=verb)  # raises the unknown-option error
    return chosen, run, own


def coerce(name: str, value, f: dataclasses.Field, source: str = "arguments"):
    """``value`` as the field's type, strictly: no bools as numbers, no fractional counts, no lists as text."""
    if value is None:
        return None
    if f.metadata.get("object"):  # a nested config object (e.g. an objective's options), checked by its owner
        return value
    kind = field_kind(f)
    if f.metadata.get("many"):  # a list of texts (paths): one value or several
        values = [value] if isinstance(value, (str, os.PathLike)) else value
        if not isinstance(values, (list, tuple)) or not all(isinstance(v, (str, os.PathLike)) for v in values):
            raise ProtegeError(f"{flag(name)} in {source}: expected one or more paths, got {value!r}")
        return tuple(os.fspath(v) for v in values)
    try:
        if kind == "bool":
            if isinstance(value, str) and value.lower() in ("true", "false", "yes", "no", "1", "0"):
                return value.lower() in ("true", "yes", "1")
            if not isinstance(value, bool):
                raise ValueError
            return value
        if isinstance(value, bool):
            raise ValueError
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, str):
                try:
                    return int(value)
                except ValueError:
                    number = float(value)  # "1e3" from YAML 1.1, which reads it as text
                    if not number.is_integer():
                        raise
                    return int(number)
            return int(value)
        if kind == "float":
            return float(value)
        if isinstance(value, (list, tuple)) and f.metadata.get("list"):
            return ",".join(str(int(v)) for v in value)
        if isinstance(value, (list, tuple)) and f.metadata.get("numbers"):  # e.g. weights: [2, 1, 0.5] -> "2,1,0.5"
            if not value or not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in value):
                raise ValueError
            return ",".join(str(v) for v in value)
        if isinstance(value, (list, tuple)) and f.metadata.get("names"):  # e.g. class names: ["neg", "pos"] -> "neg,pos"
            if not all(isinstance(v, str) for v in value):
                raise ValueError
            return ",".join(value)
        if not isinstance(value, (str, os.PathLike, int, float)):
            raise ValueError
        return os.fspath(value) if isinstance(value, os.PathLike) else str(value)
    except (TypeError, ValueError, OverflowError):
        raise ProtegeError(f"{flag(name)} in {source}: expected {'a list of layer numbers or ' if f.metadata.get('list') else ''}"
                           f"{'a list of numbers or ' if f.metadata.get('numbers') else ''}"
                           f"{kind}, got {value!r}") from None
