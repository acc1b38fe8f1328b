"""Picking the text, pair and label columns of a table into ``Examples``, and checking their cells.

A cell must hold what its column means: text in a text column (a JSON list or object is refused,
not turned into its string form), one label in the label column.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

from protege.data.objects import describe_table
from protege.data.reading import read_table
from protege.errors import ProtegeError

__all__ = ["Examples", "TEXT_COLUMNS", "PAIR_COLUMNS", "LABEL_COLUMNS", "load_examples"]

TEXT_COLUMNS = ("sentence", "text", "sentence1", "question1", "question", "premise", "review", "content", "document")
PAIR_COLUMNS = {"sentence1": "sentence2", "question1": "question2", "premise": "hypothesis", "question": "passage"}
LABEL_COLUMNS = ("label", "labels", "score", "target", "y", "class")


@dataclass(frozen=True)
class Examples:
    """Texts (optionally pairs) with labels: raw values as read, or class ids / floats after ``map_labels``."""

    texts: list[str]
    text_pairs: list[str] | None
    labels: list | None
    source: str
    text_column: str
    text_pair_column: str | None
    label_column: str | None
    label_names: tuple[str, ...] | None = None  # class names in id order, when the data declares them (ClassLabel)

    def __len__(self) -> int:
        return len(self.texts)

    def select(self, indices) -> "Examples":
        """A subset (in the given order) with the same columns and source."""
        idx = [int(i) for i in indices]
        return Examples(
            texts=[self.texts[i] for i in idx],
            text_pairs=None if self.text_pairs is None else [self.text_pairs[i] for i in idx],
            labels=None if self.labels is None else [self.labels[i] for i in idx],
            source=self.source,
            text_column=self.text_column,
            text_pair_column=self.text_pair_column,
            label_column=self.label_column,
            label_names=self.label_names,
        )


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, float) and math.isnan(value):
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (int, list, tuple, dict)):
        return False
    try:  # pandas NA / NaT / numpy nan
        import pandas as pd

        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def _find_column(columns: list[str], candidates) -> str | None:
    lower = {c.lower(): c for c in reversed(columns)}  # first one wins on case clashes
    for cand in candidates:
        if cand in columns:
            return cand
        if cand in lower:
            return lower[cand]
    return None


def _check_given(column: str, columns: list[str], source: str, flag: str) -> str:
    if column not in columns:
        raise ProtegeError(f"{source}: no column '{column}'; columns are {', '.join(columns)}; pass {flag}")
    return column


def load_examples(
    source,
    *,
    text_column: str | None = None,
    text_pair_column: str | None = None,
    label_column: str | None = None,
    split: str | None = None,
    require_labels: bool = False,
    max_examples: int | None = None,
) -> Examples:
    """Read ``source`` with :func:`read_table` and pick the text, optional pair and label columns.

    Columns not given are detected from common names (``sentence``, ``text``, ``sentence1`` +
    ``sentence2``, ... and ``label``, ``score``, ...). Empty texts or missing labels are errors;
    ``max_examples`` keeps the first N rows. Numeric-looking label strings become ints or floats.
    ``source`` may also be a table object (a DataFrame, a ``datasets`` split, a list of texts); the
    class names of a ``ClassLabel`` label column become ``label_names``.
    """
    if max_examples is not None and int(max_examples) < 1:
        raise ProtegeError(f"max_examples must be at least 1, got {max_examples}; pass a positive number")
    df = read_table(source, split=split)
    # a table object is named as the verbs name it in a config
    source = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{describe_table(source)}>"
    columns = list(df.columns)

    if text_column is None:
        text_column = _find_column(columns, TEXT_COLUMNS)
        if text_column is None:
            raise ProtegeError(
                f"{source}: no text column found; columns are {', '.join(columns)}; pass --text-column"
            )
    else:
        _check_given(text_column, columns, source, "--text-column")
    if text_pair_column is None:
        pair = PAIR_COLUMNS.get(text_column.lower())
        if pair is not None:
            text_pair_column = _find_column(columns, [pair])
    else:
        _check_given(text_pair_column, columns, source, "--text-pair-column")
    if label_column is None:
        label_column = _find_column([c for c in columns if c not in (text_column, text_pair_column)], LABEL_COLUMNS)
        if label_column is None and require_labels:
            raise ProtegeError(
                f"{source}: no label column found; columns are {', '.join(columns)}; pass --label-column"
            )
    else:
        _check_given(label_column, columns, source, "--label-column")
    used = [c for c in (text_column, text_pair_column, label_column) if c is not None]
    if len(set(used)) != len(used):
        raise ProtegeError(f"{source}: the text, pair and label columns must differ (got {', '.join(used)})")

    if max_examples is not None:
        df = df.iloc[: int(max_examples)]
    texts = _texts(df[text_column].tolist(), source, text_column)
    pairs = None if text_pair_column is None else _texts(df[text_pair_column].tolist(), source, text_pair_column)
    labels = None if label_column is None else _labels(df[label_column].tolist(), source, label_column)
    names = df.attrs.get("class_names", {}).get(label_column) if label_column is not None else None
    return Examples(texts, pairs, labels, source, text_column, text_pair_column, label_column,
                    tuple(names) if names else None)


def _structured(value: Any) -> str | None:
    """What a cell holds when it is a structure rather than one value ("a JSON list", ...), else None."""
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, (list, tuple, set)) or (getattr(value, "ndim", 0) or 0) > 0:  # Parquet lists are arrays
        return "a JSON list"
    if isinstance(value, (bytes, bytearray)):
        return "binary data"
    return None


def _texts(values: list, source: str, column: str) -> list[str]:
    out = []
    for row, v in enumerate(values, start=1):
        kind = _structured(v)
        if kind:  # str() of it would train on "['a', 'b']": refuse rather than guess how to join
            raise ProtegeError(f"{source} row {row}: column '{column}' holds {kind}, not text; "
                               "put one string in each cell (join the parts into one text)")
        if _is_missing(v):
            raise ProtegeError(f"{source} row {row}: empty text in column '{column}'; remove or fill the row")
        out.append(v if isinstance(v, str) else str(v))
    return out


def _labels(values: list, source: str, column: str) -> list:
    out = []
    all_str = True
    for row, v in enumerate(values, start=1):
        kind = _structured(v)
        if kind == "a JSON list":  # a label set: multi-label classification
            out.append([x.strip() if isinstance(x, str) else (x.item() if hasattr(x, "item") else x) for x in list(v)])
            all_str = False
            continue
        if kind:
            raise ProtegeError(f"{source} row {row}: column '{column}' holds {kind}, not one label; "
                               "put one class name, class id or score in each cell (or a JSON list of labels)")
        if _is_missing(v):
            raise ProtegeError(f"{source} row {row}: missing label in column '{column}'; remove or fill the row")
        if isinstance(v, str):
            v = v.strip()
        else:
            all_str = False
            v = v.item() if hasattr(v, "item") else v  # numpy scalar -> python
        out.append(v)
    if all_str:  # text files carry no types: "1" is a class id, "4.250" a score
        for convert in (int, float):
            try:
                converted = [convert(v) for v in out]
            except ValueError:
                continue
            for row, v in enumerate(converted, start=1):
                if math.isnan(v):
                    raise ProtegeError(f"{source} row {row}: missing label in column '{column}'; remove or fill the row")
            return converted
    return out
