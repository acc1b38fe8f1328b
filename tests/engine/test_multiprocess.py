"""Data-parallel training under ``accelerate launch``: 2 CPU processes (gloo) match one process."""

import json
import os
import subprocess
import sys

import torch
from safetensors.torch import load_file
from transformers import BertForSequenceClassification

from protege.cli.main import main

from helpers import build_tokenizer, tiny_bert_config


def test_two_processes_match_one_with_the_same_global_batch(tiny_data_dir, tmp_path):
    teacher = tmp_path / "teacher"
    tok = build_tokenizer(teacher)
    torch.manual_seed(0)  # no dropout, so both runs see the same computation
    BertForSequenceClassification(tiny_bert_config(len(tok), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).save_pretrained(teacher)
    args = ["distill", "--teacher", str(teacher), "--train", str(tiny_data_dir / "train.tsv"), "--student-layers", "0,2",
            "--alpha-ce", "1", "--max-steps", "6", "--batch-size", "16", "--max-length", "32", "--no-progress", "--no-speed",
            "--log-every", "1", "--lr", "1e-3", "--cache-teacher", str(tmp_path / "cache"), "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    # `--cpu --num_processes 2` would start one process (Accelerate wants mpirun for several CPU processes); the
    # multi-GPU launcher is torchrun, and with no visible GPU the processes use gloo on the CPU
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_FSDP")}
    run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                          "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "0", "-m", "protege", *args,
                          "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=240, env=env | {"CUDA_VISIBLE_DEVICES": ""})
    assert run.returncode == 0, run.stderr[-2000:]
    assert "FSDP2" not in run.stderr  # plain data parallelism: every process holds the whole student
    one = [json.loads(x)["loss"] for x in (tmp_path / "one" / "train_log.jsonl").read_text().splitlines()]
    two = [json.loads(x)["loss"] for x in (tmp_path / "two" / "train_log.jsonl").read_text().splitlines()]
    assert len(one) == len(two) == 6
    # Stated tolerance: per-step losses within 1e-5, weights within 1e-6 (only the all-reduce's summation order differs).
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-5
    a, b = load_file(tmp_path / "one" / "model.safetensors"), load_file(tmp_path / "two" / "model.safetensors")
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    # written once, by the main process: one output folder, one cache, no leftovers
    assert len(list((tmp_path / "cache").iterdir())) == 1
    assert not list(tmp_path.glob(".two*"))
