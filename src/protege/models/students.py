"""Building a student from a teacher: keep layers, shrink the configuration, or load another model.

DistilBERT (Sanh et al. 2019) initialised its student by keeping every other teacher layer;
Turc et al. (2019) showed that a good initialisation matters more than the loss. The three ways
here are the three a user reaches for:

- ``keep_layers(teacher, [0, 2, 4])``: embeddings, the kept blocks and the head, copied;
- ``smaller_student(teacher.config, num_layers=4, hidden_size=256)``: same architecture, random init;
- ``pretrained_student("some/compact-model", teacher)``: any other checkpoint, with a new head.
"""

from __future__ import annotations

import copy

from protege.errors import ProtegeError
from protege.models.adapters import num_layers, replace_blocks

__all__ = ["parse_layer_spec", "keep_layers", "smaller_student", "pretrained_student", "check_same_vocabulary"]


def parse_layer_spec(spec: str | list[int] | tuple[int, ...], total: int) -> list[int]:
    """Turn a layer spec into 0-based indices of teacher blocks to keep.

    Accepts a list of ints, ``"0,2,4"``, ``"every-other"`` (0, 2, 4, ... as DistilBERT),
    ``"ends"`` (every other block counted from the last, with the first: 0, 3, 5 of 6 - the last
    block, whose states get pooled, is kept), ``"uniform:K"`` (K blocks spread evenly from the
    first to the last) or ``"first:K"``.
    """
    hint = "use e.g. 0,2,4, every-other, ends, uniform:3 or first:3"
    if isinstance(spec, (list, tuple)):
        layers = [int(x) for x in spec]
    else:
        text = str(spec).strip().lower()
        if text == "every-other":
            layers = list(range(0, total, 2))
        elif text == "ends":  # as many blocks as every-other, but the first and the last among them
            k = (total + 1) // 2
            layers = [total - 1] if k == 1 else [0] + sorted(range(total - 1, 0, -2))[-(k - 1):]
        elif text.startswith(("uniform:", "first:")):
            kind, _, count = text.partition(":")
            if not count.isdigit() or not 1 <= int(count) <= total:
                raise ProtegeError(f"invalid layer spec '{spec}': K must be between 1 and {total}; {hint}")
            k = int(count)
            if kind == "first":
                layers = list(range(k))
            else:
                layers = [round(i * (total - 1) / (k - 1)) for i in range(k)] if k > 1 else [total - 1]
        else:
            try:
                layers = [int(x) for x in text.replace(" ", "").split(",") if x != ""]
            except ValueError:
                raise ProtegeError(f"invalid layer spec '{spec}'; {hint}") from None
    if not layers:
        raise ProtegeError(f"invalid layer spec '{spec}': no layers; {hint}")
    bad = [x for x in layers if not 0 <= x < total]
    if bad:
        raise ProtegeError(f"invalid layer spec '{spec}': layer {bad[0]} is outside 0..{total - 1} (the teacher has {total} layers)")
    if any(b <= a for a, b in zip(layers, layers[1:])):
        raise ProtegeError(f"invalid layer spec '{spec}': layers must be strictly increasing, without repeats")
    return layers


def keep_layers(teacher, layers) -> "object":
    """A new model with the teacher's embeddings, blocks ``layers`` and head, copied exactly.

    ``layers`` is anything :func:`parse_layer_spec` accepts. The teacher is left untouched.
    """
    keep = parse_layer_spec(layers, num_layers(teacher.config))
    student = copy.deepcopy(teacher)
    replace_blocks(student, keep)
    return student


def smaller_student(config, *, num_layers: int | None = None, hidden_size: int | None = None,
                    num_heads: int | None = None, ffn_size: int | None = None, seed: int = 0):
    """A randomly initialised classifier of the same architecture with a smaller configuration.

    Unset sizes are taken from ``config`` (the teacher's); the label space is kept. The config is
    shrunk by :func:`protege.models.families.smaller_config` (a new width keeps the teacher's
    head dimension unless ``num_heads`` is given).
    """
    import torch
    from transformers import AutoModelForSequenceClassification

    from protege.models.families import smaller_config

    cfg = smaller_config(config, num_layers=num_layers, hidden_size=hidden_size, num_heads=num_heads, ffn_size=ffn_size)
    torch.manual_seed(seed)
    return AutoModelForSequenceClassification.from_config(cfg)


def pretrained_student(name: str, teacher_config, *, attn_implementation: str | None = None):
    """Any pretrained checkpoint as the student, with a head for the teacher's label space."""
    from protege.models.loading import load_backbone_as_classifier, problem_type_of

    problem = problem_type_of(teacher_config, multi_label=True)  # the caller loaded the teacher, so it accepted its kind
    id2label = None if problem == "regression" else dict(teacher_config.id2label)
    return load_backbone_as_classifier(name, problem_type=problem, id2label=id2label, attn_implementation=attn_implementation)


def check_same_vocabulary(teacher_tokenizer, student_tokenizer, *, student_name: str) -> None:
    """Fail before training when the student does not read text the way the teacher does."""
    if teacher_tokenizer.get_vocab() != student_tokenizer.get_vocab():
        raise ProtegeError(
            f"student '{student_name}' has a different vocabulary from the teacher "
            f"({len(student_tokenizer)} vs {len(teacher_tokenizer)} tokens); pick a student with the teacher's tokenizer "
            "or build one from the teacher with --student-layers / --student-num-layers"
        )
