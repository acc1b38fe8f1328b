"""ONNX Runtime sessions built for honest side-by-side timing on a CPU (no torch import here).

As many intra-op threads as torch uses, spinning disabled (a spinning ORT pool would steal the
cores of the PyTorch model timed next to it, and the reverse), one inter-op thread, and full
graph optimisation (``ORT_ENABLE_ALL``: constant folding, attention / LayerNorm / GELU fusions,
QDQ fusion for static int8) applied when the session loads.
"""

from __future__ import annotations

from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["session_options", "make_session"]


def session_options(threads: int | None = None):
    """``onnxruntime.SessionOptions`` for CPU inference beside PyTorch (threads = torch's, no spinning, ALL)."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = int(threads or _torch_threads())
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # a spinning pool keeps cores busy between calls: it would slow down whatever runs next
    so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    so.add_session_config_entry("session.inter_op.allow_spinning", "0")
    so.log_severity_level = 3  # errors only: ORT's warnings about unused initializers are noise here
    return so


def make_session(path: str | Path, threads: int | None = None):
    """An ``InferenceSession`` on the CPU for the ONNX file ``path``, or a one-line error."""
    import onnxruntime as ort

    try:
        return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])
    except Exception as err:  # ORT raises its own exception types (InvalidGraph, Fail, NoSuchFile ...)
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ProtegeError(f"ONNX Runtime cannot load {path} ({first[:200]}); re-export it with protege export") from None


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
