"""Pairing a student with its teacher: build it, check they fit together, speak the teacher's labels.

Every incompatibility is found here, before any training step: a different vocabulary, a
hidden-state loss across widths without a projection, attention losses across head counts,
a layer map that points outside the teacher.
"""

from __future__ import annotations

from dataclasses import dataclass

from protege.errors import ProtegeError
from protege.losses import HiddenProjection, uniform_layer_map
from protege.models import (check_same_vocabulary, hidden_size, keep_layers, load_tokenizer, num_heads, num_layers,
                            parse_layer_spec, pretrained_student, problem_type_of, smaller_student)

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
    total = num_layers(teacher.config)
    attn = "eager" if cfg.alpha_attn > 0 else None
    kind = cfg.student_kind
    if kind == "layers":
        keep = parse_layer_spec(cfg.student_layers or "every-other", total)
        student = keep_layers(teacher, keep)
        default_map, what = keep, f"{len(keep)} layers kept from the teacher ({','.join(map(str, keep))})"
    elif kind == "config":
        student = smaller_student(teacher.config, num_layers=cfg.student_num_layers, hidden_size=cfg.student_hidden,
                                  num_heads=cfg.student_heads, ffn_size=cfg.student_ffn_size, seed=cfg.seed)
        if attn:
            student.set_attn_implementation(attn)
        n = num_layers(student.config)
        if n > total:
            raise ProtegeError(f"the student has {n} layers but the teacher only {total}; use --student-num-layers <= {total}")
        default_map = uniform_layer_map(n, total)
        what = f"a random-init student ({n} layers, hidden {hidden_size(student.config)})"
    else:
        check_same_vocabulary(teacher_tokenizer, load_tokenizer(cfg.student), student_name=cfg.student)
        student = pretrained_student(cfg.student, teacher.config, attn_implementation=attn)
        n = num_layers(student.config)
        if n > total and (cfg.alpha_hidden or cfg.alpha_attn):
            raise ProtegeError(f"student '{cfg.student}' has more layers ({n}) than the teacher ({total}); set --alpha-hidden 0 --alpha-attn 0")
        default_map = uniform_layer_map(min(n, total), total) if n <= total else []
        what = f"pretrained student {cfg.student} ({n} layers)"
    n_student = num_layers(student.config)
    layer_map = parse_layer_spec(cfg.layer_map, total) if cfg.layer_map else list(default_map)
    if (cfg.alpha_hidden or cfg.alpha_attn) and len(layer_map) != n_student:
        raise ProtegeError(f"--layer-map names {len(layer_map)} teacher layers but the student has {n_student}; give one per student layer")
    projection = _projection(cfg, student, teacher, n_student)
    if cfg.alpha_attn and num_heads(student.config) != num_heads(teacher.config):
        raise ProtegeError(f"--alpha-attn needs the same number of heads (student {num_heads(student.config)}, "
                           f"teacher {num_heads(teacher.config)}); set --alpha-attn 0 or --student-heads {num_heads(teacher.config)}")
    return BuiltStudent(student, layer_map, projection, what)


def _projection(cfg, student, teacher, n_student):
    hs, ht = hidden_size(student.config), hidden_size(teacher.config)
    if hs == ht or not (cfg.alpha_hidden or cfg.alpha_embed):
        return None
    if not cfg.hidden_projection:
        raise ProtegeError(f"hidden-state losses compare widths {hs} (student) and {ht} (teacher): "
                           "drop --no-hidden-projection to learn a projection, or set --alpha-hidden 0 --alpha-embed 0")
    return HiddenProjection(hs, ht, n_student + 1)


def map_to_teacher_labels(examples, config):
    """Labels of ``examples`` as ids in the teacher's label space (names via ``id2label``), if present."""
    from protege.data import LabelSpace, map_labels

    if examples.labels is None:
        return examples
    problem = problem_type_of(config)
    space = LabelSpace(problem, None if problem == "regression" else {int(k): str(v) for k, v in config.id2label.items()})
    return map_labels(examples, space, label2id={str(k): int(v) for k, v in (config.label2id or {}).items()})
