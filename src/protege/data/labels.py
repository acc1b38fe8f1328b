"""Label spaces: what a model predicts, inferred from labels, and labels mapped into it."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from protege.data.columns import Examples
from protege.errors import ProtegeError

__all__ = ["CLASSIFICATION", "REGRESSION", "MULTI_LABEL", "LabelSpace", "infer_label_space", "map_labels", "label_set"]

CLASSIFICATION = "single_label_classification"
REGRESSION = "regression"
MULTI_LABEL = "multi_label_classification"


@dataclass(frozen=True)
class LabelSpace:
    """What a model predicts: ``problem_type`` and, for classification, ``id2label``."""

    problem_type: str
    id2label: dict[int, str] | None

    @property
    def num_labels(self) -> int:
        """Number of model outputs: classes, or 1 for regression."""
        return 1 if self.id2label is None else len(self.id2label)


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
    aliases = {"classification": CLASSIFICATION, CLASSIFICATION: CLASSIFICATION, REGRESSION: REGRESSION,
               MULTI_LABEL: MULTI_LABEL}
    if problem_type not in aliases:
        raise ProtegeError(
            f"unknown problem type '{problem_type}'; use {CLASSIFICATION}, {REGRESSION} or {MULTI_LABEL}"
        )
    return aliases[problem_type]


def infer_label_space(labels, *, problem_type: str | None = None) -> LabelSpace:
    """The label space implied by ``labels``.

    Integer-valued numbers give classes ``0..max``; any non-integer number means regression;
    names give classes in sorted order. Lists of labels (a JSON list cell) mean multi-label
    classification; ``problem_type`` forces the kind (multi-label also reads ``"a,b"`` cells,
    see :func:`label_set`).
    """
    labels = list(labels)
    if not labels:
        raise ProtegeError("no labels to infer the label space from; pass a labelled training file")
    forced = None if problem_type is None else _normalise_problem_type(problem_type)
    listed = next((v for v in labels if isinstance(v, (list, tuple))), None)
    if forced == MULTI_LABEL or (forced is None and listed is not None):
        return _multi_label_space(labels)
    if listed is not None:
        raise ProtegeError(f"label {listed!r} is a list of labels; use problem type {MULTI_LABEL} (or one label per row)")
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


def label_set(v: Any) -> list:
    """The labels of one multi-label cell: a list as it is, ``'["a", "b"]'`` (JSON) or ``"a,b"``; a number is one label."""
    if isinstance(v, (list, tuple)):
        items = list(v)
    elif isinstance(v, str):
        s = v.strip()
        if s.startswith("["):
            try:
                items = json.loads(s)
            except json.JSONDecodeError:
                raise ProtegeError(f"label {v!r} is not a valid JSON list; write it as [\"a\", \"b\"] or a,b") from None
            if not isinstance(items, list):
                raise ProtegeError(f"label {v!r} is not a JSON list; write it as [\"a\", \"b\"] or a,b")
        else:
            items = s.split(",")
    else:
        items = [v]
    out = [x.strip() if isinstance(x, str) else x for x in items]
    return [x for x in out if x != ""]


def _multi_label_space(labels: list) -> LabelSpace:
    """Every label named in any row's set: ids 0..max when all are integers, else names in sorted order."""
    items = [x for v in labels for x in label_set(v)]
    if not items:
        raise ProtegeError("no row names any label; a multi-label column needs label sets such as [\"a\", \"b\"] or a,b")
    numbers = [_as_number(x) for x in items]
    if all(n is not None and float(n).is_integer() for n in numbers):
        ids = sorted({int(n) for n in numbers})
        if ids[0] < 0:
            raise ProtegeError(f"label {ids[0]} is negative; label ids must be 0..N-1, so remap the labels")
        _check_classes(list(range(ids[-1] + 1)))
        return LabelSpace(MULTI_LABEL, {i: str(i) for i in range(ids[-1] + 1)})
    names = sorted({str(x) for x in items})
    _check_classes(names)
    return LabelSpace(MULTI_LABEL, dict(enumerate(names)))


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
    elif problem_type == MULTI_LABEL:
        out = _multi_hot_labels(examples, space, label2id)
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
            if isinstance(v, (list, tuple)):
                raise ProtegeError(f"{src} row {row}: label {v!r} is a set of labels but the model is single-label; "
                                   "give one label per row (or use a multi-label model)")
            cid = _class_id(v, names, folded, num_labels)
            if cid is None:
                raise ProtegeError(
                    f"{src} row {row}: label {_show(v)} is not in the teacher's label space ({shown}); "
                    "map it or drop the row"
                )
            out.append(cid)
    return Examples(
        examples.texts, examples.text_pairs, out, examples.source,
        examples.text_column, examples.text_pair_column, examples.label_column, examples.label_names,
    )


def _multi_hot_labels(examples: Examples, space: LabelSpace, label2id: dict[str, int] | None) -> list[list[float]]:
    """Each row's label set as a multi-hot list of floats over ``space.id2label`` (the BCE target)."""
    if not space.id2label:
        raise ProtegeError("the label space has no id2label; multi-label classification needs the label names")
    names = {str(name): int(i) for i, name in space.id2label.items()}
    names.update({str(name): int(i) for name, i in (label2id or {}).items()})
    num_labels = len(space.id2label)
    folded: dict[str, int | None] = {}
    for name, i in names.items():
        key = name.casefold()
        folded[key] = i if key not in folded or folded[key] == i else None
    out = []
    for row, v in enumerate(examples.labels, start=1):
        hot = [0.0] * num_labels
        try:
            items = label_set(v)
        except ProtegeError as err:
            raise ProtegeError(f"{examples.source} row {row}: {err}") from None
        for item in items:
            cid = _class_id(item, names, folded, num_labels)
            if cid is None:
                raise ProtegeError(f"{examples.source} row {row}: label {_show(item)} is not in the model's labels "
                                   f"({_label_names(space, names)}); map it or drop it")
            hot[cid] = 1.0
        out.append(hot)
    return out


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

