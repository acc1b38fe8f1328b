"""Where a run's numbers go besides ``train_log.jsonl``: TensorBoard, Weights & Biases, MLflow (``--report-to``).

:data:`REPORTERS` maps a name to a factory ``(log_dir, *, name, config, start_step) -> reporter``;
the name is also the extra that installs the library and the module imported. A reporter is a loop
callback (:mod:`protege.engine.events`) with ``close(failed=False)``: ``on_log(record)`` writes
every loss term, the learning rate, the epoch and examples/s as ``train/<key>`` at the record's
step; ``on_eval(step, metrics)`` writes every numeric evaluation metric as ``eval/<key>``. Each
uses its library's own writer, imported only when the reporter is built; a missing library is a
one-line error naming the extra.

- ``tensorboard``: event files in ``OUT/tensorboard`` (``tensorboard --logdir OUT/tensorboard``); offline.
- ``wandb``: the run's files in ``OUT/wandb``, project ``$WANDB_PROJECT`` (default ``protege``).
  ``WANDB_MODE`` is obeyed; when it is unset and there is no wandb login (``WANDB_API_KEY`` or
  ``wandb login``), the run is logged offline rather than stopping at a login prompt, and
  ``wandb sync OUT/wandb/offline-run-*`` uploads it later.
- ``mlflow``: a run in experiment ``$MLFLOW_EXPERIMENT_NAME`` (default ``protege``) at mlflow's own
  tracking URI (``$MLFLOW_TRACKING_URI``, else mlflow's default); the run's settings are its params.

A resumed run continues the same TensorBoard curves (events after the resumed step are dropped);
wandb and mlflow start a new run.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import time
from pathlib import Path
from typing import Callable

from protege.errors import ProtegeError
from protege.utils.extras import require_extra
from protege.utils.fmt import num

__all__ = ["REPORTERS", "report_targets", "check_reporters", "open_reporters", "close_reporters", "scalars", "run_name"]


def scalars(values: dict, prefix: str) -> dict[str, float]:
    """The finite numbers of ``values`` as ``{prefix/key: float}`` (nested dicts become ``prefix/key/inner``)."""
    out = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out.update(scalars(value, f"{prefix}/{key}"))
        elif (number := num(value)) is not None:
            out[f"{prefix}/{key}"] = number
    return out


def _train_scalars(record: dict) -> dict[str, float]:
    return scalars({k: v for k, v in record.items() if k != "step"}, "train")


class _TensorBoard:
    """Scalars through ``torch.utils.tensorboard.SummaryWriter`` (no TensorFlow, no network)."""

    def __init__(self, log_dir: Path, *, name: str, config: dict, start_step: int):
        from torch.utils.tensorboard import SummaryWriter

        # purge_step: a resumed run replaces what the interrupted one wrote after its checkpoint
        self.writer = SummaryWriter(str(Path(log_dir) / "tensorboard"), purge_step=start_step or None, flush_secs=30)
        if not start_step:
            self.writer.add_text("config", "```\n" + json.dumps(config, indent=2, default=str) + "\n```", 0)

    def on_log(self, record: dict) -> None:
        for tag, value in _train_scalars(record).items():
            self.writer.add_scalar(tag, value, record["step"])

    def on_eval(self, step: int, metrics: dict) -> None:
        for tag, value in scalars(metrics, "eval").items():
            self.writer.add_scalar(tag, value, step)
        self.writer.flush()

    def close(self, failed: bool = False) -> None:
        self.writer.close()


def _wandb_logged_in() -> bool:
    """Whether wandb has credentials (``WANDB_API_KEY`` or the netrc entry ``wandb login`` writes), without asking it."""
    import netrc
    from urllib.parse import urlsplit

    if os.environ.get("WANDB_API_KEY"):
        return True
    host = urlsplit(os.environ.get("WANDB_BASE_URL") or "https://api.wandb.ai").hostname
    path = os.environ.get("NETRC") or os.path.expanduser("~/.netrc")
    try:
        return netrc.netrc(path).authenticators(host) is not None
    except (OSError, netrc.NetrcParseError):
        return False


class _Wandb:
    """A wandb run; offline when no mode is set and there is no login (never an interactive prompt)."""

    def __init__(self, log_dir: Path, *, name: str, config: dict, start_step: int):
        import wandb

        from protege.utils.log import log

        mode = None
        if not os.environ.get("WANDB_MODE") and not _wandb_logged_in():
            mode = "offline"
            log(f"wandb: no login and WANDB_MODE unset, so logging offline; once the run is done, upload it with: "
                f"wandb sync {_finished_path(Path(log_dir)) / 'wandb'}/offline-run-*")
        self.wandb = wandb
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or "protege", name=name, config=config,
                              dir=str(log_dir), mode=mode)

    def on_log(self, record: dict) -> None:
        self.run.log(_train_scalars(record), step=record["step"])

    def on_eval(self, step: int, metrics: dict) -> None:
        self.run.log(scalars(metrics, "eval"), step=step)

    def close(self, failed: bool = False) -> None:
        self.run.finish(exit_code=1 if failed else 0)


def _flat(config: dict, prefix: str = "") -> dict[str, str]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        elif value is not None:
            out[f"{prefix}{key}"] = str(value)[:500]  # mlflow's oldest limit on a param's length
    return out


class _MLflow:
    """An mlflow run through ``MlflowClient`` (no process-wide active run to collide with the caller's)."""

    def __init__(self, log_dir: Path, *, name: str, config: dict, start_step: int):
        from mlflow import MlflowClient
        from mlflow.entities import Param

        self.client = MlflowClient()
        experiment = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "protege"
        found = self.client.get_experiment_by_name(experiment)
        experiment_id = found.experiment_id if found is not None else self.client.create_experiment(experiment)
        self.run_id = self.client.create_run(experiment_id, run_name=name).info.run_id
        params = [Param(k, v) for k, v in _flat(config).items()]
        for i in range(0, len(params), 100):  # log_batch takes at most 100 params
            self.client.log_batch(self.run_id, params=params[i:i + 100])

    def _log(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, v, now, step) for k, v in values.items()])

    def on_log(self, record: dict) -> None:
        self._log(_train_scalars(record), record["step"])

    def on_eval(self, step: int, metrics: dict) -> None:
        self._log(scalars(metrics, "eval"), step)

    def close(self, failed: bool = False) -> None:
        self.client.set_terminated(self.run_id, status="FAILED" if failed else "FINISHED")


