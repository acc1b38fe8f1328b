"""Loading teachers, backbones and tokenizers from local folders or hub ids, with clear errors."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from protege.errors import ProtegeError
from protege.models.checks import check_tokenizer, check_weight_files, weights_error
from protege.models.gguf import gguf_folder, is_gguf
from protege.utils.handles import ModelObject, lookup, scratch_folder

__all__ = ["from_pretrained", "model_folder", "looks_local", "load_lm_tokenizer", "load_config", "load_classifier", "load_tokenizer", "load_backbone_as_classifier", "problem_type_of", "quiet_transformers"]


def quiet_transformers() -> None:
    """Silence transformers' info/warning logging (we report what matters ourselves)."""
    from transformers.utils import logging

    from huggingface_hub.utils import disable_progress_bars

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    disable_progress_bars()


def model_folder(name) -> str:
    """Where to load ``name`` from: ``name`` itself; for a ``.gguf`` file, its dequantized folder
    (:func:`protege.models.gguf.gguf_folder`); or for the handle of a model object given to the
    Python API (:mod:`protege.utils.handles`) a scratch folder it is saved to once, with its tokenizer.

    Loading from a folder keeps every loader one code path and leaves the caller's object untouched
    (training and moving a model to a device act on the copy).
    """
    held = lookup(name)
    if held is None:
        if is_gguf(name):  # llama.cpp checkpoints: dequantized once into a cached plain folder
            return _gguf_folder(str(name))
        return name
    if not isinstance(held, ModelObject):
        raise ProtegeError(f"{name} is data, not a model; pass a model folder, a hub id or a model object")
    folder = scratch_folder(name)
    if not (folder / "config.json").exists():
        try:
            held.tokenizer.save_pretrained(folder)
            held.model.save_pretrained(folder)
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # never leave a half-saved model for the next loader
            folder.mkdir()
            raise
    return str(folder)


_CONVERTED: dict[tuple, str] = {}


def _gguf_folder(name: str) -> str:
    # every loader asks for the folder (config, weights, tokenizer): hash a large file once per process
    path = Path(name).expanduser()
    try:
        stat = path.stat()
    except OSError:
        return str(gguf_folder(path))  # raises the one-line "no such GGUF file"
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CONVERTED:
        _CONVERTED[key] = str(gguf_folder(path))
    return _CONVERTED[key]


def _looks_local(name: str) -> bool:
    # Hub ids are "name" or "org/name"; anything else with a path shape is meant as a folder.
    return name.startswith((".", "/", "~")) or name.count("/") > 1 or os.sep != "/" and os.sep in name


def _describe_failure(name: str, err: Exception) -> ProtegeError:
    if not Path(name).expanduser().exists() and _looks_local(name):
        return ProtegeError(f"{name}: no such model folder; pass a save_pretrained folder or a hub id")
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return ProtegeError(f"could not load model '{name}' ({first[:200]}); pass a local save_pretrained folder")


def load_config(name: str):
    """``AutoConfig.from_pretrained(name)`` with a one-line error for missing folders and hub failures."""
    from transformers import AutoConfig

    path = Path(model_folder(name)).expanduser()
    if path.exists() and path.is_dir() and not (path / "config.json").exists():
        raise ProtegeError(f"{name}: no config.json in this folder; pass a save_pretrained model folder")
    if not path.exists() and looks_local(name):  # not a hub id: fail now, not after the hub's retries
        raise ProtegeError(f"{name}: no such model folder; pass a save_pretrained folder or a hub id")
    try:
        config = AutoConfig.from_pretrained(str(path) if path.exists() else name)
    except (OSError, ValueError, KeyError) as err:
        raise _describe_failure(name, err) from None
    # every loader (classifier, backbone, pruned, families, sentence-transformers) reads the config
    # first: a cut or corrupted weights file is named here, not met as a traceback in the reader
    check_weight_files(path)
    return config


def looks_local(name: str) -> bool:
    """Whether ``name`` is meant as a local path rather than a hub id (``owner/name`` or ``name``).

    Paths start with ``.``, ``/`` or ``~``, have more than one ``/``, or begin with a folder that
    exists here (``runs/teacher`` when there is a ``runs/``).
    """
    text = str(name)
    if text.startswith((".", "/", "~")) or text.count("/") > 1 or "\\" in text:
        return True
    first = text.split("/", 1)[0]
    return "/" in text and Path(first).is_dir()


def problem_type_of(config, *, multi_label: bool = False) -> str:
    """``"regression"`` for one-output heads, else ``"single_label_classification"``.

    A ``multi_label_classification`` head is returned as such only where the caller handles it
    (``multi_label=True``: finetune and task distillation); elsewhere it is refused by name.
    """
    if config.problem_type in ("regression", "single_label_classification"):
        return config.problem_type
    if config.problem_type == "multi_label_classification":
        if multi_label:
            return config.problem_type
        raise ProtegeError("multi-label classifiers are supported by finetune and distill (task objective) only; "
                           "use a single-label or regression model here")
    return "regression" if config.num_labels == 1 else "single_label_classification"


