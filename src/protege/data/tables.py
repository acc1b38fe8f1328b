"""Reading labelled text tables (TSV, CSV, JSON lines, Parquet, hub datasets) into ``Examples``.

Every problem with the user's data raises :class:`protege.errors.ProtegeError` with one line
naming the file, the row or column, and the fix.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from protege.errors import ProtegeError

if TYPE_CHECKING:  # pragma: no cover
    import pandas

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

CLASSIFICATION = "single_label_classification"
REGRESSION = "regression"

SUPPORTED_EXTENSIONS = (".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".parquet")
# Suffixes that mark a source as a file name (never a hub dataset name).
_FILE_LIKE_SUFFIXES = set(SUPPORTED_EXTENSIONS) | {
    ".txt", ".gz", ".zip", ".bz2", ".xz", ".zst", ".xls", ".xlsx", ".arrow", ".feather", ".pkl", ".pickle",
}
_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.\-]*(/[A-Za-z0-9][\w.\-]*)?(:[\w.\-]+)?$")

TEXT_COLUMNS = ("sentence", "text", "sentence1", "question1", "question", "premise", "review", "content", "document")
PAIR_COLUMNS = {"sentence1": "sentence2", "question1": "question2", "premise": "hypothesis", "question": "passage"}
LABEL_COLUMNS = ("label", "labels", "score", "target", "y", "class")

_SUPPORTED_TEXT = ", ".join(SUPPORTED_EXTENSIONS)


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
        )


@dataclass(frozen=True)
class LabelSpace:
    """What a model predicts: ``problem_type`` and, for classification, ``id2label``."""

    problem_type: str
    id2label: dict[int, str] | None

    @property
    def num_labels(self) -> int:
        """Number of model outputs: classes, or 1 for regression."""
        return 1 if self.id2label is None else len(self.id2label)


# ---------------------------------------------------------------------------------------------
# reading


def read_table(source: str, *, split: str | None = None) -> "pandas.DataFrame":
    """Read a local table (.tsv, .csv, .jsonl/.ndjson, .json, .parquet) or a hub dataset into pandas.

    TSV/CSV cells are read as strings (``"NA"`` stays text; empty cells stay ``""``); TSV uses no
    quoting. A source that is not a file but looks like a hub name (``imdb``, ``owner/name``,
    ``glue:sst2`` for name + config) is loaded with ``datasets.load_dataset(..., split=split or "train")``.
    """
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
        return ds.to_pandas()
    except Exception as e:  # noqa: BLE001 - offline, unknown name, bad config or split
        raise ProtegeError(
            f"could not load dataset '{source}' from the Hugging Face hub ({_first_line(e)}); pass a local file"
        ) from None


def _first_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return lines[0].strip() if lines else type(e).__name__


# ---------------------------------------------------------------------------------------------
# columns and examples


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
    """
    source = str(source)
    if max_examples is not None and int(max_examples) < 1:
        raise ProtegeError(f"max_examples must be at least 1, got {max_examples}; pass a positive number")
    df = read_table(source, split=split)
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
    return Examples(texts, pairs, labels, source, text_column, text_pair_column, label_column)


def _texts(values: list, source: str, column: str) -> list[str]:
    out = []
    for row, v in enumerate(values, start=1):
        if _is_missing(v):
            raise ProtegeError(f"{source} row {row}: empty text in column '{column}'; remove or fill the row")
        out.append(v if isinstance(v, str) else str(v))
    return out


def _labels(values: list, source: str, column: str) -> list:
    out = []
    all_str = True
    for row, v in enumerate(values, start=1):
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


# ---------------------------------------------------------------------------------------------
# label spaces


def _as_number(v: Any) -> int | float | None:
    """An int or float for numeric labels (bools are 0/1, int strings and float strings parse); else None."""
    if isinstance(v, bool):
        return int(v)
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        v = v.item()
        if isinstance(v, bool):
            return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, str):
        s = v.strip()
        try:
            return int(s)
        except ValueError:
            pass
        try:
            return float(s)
        except ValueError:
            return None
    return None


def _normalise_problem_type(problem_type: str) -> str:
    aliases = {"classification": CLASSIFICATION, CLASSIFICATION: CLASSIFICATION, REGRESSION: REGRESSION}
    if problem_type not in aliases:
        raise ProtegeError(
            f"unknown problem type '{problem_type}'; use {CLASSIFICATION} or {REGRESSION}"
        )
    return aliases[problem_type]


