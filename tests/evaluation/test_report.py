"""Ratios, the terminal table and report, the model card and atomic JSON."""

import json

import numpy as np
import pytest

from protege.errors import ProtegeError
from protege.evaluation.report import format_comparison, format_report, model_card, speedup_and_ratios
from protege.utils.io import write_json_atomic

STUDENT = {"accuracy": 0.9, "f1": 0.91, "agreement": 0.95, "parameters": 22_700_000,
           "non_embedding_parameters": 11_000_000, "disk_bytes": 90_000_000,
           "latency_ms_p50": 2.5, "latency_ms_p95": 4.0, "throughput_per_s": 800.0}
TEACHER = {"accuracy": 0.925, "f1": 0.93, "parameters": 109_500_000, "non_embedding_parameters": 85_000_000,
           "disk_bytes": 438_000_000, "latency_ms_p50": 10.0, "latency_ms_p95": 13.0, "throughput_per_s": 200.0}


def metrics_layout(teacher="textattack/bert-base-uncased-SST-2"):
    return {
        "model": "out/student", "problem_type": "single_label_classification",
        "eval": {"source": "dev.tsv", "n": 48, "metrics": {"accuracy": 0.9, "f1": 0.91, "mcc": 0.8},
                 "agreement": {"agreement": 0.95, "kl": 0.05}},
        "size": {"parameters": 22_700_000, "non_embedding_parameters": 11_000_000, "disk_bytes": 90_000_000},
        "speed": {"latency_ms_p50": 2.5, "latency_ms_p95": 4.0, "throughput_per_s": 800.0, "latency_runs": 40,
                  "throughput_batch_size": 32, "threads": 4, "cpu": "Test CPU", "torch": "2.13", "device": "cpu",
                  "max_length": 128},
        "teacher": {"model": teacher, "eval": {"metrics": {"accuracy": 0.925, "f1": 0.93, "mcc": 0.85}},
                    "size": {"parameters": 109_500_000}, "speed": {"latency_ms_p50": 10.0}},
        "config": {"method": "distill", "loss": {"temperature": 2.0}, "layers": [0, 3]},
        "training": {"steps": 120, "seconds": 9.5},
        "command": "protege distill textattack/bert-base-uncased-SST-2 dev.tsv",
    }


def test_speedup_and_ratios():
    r = speedup_and_ratios(STUDENT, TEACHER, problem_type="single_label_classification")
    assert r["speedup_batch1"] == pytest.approx(4.0)
    assert r["throughput_ratio"] == pytest.approx(4.0)
    assert r["parameter_ratio"] == pytest.approx(22.7 / 109.5)
    assert r["size_ratio"] == pytest.approx(90 / 438)
    assert r["retention"] == pytest.approx(0.9 / 0.925)


def test_speedup_and_ratios_only_keys_in_both():
    r = speedup_and_ratios({"latency_ms_p50": 1.0, "pearson": 0.8, "problem_type": "regression"},
                           {"pearson": 0.9, "parameters": 5})
    assert r == pytest.approx({"retention": 0.8 / 0.9})
    assert speedup_and_ratios({"accuracy": 0.9}, {"accuracy": 0.9}) == {}
    with pytest.raises(ProtegeError):
        speedup_and_ratios({"problem_type": "regression"}, {"problem_type": "single_label_classification"})


def test_format_comparison_numbers_and_ratios():
    table = format_comparison({"teacher": TEACHER, "student": STUDENT}, primary="accuracy")
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "teacher", "student", "student", "vs", "teacher"]
    assert lines[2].startswith("accuracy")  # primary first
    for text in ["0.9250", "0.9000", "97.3%", "22.7M", "109.5M", "90.0", "438", "2.50", "10.0", "800",
                 "4.0x faster", "4.8x smaller"]:
        assert text in table, text
    agreement = next(line for line in lines if line.startswith("agreement"))
    assert agreement.split()[3:5] == ["-", "0.9500"]
    assert "mcc" not in table and "pearson" not in table  # rows nobody has are left out
    assert len({len(line) for line in lines[:2]}) == 1  # header and rule aligned


