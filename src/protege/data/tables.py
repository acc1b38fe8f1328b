"""Reading labelled text tables (TSV, CSV, JSON lines, Parquet, hub datasets) into ``Examples``.

The code lives in three modules along its seams: :mod:`protege.data.reading` (files and hub
datasets into pandas), :mod:`protege.data.columns` (columns and cells into ``Examples``) and
:mod:`protege.data.labels` (label spaces). This module keeps the names importable from one place.
Every problem with the user's data raises :class:`protege.errors.ProtegeError` with one line
naming the file, the row or column, and the fix.
"""

from __future__ import annotations

from protege.data.columns import LABEL_COLUMNS, PAIR_COLUMNS, TEXT_COLUMNS, Examples, load_examples
from protege.data.labels import CLASSIFICATION, REGRESSION, LabelSpace, infer_label_space, map_labels
from protege.data.reading import SUPPORTED_EXTENSIONS, _looks_like_hub_name, read_table  # noqa: F401 - used by data.text

__all__ = [
    "Examples",
    "LabelSpace",
    "SUPPORTED_EXTENSIONS",
    "TEXT_COLUMNS",
    "PAIR_COLUMNS",
    "LABEL_COLUMNS",
    "CLASSIFICATION",
    "REGRESSION",
    "read_table",
    "load_examples",
    "infer_label_space",
    "map_labels",
]
