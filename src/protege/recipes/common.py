"""Small steps every recipe takes the same way."""

from __future__ import annotations

__all__ = ["make_config", "fit_max_length"]


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