def load_classifier(name: str, *, role: str = "teacher", attn_implementation: str | None = None, multi_label: bool = False):
    """Load a fine-tuned ``AutoModelForSequenceClassification`` (eval mode) or fail clearly.

    ``role`` only words the messages ("teacher", "model"); ``multi_label`` accepts a multi-label
    head (see :func:`problem_type_of`).
    """
    from transformers import AutoModelForSequenceClassification

    config = load_config(name)
    archs = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in archs):
        what = ", ".join(archs) or "unknown"
        raise ProtegeError(
            f"{role} '{name}' is not a sequence classifier (architectures: {what}); "
            f"fine-tune it first: protege finetune --model {name} --train ... --out runs/teacher"
        )
    if getattr(config, "protege_pruned_heads", None) or getattr(config, "protege_ffn_sizes", None):
        from protege.models.surgery import load_pruned  # a layout a stock config cannot express

        model = load_pruned(model_folder(name))
        if attn_implementation and hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation(attn_implementation)
        problem_type_of(model.config, multi_label=multi_label)
        return model
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    path = Path(model_folder(name)).expanduser()
    try:
        model = AutoModelForSequenceClassification.from_pretrained(str(path) if path.exists() else name, **kwargs)
    except (OSError, ValueError) as err:
        raise _describe_failure(name, err) from None
    except RuntimeError as err:  # e.g. weights whose shapes do not match config.json
        raise weights_error(name, err) or _shape_error(role, name, err) from None
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type
        mapped = weights_error(name, err)
        if mapped is None:
            raise
        raise mapped from None
    problem_type_of(model.config, multi_label=multi_label)
    return model.eval()


def _shape_error(role: str, name: str, err: Exception) -> ProtegeError:
    first = (str(err).strip().splitlines() or [type(err).__name__])[0]
    return ProtegeError(f"{role} '{name}': the weights do not fit its config.json ({first[:160]}); re-save the model")


def load_tokenizer(name: str):
    """``AutoTokenizer.from_pretrained`` (fast), checked to be a real tokenizer, or a one-line error.

    A folder without tokenizer files, or a tokenizer of a handful of tokens that reads ordinary
    words as ``[UNK]``, is refused (:func:`protege.models.checks.check_tokenizer`).
    """
    from transformers import AutoTokenizer

    path = Path(model_folder(name)).expanduser()
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(path) if path.exists() else name)
    except (OSError, ValueError, TypeError) as err:
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ProtegeError(f"could not load a tokenizer from '{name}' ({first[:160]}); the folder needs tokenizer files") from None
    check_tokenizer(tokenizer, name)
    return tokenizer


def load_backbone_as_classifier(name: str, *, problem_type: str, id2label: dict[int, str] | None, attn_implementation: str | None = None):
    """A pretrained backbone (or classifier) with a fresh head for ``problem_type``/``id2label``."""
    from transformers import AutoModelForSequenceClassification

    load_config(name)
    num_labels = 1 if problem_type == "regression" else len(id2label)
    kwargs = dict(num_labels=num_labels, problem_type=problem_type, ignore_mismatched_sizes=True)
    if id2label:
        kwargs.update(id2label={int(k): str(v) for k, v in id2label.items()},
                      label2id={str(v): int(k) for k, v in id2label.items()})
    if attn_implementation:
        kwargs["attn_implementation"] = attn_implementation
    return from_pretrained(AutoModelForSequenceClassification, name, **kwargs)


def load_lm_tokenizer(name: str):
    """The teacher's tokenizer, with the EOS token as padding when it has no pad token (GPT-2)."""
    tok = load_tokenizer(name)
    if tok.pad_token_id is None:
        if tok.eos_token_id is None:
            raise ProtegeError(f"the tokenizer of '{name}' has neither a pad nor an EOS token; add a pad token to it")
        tok.pad_token = tok.eos_token
    return tok


def from_pretrained(auto_class, name: str, *, explain_value_error=None, **kwargs):
    """``auto_class.from_pretrained`` of a folder or hub id, with every failure turned into one line.

    Missing files and hub errors name the folder or id; corrupted weights name the file
    (:func:`~protege.models.checks.weights_error`). ``explain_value_error(err)`` may give a more
    specific error for a ``ValueError`` (return None to keep the general one).
    """
    path = Path(model_folder(name)).expanduser()
    try:
        return auto_class.from_pretrained(str(path) if path.exists() else name, **kwargs)
    except ValueError as err:
        specific = explain_value_error(err) if explain_value_error is not None else None
        raise (specific or _describe_failure(name, err)) from None
    except OSError as err:
        raise _describe_failure(name, err) from None
    except Exception as err:  # noqa: BLE001 - safetensors raises its own error type
        mapped = weights_error(name, err)
        if mapped is None:
            raise
        raise mapped from None
