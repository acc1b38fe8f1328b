"""Each general objective trains its student towards the teacher (tiny random models, a few dozen steps)."""

import json

import numpy as np
import pytest
import torch
from transformers import BertConfig, BertModel

import protege
from protege.data.text import pack_sequences, read_lines, tokenize_lines
from protege.models.loading import load_lm_tokenizer
from protege.evaluation.lm import lm_scores
from protege.models import keep_layers
from protege.models.families import load_model

from helpers import build_tokenizer

QUIET = dict(progress=False, speed=False, max_length=32, batch_size=8, log_every=1)


def _log(out):
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]


def _early_late(log, key="loss", n=5):
    values = [r[key] for r in log]
    return float(np.mean(values[:n])), float(np.mean(values[-n:]))


@pytest.mark.parametrize("teacher", ["gpt2", "llama"])
def test_causal_lm_student_gets_closer_to_the_teacher_on_held_out_text(general_dir, tmp_path, teacher):
    folder = general_dir / teacher
    tok = load_lm_tokenizer(str(folder))
    model = load_model(str(folder), "clm")
    held = pack_sequences(tokenize_lines(read_lines(str(general_dir / "heldout.txt")), tok), tok, max_length=32)
    before = lm_scores(keep_layers(model, [0, 2]), held, kind="clm", pad_token_id=tok.pad_token_id, teacher=model)
    metrics = protege.distill(objective="clm", teacher=str(folder), train_text=str(general_dir / "corpus.txt"),
                              eval_text=str(general_dir / "heldout.txt"), student_layers="every-other", out=str(tmp_path / "s"),
                              max_steps=25, lr=5e-3, temperature=1.0, **QUIET)
    after = metrics["eval"]["agreement"]["kl"]
    assert after < 0.7 * before["agreement"]["kl"]
    assert metrics["teacher"]["eval"]["metrics"]["perplexity"] == pytest.approx(before["teacher"]["perplexity"], rel=1e-4)
    assert metrics["eval"]["metrics"]["perplexity"] > 1


@pytest.mark.parametrize("lm_loss, extra", [("reverse_kl", {}), ("jsd", {"top_k": 8}), ("forward_kl", {"alpha_lm": 0.5})])
def test_other_token_divergences_train(general_dir, tmp_path, lm_loss, extra):
    out = tmp_path / "s"
    protege.distill(objective="clm", teacher=str(general_dir / "gpt2"), train_text=str(general_dir / "corpus.txt"),
                    student_num_layers=2, student_hidden=16, out=str(out), max_steps=20, lr=3e-3, lm_loss=lm_loss, **extra, **QUIET)
    log = _log(out)
    early, late = _early_late(log, "loss" if "alpha_lm" in extra else "kd")
    assert late < early
    assert ("lm" in log[0]) == ("alpha_lm" in extra)


@pytest.mark.parametrize("teacher", ["bert-mlm", "roberta-mlm"])
def test_masked_lm_triple_loss_goes_down(general_dir, tmp_path, teacher):
    out = tmp_path / "s"
    metrics = protege.distill(objective="mlm", teacher=str(general_dir / teacher), train_text=str(general_dir / "corpus.txt"),
                              student_layers="0,2", out=str(out), max_steps=40, lr=3e-3, **QUIET)
    log = _log(out)
    assert {"kd", "lm", "cos", "loss"} <= set(log[0])
    early, late = _early_late(log)
    assert late < early
    assert 0 <= metrics["eval"]["agreement"]["agreement"] <= 1


def test_narrower_student_trains_with_projections(general_dir, tmp_path):
    out = tmp_path / "s"
    metrics = protege.distill(objective="tinybert", teacher=str(general_dir / "bert-mlm"), train_text=str(general_dir / "corpus.txt"),
                              student_num_layers=2, student_hidden=16, out=str(out), max_steps=40, lr=3e-3, **QUIET)
    early, late = _early_late(_log(out))
    assert late < 0.8 * early
    student = BertModel.from_pretrained(out)
    assert student.config.hidden_size == 16 and student.config.num_hidden_layers == 2
    assert metrics["student"]["layer_map"] == [1, 3]
    assert set(metrics["eval"]["metrics"]) == {"embed_mse", "hidden_mse", "attn_mse"}


