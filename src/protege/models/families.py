"""Teachers and students beyond classifiers: masked LMs, causal LMs and bare encoders.

:func:`protege.models.keep_layers` already works on any of them (it copies the model and keeps
blocks found generically). What a classifier-only helper cannot do is build a *random-init*
model of another head type, so :func:`smaller_model` takes the Auto class, and
:func:`smaller_config` shrinks any config: it keeps the teacher's head dimension when only
the width is given (hidden 256 from a 384-wide, 12-head teacher gets 8 heads of 32), and
fixes the fields decoder configs derive from the width (``head_dim``, ``num_key_value_heads``,
``layer_types``).
"""

from __future__ import annotations

import copy

from protege.errors import ProtegeError
from protege.models.adapters import ffn_size_key
from protege.models.adapters import hidden_size as _width_of
from protege.models.adapters import num_heads as _heads_of
from protege.models.adapters import num_layers as _layers_of

__all__ = ["KINDS", "load_teacher", "load_model", "smaller_config", "smaller_model", "build_student_for"]

# kind -> (Auto class, architecture suffixes a teacher of that kind may have, what it is)
KINDS = {
    "mlm": ("AutoModelForMaskedLM", ("ForMaskedLM", "ForPreTraining"), "masked language model"),
    "clm": ("AutoModelForCausalLM", ("ForCausalLM", "LMHeadModel"), "causal language model"),
    "encoder": ("AutoModel", (), "encoder"),
    "classifier": ("AutoModelForSequenceClassification", ("ForSequenceClassification",), "sequence classifier"),
}
_HINTS = {
    "mlm": "a masked-LM checkpoint (e.g. bert-base-uncased) or use --objective tinybert / embedding, which need no MLM head",
    "clm": "a causal-LM checkpoint (GPT-2, Llama ... with its LM head)",
    "encoder": "a save_pretrained transformer folder",
    "classifier": "a fine-tuned classifier folder (protege finetune makes one)",
}


def _auto(kind: str):
    import transformers

    return getattr(transformers, KINDS[kind][0])


def load_model(name: str, kind: str, *, attn_implementation: str | None = None, role: str = "teacher"):
    """Load ``name`` with the Auto class of ``kind`` (eval mode), checking its architecture first."""
    from protege.models.loading import from_pretrained, load_config

    config = load_config(name)
    suffixes = KINDS[kind][1]
    archs = config.architectures or []
    if suffixes and archs and not any(a.endswith(suffixes) for a in archs):
        raise ProtegeError(f"{role} '{name}' is not a {KINDS[kind][2]} (architectures: {', '.join(archs)}); pass {_HINTS[kind]}")
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}

    def no_class(err):
        if "Unrecognized configuration class" in str(err):
            return ProtegeError(f"{role} '{name}' ({config.model_type}) has no {KINDS[kind][2]} class in transformers; "
                                f"pass {_HINTS[kind]}")
        return None

    return from_pretrained(_auto(kind), name, explain_value_error=no_class, **kwargs).eval()


def load_teacher(name: str, kind: str, *, attn_implementation: str | None = None):
    """The teacher of a general objective: a masked LM, a causal LM or a bare encoder."""
    return load_model(name, kind, attn_implementation=attn_implementation)


