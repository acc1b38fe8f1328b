"""ONNX Runtime inference behind the interface of a transformers classifier.

:class:`OrtClassifier` is a parameter-free ``torch.nn.Module`` whose ``forward(**inputs)``
runs an ``onnxruntime.InferenceSession`` and returns ``.logits`` as a tensor. Everything that
measures a PyTorch classifier (``predict``, ``compare_speed``, ``compare_models``) therefore
measures an exported model the same way, in the same process and the same interleaved loop.

Sessions come from :mod:`protege.deploy.sessions` (torch's thread count, no spinning, full
graph optimisation).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from protege.deploy.sessions import make_session
from protege.errors import ProtegeError

__all__ = ["OrtClassifier"]


class _Output:
    """What a transformers classifier returns, as far as protege reads it: ``.logits``."""

    __slots__ = ("logits",)

    def __init__(self, logits):
        self.logits = logits

    def __getitem__(self, key):
        if key in (0, "logits"):
            return self.logits
        raise KeyError(key)


class OrtClassifier(nn.Module):
    """An exported classifier run by ONNX Runtime, called like ``AutoModelForSequenceClassification``.

    ``config`` is the model's transformers config (labels, problem type); ``info`` the export
    manifest (runtime, precision, variant, parameter counts). Inputs may be tensors or arrays;
    inputs the graph does not take are ignored, and a missing ``token_type_ids`` is zeros.
    """

    def __init__(self, path: str | Path, config, info: dict | None = None, *, threads: int | None = None):
        super().__init__()
        self.path = Path(path)
        self.config = config
        self.info = dict(info or {})
        self.threads = int(threads or torch.get_num_threads())
        self.session = make_session(self.path, self.threads)
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.eval()

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, output_hidden_states=False, **_ignored):
        """Logits for one batch: ``_Output`` with ``.logits`` (float32 tensor, batch x labels)."""
        if input_ids is None:
            raise ProtegeError("an exported classifier needs input_ids")
        if output_hidden_states:
            raise ProtegeError(f"{self.path.parent} is an exported ONNX model: it returns logits only; use the PyTorch "
                               "model (its pytorch-fp32 variant) where hidden states are needed")
        ids = _int64(input_ids)
        given = {"input_ids": ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids}
        feed = {}
        for name in self.input_names:
            value = given.get(name)
            if value is None:
                value = np.ones_like(ids) if name == "attention_mask" else np.zeros_like(ids)
            feed[name] = _int64(value)
        logits = self.session.run(None, feed)[0]
        return _Output(torch.from_numpy(np.ascontiguousarray(logits, dtype=np.float32)))

    # --- what the measurement code asks of a model ------------------------------------------

    @property
    def runtime(self) -> str:
        """``onnxruntime``."""
        return self.info.get("runtime", "onnxruntime")

    @property
    def precision(self) -> str:
        """``fp32``, ``int8-dynamic``, ``int8-static`` or ``int8-mixed``."""
        return self.info.get("precision", "fp32")

    def parameter_counts(self) -> dict[str, int]:
        """The exported model's parameter counts (recorded at export; quantization keeps the count)."""
        counts = {k: int(self.info[k]) for k in ("parameters", "non_embedding_parameters") if k in self.info}
        if not counts:  # an ONNX file exported elsewhere: count the float/int8 weight tensors
            import onnx

            model = onnx.load(str(self.path), load_external_data=False)
            counts = {"parameters": int(sum(int(np.prod(t.dims)) for t in model.graph.initializer if len(t.dims) >= 1))}
        return counts

    def disk_bytes(self) -> int:
        """Bytes of the exported weights (the ONNX file and its external data)."""
        from protege.deploy.folders import variant_disk_size

        return variant_disk_size(self.path.parent)

    def runtime_info(self) -> dict:
        """The fields a metrics part gets for this model: runtime, precision, variant and ORT version."""
        import onnxruntime as ort

        return {"runtime": self.runtime, "precision": self.precision, "variant": self.info.get("variant"),
                "onnxruntime": ort.__version__, "intra_op_threads": self.threads}

    def extra_repr(self) -> str:
        return f"path={self.path}, precision={self.precision}, threads={self.threads}"


def _int64(value) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.ascontiguousarray(value, dtype=np.int64)
