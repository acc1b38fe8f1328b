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
from typing import Callable, Sequence

from protege.engine.events import emit
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
               after_measure: Callable[[dict], None] | None = None, callbacks: Sequence = (),
               settings: Sequence = ()) -> dict:
    """Finish a run into ``out`` on the main process; other processes return ``{}``.

    ``save(folder)`` writes the model (default: :func:`save_model` of ``model`` and ``tokenizer``);
    ``measure()`` returns the measured sections (``eval``, ``size``, ``speed``, ``teacher``,
    ``ratios``, ...); ``result`` is the :class:`~protege.engine.trainer.TrainResult` (its summary
    becomes ``training``, its evaluations ``history``); ``extra`` adds recipe sections;
    ``after_measure(folder)`` writes files that must not count in the measured size (pruning
    masks); ``card(metrics)`` is the model card (default: the task card). A degenerate model
    (one predicted class, a constant output, NaN) is recorded under ``degenerate``.

    The card is written from :func:`protege.evaluation.card_view` of the metrics: no absolute local
    path, and none of the settings that did not act on the run (``settings``: the run's config
    objects, asked by :func:`protege.utils.config.unused_settings`); ``metrics.json`` and
    ``protege_config.json`` keep the full record.

    Once ``out`` is in place, ``callbacks`` get ``on_save(out, metrics)``; then, when
    ``config["push_to_hub"]``, the folder is uploaded to ``config["hub_model_id"]``
    (:mod:`protege.engine.hub`; a failed upload raises one line and the folder stays saved).
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
    _note_degenerate(metrics)
    stamp(metrics)
    if card is None:
        from protege.evaluation import model_card as card
    from protege.evaluation import card_view
    from protege.utils.config import unused_settings

    view = card_view(metrics, unused=unused_settings(*settings))
    with _space_for("writing metrics.json and the model card", folder, lambda: 2 * len(json.dumps(metrics, default=str))):
        write_json_atomic(folder / "metrics.json", metrics)
        write_text_atomic(folder / "README.md", card(view))
        write_text_atomic(folder / "protege_config.json", json.dumps(metrics["config"], indent=2) + "\n")
    finalize_output(stage, out)
    emit(callbacks, "on_save", Path(out), metrics)
    if config.get("push_to_hub"):
        from protege.engine.hub import push_folder

        push_folder(out, config.get("hub_model_id"), log=log)
    return metrics


def _note_degenerate(metrics: dict) -> None:
    """Record whether the model collapsed (``metrics["degenerate"]``), from its task metrics when the
    measurement (which sees the predictions) did not already. The CLI warns about it (``--strict``: exit 1)."""
    from protege.evaluation import PROBLEM_TYPES, find_degenerate

    scores = (metrics.get("eval") or {}).get("metrics") if isinstance(metrics.get("eval"), dict) else None
    if "degenerate" not in metrics and metrics.get("problem_type") in PROBLEM_TYPES and isinstance(scores, dict):
        metrics["degenerate"] = find_degenerate(metrics["problem_type"], metrics=scores)


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
