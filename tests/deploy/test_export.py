"""protege export: ONNX fp32 matches PyTorch, int8 is verified, the parity gate holds, folders are first-class."""

import json

import numpy as np
import pytest
import torch

from protege.cli.main import main
from protege.engine.finish import SCHEMA_PATH

VARIANTS = ["pytorch-fp32", "onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static", "onnx-int8-mixed"]


def _validate(metrics):
    import jsonschema

    jsonschema.validate(metrics, json.loads(SCHEMA_PATH.read_text()))


def _logits_pair(model, folder, tokenizer, tmp_path):
    from protege.deploy import OrtClassifier, export_onnx

    export_onnx(model, tokenizer, tmp_path / "m.onnx")
    ort_model = OrtClassifier(tmp_path / "m.onnx", model.config, threads=1)
    texts = ["good", "the movie was really not very good but the actor was great", "bad awful", "one two three four five six"]
    enc = tokenizer(texts, padding=True, return_tensors="pt")  # batch and length differ from the export's sample
    with torch.no_grad():
        expected = model(**enc).logits.numpy()
    return ort_model(**enc).logits.numpy(), expected


def test_onnx_fp32_logits_match_pytorch_within_1e_4(tiny_teacher, tiny_tokenizer, tmp_path):
    got, expected = _logits_pair(tiny_teacher, None, tiny_tokenizer, tmp_path)
    assert got.shape == expected.shape == (4, 2)
    assert np.abs(got - expected).max() < 1e-4


def test_export_builds_verifies_and_times_every_variant(exported, tiny_data_dir):
    out, metrics = exported
    _validate(metrics)
    export = metrics["export"]
    assert list(export["variants"]) == VARIANTS
    for name, v in export["variants"].items():
        folder = out / name
        assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
        assert (folder / ("model.safetensors" if name == "pytorch-fp32" else "model.onnx")).is_file()
        assert json.loads((folder / "protege_export.json").read_text())["variant"] == name
        _validate(json.loads((folder / "metrics.json").read_text()))
        assert 0 <= v["eval"]["agreement_with_reference"]["agreement"] <= 1
        assert 0 <= v["eval"]["agreement"]["agreement"] <= 1  # with the teacher (--compare)
        assert v["speed"]["latency_ms_p50"] > 0 and v["speed"]["throughput_per_s"] > 0
        assert v["size"]["disk_bytes"] > 0 and v["parity"]["min"] == 0.99
    assert export["variants"]["onnx-fp32"]["max_abs_logit_diff"] < 1e-4
    assert export["variants"]["onnx-int8-dynamic"]["size"]["disk_bytes"] < export["variants"]["onnx-fp32"]["size"]["disk_bytes"]
    assert export["variants"]["onnx-int8-dynamic"]["speed"]["intra_op_threads"] == 1  # torch's thread count
    assert export["variants"]["onnx-int8-static"]["eval"]["metrics"]["accuracy"] >= 0
    pick = export["recommended"]
    assert export["variants"][pick]["parity"]["pass"]
    passing = [n for n, v in export["variants"].items() if v["parity"]["pass"]]
    assert pick == min(passing, key=lambda n: export["variants"][n]["speed"]["latency_ms_p50"])
    assert metrics["variant"] == pick and metrics["runtime"] == export["variants"][pick]["runtime"]
    assert metrics["teacher"]["speed"]["latency_ms_p50"] > 0 and "speedup_batch1" in metrics["ratios"]
    card = (out / "README.md").read_text()
    assert all(v in card for v in VARIANTS) and f"Recommended: `{pick}`" in card


def _negating(quantize):
    """A corrupted int8 variant: the real quantized graph with its logits negated (every argmax flips)."""
    import onnx

    def corrupt(src, dst):
        info = quantize(src, dst)
        model = onnx.load(str(dst))
        out = model.graph.output[0].name
        for node in model.graph.node:
            node.output[:] = [o + "_raw" if o == out else o for o in node.output]
        model.graph.node.append(onnx.helper.make_node("Neg", [out + "_raw"], [out]))
        onnx.save(model, str(dst))
        return info

    return corrupt


def test_parity_gate_rejects_a_corrupted_variant(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    import protege.deploy.quantize as quantize

    monkeypatch.setattr(quantize, "quantize_dynamic_onnx", _negating(quantize.quantize_dynamic_onnx))
    out = tmp_path / "d"
    assert main(["export", str(tiny_teacher_dir), "--eval", str(tiny_data_dir / "dev.tsv"), "--out", str(out),
                 "--variants", "onnx-fp32,onnx-int8-dynamic", "--no-memory", "--no-speed", "--max-length", "32"]) == 0
    table = capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())
    bad = metrics["export"]["variants"]["onnx-int8-dynamic"]
    assert bad["parity"]["pass"] is False and bad["eval"]["agreement_with_reference"]["agreement"] < 0.5
    assert metrics["export"]["recommended"] in ("onnx-fp32", "pytorch-fp32")
    assert "FAIL" in next(line for line in table.splitlines() if line.startswith("onnx-int8-dynamic"))


