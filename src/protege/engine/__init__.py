"""The run engine under every recipe.

- :mod:`.trainer`: the one training loop (``train``), with :mod:`.events` callbacks and
  :mod:`.reporters` (TensorBoard, wandb, mlflow); :mod:`.hub`: ``--push-to-hub``.
- :mod:`.parallel`: data parallelism and FSDP2 sharding; :mod:`.checkpoints`: resumable state.
- :mod:`.staging`: output folders that are never half-written nor lost.
- :mod:`.finish`: ``finish_run``, the end of every run (save, measure, metrics.json, card, config).
- :mod:`.config`: the shared config sections (data, optimisation, output, speed).
"""

from protege.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "train": "trainer", "TrainResult": "trainer", "LossFn": "trainer",
    "Callback": "events", "EVENTS": "events", "REPORTERS": "reporters",
    "Stage": "staging", "plan_stage": "staging", "prepare_output": "staging", "finalize_output": "staging", "staging_dir": "staging",
    "has_checkpoint": "staging",
    "finish_run": "finish", "save_model": "finish", "recorded_command": "finish", "stamp": "finish",
    "SCHEMA_VERSION": "finish",
    "TrainSettings": "config", "TrainData": "config", "EvalData": "config", "Optimization": "config",
    "Output": "config", "Speed": "config", "Checks": "config",
})
