"""Pairing a student with its teacher: build it, check they fit together, speak the teacher's labels.

Every incompatibility is found here, before any training step: a different vocabulary, a
hidden-state loss across widths without a projection, attention losses across head counts,
a layer map that points outside the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.errors import ProtegeError
from protege.losses import HiddenProjection
from protege.models import num_heads, num_layers, problem_type_of
from protege.objectives.layers import projection_for, resolve_layer_map

__all__ = ["BuiltStudent", "build_student", "map_to_teacher_labels"]


@dataclass
class BuiltStudent:
    """A student model, the teacher block each of its blocks learns from, and an optional projection."""

    model: object
    layer_map: list[int]
    projection: HiddenProjection | None
    description: str


def build_student(cfg, teacher, teacher_tokenizer) -> BuiltStudent:
    """Build the student that ``cfg`` (a DistillConfig) asks for and check it against the teacher."""
    from protege.models.families import build_student_for

    o = cfg.losses  # the task objective's options
    attn = "eager" if o.alpha_attn > 0 else None
    student, default_map, what = build_student_for(cfg, teacher, teacher_tokenizer, "classifier", attn_implementation=attn)
    total, n_student = num_layers(teacher.config), num_layers(student.config)
    if cfg.student_kind == "pretrained" and n_student > total and (o.alpha_hidden or o.alpha_attn):
        raise ProtegeError(f"student '{cfg.student}' has more layers ({n_student}) than the teacher ({total}); "
                           "set --alpha-hidden 0 --alpha-attn 0")
    layer_map = resolve_layer_map(o.layer_map, default_map, teacher.config, n_student,
                                  needed=bool(o.alpha_hidden or o.alpha_attn))
    projection = projection_for(student.config, teacher.config, n_student + 1, needed=bool(o.alpha_hidden or o.alpha_embed),
                                allowed=o.hidden_projection)
    if o.alpha_attn and num_heads(student.config) != num_heads(teacher.config):
        raise ProtegeError(f"--alpha-attn needs the same number of heads (student {num_heads(student.config)}, "
                           f"teacher {num_heads(teacher.config)}); set --alpha-attn 0 or --student-heads {num_heads(teacher.config)}")
    return BuiltStudent(student, layer_map, projection, what)


def map_to_teacher_labels(examples, config):
    """Labels of ``examples`` as ids in the teacher's label space (names via ``id2label``), if present."""
    from protege.data import LabelSpace, map_labels

    if examples.labels is None:
        return examples
    problem = problem_type_of(config)
    space = LabelSpace(problem, None if problem == "regression" else {int(k): str(v) for k, v in config.id2label.items()})
    return map_labels(examples, space, label2id={str(k): int(v) for k, v in (config.label2id or {}).items()})