def test_parity_statistic_and_recommendation_rules():
    from protege.deploy.verify import parity, recommend

    assert parity({"agreement": 0.985}, "single_label_classification", 0.99)["pass"] is False
    assert parity({"agreement": 0.99}, "single_label_classification", 0.99)["pass"] is True
    assert parity({"pearson_to_teacher": 0.999}, "regression", 0.99)["statistic"] == "pearson_to_teacher"
    v = lambda ok, p50: {"parity": {"pass": ok}, "speed": {"latency_ms_p50": p50}}  # noqa: E731
    assert recommend({"pytorch-fp32": v(True, 5.0), "onnx-int8-dynamic": v(False, 1.0), "onnx-fp32": v(True, 2.0)})[0] == "onnx-fp32"
    assert recommend({"pytorch-fp32": v(False, 5.0)})[0] is None
    untimed = {n: {"parity": {"pass": True}} for n in ("pytorch-fp32", "onnx-fp32", "onnx-int8-dynamic")}
    assert recommend(untimed)[0] == "onnx-int8-dynamic"


@pytest.mark.parametrize("kind", ["heads", "ffn", "layers"])
def test_pruned_students_export_and_evaluate(kind, student_dirs, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / kind
    assert main(["export", str(student_dirs[kind]), "--eval", str(tiny_data_dir / "dev.tsv"), "--out", str(out),
                 "--variants", "onnx-fp32,onnx-int8-dynamic", "--no-memory", "--no-speed", "--max-length", "32"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["export"]["variants"]["onnx-fp32"]["max_abs_logit_diff"] < 1e-4
    capsys.readouterr()
    report = tmp_path / "r.json"
    assert main(["evaluate", str(out / "onnx-int8-dynamic"), "--eval", str(tiny_data_dir / "dev.tsv"), "--compare",
                 str(tiny_teacher_dir), "--no-speed", "--max-length", "32", "--out", str(report)]) == 0
    assert "runtime: onnxruntime, int8-dynamic" in capsys.readouterr().out
    measured = json.loads(report.read_text())
    assert measured["runtime"] == "onnxruntime" and measured["precision"] == "int8-dynamic"
    assert measured["size"]["parameters"] == metrics["size"]["parameters"]
    assert 0 <= measured["eval"]["agreement"]["agreement"] <= 1


def test_export_folder_is_first_class_in_evaluate_and_report(exported, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out, metrics = exported
    report = tmp_path / "e.json"
    assert main(["evaluate", str(out), "--eval", str(tiny_data_dir / "dev.tsv"), "--compare", str(tiny_teacher_dir),
                 "--speed-seconds", "0.05", "--max-length", "32", "--out", str(report)]) == 0
    measured = json.loads(report.read_text())
    assert measured["variant"] == metrics["export"]["recommended"]  # the export folder stands for its pick
    assert measured["speed"]["latency_ms_p50"] > 0 and measured["teacher"]["speed"]["latency_ms_p50"] > 0
    assert main(["evaluate", str(out / "pytorch-fp32"), "--eval", str(tiny_data_dir / "dev.tsv"), "--no-speed",
                 "--max-length", "32", "--out", str(report)]) == 0
    assert json.loads(report.read_text())["runtime"] == "pytorch"
    capsys.readouterr()
    assert main(["report", str(out), str(out / "onnx-int8-static"), "--out", str(tmp_path / "rep"), "--no-plots"]) == 0
    table = capsys.readouterr().out
    header = table.splitlines()[0]
    assert "runtime" in header and "precision" in header
    assert "int8-static" in table and "onnxruntime" in table


def test_peak_memory_is_measured_in_a_fresh_process(exported):
    from protege.deploy.memory import peak_memory

    out, _ = exported
    feed = {"input_ids": np.full((4, 9), 7), "attention_mask": np.ones((4, 9)), "token_type_ids": np.zeros((4, 9))}
    mem = peak_memory(out / "onnx-int8-dynamic", feed, threads=1)
    assert mem["peak_memory_mb"] > 0 and mem["process_peak_mb"] >= mem["peak_memory_mb"], mem
    assert mem["memory_batch"] == [4, 9]


@pytest.mark.parametrize("family", ["distilbert", "roberta", "electra"])
def test_other_encoder_families_export_within_1e_4(family, tiny_tokenizer, tmp_path):
    import transformers

    small = dict(vocab_size=len(tiny_tokenizer), num_labels=3, max_position_embeddings=64)
    if family == "distilbert":
        config = transformers.DistilBertConfig(dim=32, n_layers=2, n_heads=2, hidden_dim=64, pad_token_id=0, **small)
    else:
        cls = {"roberta": transformers.RobertaConfig, "electra": transformers.ElectraConfig}[family]
        config = cls(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, pad_token_id=0,
                     **({"embedding_size": 32} if family == "electra" else {}), **small)
    torch.manual_seed(0)
    model = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    got, expected = _logits_pair(model, None, tiny_tokenizer, tmp_path)
    assert got.shape == expected.shape == (4, 3)
    assert np.abs(got - expected).max() < 1e-4


def test_a_regression_model_is_verified_by_correlation(tiny_tokenizer, tiny_data_dir, tmp_path):
    from transformers import BertForSequenceClassification

    import protege
    from helpers import tiny_bert_config

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(len(tiny_tokenizer), num_labels=1, problem_type="regression")).eval()
    model.save_pretrained(tmp_path / "reg")
    tiny_tokenizer.save_pretrained(tmp_path / "reg")
    metrics = protege.export(str(tmp_path / "reg"), eval=str(tiny_data_dir / "dev.tsv"), variants="onnx-fp32,onnx-int8-dynamic",
                             speed=False, memory=False, max_length=32, out=str(tmp_path / "out"))
    _validate(metrics)
    variant = metrics["export"]["variants"]["onnx-fp32"]
    assert variant["parity"]["statistic"] == "pearson_to_teacher" and variant["parity"]["pass"]
    assert "pearson" in variant["eval"]["metrics"] and variant["max_abs_logit_diff"] < 1e-4
