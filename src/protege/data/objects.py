"""Tables from Python objects: a ``pandas.DataFrame``, a ``datasets`` split, a list of texts (+ labels).

What :func:`protege.data.read_table` reads when the Python API is given data instead of a path.
A ``datasets`` ``ClassLabel`` column keeps its class names (``df.attrs["class_names"]``), so a
model trained on it predicts ``positive``, not ``1``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protege.errors import ProtegeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["describe_table", "frame_from_object", "frame_from_dataset", "class_names"]

_KINDS = ("a pandas.DataFrame, a datasets.Dataset or DatasetDict, a list of texts, (texts, labels), "
          "a list of row dicts or a dict of columns")


def _is_datasets(obj, name: str) -> bool:
    return type(obj).__module__.split(".")[0] == "datasets" and type(obj).__name__ == name


def _is_frame(obj) -> bool:
    return type(obj).__name__ == "DataFrame" and type(obj).__module__.split(".")[0] == "pandas"


def _texts_and_labels(obj) -> tuple[list, list] | None:
    """``(texts, labels)`` when ``obj`` is a pair of equally long sequences whose first holds strings."""
    if isinstance(obj, tuple) and len(obj) == 2 and all(hasattr(part, "__len__") and not isinstance(part, str) for part in obj):
        texts, labels = list(obj[0]), list(obj[1])
        if texts and all(isinstance(t, str) for t in texts):
            return texts, labels
    return None


def describe_table(obj, what: str = "data") -> str:
    """A short name for a table object (``pandas.DataFrame 1000 rows``), or a one-line error for anything else."""
    if _is_frame(obj):
        return f"pandas.DataFrame {len(obj)} rows"
    if _is_datasets(obj, "Dataset"):
        return f"datasets.Dataset {len(obj)} rows"
    if _is_datasets(obj, "DatasetDict"):
        return f"datasets.DatasetDict {'/'.join(obj)}"
    pair = _texts_and_labels(obj)
    if pair is not None:
        return f"{len(pair[0])} texts with labels"
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(t, str) for t in obj):
        return f"list of {len(obj)} texts"
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(r, dict) for r in obj):
        return f"list of {len(obj)} rows"
    if isinstance(obj, dict) and obj and all(isinstance(v, (list, tuple)) for v in obj.values()):
        return f"dict of {len(next(iter(obj.values())))} rows"
    raise ProtegeError(f"{what}: expected a path, a datasets name or {_KINDS}; got {type(obj).__name__}")


def class_names(features, column: str) -> list[str] | None:
    """The ``ClassLabel`` names of ``column`` in a ``datasets`` ``features`` mapping, if it is one."""
    feature = (features or {}).get(column)
    names = getattr(feature, "names", None)
    return [str(n) for n in names] if type(feature).__name__ == "ClassLabel" and names else None


def frame_from_dataset(ds) -> "pandas.DataFrame":
    """A ``datasets.Dataset`` as pandas, its ``ClassLabel`` names in ``df.attrs["class_names"]``."""
    df = ds.to_pandas()
    features = getattr(ds, "features", None) or {}
    names = {str(c): n for c in features if (n := class_names(features, c))}
    if names:
        df.attrs["class_names"] = names
    return df


def frame_from_object(obj, *, source: str, split: str | None = None) -> "pandas.DataFrame":
    """The rows of a table object (see :func:`describe_table`) as a new DataFrame.

    A ``DatasetDict`` gives its ``split`` (default ``train``); a list of texts gives a ``text``
    column and ``(texts, labels)`` ``text`` and ``label`` columns.
    """
    import pandas as pd

    describe_table(obj, source)  # refuses anything else
    if _is_frame(obj):
        return obj.copy()
    if _is_datasets(obj, "DatasetDict"):
        split = split or "train"
        if split not in obj:
            raise ProtegeError(f"{source} has no split '{split}' (splits: {', '.join(obj)}); "
                               f"pass split=... or the split itself (e.g. dataset['{next(iter(obj))}'])")
        obj = obj[split]
    if _is_datasets(obj, "Dataset"):
        return frame_from_dataset(obj)
    pair = _texts_and_labels(obj)
    if pair is not None:
        texts, labels = pair
        if len(texts) != len(labels):
            raise ProtegeError(f"{source}: {len(texts)} texts but {len(labels)} labels; give one label per text")
        return pd.DataFrame({"text": texts, "label": labels})
    if isinstance(obj, dict):
        lengths = {len(v) for v in obj.values()}
        if len(lengths) > 1:
            raise ProtegeError(f"{source}: the columns have different lengths ({', '.join(map(str, sorted(lengths)))}); "
                               "give every column one value per row")
        return pd.DataFrame({str(k): list(v) for k, v in obj.items()})
    if all(isinstance(r, dict) for r in obj):
        return pd.DataFrame.from_records(list(obj))
    return pd.DataFrame({"text": list(obj)})
