"""The end of every run: save, measure, write ``metrics.json`` + model card + config, move into place.

Every recipe ends through :func:`finish_run`, so every ``metrics.json`` has one documented layout
(``metrics.schema.json`` beside this file, :data:`SCHEMA_VERSION`), the recorded command never
holds a secret, and the output folder appears only when all of it is written. A full disk while
saving ends with a one-line error saying about how much space is needed; what the save had
written is removed and the checkpoints stay, so ``--resume`` can finish the run.
"""

from __future__ import annotations

import contextlib
import errno
import json
import re
import shutil
import sys
from pathlib import Path
from typing import Callable

from protege.engine.staging import Stage, finalize_output
from protege.utils.device import is_main
from protege.utils.io import write_json_atomic, write_text_atomic
from protege.utils.log import log

__all__ = ["SCHEMA_VERSION", "SCHEMA_PATH", "finish_run", "recorded_command", "save_model", "stamp", "readable_by_others"]

SCHEMA_VERSION = 1
SCHEMA_PATH = Path(__file__).with_name("metrics.schema.json")

# a flag whose value is a secret: --api-key, --watermark-key, --hf-token, --password ...
_SECRET = re.compile(r"^--([a-z0-9-]*-)?(key|token|secret|password)$")


def recorded_command(argv: list[str] | None = None) -> str | None:
    """The ``protege ...`` command that ran, with secret values masked; None when not run from the CLI."""
    if argv is None:
        if Path(sys.argv[0]).name not in ("protege", "__main__.py"):
            return None
        argv = sys.argv[1:]
    args, mask_next = [], False
    for arg in argv:
        if mask_next:
            args.append("***")
            mask_next = False
        elif _SECRET.match(arg):
            args.append(arg)
            mask_next = True
        elif arg.startswith("--") and "=" in arg and _SECRET.match(arg.split("=", 1)[0]):
            args.append(arg.split("=", 1)[0] + "=***")
        else:
            args.append(arg)
    return " ".join(["protege"] + args)


def stamp(metrics: dict) -> dict:
    """Add the schema version and the protege version to a metrics dict (in place; returned)."""
    from protege import __version__

    metrics["schema_version"] = SCHEMA_VERSION
    metrics["protege_version"] = __version__
    return metrics


def save_model(model, tokenizer, folder: str | Path) -> None:
    """``save_pretrained`` the model (with the fast attention kernel it ships with) and its tokenizer."""
    if hasattr(model, "set_attn_implementation"):
        try:  # attention maps were only needed for training; ship the fast kernel
            model.set_attn_implementation("sdpa")
        except (ValueError, ImportError):
            pass
    model.save_pretrained(folder)
    if tokenizer is not None:
        tokenizer.save_pretrained(folder)


def readable_by_others(folder: str | Path) -> None:
    """Give every file in ``folder`` the usual 0644 (transformers writes ``model.safetensors`` as 0600)."""
    import os

    for path in Path(folder).rglob("*"):
        if path.is_file():
            os.chmod(path, 0o644)


def finish_run(stage: Stage | Path, out: str | Path, *, method: str, measure: Callable[[], dict], config: dict,
               save: Callable[[Path], None] | None = None, model=None, tokenizer=None, result=None,
               extra: dict | None = None, card: Callable[[dict], str] | None = None,
               after_measure: Callable[[dict], None] | None = None) -> dict:
    """Finish a run into ``out`` on the main process; other processes return ``{}``.

    ``save(folder)`` writes the model (default: :func:`save_model` of ``model`` and ``tokenizer``);
    ``measure()`` returns the measured sections (``eval``, ``size``, ``speed``, ``teacher``,
    ``ratios``, ...); ``result`` is the :class:`~protege.engine.trainer.TrainResult` (its summary
    becomes ``training``, its evaluations ``history``); ``extra`` adds recipe sections;
    ``after_measure(folder)`` writes files that must not count in the measured size (pruning
    masks); ``card(metrics)`` is the model card (default: the task card).
    """
    if not is_main():
        return {}
    folder = Path(stage.path if isinstance(stage, Stage) else stage)
    with _space_for("saving the model", folder, lambda: _model_bytes(model)):
        if save is not None:
            save(folder)
        else:
            save_model(model, tokenizer, folder)
        readable_by_others(folder)
        _check_written(folder)
    log("measuring quality, size and speed ...")
    metrics = measure()
    if after_measure is not None:
        after_measure(folder)
    metrics["model"] = str(out)
    metrics["method"] = method
    if result is not None:
        metrics["training"] = {**result.summary(), **metrics.get("training", {})}
        metrics["history"] = result.history
    metrics["config"] = {k: v for k, v in config.items() if v is not None}
    metrics["command"] = recorded_command()
    metrics.update(extra or {})
    stamp(metrics)
    if card is None:
        from protege.evaluation import model_card as card
    with _space_for("writing metrics.json and the model card", folder, lambda: 2 * len(json.dumps(metrics, default=str))):
        write_json_atomic(folder / "metrics.json", metrics)
        write_text_atomic(folder / "README.md", card(metrics))
        write_text_atomic(folder / "protege_config.json", json.dumps(metrics["config"], indent=2) + "\n")
    finalize_output(stage, out)
    return metrics


@contextlib.contextmanager
def _space_for(what: str, folder: Path, estimate: Callable[[], int]):
    """On a full disk inside the block: remove what the block wrote into ``folder`` and raise a one-line error.

    Checkpoints are never touched (they are what ``--resume`` finishes from). The space needed is
    ``estimate()`` (the model's tensor bytes), or what had been written when the disk filled if more.
    """
    from protege.engine.checkpoints import disk_full, no_space_error

    before = _entries(folder)
    try:
        yield
    except OSError as err:
        if not disk_full(err):
            raise
        written = _remove_new(folder, before)
        raise no_space_error(what, max(estimate(), written), folder) from None


def _model_bytes(model) -> int:
    from protege.engine.checkpoints import tensor_bytes

    return tensor_bytes(model.state_dict()) if model is not None and hasattr(model, "state_dict") else 0


def _check_written(folder: Path) -> None:
    """Raise ENOSPC when a weights file just saved is shorter than its header says (a full disk can do that silently)."""
    from protege.errors import ProtegeError
    from protege.models.checks import check_weight_files

    try:
        check_weight_files(folder)
    except ProtegeError as err:
        raise OSError(errno.ENOSPC, f"a saved weights file came out short ({err})") from None


def _entries(folder: Path) -> dict[str, int]:
    """Top-level names in ``folder`` and their modification times."""
    if not folder.is_dir():
        return {}
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}


def _remove_new(folder: Path, before: dict[str, int]) -> int:
    """Remove the entries written since ``before`` (never the checkpoints); return the bytes they held."""
    total = 0
    for name, mtime in _entries(folder).items():
        if name in ("checkpoints", "best.pt") or before.get(name) == mtime:
            continue
        path = folder / name
        if path.is_dir():
            total += sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
            shutil.rmtree(path, ignore_errors=True)
        else:
            total += path.stat().st_size
            path.unlink(missing_ok=True)
    return total
