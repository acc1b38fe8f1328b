"""What every model card shares: the hub's YAML front matter, portable paths and the footer.

The Hugging Face hub reads the YAML header of a README.md: ``library_name``, ``base_model`` (hub
ids only: it refuses a local path), ``tags``, ``datasets`` (hub dataset ids), ``pipeline_tag``
and ``model-index`` (evaluation results in the schema of its leaderboards). :func:`front_matter`
writes that header with a YAML library, so it always parses.

A card is written from :func:`card_view` of the run's metrics: every absolute local path made
relative to the output folder's parent (or cut to its last part when it lies elsewhere), the
recorded command likewise, and the settings that did not act on the run left out. Which inputs are
hub ids is decided before the paths are rewritten (a folder ``/data/teacher`` shown as ``teacher``
is still no hub id).
"""

from __future__ import annotations

import math
import os
import re
from pathlib import Path

__all__ = ["card_view", "front_matter", "card_footer", "hub_id", "portable_path", "HUB_METRICS", "METHOD_TAGS"]

# our metric key -> (the hub's metric type, the name shown on the hub)
HUB_METRICS = {
    "accuracy": ("accuracy", "accuracy"), "f1": ("f1", "F1"), "mcc": ("matthews_correlation", "MCC"),
    "f1_micro": ("f1", "F1 (micro)"), "f1_macro": ("f1", "F1 (macro)"), "subset_accuracy": ("accuracy", "subset accuracy"),
    "pearson": ("pearsonr", "Pearson"), "spearman": ("spearmanr", "Spearman"), "mse": ("mse", "MSE"),
    "sts_pearson": ("pearsonr", "STS Pearson"), "perplexity": ("perplexity", "perplexity"),
}

# a run's method -> its tags after "protege"
METHOD_TAGS = {"distill": ["distillation"], "prune": ["pruning"], "extract": ["distillation", "model-extraction"],
               "finetune": [], "export": ["onnx"], "compress": ["distillation", "onnx"]}

_HUB_NAME = re.compile(r"^[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?$")
_FILE_SUFFIXES = {".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".parquet", ".txt", ".gz", ".zip", ".arrow", ".pt",
                  ".safetensors", ".bin", ".onnx"}
_DATA_KEYS = ("train", "eval", "train_text", "eval_text")
# an absolute path inside text: "/" after a space, "=", "(" or the start, never after a word, ":" ("http://") or "/";
# trailing punctuation stays outside
_EMBEDDED_PATH = re.compile(r"(?<![\w/.:~-])/[^\s,()'\"`]*[^\s,()'\"`.;:]")


def hub_id(name) -> str | None:
    """``name`` when it reads as a hub repository id (``name`` or ``owner/name``) and is no local path, else None."""
    if not isinstance(name, str) or not _HUB_NAME.match(name) or ".." in name or "--" in name:
        return None
    if Path(name).suffix.lower() in _FILE_SUFFIXES or Path(name).exists():
        return None
    return name


def portable_path(value: str, base: str | Path) -> str:
    """An absolute local path as a card shows it: relative to ``base`` when inside it, else its last part.

    Anything else (a relative path, a hub id, a URL, plain text) comes back unchanged.
    """
    if not isinstance(value, str) or not os.path.isabs(value):
        return value
    path, base = os.path.normpath(value), os.path.normpath(str(base))
    if os.path.commonpath([path, base]) == base and path != base:
        return Path(os.path.relpath(path, base)).as_posix()
    return Path(path).name or value


def card_view(metrics: dict, *, unused=()) -> dict:
    """A copy of ``metrics`` to write a card from: portable paths, no ``unused`` settings, the hub facts.

    Paths are made relative to the parent of the output folder (``metrics["model"]``); the hub
    facts (``base_model``, ``datasets``, the evaluation dataset) are read from the original
    values and kept under ``"hub_metadata"``. A view passed again comes back as it is.
    """
    if "hub_metadata" in metrics:
        return metrics
    base = Path(os.path.abspath(str(metrics.get("model") or "."))).parent
    view, unused = _portable(metrics, base), set(unused)
    view["config"] = {k: v for k, v in (view.get("config") or {}).items() if k not in unused}
    view["hub_metadata"] = _hub_metadata(metrics, base)
    return view


