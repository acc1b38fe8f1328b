"""What a run is, in a few words, from its metrics.json: primary metric, method, key settings, data."""

from __future__ import annotations

from protege.utils.fmt import num

__all__ = ["primary_of", "key_settings", "part", "source_of", "short", "method_of", "sparsity_of", "train_data_of"]

_PLUMBING = {"train", "eval", "out", "text_column", "text_pair_column", "label_column", "split", "max_train_examples",
             "max_eval_examples", "batch_size", "grad_accum", "max_length", "weight_decay", "warmup_ratio",
             "max_grad_norm", "seed", "eval_every", "patience", "keep_best", "checkpoint_every", "log_every",
             "checkpoint_minutes", "save_best_model",
             "group_by_length", "precision", "device", "speed", "speed_seconds", "resume", "overwrite", "progress",
             "epochs", "max_steps", "lr", "teacher", "model", "method", "temperature", "hidden_loss",
             "hidden_projection", "config"}


def primary_of(metrics: dict) -> str:
    """A run's primary metric: recorded, else by problem type."""
    if isinstance(metrics.get("primary_metric"), str):
        return metrics["primary_metric"]
    return "pearson" if metrics.get("problem_type") == "regression" else "accuracy"


def key_settings(metrics: dict) -> str | None:
    """How a run was made, in a few words: the student or source model, method settings, and, when it
    trained, the losses and the schedule."""
    config = part(metrics, "config")
    trained = bool(num(part(metrics, "training").get("steps")))
    parts = []
    student = part(metrics, "student").get("description")
    if student:
        parts.append(str(student))
    elif isinstance(config.get("model"), str):
        parts.append(f"from {short(config['model'])}")
    losses = [f"{k[6:]} {v:g}" + (f" ({config['hidden_loss']})" if k == "alpha_hidden" and config.get("hidden_loss") else "")
              for k, v in config.items() if k.startswith("alpha_") and num(v)]
    if trained and losses:
        parts.append("loss " + " + ".join(losses))
        if num(config.get("alpha_kd")) and num(config.get("temperature")):
            parts.append(f"T {config['temperature']:g}")
    for k, v in config.items():
        if (k in _PLUMBING or k.startswith("alpha_") or _secret(k) or v is None or v is False or v in ([], {})
                or (student and k.startswith("student"))):
            continue
        parts.append(k.replace("_", " ") + ("" if v is True else f" {_setting(v)}"))
    if trained and num(config.get("max_steps")):
        parts.append(f"{config['max_steps']} steps")
    elif trained and num(config.get("epochs")):
        parts.append(f"{config['epochs']:g} epoch{'s' if config['epochs'] != 1 else ''}")
    if trained and num(config.get("lr")):
        parts.append(f"lr {config['lr']:g}")
    return "; ".join(parts) or None


def part(d, key) -> dict:
    v = d.get(key) if isinstance(d, dict) else None
    return v if isinstance(v, dict) else {}


def source_of(m):
    src = part(m, "eval").get("source")
    return str(src) if src is not None else None


def short(ref) -> str | None:
    """A path or hub id, shortened to its last two parts."""
    if ref is None:
        return None
    if "://" in str(ref):  # a URL (an extraction's victim) says more whole
        return str(ref)
    parts = [p for p in str(ref).replace("\\", "/").split("/") if p]
    return "/".join(parts[-2:]) if parts else str(ref)


def method_of(m) -> str | None:
    method = m.get("method")
    inner = part(m, "config").get("method")
    if isinstance(inner, str) and inner and inner != method:
        return f"{method} ({inner})" if method else inner
    return str(method) if method else None


def sparsity_of(m):
    """The measured sparsity (a pruning run's), else the one asked for; a fraction."""
    value = part(m, "pruning").get("sparsity", m.get("sparsity"))
    if isinstance(value, dict):
        value = next((value[k] for k in ("overall", "global", "total", "achieved", "actual", "sparsity")
                      if num(value.get(k)) is not None), None)
    if num(value) is None:
        value = part(m, "config").get("sparsity")
    value = num(value)
    if value is None:
        return None
    return value / 100 if value > 1 else value


def train_data_of(m) -> str | None:
    config = part(m, "config")
    train = config.get("train")
    if not isinstance(train, str):
        return None
    first = config.get("max_train_examples")
    return short(train) + (f" (first {first})" if num(first) else "")


def _secret(key: str) -> bool:
    return any(w in key.lower() for w in ("key", "token", "secret", "password"))


def _setting(v) -> str:
    if isinstance(v, float):
        return f"{v:g}"
    if isinstance(v, (list, tuple)):
        return ",".join(_setting(x) for x in v)
    if isinstance(v, str) and ("/" in v or "\\" in v):
        return short(v)
    return str(v).lower() if isinstance(v, bool) else str(v)
