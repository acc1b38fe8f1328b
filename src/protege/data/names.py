"""Class names: ``--label-names``, a datasets ``ClassLabel``, or the names in the label column.

A model's ``id2label`` is what ``pipeline()`` prints, so a trained model says ``positive``, not
``1``, whenever the names are known: name labels in the data name themselves (in sorted order,
:func:`protege.data.infer_label_space`), a ``ClassLabel`` column brings its names in its id order
(``Examples.label_names``), and ``--label-names neg,pos`` names the classes explicitly.
"""

from __future__ import annotations

from protege.data.labels import REGRESSION, LabelSpace
from protege.errors import ProtegeError

__all__ = ["parse_label_names", "name_classes", "generic_names"]


def parse_label_names(value, space: LabelSpace | None = None) -> tuple[str, ...] | None:
    """Class names in id order from ``"neg,pos"`` (``--label-names``) or a list; None when not given.

    With ``space`` (the classes of the data, or of the teacher) there must be one name per class.
    """
    if value is None:
        return None
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(p).strip() for p in parts)
    if any(not n for n in names):
        raise ProtegeError(f"--label-names {value!r} has an empty name; give the class names in id order, e.g. neg,pos")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ProtegeError(f"--label-names names '{dupes[0]}' twice; give each class one name, in id order")
    if len(names) < 2:
        raise ProtegeError(f"--label-names gives one name ({names[0]}); give one name per class, in id order, e.g. neg,pos")
    if space is not None:
        if space.id2label is None or space.problem_type == REGRESSION:
            raise ProtegeError("--label-names names classes, but the labels are scores (regression); drop --label-names")
        if len(names) != len(space.id2label):
            raise ProtegeError(f"--label-names gives {len(names)} names ({', '.join(names)}) for {len(space.id2label)} "
                               "classes; give one name per class, in id order")
    return names


def generic_names(id2label) -> bool:
    """Whether ``id2label`` only numbers its classes (``0``, ``1`` or transformers' ``LABEL_0``, ``LABEL_1``)."""
    return all(str(name) in (str(i), f"LABEL_{i}") for i, name in (id2label or {}).items())


def name_classes(space: LabelSpace, names) -> LabelSpace:
    """``space`` with its classes named ``names`` (in id order), or ``space`` as it is when ``names`` is None.

    Class ids (``0..K-1``) must each have a name; class names in the data must each be one of
    ``names``, whose order then gives the ids. There may be more names than classes in the data
    (a class the data lacks); ``--label-names`` is checked for one name per class beforehand.
    """
    if names is None:
        return space
    names = tuple(str(n) for n in names)
    if space.id2label is None or space.problem_type == REGRESSION:
        raise ProtegeError("class names (--label-names) are for classification, but the labels are scores (regression); "
                           "drop the names")
    if generic_names(space.id2label):  # the data gave class ids
        if len(space.id2label) > len(names):
            raise ProtegeError(f"label {len(space.id2label) - 1} has no class name ({len(names)} names: {', '.join(names)}); "
                               "give one name per class, in id order")
    else:
        missing = sorted(set(map(str, space.id2label.values())) - set(names))
        if missing:
            raise ProtegeError(f"label '{missing[0]}' is not one of the class names ({', '.join(names)}); "
                               "add it to --label-names or fix the label column")
    return LabelSpace(space.problem_type, dict(enumerate(names)))
