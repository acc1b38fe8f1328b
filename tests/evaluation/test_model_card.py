"""Model cards the hub accepts: YAML front matter that parses, no absolute local path, only the settings that acted."""

import json

import pytest
import yaml

from protege.evaluation.card import card_view, front_matter, hub_id, portable_path
from protege.evaluation.general_report import general_model_card
from protege.evaluation.report import model_card


def _front(card: str) -> dict:
    assert card.startswith("---\n")
    return yaml.safe_load(card.split("---\n")[1])


def _hub_accepts(card: str) -> None:
    """What the hub's own client reads from a README: the metadata and every evaluation result."""
    from huggingface_hub import ModelCard
    from huggingface_hub.repocard_data import model_index_to_eval_results

    data = ModelCard(card).data.to_dict()
    if "model-index" in data:
        name, results = model_index_to_eval_results(data["model-index"])
        assert name and results and all(r.metric_value is not None for r in results)


def test_a_distilled_card_has_hub_metadata_no_absolute_path_and_only_applied_settings(
        tiny_teacher_dir, tiny_data_dir, tmp_path, tmp_path_factory, monkeypatch):
    from protege.cli.main import main

    out = tmp_path / "student"
    argv = ["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"),
            "--eval", str(tiny_data_dir / "dev.tsv"), "--student-layers", "0,2", "--max-steps", "2", "--max-length",
            "32", "--no-progress", "--no-speed", "--out", str(out)]
    monkeypatch.setattr("sys.argv", ["protege", *argv])  # the command the card records
    assert main(argv) == 0
    card = (out / "README.md").read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    front = _front(card)
    _hub_accepts(card)
    assert front["library_name"] == "transformers" and front["tags"] == ["protege", "distillation"]
    assert front["pipeline_tag"] == "text-classification"
    assert "base_model" not in front and "datasets" not in front  # a local teacher and local files are no hub ids
    [entry] = front["model-index"]
    assert entry["name"] == "student"
    [result] = entry["results"]
    assert result["task"] == {"type": "text-classification"} and result["dataset"] == {"name": "dev.tsv", "type": "dev.tsv"}
    scores = {m["type"]: m["value"] for m in result["metrics"]}
    assert scores["accuracy"] == pytest.approx(metrics["eval"]["metrics"]["accuracy"], abs=1e-4)
    assert scores["matthews_correlation"] == pytest.approx(metrics["eval"]["metrics"]["mcc"], abs=1e-4)

    assert str(tmp_path_factory.getbasetemp()) not in card  # every absolute path was made portable
    assert "--teacher " + tiny_teacher_dir.name in card and "--out student" in card  # the command too
    assert 'from_pretrained("student")' in card and f"Made with protege {metrics['protege_version']}." in card
    # settings: the weights and knobs of unused terms, output plumbing and --epochs under --max-steps are left out
    for unused in ("`alpha_ce`", "`alpha_hidden`", "`hidden_loss`", "`hidden_projection`", "`ensemble`", "`out`",
                   "`overwrite`", "`progress`", "`epochs`", "`speed_seconds`"):
        assert unused not in card, unused
    for used in ("`alpha_kd`: `1.0`", "`temperature`: `2.0`", "`max_steps`: `2`", "`optimizer`: `adamw`",
                 "`lr_scheduler`: `linear`"):
        assert used in card, used
    assert metrics["config"]["alpha_ce"] == 0.0 and metrics["config"]["out"] == str(out)  # metrics.json keeps it all


def test_a_pruned_card_without_recovery_lists_no_training_settings(tiny_teacher_dir, tmp_path):
    import protege

    protege.prune(str(tiny_teacher_dir), method="magnitude", sparsity=0.5, speed=False, progress=False,
                  out=str(tmp_path / "p"))
    card = (tmp_path / "p" / "README.md").read_text()
    front = _front(card)
    _hub_accepts(card)
    assert front["tags"] == ["protege", "pruning"] and "base_model" not in front
    for unused in ("`lr`", "`epochs`", "`batch_size`", "`optimizer`", "`alpha_kd`", "`temperature`"):
        assert unused not in card, unused
    assert "`sparsity`: `0.5`" in card and "`scope`: `global`" in card
    assert str(tmp_path) not in card


def test_hub_ids_become_metadata_and_local_paths_stay_out(tmp_path):
    metrics = {"model": str(tmp_path / "runs" / "student"), "method": "distill", "problem_type": "single_label_classification",
               "eval": {"source": "stanfordnlp/sst2", "n": 10, "metrics": {"accuracy": 0.9, "f1": 0.8, "mse": float("nan")}},
               "teacher": {"model": "textattack/bert-base-uncased-SST-2", "eval": {"metrics": {"accuracy": 0.92}}},
               "config": {"teacher": "textattack/bert-base-uncased-SST-2", "train": "stanfordnlp/sst2",
                          "eval": str(tmp_path / "data" / "dev.tsv"), "cache_teacher": str(tmp_path / "runs" / "cache")},
               "command": f"protege distill --teacher textattack/bert-base-uncased-SST-2 --out={tmp_path}/runs/student",
               "protege_version": "9.9"}
    card = model_card(metrics)
    front = _front(card)
    _hub_accepts(card)
    assert front["base_model"] == "textattack/bert-base-uncased-SST-2" and front["datasets"] == ["stanfordnlp/sst2"]
    result = front["model-index"][0]["results"][0]
    assert result["dataset"] == {"name": "stanfordnlp/sst2", "type": "stanfordnlp/sst2"}
    assert [m["type"] for m in result["metrics"]] == ["accuracy", "f1"]  # NaN is no result
    assert str(tmp_path) not in card
    assert "`cache_teacher`: `cache`" in card and "`eval`: `dev.tsv`" in card and "--out=student" in card
    assert "[textattack/bert-base-uncased-SST-2](https://huggingface.co/textattack/bert-base-uncased-SST-2)" in card
    assert card.rstrip().endswith("Made with protege 9.9.")


