"""Small steps every recipe takes the same way."""

from __future__ import annotations

__all__ = ["make_config"]


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
