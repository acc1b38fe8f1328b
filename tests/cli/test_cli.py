"""End to end through ``protege.cli.main.main``: one run per verb on tiny models, files and numbers checked."""

import json

import pytest
import torch
from transformers import AutoModelForSequenceClassification, BertModel

from protege.cli.main import main

from helpers import build_tokenizer, tiny_bert_config

FAST = ["--no-progress", "--speed-seconds", "0.3", "--max-length", "32", "--batch-size", "16"]


@pytest.fixture(scope="module")
def backbone_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("backbone")
    tok = build_tokenizer(d)
    torch.manual_seed(1)
    BertModel(tiny_bert_config(len(tok))).save_pretrained(d)
    return d


@pytest.fixture(scope="module")
def teacher_run(backbone_dir, tiny_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "teacher"
    code = main(["finetune", "--model", str(backbone_dir), "--train", str(tiny_data_dir / "train_names.tsv"),
                 "--eval", str(tiny_data_dir / "dev_names.tsv"), "--out", str(out), "--epochs", "15", "--lr", "1e-3", *FAST])
    assert code == 0
    return out


def test_finetune_writes_a_loadable_classifier_with_metrics(teacher_run, capsys):
    files = {p.name for p in teacher_run.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md", "train_log.jsonl"} <= files
    assert not {"checkpoints", "best.pt"} & files
    assert not (teacher_run.parent / f".{teacher_run.name}.partial").exists()
    metrics = json.loads((teacher_run / "metrics.json").read_text())
    model = AutoModelForSequenceClassification.from_pretrained(teacher_run)
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert metrics["eval"]["metrics"]["accuracy"] >= 0.9  # the synthetic task is easy: it must be learned
    assert metrics["size"]["parameters"] == sum(p.numel() for p in model.parameters())
    assert metrics["speed"]["latency_ms_p50"] > 0
    assert "from_pretrained" in (teacher_run / "README.md").read_text()


def test_distill_keeps_layers_and_reports_against_the_teacher(teacher_run, tiny_data_dir, capsys):
    out = teacher_run.parent / "student"
    code = main(["distill", "--teacher", str(teacher_run), "--train", str(tiny_data_dir / "train.tsv"),
                 "--eval", str(tiny_data_dir / "dev.tsv"), "--student-layers", "0,2", "--out", str(out),
                 "--epochs", "4", "--lr", "1e-3", "--alpha-ce", "0.5", "--alpha-hidden", "1", *FAST])
    assert code == 0
    printed = capsys.readouterr().out
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.num_hidden_layers == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["student"]["layer_map"] == [0, 2]
    assert metrics["teacher"]["size"]["parameters"] > metrics["size"]["parameters"]
    assert metrics["ratios"]["parameter_ratio"] == pytest.approx(metrics["size"]["parameters"] / metrics["teacher"]["size"]["parameters"], rel=1e-3)
    assert 0.0 <= metrics["eval"]["agreement"]["agreement"] <= 1.0
    assert metrics["eval"]["agreement"]["agreement"] >= 0.8
    acc = metrics["eval"]["metrics"]["accuracy"]
    assert f"{acc:.4f}" in printed
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"kd", "ce", "hidden", "loss"} <= set(log[0])


def test_evaluate_compares_and_writes_json(teacher_run, tiny_data_dir, tmp_path, capsys):
    report = tmp_path / "report.json"
    code = main(["evaluate", str(teacher_run), "--eval", str(tiny_data_dir / "dev.tsv"), "--compare", str(teacher_run),
                 "--speed-seconds", "0.3", "--out", str(report)])
    assert code == 0
    metrics = json.loads(report.read_text())
    assert metrics["eval"]["agreement"]["agreement"] == 1.0
    assert metrics["eval"]["metrics"] == metrics["teacher"]["eval"]["metrics"]
    assert metrics["ratios"]["parameter_ratio"] == 1.0
    assert "agreement" in capsys.readouterr().out


def test_recipe_is_read_and_flags_override_it(teacher_run, tiny_data_dir, tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"teacher: {teacher_run}\ntrain: {tiny_data_dir / 'train.tsv'}\nstudent-layers: [0, 3]\n"
                      "max_steps: 2\ntemperature: 4.0\nspeed: false\nprogress: false\n")
    out = tmp_path / "s"
    assert main(["distill", "--config", str(recipe), "--out", str(out), "--temperature", "3"]) == 0
    config = json.loads((out / "protege_config.json").read_text())
    assert config["temperature"] == 3.0 and config["student_layers"] == "0,3" and config["max_steps"] == 2


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("protege: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


@pytest.mark.parametrize("args, needle", [
    (["--train", "missing.tsv"], "no such file"),
    (["--text-column", "txt"], "txt"),
    (["--student-layers", "0,7"], "outside 0..3"),
    (["--student-layers", "2,1"], "increasing"),
    (["--temperature", "0"], "--temperature must be > 0"),
    (["--alpha-kd", "0"], "every loss weight is 0"),
    (["--student-hidden", "16", "--alpha-hidden", "1", "--no-hidden-projection"], "projection"),
    (["--student-heads", "4", "--student-hidden", "32", "--alpha-attn", "1"], "heads"),
])
def test_bad_distill_input_fails_cleanly_before_training(args, needle, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    base = {"--teacher": str(tiny_teacher_dir), "--train": str(tiny_data_dir / "train.tsv"), "--out": str(out)}
    for flag, value in zip(args[::2], args[1::2]):
        if flag in base and not value.startswith("--"):
            base[flag] = str(tmp_path / value) if flag == "--train" else value
    rest = [a for i, a in enumerate(args) if not (a in base or (i > 0 and args[i - 1] in base))]
    argv = ["distill"] + [x for kv in base.items() for x in kv] + rest + ["--no-progress", "--max-steps", "1"]
    assert main(argv) == 2
    assert needle in _error(capsys)
    assert not out.exists()


def test_bad_data_and_models_fail_cleanly(tiny_teacher_dir, tiny_data_dir, backbone_dir, tmp_path, capsys):
    out = tmp_path / "out"
    common = ["--out", str(out), "--no-progress", "--max-steps", "1"]
    bad_label = tmp_path / "bad_label.tsv"
    bad_label.write_text("sentence\tlabel\ngood movie\tpositive\nfine film\tneutral\n")
    empty_text = tmp_path / "empty_text.tsv"
    empty_text.write_text("sentence\tlabel\ngood movie\t1\n   \t0\n")
    empty_file = tmp_path / "empty.tsv"
    empty_file.write_text("")
    cases = [
        (["distill", "--teacher", str(tiny_teacher_dir), "--train", str(bad_label), "--alpha-ce", "1"], "neutral"),
        (["distill", "--teacher", str(tiny_teacher_dir), "--train", str(empty_text)], "row 2"),
        (["distill", "--teacher", str(tiny_teacher_dir), "--train", str(empty_file)], "empty"),
        (["distill", "--teacher", str(backbone_dir), "--train", str(tiny_data_dir / "train.tsv")], "not a sequence classifier"),
        (["distill", "--teacher", str(tmp_path / "no" / "teacher"), "--train", str(tiny_data_dir / "train.tsv")], "no such model folder"),
        (["finetune", "--model", str(backbone_dir), "--train", str(tiny_data_dir / "train.tsv"), "--label-column", "y"], "'y'"),
        (["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"), "--batch-size", "0"], "--batch-size"),
    ]
    for argv, needle in cases:
        assert main(argv + common) == 2, argv
        assert needle in _error(capsys), argv
        assert not out.exists()


def test_existing_output_needs_overwrite(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    argv = ["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"), "--out", str(out),
            "--max-steps", "1", "--no-progress", "--no-speed"]
    assert main(argv) == 2
    assert "--overwrite" in _error(capsys)
    assert (out / "keep.txt").read_text() == "mine"
    assert main(argv + ["--overwrite"]) == 0
    assert (out / "config.json").exists() and not (out / "keep.txt").exists()


def test_help_and_unknown_verb_exit_codes(capsys):
    assert main(["--help"]) == 0
    assert "distill" in capsys.readouterr().out
    assert main(["nonsense"]) == 2
    assert main([]) == 2