def _factory(library: str, cls) -> Callable:
    def open_reporter(log_dir, *, name: str | None = None, config: dict | None = None, start_step: int = 0):
        require_extra(library, library, what=f"--report-to {library}")
        return cls(Path(log_dir), name=name or run_name(log_dir), config=config or {}, start_step=start_step)

    open_reporter.__doc__ = (f"A {library} reporter writing under ``log_dir`` for the run ``name`` "
                             f"(needs ``pip install 'protege[{library}]'``).")
    return open_reporter


REPORTERS: dict[str, Callable] = {
    "tensorboard": _factory("tensorboard", _TensorBoard),
    "wandb": _factory("wandb", _Wandb),
    "mlflow": _factory("mlflow", _MLflow),
}


def report_targets(value) -> tuple[str, ...]:
    """The reporters ``--report-to`` names: ``none`` or a comma-separated list of :data:`REPORTERS` names."""
    names = tuple(dict.fromkeys(v.strip() for v in value.split(",") if v.strip())) if isinstance(value, str) else ()
    if names == ("none",):
        return ()
    if not names or any(n not in REPORTERS for n in names):
        raise ProtegeError(f"--report-to must be none or a comma-separated list of {', '.join(REPORTERS)}, got {value!r}")
    return names


def check_reporters(value) -> tuple[str, ...]:
    """:func:`report_targets`, each library checked to be installed (without importing it) before the run starts."""
    names = report_targets(value)
    for name in names:
        if importlib.util.find_spec(name) is None:
            require_extra(name, name, what=f"--report-to {name}")  # fails: the extra's one-line error
    return names


def run_name(work_dir: str | Path) -> str:
    """A readable name for a run working in ``work_dir``: the output folder's name (``.OUT.partial`` -> ``OUT``),
    plus the sub-folder of a run inside it (a pruning round: ``OUT/rounds/round-1``)."""
    work_dir = Path(work_dir)
    inner = []
    for folder in (work_dir, *work_dir.parents):
        if folder.name.startswith(".") and folder.name.endswith(".partial"):  # engine.staging.staging_dir
            return "/".join([folder.name[1:-len(".partial")], *reversed(inner)])
        inner.append(folder.name)
    return work_dir.name or str(work_dir)


def _finished_path(path: Path) -> Path:
    """Where ``path`` (inside a staging folder ``.OUT.partial``) will be once the run is moved into place."""
    parts = [part[1:-len(".partial")] if part.startswith(".") and part.endswith(".partial") else part for part in path.parts]
    return Path(*parts)


def open_reporters(value, log_dir: str | Path, *, config=None, start_step: int = 0) -> list:
    """Build the reporters ``value`` (``--report-to``) names, writing under ``log_dir``; none for ``none``.

    ``config`` (a dict or a config dataclass) is the run's settings, recorded with the run.
    """
    if dataclasses.is_dataclass(config):
        config = dataclasses.asdict(config)
    opened = []
    try:
        for name in report_targets(value):
            opened.append(REPORTERS[name](log_dir, name=run_name(log_dir), config=config, start_step=start_step))
    except BaseException:
        close_reporters(opened, failed=True)
        raise
    return opened


def close_reporters(reporters, *, failed: bool = False) -> None:
    """Flush and close every reporter (each is closed even when another's close fails)."""
    errors = []
    for reporter in reporters:
        try:
            reporter.close(failed=failed)
        except Exception as err:  # noqa: BLE001 - close the rest, then raise the first
            errors.append(err)
    if errors and not failed:
        raise errors[0]
