"""A collapsed model (one class, MCC 0, a constant score, NaN) is said to be one: in metrics.json, the card, the exit status."""

import json

import numpy as np
import pytest

from protege.cli.main import main
from protege.engine.finish import SCHEMA_PATH
from protege.evaluation import find_degenerate
from protege.evaluation.metrics import task_metrics
from protege.evaluation.report import format_report, model_card

C = "single_label_classification"
LABELS = np.array([0, 1] * 10)


def logits_for(classes):
    """Logits (N, 2) whose argmax is ``classes``."""
    return np.eye(2)[np.asarray(classes)] * 3.0


def finding(predictions, labels=LABELS, problem_type=C):
    return find_degenerate(problem_type, predictions=predictions, labels=labels,
                           metrics=task_metrics(predictions, labels, problem_type) if labels is not None else None)


def test_one_predicted_class_is_degenerate_even_with_a_fine_accuracy():
    labels = np.array([0] * 18 + [1] * 2)  # 90% accuracy for a model that only says 0
    found = finding(logits_for([0] * 20), labels)
    assert found["found"] and found["predicted_classes"] == 1 and found["classes"] == 2
    assert found["reasons"] == ["it predicts one class (class 0 of 2) for all 20 examples (MCC 0.000)"]


def test_a_model_that_learned_is_not_degenerate():
    good = finding(logits_for(LABELS))
    assert good == {"found": False, "reasons": [], "predicted_classes": 2, "classes": 2}
    wrong_sometimes = finding(logits_for(np.where(np.arange(20) < 3, 1 - LABELS, LABELS)))
    assert not wrong_sometimes["found"]


def test_mcc_near_zero_with_both_classes_predicted_is_degenerate():
    chance = finding(logits_for([0, 0, 1, 1] * 5))  # right half the time on both classes: MCC 0
    assert chance["found"] and chance["reasons"][0].startswith("its MCC is 0.000")


def test_one_class_is_fine_when_the_gold_labels_hold_one_class_too():
    assert not find_degenerate(C, predictions=logits_for([1] * 12), labels=np.ones(12, dtype=int))["found"]
    assert not find_degenerate(C, predictions=logits_for([1] * 5))["found"]  # unlabeled, too few to tell
    assert find_degenerate(C, predictions=logits_for([1] * 50))["found"]  # unlabeled, many examples


def test_nan_outputs_and_nan_metrics():
    p = logits_for(LABELS)
    p[3] = np.nan
    assert any("NaN or infinite on 5% of the examples" in r for r in find_degenerate(C, predictions=p, labels=LABELS)["reasons"])
    metrics_only = find_degenerate("regression", metrics={"pearson": float("nan"), "mse": 0.3})
    assert metrics_only["found"] and metrics_only["reasons"] == ["its pearson is NaN"]


def test_regression_constant_output_is_degenerate_but_a_varied_one_is_not():
    y = np.linspace(0.0, 5.0, 30)
    assert finding(np.full(30, 2.5), y, "regression")["reasons"] == ["its output is constant (2.5 for all 30 examples)"]
    assert finding(2.5 + 1e-6 * np.arange(30), y, "regression")["found"]  # spread far below the labels'
    assert not finding(y + np.sin(y), y, "regression")["found"]


def test_multi_label_one_label_set_for_every_example():
    y = np.array([[1, 0, 1], [0, 1, 0]] * 6)
    same = find_degenerate("multi_label_classification", predictions=np.tile([2.0, -1.0, 3.0], (12, 1)), labels=y)
    assert same["reasons"] == ["it predicts the same label set (0, 2) for all 12 examples"]
    assert not find_degenerate("multi_label_classification", predictions=np.where(y > 0, 2.0, -2.0), labels=y)["found"]


def test_the_card_and_the_report_say_so_instead_of_keeps_x_percent():
    metrics = {"model": "out/student", "problem_type": C, "method": "distill",
               "eval": {"source": "dev.tsv", "n": 20, "metrics": {"accuracy": 0.884, "f1": 0.0, "mcc": 0.0}},
               "teacher": {"model": "out/teacher", "eval": {"metrics": {"accuracy": 1.0, "f1": 1.0, "mcc": 1.0}}},
               "degenerate": finding(logits_for([0] * 20))}
    card = model_card(metrics)
    assert "of the teacher's accuracy" not in card
    assert "**Warning: this model is degenerate.** It predicts one class (class 0 of 2)" in card
    assert "DEGENERATE: it predicts one class" in format_report(metrics)
    healthy = {**metrics, "degenerate": {"found": False, "reasons": []}}
    assert "keeps 88.4% of the teacher's accuracy" in model_card(healthy) and "DEGENERATE" not in format_report(healthy)


