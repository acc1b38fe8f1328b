"""Peak memory of a model at inference, each in a fresh process.

A process's peak resident memory cannot be attributed to one of several models living in it,
so each model is measured in its own child process: imports done and inputs read, the resident
size is the baseline; then the model is loaded and runs the batch; the peak resident size
(``VmHWM``) minus the baseline is what the model costs (weights, runtime arenas, activations).
ONNX variants are measured without importing torch (numpy and onnxruntime only).

Run as ``python -m protege.deploy.memory FOLDER INPUTS.npz THREADS``; prints one JSON line.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["peak_memory", "peak_memories"]

_TIMEOUT = 600


def _rss_kb(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _peak_kb() -> int:
    hwm = _rss_kb("VmHWM")
    if hwm is not None:
        return hwm
    import resource

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS, kB elsewhere


def _child(folder: str, inputs: str, threads: int) -> dict:
    import numpy as np

    feed = dict(np.load(inputs))
    manifest = Path(folder) / "protege_export.json"
    info = json.loads(manifest.read_text()) if manifest.is_file() else {"runtime": "pytorch"}
    if info.get("runtime") == "onnxruntime":
        import onnxruntime as ort

        from protege.deploy.sessions import session_options

        base = _rss_kb("VmRSS") or _peak_kb()
        session = ort.InferenceSession(str(Path(folder) / info.get("file", "model.onnx")), session_options(threads),
                                       providers=["CPUExecutionProvider"])
        names = [i.name for i in session.get_inputs()]
        session.run(None, {n: feed.get(n, np.zeros_like(feed["input_ids"])) for n in names})
    else:
        import torch

        import transformers

        from protege.models.loading import load_classifier, load_config, quiet_transformers

        torch.set_num_threads(threads)
        quiet_transformers()
        for arch in load_config(folder).architectures or []:  # import the model's code before the baseline
            getattr(transformers, arch, None)
        base = _rss_kb("VmRSS") or _peak_kb()
        model = load_classifier(folder, role="model")
        with torch.inference_mode():
            model(**{k: torch.from_numpy(v) for k, v in feed.items()})
    return {"peak_memory_mb": round(max(_peak_kb() - base, 0) / 1024, 1), "process_peak_mb": round(_peak_kb() / 1024, 1)}


def peak_memory(folder: str | Path, feed: dict, *, threads: int) -> dict:
    """``{"peak_memory_mb", "process_peak_mb", "memory_batch"}`` of the model in ``folder`` running ``feed``
    (arrays by input name) in a fresh process; ``{"memory_error": ...}`` if that process fails."""
    import numpy as np

    with tempfile.TemporaryDirectory(prefix="protege-mem-") as tmp:
        inputs = Path(tmp) / "inputs.npz"
        np.savez(inputs, **{k: np.asarray(v, dtype=np.int64) for k, v in feed.items()})
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "false"}
        try:
            done = subprocess.run([sys.executable, "-m", "protege.deploy.memory", str(folder), str(inputs), str(threads)],
                                  capture_output=True, text=True, timeout=_TIMEOUT, env=env)
        except subprocess.TimeoutExpired:
            return {"memory_error": f"timed out after {_TIMEOUT} s"}
    lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
    if done.returncode != 0 or not lines:
        tail = (done.stderr.strip().splitlines() or ["no output"])[-1]
        return {"memory_error": tail[:200]}
    shape = list(np.asarray(feed["input_ids"]).shape)
    return {**json.loads(lines[-1]), "memory_batch": shape}


def peak_memories(folders: dict[str, str | Path], feed: dict, *, threads: int) -> dict[str, dict]:
    """:func:`peak_memory` of each named folder, one after the other (never two at once)."""
    return {name: peak_memory(folder, feed, threads=threads) for name, folder in folders.items()}


if __name__ == "__main__":
    print(json.dumps(_child(sys.argv[1], sys.argv[2], int(sys.argv[3]))))
