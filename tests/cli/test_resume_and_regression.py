"""CLI-level resume after an interruption, and a sentence-pair regression teacher end to end."""

import json
import random

import torch
from safetensors.torch import load_file

from protege.cli.main import main

from helpers import NEUTRAL, POSITIVE, interrupt_on_call

ARGS = ["--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "8", "--max-steps", "8",
        "--checkpoint-every", "3", "--lr", "1e-3", "--seed", "3"]


def test_interrupted_distill_resumes_to_the_same_weights(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch, capsys):
    import protege.objectives.task as objectives

    base = ["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"),
            "--student-layers", "1,3", "--alpha-hidden", "1", *ARGS]
    assert main(base + ["--out", str(tmp_path / "straight")]) == 0

    real = objectives.distillation_losses
    monkeypatch.setattr(objectives, "distillation_losses", interrupt_on_call(real, 5))
    out = tmp_path / "resumed"
    assert main(base + ["--out", str(out)]) == 130
    assert "--resume" in capsys.readouterr().err
    assert not out.exists() and (tmp_path / ".resumed.partial" / "checkpoints" / "latest").exists()
    monkeypatch.setattr(objectives, "distillation_losses", real)
    assert main(base + ["--out", str(out), "--resume"]) == 0
    a = load_file(tmp_path / "straight" / "model.safetensors")
    b = load_file(out / "model.safetensors")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert json.loads((out / "metrics.json").read_text())["training"]["steps"] == 8


def _pairs(n, seed):
    """Score = 1.5 x the number of positive words in the second text (0 to 3), plus 0.25."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        k = rng.randint(0, 3)
        a = rng.sample(NEUTRAL, 4)
        b = rng.sample(NEUTRAL, 4) + rng.sample(POSITIVE, k)
        rng.shuffle(b)
        rows.append((" ".join(a), " ".join(b), 1.5 * k + 0.25))
    return rows


def test_pair_regression_teacher_through_every_verb(tmp_path, capsys):
    from transformers import BertModel

    from helpers import build_tokenizer, tiny_bert_config

    backbone = tmp_path / "backbone"
    tok = build_tokenizer(backbone)
    torch.manual_seed(0)
    BertModel(tiny_bert_config(len(tok))).save_pretrained(backbone)
    for name, n, seed in (("train", 160, 1), ("dev", 40, 2)):
        (tmp_path / f"{name}.tsv").write_text("sentence1\tsentence2\tlabel\n" + "".join(f"{a}\t{b}\t{y}\n" for a, b, y in _pairs(n, seed)))
    fast = ["--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "16", "--lr", "1e-3"]
    assert main(["finetune", "--model", str(backbone), "--train", str(tmp_path / "train.tsv"), "--eval", str(tmp_path / "dev.tsv"),
                 "--out", str(tmp_path / "teacher"), "--epochs", "12", *fast]) == 0
    teacher = json.loads((tmp_path / "teacher" / "metrics.json").read_text())
    assert teacher["problem_type"] == "regression"
    assert teacher["eval"]["metrics"]["pearson"] > 0.5  # overlap of the two texts is learnable
    assert main(["distill", "--teacher", str(tmp_path / "teacher"), "--train", str(tmp_path / "train.tsv"),
                 "--eval", str(tmp_path / "dev.tsv"), "--student-layers", "first:2", "--out", str(tmp_path / "student"),
                 "--epochs", "5", "--alpha-ce", "1", *fast]) == 0
    student = json.loads((tmp_path / "student" / "metrics.json").read_text())
    assert {"pearson", "spearman", "mse"} <= set(student["eval"]["metrics"])
    assert {"pearson_to_teacher", "mse_to_teacher"} <= set(student["eval"]["agreement"])
    assert student["eval"]["agreement"]["pearson_to_teacher"] > 0.5
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path / "student"), "--eval", str(tmp_path / "dev.tsv"), "--compare", str(tmp_path / "teacher"),
                 "--no-speed"]) == 0
    assert "pearson" in capsys.readouterr().out