def infer_label_space(labels, *, problem_type: str | None = None) -> LabelSpace:
    """The label space implied by ``labels``.

    Integer-valued numbers give classes ``0..max``; any non-integer number means regression;
    names give classes in sorted order. ``problem_type`` forces the kind.
    """
    labels = list(labels)
    if not labels:
        raise ProtegeError("no labels to infer the label space from; pass a labelled training file")
    forced = None if problem_type is None else _normalise_problem_type(problem_type)
    numbers = [_as_number(v) for v in labels]
    for n in numbers:
        if isinstance(n, float) and math.isnan(n):
            raise ProtegeError("a label is missing (NaN); remove or fill the row")
    numeric = [n is not None for n in numbers]

    if forced == REGRESSION:
        bad = next((v for v, ok in zip(labels, numeric) if not ok), None)
        if bad is not None:
            raise ProtegeError(f"label {bad!r} is not a number; regression needs numeric labels")
        return LabelSpace(REGRESSION, None)

    if all(numeric):
        integral = all(float(n).is_integer() for n in numbers)
        if not integral:
            if forced == CLASSIFICATION:
                bad = next(n for n in numbers if not float(n).is_integer())
                raise ProtegeError(
                    f"label {bad!r} is not a class id; classification needs integer labels or names "
                    f"(or use problem type {REGRESSION})"
                )
            return LabelSpace(REGRESSION, None)
        ids = sorted({int(n) for n in numbers})
        if ids[0] < 0:
            raise ProtegeError(f"label {ids[0]} is negative; class ids must be 0..N-1, so remap the labels")
        _check_classes(ids)
        return LabelSpace(CLASSIFICATION, {i: str(i) for i in range(ids[-1] + 1)})

    if any(numeric):
        num = next(v for v, ok in zip(labels, numeric) if ok)
        name = next(v for v, ok in zip(labels, numeric) if not ok)
        raise ProtegeError(
            f"labels mix numbers and names (e.g. {num!r} and {name!r}); use one kind in the label column"
        )
    names = sorted({str(v).strip() for v in labels})
    _check_classes(names)
    return LabelSpace(CLASSIFICATION, dict(enumerate(names)))


def _check_classes(classes: list) -> None:
    if len(classes) < 2:
        raise ProtegeError(
            f"the labels hold only one class ({classes[0]!r}); classification needs at least 2 — "
            f"check the label column (or use problem type {REGRESSION})"
        )


def map_labels(examples: Examples, space: LabelSpace, *, label2id: dict[str, int] | None = None) -> Examples:
    """Labels as class ids (ints) for classification or floats for regression, checked against ``space``.

    Names are looked up in ``label2id`` and the inverted ``space.id2label`` (exact match first,
    then case-insensitive); ints and int strings in ``[0, num_labels)`` are kept. Unlabelled
    examples are returned unchanged.
    """
    if examples.labels is None:
        return examples
    problem_type = _normalise_problem_type(space.problem_type)
    src = examples.source
    out: list = []
    if problem_type == REGRESSION:
        for row, v in enumerate(examples.labels, start=1):
            n = _as_number(v)
            if n is None or math.isnan(float(n)):
                raise ProtegeError(f"{src} row {row}: label {v!r} is not a number; regression needs numeric labels")
            out.append(float(n))
    else:
        if not space.id2label and not label2id:
            raise ProtegeError("the label space has no id2label; classification needs the class names")
        names = {str(name): int(i) for i, name in (space.id2label or {}).items()}
        names.update({str(name): int(i) for name, i in (label2id or {}).items()})  # label2id wins
        num_labels = len(space.id2label) if space.id2label else max(names.values()) + 1
        folded: dict[str, int | None] = {}
        for name, i in names.items():
            key = name.casefold()
            folded[key] = i if key not in folded or folded[key] == i else None  # ambiguous -> None
        shown = _label_names(space, names)
        for row, v in enumerate(examples.labels, start=1):
            cid = _class_id(v, names, folded, num_labels)
            if cid is None:
                raise ProtegeError(
                    f"{src} row {row}: label {_show(v)} is not in the teacher's label space ({shown}); "
                    "map it or drop the row"
                )
            out.append(cid)
    return Examples(
        examples.texts, examples.text_pairs, out, examples.source,
        examples.text_column, examples.text_pair_column, examples.label_column,
    )


def _class_id(v: Any, names: dict[str, int], folded: dict, num_labels: int) -> int | None:
    if isinstance(v, str):
        s = v.strip()
        if s in names:
            return names[s]
        if folded.get(s.casefold()) is not None:
            return folded[s.casefold()]
    n = _as_number(v)
    if n is None or (isinstance(n, float) and not n.is_integer()):
        return None
    n = int(n)
    return n if 0 <= n < num_labels else None


def _label_names(space: LabelSpace, names: dict[str, int]) -> str:
    if space.id2label:
        shown = [str(space.id2label[i]) for i in sorted(space.id2label)]
    else:
        shown = [k for k, _ in sorted(names.items(), key=lambda kv: kv[1])]
    if len(shown) > 12:
        shown = shown[:12] + [f"... {len(shown) - 12} more"]
    return ", ".join(shown)


def _show(v: Any) -> str:
    return f"'{v}'" if isinstance(v, str) else repr(v)