def front_matter(metrics: dict, *, library: str, pipeline_tag: str, tags=(), results: dict | None = None) -> list[str]:
    """The card's YAML header, as lines between ``---`` markers.

    ``tags`` follow "protege" (default: the method's, :data:`METHOD_TAGS`); ``results`` are the
    model's scores (metric key -> value, keys of :data:`HUB_METRICS`) that become the
    ``model-index`` on the evaluation dataset.
    """
    import yaml

    hub = card_view(metrics)["hub_metadata"]
    meta = {"library_name": library}
    if hub["base_model"]:
        meta["base_model"] = hub["base_model"][0] if len(hub["base_model"]) == 1 else hub["base_model"]
    method = str(metrics.get("method") or (metrics.get("config") or {}).get("method") or "")
    tags = list(tags) if tags else METHOD_TAGS.get(method.split("-")[0], [])
    meta["tags"] = list(dict.fromkeys(["protege", *tags]))
    if hub["datasets"]:
        meta["datasets"] = hub["datasets"]
    meta["pipeline_tag"] = pipeline_tag
    scores = [(k, float(v)) for k, v in (results or {}).items()
              if k in HUB_METRICS and isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)]
    if scores and hub["eval_dataset"]:
        name = Path(str(metrics.get("model") or "model")).name or "model"
        meta["model-index"] = [{"name": name, "results": [{
            "task": {"type": pipeline_tag},
            "dataset": hub["eval_dataset"],
            "metrics": [{"type": HUB_METRICS[k][0], "value": round(v, 4), "name": HUB_METRICS[k][1]} for k, v in scores],
        }]}]
    return ["---", *yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).splitlines(), "---"]


def card_footer(metrics: dict) -> list[str]:
    """The card's last lines: the command that reproduces the run (if recorded) and the protege version."""
    out = []
    if metrics.get("command"):
        out += ["", "## Reproduce", "", "```bash", str(metrics["command"]), "```"]
    version = metrics.get("protege_version")
    if version is None:
        from protege import __version__ as version
    return out + ["", f"Made with protege {version}."]


def _portable(value, base: Path):
    """``value`` with every absolute path in it portable: a whole string, or one inside text (a command, a name)."""
    if isinstance(value, dict):
        return {k: _portable(v, base) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_portable(v, base) for v in value]
    if not isinstance(value, str):
        return value
    if os.path.isabs(value):
        return portable_path(value, base)
    return _EMBEDDED_PATH.sub(lambda m: portable_path(m.group(0), base), value)


def _hub_metadata(metrics: dict, base: Path) -> dict:
    """``base_model`` and ``datasets`` (hub ids only) and the evaluation dataset's ``{name, type}``."""
    config = metrics.get("config") or {}
    teachers = config.get("teacher")
    candidates = [(metrics.get("teacher") or {}).get("model"),
                  *(teachers if isinstance(teachers, (list, tuple)) else [teachers]), config.get("model")]
    base_model = list(dict.fromkeys(h for h in map(hub_id, candidates) if h))
    datasets = list(dict.fromkeys(h for h in (_dataset_id(config[k]) for k in _DATA_KEYS if config.get(k)) if h))
    source = (metrics.get("eval") or {}).get("source")
    dataset = None
    if isinstance(source, str) and source:
        name = _dataset_id(source) or portable_path(source, base)
        dataset = {"name": name, "type": name}
    return {"base_model": base_model, "datasets": datasets, "eval_dataset": dataset}


def _dataset_id(source) -> str | None:
    """The hub dataset a data source names (``owner/name`` or ``name:config``, as the data readers take it), or None."""
    match = re.fullmatch(r"([^:\s]+)(:[\w.-]+)?", source) if isinstance(source, str) else None
    return hub_id(match.group(1)) if match else None