def test_format_comparison_missing_keys_and_single_column():
    table = format_comparison({"teacher": {"accuracy": 0.9}, "student": {"parameters": 1000}}, primary="accuracy")
    cells = {line.split()[0]: line.split()[1:] for line in table.splitlines()[2:]}
    assert cells["accuracy"][:2] == ["0.9000", "-"]
    assert cells["parameters"][:2] == ["-", "1.0K"]
    single = format_comparison({"model": {"pearson": 0.5}}, primary="pearson")
    assert "0.5000" in single and " vs " not in single
    with pytest.raises(ProtegeError):
        format_comparison({}, primary="accuracy")


def test_format_report():
    text = format_report(metrics_layout())
    assert "out/student" in text and "dev.tsv" in text and "48 examples" in text
    assert "teacher" in text and "student" in text and "Test CPU" in text and "4 threads" in text
    assert "4.0x faster" in text
    alone = format_report({"model": "m", "eval": {"metrics": {"accuracy": 0.5}}})
    assert "0.5000" in alone and "teacher" not in alone
    with pytest.raises(ProtegeError):
        format_report({"eval": {}})


def test_model_card():
    card = model_card(metrics_layout())
    assert card.startswith("---\nlibrary_name: transformers\n")
    front = card.split("---")[1]
    assert "- protege" in front and "- distillation" in front and "pipeline_tag: text-classification" in front
    assert "base_model: textattack/bert-base-uncased-SST-2" in front
    assert 'AutoModelForSequenceClassification.from_pretrained("out/student")' in card
    assert "| metric | teacher | student | student vs teacher |" in card
    assert "97.3%" in card and "**distill**" in card and "`loss.temperature`: `2.0`" in card
    assert "`layers`: `[0, 3]`" in card and "Trained for 120 steps (9.5 s)." in card
    assert "Test CPU" in card and "128" in card
    assert "```bash\nprotege distill textattack/bert-base-uncased-SST-2 dev.tsv\n```" in card


def test_model_card_minimal_and_local_teacher(tmp_path):
    card = model_card({"model": "me/tiny"})
    assert card.startswith("---\n") and "base_model" not in card and "Reproduce" not in card
    assert 'from_pretrained("me/tiny")' in card
    local = model_card(metrics_layout(teacher=str(tmp_path)))
    assert "base_model" not in local and str(tmp_path) not in local and f"`{tmp_path.name}`" in local  # no absolute path


def test_write_json_atomic_round_trip(tmp_path):
    path = tmp_path / "sub" / "metrics.json"
    obj = {"a": np.float32(0.5), "n": np.int64(3), "arr": np.arange(3), "nan": float("nan"), "t": (1, 2),
           "nested": {"b": [np.bool_(True)]}}
    write_json_atomic(path, obj)
    assert json.loads(path.read_text()) == {"a": 0.5, "n": 3, "arr": [0, 1, 2], "nan": None, "t": [1, 2],
                                            "nested": {"b": [True]}}
    assert "\n  " in path.read_text()  # indented
    write_json_atomic(path, {"x": 1})
    assert json.loads(path.read_text()) == {"x": 1}
    assert [p.name for p in path.parent.iterdir()] == ["metrics.json"]


def test_write_json_atomic_failure_leaves_nothing(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr("protege.utils.io.os.replace", fail)
    with pytest.raises(OSError):
        write_json_atomic(tmp_path / "bad.json", {"x": 1})
    assert list(tmp_path.iterdir()) == []


def test_write_json_atomic_odd_values_become_strings(tmp_path):
    write_json_atomic(tmp_path / "m.json", {"x": {1, 2} - {1}, "y": complex(1, 2)})
    assert json.loads((tmp_path / "m.json").read_text()) == {"x": [2], "y": "(1+2j)"}
