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

__all__ = ["BuiltStudent", "build_student", "map_to_teacher_labels", "student_label_names", "set_class_names"]


@dataclass
class BuiltStudent:
    """A student model, the teacher block each of its blocks learns from, and an optional projection.

    ``lora`` (a LoRA student, ``--student-lora-r``): its settings and trainable/frozen parameter counts.
    """

    model: object
    layer_map: list[int]
    projection: HiddenProjection | None
    description: str
    lora: dict | None = None


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
    lora = None
    if getattr(cfg, "student_lora_r", None):
        from protege.models.lora import add_lora, parameter_split

        student = add_lora(student, r=cfg.student_lora_r, alpha=cfg.student_lora_alpha, target=cfg.student_lora_target)
        targets = sorted(student.peft_config["default"].target_modules)
        lora = {"r": cfg.student_lora_r, "alpha": student.peft_config["default"].lora_alpha, "target": targets,
                **parameter_split(student)}
        what += (f", LoRA r={cfg.student_lora_r} on {','.join(targets)} "
                 f"({lora['trainable_parameters']:,} of {lora['total_parameters']:,} parameters trainable)")
    return BuiltStudent(student, layer_map, projection, what, lora)


def map_to_teacher_labels(examples, config, names=None):
    """Labels of ``examples`` as ids in the teacher's label space (names via ``id2label``), if present.

    ``names`` (see :func:`student_label_names`) are further names of the teacher's classes, in id order.
    """
    from protege.data import LabelSpace, map_labels

    if examples.labels is None:
        return examples
    problem = problem_type_of(config, multi_label=True)
    space = LabelSpace(problem, None if problem == "regression" else {int(k): str(v) for k, v in config.id2label.items()})
    label2id = {str(k): int(v) for k, v in (config.label2id or {}).items()}
    if names:
        space = LabelSpace(problem, dict(enumerate(names)))
        label2id.update({name: i for i, name in enumerate(names)})
    return map_labels(examples, space, label2id=label2id)


def student_label_names(given, examples, teacher_config) -> tuple[str, ...] | None:
    """The student's class names where they are not the teacher's; None keeps the teacher's.

    ``given`` (``--label-names``) must name each of the teacher's classes, in id order; else a
    datasets ``ClassLabel`` of ``examples`` names them when the teacher only numbers its classes
    (``LABEL_0``, ``0``) and has as many.
    """
    from protege.data import LabelSpace, generic_names, parse_label_names

    problem = problem_type_of(teacher_config, multi_label=True)
    id2label = None if problem == "regression" else {int(k): str(v) for k, v in teacher_config.id2label.items()}
    names = parse_label_names(given, LabelSpace(problem, id2label))
    if names is None and id2label and generic_names(id2label) and examples is not None \
            and len(examples.label_names or ()) == len(id2label):
        names = tuple(examples.label_names)
    return names


def set_class_names(config, names) -> None:
    """Name the classes of a model ``config`` (``id2label``/``label2id``: what ``pipeline()`` prints)."""
    config.id2label = dict(enumerate(names))
    config.label2id = {name: i for i, name in enumerate(names)}