def test_general_card_front_matter(tmp_path):
    metrics = {"model": str(tmp_path / "mlm"), "method": "distill-mlm", "objective": "mlm",
               "eval": {"source": str(tmp_path / "held.txt"), "metrics": {"perplexity": 12.5, "accuracy": 0.4}},
               "teacher": {"model": str(tmp_path / "teacher")},
               "config": {"teacher": str(tmp_path / "teacher"), "alpha_kd": 1.0, "train_text": "wikitext"},
               "command": f"protege distill --objective mlm --teacher {tmp_path}/teacher"}
    card = general_model_card(card_view(metrics, unused={"alpha_kd"}))
    front = _front(card)
    _hub_accepts(card)
    assert front["pipeline_tag"] == "fill-mask" and front["tags"] == ["protege", "distillation"]
    assert front["datasets"] == ["wikitext"] and "base_model" not in front
    assert {m["type"] for m in front["model-index"][0]["results"][0]["metrics"]} == {"perplexity", "accuracy"}
    assert str(tmp_path) not in card and "alpha_kd" not in card and "`teacher`: `teacher`" in card


def test_export_card_front_matter(tmp_path):
    from protege.deploy.report import export_card

    variant = {"runtime": "onnxruntime", "precision": "int8-dynamic", "eval": {"metrics": {"accuracy": 0.88}},
               "parity": {"pass": True, "statistic": "agreement"}}
    metrics = {"model": str(tmp_path / "exp"), "method": "export", "config": {"model": "textattack/bert-base-uncased-SST-2"},
               "eval": {"source": str(tmp_path / "dev.tsv"), "n": 5},
               "export": {"variants": {"onnx-int8-dynamic": variant}, "recommended": "onnx-int8-dynamic",
                          "recommended_by": "fastest passing", "min_agreement": 0.99}}
    card = export_card(metrics)
    front = _front(card)
    _hub_accepts(card)
    assert front["tags"] == ["protege", "onnx", "int8"] and front["base_model"] == "textattack/bert-base-uncased-SST-2"
    assert front["model-index"][0]["results"][0]["metrics"][0] == {"type": "accuracy", "value": 0.88, "name": "accuracy"}
    assert str(tmp_path) not in card


def test_portable_paths_and_hub_ids(tmp_path):
    base = tmp_path / "runs"
    assert portable_path(str(base / "a" / "b"), base) == "a/b"
    assert portable_path(str(tmp_path / "data" / "x.tsv"), base) == "x.tsv"  # outside the output's parent: its name
    assert portable_path("runs/teacher", base) == "runs/teacher" and portable_path("org/model", base) == "org/model"
    view = card_view({"model": str(base / "s"), "teacher": {"model": f"ensemble({base}/t1, {tmp_path}/t2)"},
                      "note": "http://127.0.0.1:8000/predict and p50/p95"})
    assert view["teacher"]["model"] == "ensemble(t1, t2)" and view["note"] == "http://127.0.0.1:8000/predict and p50/p95"
    assert card_view(view) is view
    assert hub_id("bert-base-uncased") and hub_id("org/name")
    for local in (str(tmp_path), "train.tsv", "../x", "a/b/c", "model.safetensors"):
        assert hub_id(local) is None, local


def test_unused_settings_of_the_configs():
    from protege.objectives.configs import ClmLosses, TaskLosses
    from protege.recipes.distill.config import build_distill_config
    from protege.utils.config import unused_settings

    assert {"alpha_ce", "hidden_loss", "hidden_projection", "layer_map"} <= unused_settings(TaskLosses())
    assert {"temperature", "hidden_loss"}.isdisjoint(unused_settings(TaskLosses(alpha_kd=1.0, alpha_hidden=1.0)))
    assert "temperature" in unused_settings(TaskLosses(alpha_kd=0.0, alpha_ce=1.0))
    assert "jsd_beta" in unused_settings(ClmLosses()) and "jsd_beta" not in unused_settings(ClmLosses(lm_loss="jsd"))
    cfg = build_distill_config({"teacher": "t", "train": "x.tsv", "out": "o", "max_steps": 5, "alpha_ce": 0.5})
    unused = unused_settings(cfg)
    assert {"ensemble", "epochs", "out", "alpha_mse", "hidden_loss"} <= unused and "alpha_ce" not in unused
    assert "lr" not in unused and "temperature" not in unused


def test_front_matter_always_parses():
    lines = front_matter({"model": "x: y", "method": "distill", "eval": {"source": "a: b # c", "metrics": {"accuracy": 1}}},
                         library="transformers", pipeline_tag="text-classification", results={"accuracy": 1})
    assert lines[0] == lines[-1] == "---"
    meta = yaml.safe_load("\n".join(lines[1:-1]))
    assert meta["model-index"][0]["name"] == "x: y" and meta["model-index"][0]["results"][0]["dataset"]["name"] == "a: b # c"
