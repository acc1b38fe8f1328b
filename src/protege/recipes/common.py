"""Small steps every recipe takes the same way."""

from __future__ import annotations

import functools
import inspect
import os

from protege.errors import ProtegeError
from protege.utils.handles import ModelObject, input_scope, register

__all__ = ["make_config", "fit_max_length", "takes_objects", "DATA_INPUTS", "MODEL_INPUTS"]

# the options that name data or a model: from Python they may be objects (see takes_objects)
DATA_INPUTS = ("train", "eval", "sts", "probe_train", "probe_eval", "eval_text", "train_text", "ood", "calibration")
MODEL_INPUTS = ("model", "teacher", "student", "compare")


def takes_objects(verb):
    """``verb`` (a recipe's function) taking Python objects where its config takes paths.

    Data options (``train``, ``eval``, ``sts``, ``probe_*``, ``eval_text``, ...) take a
    ``pandas.DataFrame``, a ``datasets.Dataset`` or ``DatasetDict`` (the split is ``split``, else
    train / validation), a list of texts or ``(texts, labels)``; model options (``model``,
    ``teacher``, ``student``, ``compare``) take a transformers model with ``tokenizer=``. Each object
    is held for the length of the call under a handle such as ``<pandas.DataFrame 1000 rows>``
    (:mod:`protege.utils.handles`): the config, the logs and the JSON files record that name.
    """
    signature = inspect.signature(verb)

    @functools.wraps(verb)
    def wrapper(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        values = {}
        for name, value in bound.arguments.items():
            values.update(value if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD else {name: value})
        tokenizer = values.pop("tokenizer", None)
        data = [k for k in DATA_INPUTS if not _is_name(values.get(k))]
        models = [k for k in MODEL_INPUTS if _holds_model_object(values.get(k))]
        if tokenizer is not None and not models:
            raise ProtegeError("tokenizer= goes with a model object (teacher=model or model=model); "
                               "a model folder or hub id brings its own tokenizer")
        if not data and not models:
            return verb(**values)
        from protege.data import describe_table

        def model_handle(key, value):
            if _is_name(value):
                return value
            return register(ModelObject(value, _checked_tokenizer(key, value, tokenizer)), _describe_model(value))

        with input_scope():  # the objects are released when the run returns or fails
            for key in data:
                values[key] = register(values[key], describe_table(values[key], f"{key}="))
            for key in models:  # several teachers (an ensemble) may mix folders and objects
                value = values[key]
                values[key] = ([model_handle(key, v) for v in value] if isinstance(value, (list, tuple))
                               else model_handle(key, value))
            return verb(**values)

    return wrapper


def _is_name(value) -> bool:
    """A path or hub name (or nothing), not an object."""
    return value is None or isinstance(value, (str, os.PathLike))


def _holds_model_object(value) -> bool:
    """Whether a model option (one model, or several teachers) holds an object rather than only names."""
    return any(not _is_name(v) for v in (value if isinstance(value, (list, tuple)) else [value]))


def _checked_tokenizer(key: str, model, tokenizer):
    if not (hasattr(model, "save_pretrained") and hasattr(model, "config")):
        raise ProtegeError(f"{key}= must be a model folder, a hub id or a transformers model object; got {type(model).__name__}")
    if tokenizer is None:
        raise ProtegeError(f"{key}= is a model object: pass its tokenizer too ({key}=model, tokenizer=tokenizer)")
    if not hasattr(tokenizer, "save_pretrained"):
        raise ProtegeError(f"tokenizer= must be a transformers tokenizer; got {type(tokenizer).__name__}")
    return tokenizer


def _describe_model(model) -> str:
    from protege.utils.fmt import fmt_count

    params = sum(p.numel() for p in model.parameters()) if hasattr(model, "parameters") else 0
    return f"{type(model).__name__} {fmt_count(params)} parameters"


def make_config(cls, config, kwargs: dict):
    """``config`` if given, else ``cls(**kwargs)`` (strictly typed); both at once is a usage error."""
    from protege.utils.config import build_config

    if config is not None and kwargs:
        raise TypeError("pass either a config object or keyword arguments, not both")
    if config is not None:
        if not isinstance(config, cls):
            raise TypeError(f"config must be a {cls.__name__}, got {type(config).__name__}")
        return config
    return build_config(cls, kwargs, source="arguments")


def fit_max_length(cfg, config, *, role: str = "model"):
    """``cfg`` with a ``max_length`` the model of ``config`` can read.

    An explicit ``--max-length`` above the model's positions is refused; the default (which the
    user did not choose) is lowered to the model's limit.
    """
    import dataclasses

    from protege.models import check_max_length
    from protege.utils.config import given_options

    given = given_options(cfg)
    default = next((f.default for f in dataclasses.fields(cfg) if f.name == "max_length"), None)
    if given is not None and "max_length" in given:
        default = None  # chosen by the user: never lowered silently
    length = check_max_length(config, cfg.max_length, role=role, default=default)
    if length == cfg.max_length:
        return cfg
    fitted = dataclasses.replace(cfg, max_length=length)
    object.__setattr__(fitted, "_protege_given", given)
    return fitted
