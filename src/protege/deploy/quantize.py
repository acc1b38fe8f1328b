"""int8 ONNX models by ``onnxruntime.quantization``: dynamic, and static calibrated on real text.

- **dynamic** (``quantize_dynamic``): weights int8 ahead of time with one scale per output
  channel, activations quantized per call from their observed range. Needs no data; the usual
  choice for transformers on CPU.
- **static** (``quantize_static``, QDQ format): activation ranges fixed from a calibration sample
  (MinMax over ``--calibration`` texts), uint8 activations and int8 weights (the fast u8s8
  kernels), on the MatMuls. ONNX Runtime fuses the QDQ pairs into integer kernels when the
  session loads.

Both start from the fp32 graph as exported (not a pre-fused one: fused Attention nodes are not
statically quantized, and dynamically quantized they ran slower here).
"""

from __future__ import annotations

import contextlib
import logging
from pathlib import Path

import numpy as np

from protege.errors import ProtegeError

__all__ = ["quantize_dynamic_onnx", "quantize_static_onnx", "TextCalibrationReader"]


@contextlib.contextmanager
def _quiet():
    # onnxruntime.quantization logs advice on the root logger ("consider pre-processing"); the
    # variants are verified afterwards, so the advice is noise in protege's output
    logging.disable(logging.WARNING)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)


def _default_type():
    import onnx

    # shape inference cannot type the outputs of contrib ops; they are float here
    return {"DefaultTensorType": onnx.TensorProto.FLOAT}


def quantize_dynamic_onnx(src: str | Path, dst: str | Path, *, nodes_to_quantize: list[str] | None = None,
                          nodes_to_exclude: list[str] | None = None) -> dict:
    """Dynamic int8 quantization of the ONNX model ``src`` into ``dst``; returns what the manifest records.

    ``nodes_to_quantize`` / ``nodes_to_exclude`` restrict it to / keep in fp32 the named nodes
    (:mod:`protege.deploy.mixed` uses them).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    try:
        with _quiet():
            # per-channel weight scales: on the demo's MiniLM student they kept 99.05% of the fp32 answers,
            # against 96.5% with one scale per tensor, at the same speed (benchmarks/README.md)
            quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True, extra_options=_default_type(),
                             nodes_to_quantize=nodes_to_quantize, nodes_to_exclude=nodes_to_exclude)
    except Exception as err:
        raise ProtegeError(f"dynamic int8 quantization of {src} failed in onnxruntime.quantization.quantize_dynamic "
                           f"({_first(err)}); export the fp32 variant only with --variants pytorch-fp32,onnx-fp32") from None
    return {"quantization": {"method": "dynamic", "weights": "int8, per channel", "activations": "uint8, per call"}}


class TextCalibrationReader:
    """An ``onnxruntime.quantization.CalibrationDataReader`` over tokenised texts, one batch of 8 at a time."""

    def __init__(self, examples, tokenizer, input_names: list[str], *, max_length: int, batch_size: int = 8):
        self.batches = []
        texts, pairs = list(examples.texts), examples.text_pairs
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], None if pairs is None else list(pairs[start:start + batch_size]),
                            padding=True, truncation=True, max_length=max_length, return_tensors="np")
            ids = enc["input_ids"].astype(np.int64)
            self.batches.append({n: (enc[n].astype(np.int64) if n in enc else np.zeros_like(ids)) for n in input_names})
        self._it = iter(self.batches)

    def get_next(self):
        """The next feed dict, or None when the sample is used up (the reader protocol)."""
        return next(self._it, None)

    def rewind(self) -> None:
        """Start over (the calibrator may read twice)."""
        self._it = iter(self.batches)


def quantize_static_onnx(src: str | Path, dst: str | Path, reader: TextCalibrationReader) -> dict:
    """Static int8 quantization (QDQ, u8 activations, s8 weights, MinMax ranges) of ``src`` into ``dst``."""
    from onnxruntime.quantization import CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType, quantize_static

    class _Reader(CalibrationDataReader):  # the calibrator checks the type
        def get_next(self):
            return reader.get_next()

    try:
        with _quiet():
            quantize_static(str(src), str(dst), _Reader(), quant_format=QuantFormat.QDQ, op_types_to_quantize=["MatMul"],
                            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, per_channel=False,
                            calibrate_method=CalibrationMethod.MinMax, extra_options=_default_type())
    except Exception as err:
        raise ProtegeError(f"static int8 quantization of {src} failed in onnxruntime.quantization.quantize_static "
                           f"({_first(err)}); drop --calibration to skip the static variant") from None
    finally:
        # the calibrator leaves its augmented model beside the working folder's files
        for leftover in Path(dst).parent.glob("augmented_model*.onnx"):
            leftover.unlink(missing_ok=True)
    return {"quantization": {"method": "static", "format": "QDQ", "weights": "int8", "activations": "uint8",
                             "calibration": "MinMax", "calibration_examples": sum(len(b["input_ids"]) for b in reader.batches)}}


def _first(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]
