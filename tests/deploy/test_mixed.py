"""Mixed int8: the most sensitive MatMuls go back to fp32, chosen on the calibration sample, until parity."""

import numpy as np
import onnx

from protege.deploy import mixed
from protege.deploy.onnx_export import export_onnx


def _graph(tiny_teacher, tiny_tokenizer, tmp_path):
    src = tmp_path / "fp32.onnx"
    export_onnx(tiny_teacher, tiny_tokenizer, src)
    enc = tiny_tokenizer(["a good film", "a bad film with bad actors", "one two three"], padding=True, return_tensors="np")
    feeds = [{n: enc[n].astype(np.int64) for n in ("input_ids", "attention_mask", "token_type_ids")}]
    return src, feeds


def _fp32_matmuls(path):
    graph = onnx.load(str(path)).graph
    return {n.name for n in graph.node if n.op_type in ("MatMul", "Gemm")}


def test_weight_matmuls_are_the_layers_projections(tiny_teacher, tiny_tokenizer, tmp_path):
    src, _ = _graph(tiny_teacher, tiny_tokenizer, tmp_path)
    nodes = mixed.weight_matmuls(src)
    layers = tiny_teacher.config.num_hidden_layers
    # q, k, v, attention output, FFN in, FFN out per layer; pooler and classifier; not Q.K^T nor probs.V
    assert len(nodes) == 6 * layers + 2
    assert not any(n.endswith("self/MatMul") or n.endswith("self/MatMul_1") for n in nodes)


def test_fallback_keeps_the_most_sensitive_nodes_in_fp32_until_the_sample_agrees(tiny_teacher, tiny_tokenizer, tmp_path,
                                                                                 monkeypatch):
    src, feeds = _graph(tiny_teacher, tiny_tokenizer, tmp_path)
    nodes = mixed.weight_matmuls(src)
    sensitivity = {n: -i for i, n in enumerate(nodes)}  # the first nodes (layer 0's query, key) are the most sensitive
    state = {"excluded": []}
    real_quantize = mixed.quantize_dynamic_onnx

    def quantize(src_, dst, *, nodes_to_quantize=None, nodes_to_exclude=None):
        state["only"], state["excluded"] = nodes_to_quantize, list(nodes_to_exclude or [])
        return real_quantize(src_, dst, nodes_to_quantize=nodes_to_quantize, nodes_to_exclude=nodes_to_exclude)

    monkeypatch.setattr(mixed, "quantize_dynamic_onnx", quantize)
    monkeypatch.setattr(mixed, "_kl", lambda ref, out: float(sensitivity[state["only"][0]]))
    # parity on the sample only once the two most sensitive nodes are back in fp32
    monkeypatch.setattr(mixed, "_agreement", lambda ref, out: 1.0 if len(state["excluded"]) >= 2 else 0.9)
    dst = tmp_path / "mixed.onnx"
    info = mixed.quantize_mixed_onnx(src, dst, feeds, min_agreement=0.99)["quantization"]
    assert info["fp32_nodes"] == [nodes[0], nodes[1]]
    assert info["quantized_nodes"] == len(nodes) - 2 and info["calibration_agreement"] == 1.0
    assert info["calibration_target"] == 0.995
    kept = _fp32_matmuls(dst)
    assert nodes[0] in kept and nodes[1] in kept and nodes[2] not in kept  # nodes[2] became an integer MatMul
    assert not (tmp_path / "mixed.trial.onnx").exists()


def test_fallback_stops_at_half_the_nodes_and_reports_what_it_reached(tiny_teacher, tiny_tokenizer, tmp_path, monkeypatch):
    src, feeds = _graph(tiny_teacher, tiny_tokenizer, tmp_path)
    monkeypatch.setattr(mixed, "_agreement", lambda ref, out: 0.5)
    info = mixed.quantize_mixed_onnx(src, tmp_path / "m.onnx", feeds, min_agreement=0.99)["quantization"]
    total = len(mixed.weight_matmuls(src))
    assert len(info["fp32_nodes"]) == int(mixed.MAX_FALLBACK * total) and info["calibration_agreement"] == 0.5


def test_no_fallback_when_full_int8_already_agrees(tiny_teacher, tiny_tokenizer, tmp_path, monkeypatch):
    src, feeds = _graph(tiny_teacher, tiny_tokenizer, tmp_path)
    monkeypatch.setattr(mixed, "_agreement", lambda ref, out: 1.0)
    info = mixed.quantize_mixed_onnx(src, tmp_path / "m.onnx", feeds, min_agreement=0.99)["quantization"]
    assert info["fp32_nodes"] == [] and info["quantized_nodes"] == len(mixed.weight_matmuls(src))


def test_real_agreement_and_divergence():
    ref = np.array([[2.0, 0.0], [0.0, 1.0], [1.0, 0.5]])
    out = np.array([[1.0, 0.0], [0.5, 0.0], [1.0, 0.5]])
    assert mixed._agreement(ref, out) == 2 / 3
    assert mixed._kl(ref, ref) < 1e-9 < mixed._kl(ref, out)
