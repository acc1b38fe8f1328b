"""Deployment: exported, quantized, verified models and the runtimes that run them.

- :mod:`.onnx_export`: a PyTorch classifier to ONNX (``torch.onnx.export``, dynamic axes).
- :mod:`.quantize`: dynamic and calibrated static int8 (``onnxruntime.quantization``).
- :mod:`.runtime`: :class:`OrtClassifier`, an ONNX Runtime session called like a transformers classifier;
  :mod:`.sessions`: the session settings (torch's threads, no spinning, full graph optimisation).
- :mod:`.folders`: the exported folder layout; loading any exported or ordinary model folder.
- :mod:`.verify`: parity, interleaved timing, memory and the recommended variant.
- :mod:`.memory`: peak memory of a model in a fresh process; :mod:`.report`: the variant table and card.

The verbs are :func:`protege.export` (:mod:`protege.recipes.export`) and :func:`protege.compress`
(:mod:`protege.recipes.compress`). Needs ``pip install 'protege[export]'``.
"""

from protege.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "export_onnx": "onnx_export", "input_names_of": "onnx_export",
    "quantize_dynamic_onnx": "quantize", "quantize_static_onnx": "quantize", "TextCalibrationReader": "quantize",
    "OrtClassifier": "runtime", "session_options": "sessions", "make_session": "sessions",
    "VARIANTS": "folders", "is_exported": "folders", "exported_folder": "folders", "load_exported": "folders",
    "load_model": "folders", "read_manifest": "folders", "variant_disk_size": "folders",
    "verify_variants": "verify", "parity": "verify", "recommend": "verify",
    "peak_memory": "memory",
    "format_variants": "report", "export_card": "report",
})