def test_hidden_256_student_from_a_384_wide_teacher(tmp_path):
    tok = build_tokenizer(tmp_path / "tok")
    torch.manual_seed(0)
    teacher = BertModel(BertConfig(vocab_size=len(tok), hidden_size=384, num_hidden_layers=2, num_attention_heads=12,
                                   intermediate_size=64, max_position_embeddings=64))
    teacher.save_pretrained(tmp_path / "t")
    tok.save_pretrained(tmp_path / "t")
    (tmp_path / "c.txt").write_text("the movie was good\na very dull plot and a bad actor\n" * 8)
    out = tmp_path / "s"
    metrics = protege.distill(objective="tinybert", teacher=str(tmp_path / "t"), train_text=str(tmp_path / "c.txt"),
                              student_hidden=256, student_num_layers=2, student_ffn_size=64, out=str(out), max_steps=6, lr=1e-3,
                              **QUIET)
    student = BertModel.from_pretrained(out)
    assert (student.config.hidden_size, student.config.num_attention_heads) == (256, 8)
    early, late = _early_late(_log(out), n=2)
    assert np.isfinite(late) and late < early
    assert "attention averaged over heads" not in json.dumps(metrics["config"])  # a log note, not a setting


def test_embedding_student_narrower_than_the_teacher_gets_a_dense_layer(general_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "s"
    metrics = protege.distill(objective="embedding", teacher=str(general_dir / "st"), train_text=str(general_dir / "corpus.txt"),
                              student_num_layers=2, student_hidden=16, alpha_mse=10.0, out=str(out), max_steps=40, lr=3e-3, **QUIET)
    early, late = _early_late(_log(out))
    assert late < early
    assert (out / "2_Dense" / "config.json").exists()
    model = SentenceTransformer(str(out), device="cpu")
    emb = model.encode(["the movie was good", "a dull plot"])
    assert emb.shape == (2, 32)  # the teacher's dimension, through the Dense layer
    assert np.allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)
    assert 0 < metrics["eval"]["agreement"]["cosine_to_teacher"] <= 1


def test_two_stage_recipes_run_general_then_task(general_dir, tiny_data_dir, tmp_path):
    """The shipped two-stage recipes, with paths and sizes overridden by flags: general MLM, then task distillation."""
    from pathlib import Path

    from transformers import AutoModelForSequenceClassification

    from protege.cli.main import main

    recipes = Path(__file__).resolve().parents[2] / "recipes"
    quick = ["--max-steps", "3", "--max-length", "32", "--batch-size", "8", "--no-progress", "--no-speed"]
    general = tmp_path / "general"
    assert main(["distill", "--config", str(recipes / "two-stage-1-general-mlm.yaml"), "--teacher", str(general_dir / "bert-mlm"),
                 "--train-text", str(general_dir / "corpus.txt"), "--out", str(general), *quick]) == 0
    teacher = tmp_path / "teacher"
    protege.finetune(model=str(general_dir / "bert-mlm"), train=str(tiny_data_dir / "train.tsv"), out=str(teacher),
                     max_steps=3, **QUIET)
    task = tmp_path / "task"
    assert main(["distill", "--config", str(recipes / "two-stage-2-task.yaml"), "--teacher", str(teacher), "--student", str(general),
                 "--train", str(tiny_data_dir / "train.tsv"), "--eval", str(tiny_data_dir / "dev.tsv"), "--out", str(task), *quick]) == 0
    assert AutoModelForSequenceClassification.from_pretrained(task).config.num_hidden_layers == 2
    metrics = json.loads((task / "metrics.json").read_text())
    assert "accuracy" in metrics["eval"]["metrics"] and metrics["student"]["kind"] == "pretrained"
    assert json.loads((general / "metrics.json").read_text())["config"]["alpha_lm"] == 0.4


def test_interrupted_mlm_run_resumes_to_the_same_weights(general_dir, tmp_path, monkeypatch, capsys):
    """Dynamic masking draws from the global RNG, which checkpoints restore: a resumed run equals a straight one."""
    from safetensors.torch import load_file

    from protege.cli.main import main
    from protege.objectives.mlm import MaskedLMObjective

    base = ["distill", "--objective", "mlm", "--teacher", str(general_dir / "bert-mlm"), "--train-text", str(general_dir / "corpus.txt"),
            "--student-layers", "0,2", "--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "8", "--max-steps", "6",
            "--checkpoint-every", "2", "--seed", "3"]
    assert main(base + ["--out", str(tmp_path / "straight")]) == 0
    real, calls = MaskedLMObjective.loss, {"n": 0}

    def interrupting(self, student, batch):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, student, batch)

    monkeypatch.setattr(MaskedLMObjective, "loss", interrupting)
    out = tmp_path / "resumed"
    assert main(base + ["--out", str(out)]) == 130
    assert not out.exists()
    monkeypatch.setattr(MaskedLMObjective, "loss", real)
    assert main(base + ["--out", str(out), "--resume"]) == 0
    a, b = load_file(tmp_path / "straight" / "model.safetensors"), load_file(out / "model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