# --- the exit status through the CLI ---------------------------------------------------------------

@pytest.fixture(scope="module")
def one_class(tmp_path_factory, tiny_teacher_dir):
    """The tiny teacher with its head biased so far toward class 0 that it predicts nothing else."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = tmp_path_factory.mktemp("one-class")
    model = AutoModelForSequenceClassification.from_pretrained(tiny_teacher_dir)
    with torch.no_grad():
        model.classifier.bias.copy_(torch.tensor([100.0, -100.0]))
    model.save_pretrained(folder)
    AutoTokenizer.from_pretrained(tiny_teacher_dir).save_pretrained(folder)
    return folder


def test_evaluate_warns_about_a_one_class_student_and_strict_exits_1(one_class, tiny_teacher_dir, tiny_data_dir, tmp_path,
                                                                     capsys):
    import jsonschema

    out = tmp_path / "m.json"
    argv = ["evaluate", str(one_class), "--eval", str(tiny_data_dir / "dev.tsv"), "--compare", str(tiny_teacher_dir),
            "--no-speed", "--out", str(out)]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"protege: warning: {one_class} is degenerate: it predicts one class (class 0 of 2) for all 48 examples "
        "(MCC 0.000) (--strict makes this exit 1)"]
    assert "DEGENERATE: it predicts one class" in captured.out
    metrics = json.loads(out.read_text())
    jsonschema.validate(metrics, json.loads(SCHEMA_PATH.read_text()))
    assert metrics["degenerate"]["found"] and metrics["degenerate"]["predicted_classes"] == 1

    assert main([*argv, "--strict"]) == 1
    assert capsys.readouterr().err.strip().endswith("(--strict: exit 1)")


def test_a_training_verb_records_it_in_metrics_json_and_the_card_and_strict_exits_1(one_class, tiny_data_dir, tmp_path,
                                                                                    capsys):
    argv = ["prune", str(one_class), "--method", "magnitude", "--sparsity", "0.1", "--eval", str(tiny_data_dir / "dev.tsv"),
            "--no-progress", "--no-speed", "--max-length", "32"]
    assert main([*argv, "--out", str(tmp_path / "p"), "--strict"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert [line for line in err if "degenerate" in line] == [
        f"protege: warning: {tmp_path / 'p'} is degenerate: it predicts one class (class 0 of 2) for all 48 examples "
        "(MCC 0.000) (--strict: exit 1)"]
    metrics = json.loads((tmp_path / "p" / "metrics.json").read_text())  # the run itself finished: its files are there
    assert metrics["degenerate"]["found"] and metrics["config"]["strict"] is True
    card = (tmp_path / "p" / "README.md").read_text()
    assert "**Warning: this model is degenerate.**" in card and "of the teacher's accuracy" not in card

    assert main([*argv, "--out", str(tmp_path / "q")]) == 0  # without --strict: the warning, exit 0


@pytest.mark.parametrize("config", ["FinetuneConfig", "DistillConfig", "PruneConfig", "ExtractConfig", "CompressConfig",
                                    "EvaluateConfig"])
def test_every_verb_that_measures_a_model_has_strict(config):
    import dataclasses

    import protege.recipes.compress
    import protege.recipes.distill.config
    import protege.recipes.evaluate
    import protege.recipes.extract
    import protege.recipes.finetune
    import protege.recipes.prune

    modules = [protege.recipes.compress, protege.recipes.distill.config, protege.recipes.evaluate, protege.recipes.extract,
               protege.recipes.finetune, protege.recipes.prune]
    cls = next(getattr(m, config) for m in modules if hasattr(m, config))
    field = {f.name: f for f in dataclasses.fields(cls)}["strict"]
    assert field.default is False and "degenerate" in field.metadata["help"]
