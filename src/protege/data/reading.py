"""Reading a labelled text table (TSV, CSV, JSON lines, Parquet, hub dataset) into pandas.

Every problem with the user's file raises :class:`protege.errors.ProtegeError` with one line
naming the file, the line and the fix.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING

from protege.data.objects import describe_table, frame_from_dataset, frame_from_object
from protege.errors import ProtegeError
from protege.utils.handles import ModelObject, lookup

if TYPE_CHECKING:  # pragma: no cover
    import pandas

__all__ = ["SUPPORTED_EXTENSIONS", "read_table"]

SUPPORTED_EXTENSIONS = (".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".parquet")
# Suffixes that mark a source as a file name (never a hub dataset name).
_FILE_LIKE_SUFFIXES = set(SUPPORTED_EXTENSIONS) | {
    ".txt", ".gz", ".zip", ".bz2", ".xz", ".zst", ".xls", ".xlsx", ".arrow", ".feather", ".pkl", ".pickle",
}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?(:[\w.\-]+)?$")

_SUPPORTED_TEXT = ", ".join(SUPPORTED_EXTENSIONS)


def read_table(source, *, split: str | None = None) -> "pandas.DataFrame":
    """Read a local table (.tsv, .csv, .jsonl/.ndjson, .json, .parquet) or a hub dataset into pandas.

    TSV/CSV cells are read as strings (``"NA"`` stays text; empty cells stay ``""``); TSV uses no
    quoting. A source that is not a file but looks like a hub name (``imdb``, ``owner/name``,
    ``glue:sst2`` for name + config) is loaded with ``datasets.load_dataset(..., split=split or "train")``.
    A table object (a DataFrame, a ``datasets`` split, texts: :mod:`protege.data.objects`), or the
    handle the Python API registered it under, is read as it is.
    """
    held = source if not isinstance(source, (str, os.PathLike)) else lookup(os.fspath(source))
    if isinstance(held, ModelObject):
        raise ProtegeError(f"{source} is a model, not data; pass a table (a file, a DataFrame, a datasets split)")
    if held is not None:
        source = os.fspath(source) if isinstance(source, (str, os.PathLike)) else f"<{describe_table(held)}>"
        return _checked(frame_from_object(held, source=source, split=split), source)
    source = str(source)
    path = Path(source).expanduser()
    if path.is_dir():
        raise ProtegeError(f"{source} is a folder; pass a data file ({_SUPPORTED_TEXT})")
    if path.is_file():
        df = _read_file(path, source)
    elif _looks_like_hub_name(source):
        df = _read_hub(source, split)
    else:
        raise ProtegeError(f"{source}: no such file; check the path (supported: {_SUPPORTED_TEXT})")
    return _checked(df, source)


def _checked(df: "pandas.DataFrame", source: str) -> "pandas.DataFrame":
    """``df`` with text column names, refused when empty or when two columns share a name."""
    if len(df.columns) == 0 or len(df) == 0:
        raise ProtegeError(f"{source}: no rows; pass a file with a header row and at least one example")
    df.columns = [str(c) for c in df.columns]
    dupes = sorted({c for c in df.columns if list(df.columns).count(c) > 1})
    if dupes:
        raise ProtegeError(f"{source}: duplicate column name(s) {', '.join(dupes)}; rename them in the header")
    return df


def _looks_like_hub_name(source: str) -> bool:
    if not _HUB_NAME.match(source):
        return False
    name = source.split(":", 1)[0]
    if Path(name).suffix.lower() in _FILE_LIKE_SUFFIXES:
        return False
    # "data/train" where ./data exists is a missing file, not a hub dataset
    return not ("/" in name and Path(name).parent.is_dir())


def _read_file(path: Path, source: str) -> "pandas.DataFrame":
    ext = path.suffix.lower()
    if ext not in SUPPORTED_EXTENSIONS:
        raise ProtegeError(f"{source}: unsupported file type '{ext or '(none)'}'; use one of {_SUPPORTED_TEXT}")
    if path.stat().st_size == 0:
        raise ProtegeError(f"{source}: the file is empty; pass a file with a header row and examples")
    if ext == ".parquet":
        import pandas as pd

        try:
            return pd.read_parquet(path)
        except Exception as e:  # noqa: BLE001 - any reader failure is a bad file
            raise ProtegeError(f"{source}: not a readable Parquet file ({_first_line(e)}); re-save it") from None
    text = _read_text(path, source)
    if ext == ".tsv":
        return _parse_tsv(text, source)
    if ext == ".csv":
        return _parse_csv(text, source)
    return _parse_json(text, source, ext)


def _read_text(path: Path, source: str) -> str:
    try:
        return path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise ProtegeError(f"{source}: not UTF-8 text (bad byte at offset {e.start}); re-save it as UTF-8") from None


def _parse_tsv(text: str, source: str) -> "pandas.DataFrame":
    import pandas as pd

    lines = text.split("\n")
    while lines and not lines[-1].strip():  # trailing blank lines
        lines.pop()
    if not lines:
        raise ProtegeError(f"{source}: the file is empty; pass a file with a header row and examples")
    header = lines[0].rstrip("\r").split("\t")
    n = len(header)
    columns: list[list[str]] = [[] for _ in range(n)]
    for lineno, line in enumerate(lines[1:], start=2):
        fields = line.rstrip("\r").split("\t")
        if len(fields) != n:
            raise ProtegeError(
                f"{source} line {lineno}: expected {n} tab-separated fields ({', '.join(header)}), "
                f"found {len(fields)}; fix or remove the line (TSV has no quoting: remove tabs inside texts)"
            )
        for col, value in zip(columns, fields):
            col.append(value)
    return pd.DataFrame({name: values for name, values in zip(header, columns)}, dtype=object)


def _parse_csv(text: str, source: str) -> "pandas.DataFrame":
    import io

    import pandas as pd

    try:
        return pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        raise ProtegeError(f"{source}: the file is empty; pass a file with a header row and examples") from None
    except (pd.errors.ParserError, ValueError) as e:
        raise ProtegeError(f"{source}: not a valid CSV file ({_first_line(e)}); fix the file") from None


def _parse_json(text: str, source: str, ext: str) -> "pandas.DataFrame":
    import pandas as pd

    if ext == ".json" and text.lstrip().startswith("["):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ProtegeError(f"{source} line {e.lineno}: invalid JSON ({e.msg}); fix the file") from None
        for i, row in enumerate(rows, start=1):
            if not isinstance(row, dict):
                raise ProtegeError(f"{source}: item {i} of the JSON list is not an object; use a list of objects")
    else:
        rows = []
        for lineno, line in enumerate(text.split("\n"), start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise ProtegeError(
                    f"{source} line {lineno}: invalid JSON ({e.msg}); use one JSON object per line"
                ) from None
            if not isinstance(row, dict):
                raise ProtegeError(f"{source} line {lineno}: not a JSON object; use one JSON object per line")
            rows.append(row)
    if not rows:
        raise ProtegeError(f"{source}: no rows; pass a file with at least one example")
    return pd.DataFrame.from_records(rows)


def _read_hub(source: str, split: str | None) -> "pandas.DataFrame":
    name, _, config = source.partition(":")
    try:
        import datasets

        ds = datasets.load_dataset(name, config or None, split=split or "train")
        return frame_from_dataset(ds)
    except Exception as e:  # noqa: BLE001 - offline, unknown name, bad config or split
        raise ProtegeError(
            f"could not load dataset '{source}' from the Hugging Face hub ({_first_line(e)}); pass a local file"
        ) from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0].strip() if lines else type(e).__name__