def smaller_config(config, *, num_layers: int | None = None, hidden_size: int | None = None,
                   num_heads: int | None = None, ffn_size: int | None = None):
    """A copy of ``config`` with fewer layers, a smaller width, heads or FFN (unset sizes kept).

    Without ``num_heads``, a new width keeps the teacher's head dimension when it divides it,
    else takes the largest head count up to the teacher's that divides the width. The FFN
    defaults to 4x the width when the width changes (as in BERT and GPT-2).
    """
    for flag, value in (("--student-num-layers", num_layers), ("--student-hidden", hidden_size),
                        ("--student-heads", num_heads), ("--student-ffn-size", ffn_size)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ProtegeError(f"{flag} must be a positive integer, got {value!r}")
    cfg = copy.deepcopy(config)
    old_width, old_heads = _width_of(cfg), _heads_of(cfg)
    width = hidden_size or old_width
    heads = num_heads or _default_heads(width, old_width, old_heads)
    if width % heads:
        raise ProtegeError(f"student width {width} is not divisible by {heads} heads; choose --student-heads that divides --student-hidden")
    if num_layers:
        cfg.num_hidden_layers = num_layers
    cfg.hidden_size = width
    cfg.num_attention_heads = heads
    if getattr(cfg, "head_dim", None) is not None and (hidden_size or num_heads):
        cfg.head_dim = width // heads
    kv = getattr(cfg, "num_key_value_heads", None)
    if kv is not None and (kv > heads or heads % kv):
        cfg.num_key_value_heads = heads
    if ffn_size or hidden_size:
        setattr(cfg, ffn_size_key(cfg), ffn_size or 4 * width)
    if getattr(cfg, "layer_types", None) is not None and len(cfg.layer_types) != cfg.num_hidden_layers:
        cfg.layer_types = list(cfg.layer_types[: cfg.num_hidden_layers])
        if len(cfg.layer_types) < cfg.num_hidden_layers:
            raise ProtegeError(f"cannot extend the teacher's layer_types to {cfg.num_hidden_layers} layers; use at most "
                               f"{len(config.layer_types)} student layers")
    cfg.architectures = None
    return cfg


def _default_heads(width: int, old_width: int, old_heads: int) -> int:
    head_dim = old_width // old_heads
    if width % head_dim == 0 and width // head_dim >= 1:
        return width // head_dim
    return max(h for h in range(1, old_heads + 1) if width % h == 0)


def smaller_model(config, kind: str, *, num_layers: int | None = None, hidden_size: int | None = None,
                  num_heads: int | None = None, ffn_size: int | None = None, seed: int = 0,
                  attn_implementation: str | None = None):
    """A randomly initialised model of ``kind`` (``mlm``, ``clm``, ``encoder``) from a shrunk config."""
    import torch

    cfg = smaller_config(config, num_layers=num_layers, hidden_size=hidden_size, num_heads=num_heads, ffn_size=ffn_size)
    torch.manual_seed(seed)
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    return _auto(kind).from_config(cfg, **kwargs)


def build_student_for(cfg, teacher, teacher_tokenizer, kind: str, *, attn_implementation: str | None = None):
    """The one student builder: what a DistillConfig asks for, of the teacher's kind: ``(model, default layer map, description)``.

    ``kind`` is a key of :data:`KINDS` (classifier, mlm, clm, encoder).

    ``layers``: the teacher's embeddings, kept blocks and head, copied (DistilBERT's init);
    ``config``: random init of a shrunk config (TinyBERT); ``pretrained``: ``cfg.student`` loaded
    with the same Auto class, after checking it reads text like the teacher.
    """
    from protege.losses import uniform_layer_map
    from protege.models.loading import load_tokenizer
    from protege.models.students import check_same_vocabulary, keep_layers, parse_layer_spec

    total = _layers_of(teacher.config)
    if cfg.student_kind == "layers":
        keep = parse_layer_spec(cfg.student_layers or "every-other", total)
        student = keep_layers(teacher, keep)
        if attn_implementation:
            student.set_attn_implementation(attn_implementation)
        return student, keep, f"{len(keep)} layers kept from the teacher ({','.join(map(str, keep))})"
    if cfg.student_kind == "config":
        student = smaller_model(teacher.config, kind, num_layers=cfg.student_num_layers, hidden_size=cfg.student_hidden,
                                num_heads=cfg.student_heads, ffn_size=cfg.student_ffn_size, seed=cfg.seed,
                                attn_implementation=attn_implementation)
        n = _layers_of(student.config)
        if n > total:
            raise ProtegeError(f"the student has {n} layers but the teacher only {total}; use --student-num-layers <= {total}")
        return student, uniform_layer_map(n, total), (f"a random-init student ({n} layers, hidden {_width_of(student.config)}, "
                                                      f"{_heads_of(student.config)} heads)")
    check_same_vocabulary(teacher_tokenizer, load_tokenizer(cfg.student), student_name=cfg.student)
    if kind == "classifier":  # any pretrained backbone, with a new head for the teacher's label space
        from protege.models.students import pretrained_student

        student = pretrained_student(cfg.student, teacher.config, attn_implementation=attn_implementation)
    else:
        student = load_model(cfg.student, kind, attn_implementation=attn_implementation, role="student").train()
    n = _layers_of(student.config)
    layer_map = uniform_layer_map(n, total) if n <= total else []
    return student, layer_map, f"pretrained student {cfg.student} ({n} layers)"
