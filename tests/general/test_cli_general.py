"""``protege distill --objective mlm|tinybert|embedding|clm`` and ``protege evaluate --sts/--eval-text`` end to end."""

import json

import pytest
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM

from protege.cli.main import main

FAST = ["--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "8", "--lr", "2e-3", "--max-steps", "4"]
FILES = {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md", "protege_config.json", "train_log.jsonl"}


def _run(capsys, argv):
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _common(out, metrics):
    files = {p.name for p in out.iterdir()}
    assert FILES <= files and not {"checkpoints", "best.pt"} & files
    assert not (out.parent / f".{out.name}.partial").exists()
    assert metrics["teacher"]["size"]["parameters"] > metrics["size"]["parameters"] > 0
    if "speed" in metrics:  # measured in one test only (it dominates the runtime of tiny models)
        assert metrics["speed"]["latency_ms_p50"] > 0 and metrics["teacher"]["speed"]["latency_ms_p50"] > 0
        assert metrics["ratios"]["speedup_batch1"] > 0
    assert metrics["training"]["steps"] == 4
    return files


def test_mlm(general_dir, tmp_path, capsys):
    out = tmp_path / "mlm"
    printed = _run(capsys, ["distill", "--objective", "mlm", "--teacher", str(general_dir / "bert-mlm"), "--train-text",
                            str(general_dir / "corpus.txt"), "--student-layers", "every-other", "--out", str(out), *FAST,
                            "--speed", "--speed-seconds", "0.1"])
    metrics = json.loads((out / "metrics.json").read_text())
    _common(out, metrics)
    assert "speed" in metrics and "x faster" in printed
    assert AutoModelForMaskedLM.from_pretrained(out).config.num_hidden_layers == 2
    assert metrics["objective"] == "mlm" and metrics["student"]["layer_map"] == [0, 2]
    assert metrics["config"]["mlm_probability"] == 0.15 and metrics["config"]["mask_smoothing"] == 0.7
    agreement = metrics["eval"]["agreement"]["agreement"]
    assert 0 <= agreement <= 1 and f"{agreement:.4f}" in printed
    assert metrics["eval"]["metrics"]["perplexity"] > 1 and metrics["teacher"]["eval"]["metrics"]["perplexity"] > 1
    assert "fill-mask" in (out / "README.md").read_text()


def test_tinybert(general_dir, tmp_path, capsys):
    out = tmp_path / "tb"
    _run(capsys, ["distill", "--objective", "tinybert", "--teacher", str(general_dir / "bert-mlm"), "--train-text",
                  str(general_dir / "corpus.txt"), "--student-hidden", "16", "--student-num-layers", "2", "--out", str(out), *FAST])
    metrics = json.loads((out / "metrics.json").read_text())
    _common(out, metrics)
    model = AutoModel.from_pretrained(out)
    assert (model.config.hidden_size, model.config.num_hidden_layers) == (16, 2)
    assert metrics["eval"]["metrics"]["hidden_mse"] > 0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"attn", "hidden", "embed", "loss"} <= set(log[0])


@pytest.mark.parametrize("source", ["text", "random"])
def test_embedding_and_evaluate_sts(general_dir, tmp_path, capsys, source):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "emb"
    text = ["--train-text", str(general_dir / "corpus.txt")] if source == "text" else ["--random-text", "120"]
    printed = _run(capsys, ["distill", "--objective", "embedding", "--teacher", str(general_dir / "st"), *text, "--student-layers",
                            "0,2", "--sts", str(general_dir / "sts.tsv"), "--probe-train", str(general_dir / "probe_train.tsv"),
                            "--probe-eval", str(general_dir / "probe_dev.tsv"), "--out", str(out), *FAST])
    metrics = json.loads((out / "metrics.json").read_text())
    files = _common(out, metrics)
    assert {"modules.json", "1_Pooling", "sentence_bert_config.json"} <= files
    assert SentenceTransformer(str(out), device="cpu").encode(["good movie"]).shape == (1, 32)
    s, t = metrics["eval"]["metrics"], metrics["teacher"]["eval"]["metrics"]
    assert -1 <= s["spearman"] <= 1 and -1 <= t["spearman"] <= 1 and 0 <= s["accuracy"] <= 1
    assert f"{s['spearman']:.4f}" in printed and f"{t['spearman']:.4f}" in printed
    assert ("random word sequences" in metrics["training"]["transfer_text"]) == (source == "random")
    report = tmp_path / "r.json"
    printed = _run(capsys, ["evaluate", str(out), "--sts", str(general_dir / "sts.tsv"), "--compare", str(general_dir / "st"),
                            "--eval-text", str(general_dir / "heldout.txt"), "--no-speed", "--out", str(report)])
    again = json.loads(report.read_text())
    assert again["eval"]["metrics"]["spearman"] == pytest.approx(s["spearman"], abs=1e-5)
    assert again["teacher"]["eval"]["metrics"]["spearman"] == pytest.approx(t["spearman"], abs=1e-5)
    assert "STS spearman" in printed and "x smaller" in printed and "cosine to teacher" in printed
    assert 0 < again["eval"]["agreement"]["cosine_to_teacher"] <= 1


def test_clm_and_evaluate_eval_text(general_dir, tmp_path, capsys):
    out = tmp_path / "clm"
    _run(capsys, ["distill", "--objective", "clm", "--teacher", str(general_dir / "gpt2"), "--train-text", str(general_dir / "corpus.txt"),
                  "--eval-text", str(general_dir / "heldout.txt"), "--student-layers", "every-other", "--lm-loss", "jsd",
                  "--top-k", "16", "--out", str(out), *FAST])
    metrics = json.loads((out / "metrics.json").read_text())
    _common(out, metrics)
    assert AutoModelForCausalLM.from_pretrained(out).config.num_hidden_layers == 2
    ppl, teacher_ppl = metrics["eval"]["metrics"]["perplexity"], metrics["teacher"]["eval"]["metrics"]["perplexity"]
    assert ppl > 1 and teacher_ppl > 1 and str(general_dir / "heldout.txt") in metrics["eval"]["source"]
    report = tmp_path / "r.json"
    printed = _run(capsys, ["evaluate", str(out), "--eval-text", str(general_dir / "heldout.txt"), "--compare", str(general_dir / "gpt2"),
                            "--max-length", "32", "--no-speed", "--out", str(report)])
    again = json.loads(report.read_text())
    assert again["eval"]["metrics"]["perplexity"] == pytest.approx(ppl, rel=1e-4)
    assert again["teacher"]["eval"]["metrics"]["perplexity"] == pytest.approx(teacher_ppl, rel=1e-4)
    assert again["eval"]["agreement"]["kl"] == pytest.approx(metrics["eval"]["agreement"]["kl"], rel=1e-3)
    assert "perplexity" in printed and "KL to teacher" in printed and "next-token accuracy" in printed


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("protege: error: "), err
    return err[0]


@pytest.mark.parametrize("args, needle", [
    (["--objective", "mlm", "--teacher", "{bert-encoder}"], "not a masked language model"),
    (["--objective", "clm", "--teacher", "{bert-mlm}"], "not a causal language model"),
    (["--objective", "embedding", "--teacher", "{bert-encoder}"], "not a local sentence-transformers folder"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--train-text", "{missing.txt}"], "no such file"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--train-text", "{empty.txt}"], "no text"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--train-text", None], "needs its transfer text"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--train-text", "{short.txt}"], "too short"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--eval-text", "{short.txt}"], "too short"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--random-text", "10", "--train-text", "{corpus.txt}"], "either --train-text"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--max-length", "128"], "exceeds the teacher's 64 positions"),
    (["--objective", "mlm", "--teacher", "{roberta-mlm}", "--max-length", "72"], "exceeds the teacher's 71 positions"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--train", "{corpus.txt}"], "instead of --train"),
    (["--objective", "bert", "--teacher", "{bert-mlm}"], "--objective must be one of"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--alpha-ce", "1"], "does not apply to --objective mlm"),
    (["--objective", "mlm", "--teacher", "{bert-mlm}", "--mlm-probability", "1.5"], "--mlm-probability"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--lm-loss", "tvd"], "--lm-loss"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--jsd-beta", "1"], "--jsd-beta"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--top-k", "0"], "--top-k"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--top-k", "100000"], "exceeds the vocabulary"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--alpha-kd", "0"], "every loss weight"),
    (["--objective", "clm", "--teacher", "{gpt2}", "--sts", "{sts.tsv}"], "--objective embedding"),
    (["--objective", "embedding", "--teacher", "{st}", "--sts", "{corpus.txt}"], "unsupported file type"),
    (["--objective", "embedding", "--teacher", "{st}", "--probe-train", "{probe_train.tsv}"], "both --probe-train and --probe-eval"),
    (["--objective", "tinybert", "--teacher", "{bert-mlm}", "--student-hidden", "16", "--no-hidden-projection"], "projection"),
    (["--objective", "tinybert", "--teacher", "{bert-mlm}", "--student-layers", "0,1", "--layer-map", "1,2,3"], "--layer-map"),
    (["--teacher", "{bert-mlm}", "--train-text", "{corpus.txt}"], "is for general distillation"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(general_dir, tmp_path, capsys, args, needle):
    (tmp_path / "empty.txt").write_text("\n\n")
    (tmp_path / "short.txt").write_text("the cat\n")  # two tokens: not one packed sequence of --max-length 32
    resolve = {"{missing.txt}": str(tmp_path / "missing.txt"), "{empty.txt}": str(tmp_path / "empty.txt"),
               "{short.txt}": str(tmp_path / "short.txt")}
    argv = [resolve.get(a, str(general_dir / a[1:-1]) if isinstance(a, str) and a.startswith("{") else a) for a in args]
    if "--train-text" not in args and "--random-text" not in args and "--train" not in args:
        argv += ["--train-text", str(general_dir / "corpus.txt")]
    argv = [a for a in argv if a is not None]
    if None in args:  # "no transfer text": drop the --train-text flag itself
        argv = [a for a in argv if a != "--train-text"]
    out = tmp_path / "out"
    assert main(["distill", "--max-length", "32", *argv, "--out", str(out), "--no-progress", "--max-steps", "1"]) == 2
    assert needle in _error(capsys)
    assert not out.exists() and not (tmp_path / ".out.partial").exists()


def test_evaluate_general_bad_input(general_dir, capsys):
    assert main(["evaluate", str(general_dir / "gpt2"), "--sts", str(general_dir / "sts.tsv")]) == 2
    assert "--eval-text" in _error(capsys)
    assert main(["evaluate", str(general_dir / "st"), "--eval-text", str(general_dir / "heldout.txt")]) == 2
    assert "--sts" in _error(capsys)
    assert main(["evaluate", str(general_dir / "st"), "--sts", str(general_dir / "sts.tsv"), "--compare", str(general_dir / "gpt2")]) == 2
    assert "compare a student with its own teacher" in _error(capsys)
