"""protege: turn a large transformer into a small, fast one that behaves like it."""

__version__ = "0.1.0"
