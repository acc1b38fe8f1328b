"""FSDP2 student sharding: 2 CPU processes (gloo) match one process, and resume works sharded.

The second test launches this file under ``torch.distributed.run``; ``_resume_worker`` is what
each process runs.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification, BertForSequenceClassification, BertModel

from protege.cli.main import main

from helpers import build_tokenizer, make_sentences, tiny_bert_config

ROOT = Path(__file__).resolve().parents[2]


def _env():
    # CPU and gloo on any machine (a GPU box would pick NCCL, and two processes cannot share one GPU)
    env = {k: v for k, v in os.environ.items() if k not in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "ACCELERATE_USE_FSDP")}
    return env | {"CUDA_VISIBLE_DEVICES": ""}


def test_fsdp_config_shards_the_student_and_matches_one_process(tiny_data_dir, tmp_path):
    teacher = tmp_path / "teacher"
    tok = build_tokenizer(teacher)
    torch.manual_seed(0)  # no dropout, so both runs see the same computation
    BertForSequenceClassification(tiny_bert_config(len(tok), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).save_pretrained(teacher)
    # per-example losses only (a per-token mean, like --alpha-hidden, weighs the split batch slightly differently);
    # eval every 3 steps: sharded evaluation, best.pt and a checkpoint at step 3 are all collectives
    args = ["distill", "--teacher", str(teacher), "--train", str(tiny_data_dir / "train.tsv"), "--eval", str(tiny_data_dir / "dev.tsv"),
            "--student-layers", "0,2", "--alpha-ce", "1", "--max-steps", "6", "--eval-every", "3", "--batch-size", "16",
            "--max-length", "32", "--no-progress", "--no-speed", "--log-every", "1", "--lr", "1e-3", "--device", "cpu"]
    assert main(args + ["--out", str(tmp_path / "one")]) == 0
    # the shipped FSDP config: Accelerate sets ACCELERATE_USE_FSDP, which alone turns sharding on
    run = subprocess.run([sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(ROOT / "configs/accelerate/fsdp.yaml"),
                          "--num_processes", "2", "--main_process_port", "0", "-m", "protege", *args, "--out", str(tmp_path / "two")],
                         capture_output=True, text=True, timeout=240, env=_env())
    assert run.returncode == 0, run.stderr[-3000:]
    assert "FSDP2: the student is sharded over 2 processes" in run.stderr
    logs = {name: [json.loads(x) for x in (tmp_path / name / "train_log.jsonl").read_text().splitlines()] for name in ("one", "two")}
    one, two = ([r["loss"] for r in logs[n] if "loss" in r] for n in ("one", "two"))
    assert len(one) == len(two) == 6
    # Stated tolerance: per-step losses within 1e-5, weights within 1e-6 (reduce-scatter vs one process's summation order)
    assert max(abs(a - b) for a, b in zip(one, two)) < 1e-5
    assert [r["eval"]["accuracy"] for r in logs["one"] if "eval" in r] == [r["eval"]["accuracy"] for r in logs["two"] if "eval" in r]
    a = load_file(tmp_path / "one" / "model.safetensors")
    b = AutoModelForSequenceClassification.from_pretrained(tmp_path / "two").state_dict()  # a plain, full save_pretrained folder
    assert set(a) <= set(b)
    assert max((a[k] - b[k]).abs().max().item() for k in a) < 1e-6
    assert json.loads((tmp_path / "two" / "metrics.json").read_text())["config"]["fsdp"] is False  # on from the launcher, not the flag
    assert not list(tmp_path.glob(".two*"))


def _features(n=17):
    from protege.data import Examples
    from protege.data.batching import encode
    from transformers import AutoTokenizer

    rows = make_sentences(n, seed=3)
    ex = Examples([s for s, _ in rows], None, [y for _, y in rows], "mem", "sentence", None, "label")
    return encode(ex, AutoTokenizer.from_pretrained(os.environ["PROTEGE_TEST_DIR"] + "/model"), max_length=32)


def _settings(**kw):
    from protege.engine.config import TrainSettings

    # 17 examples in batches of 8: every epoch ends with a 1-example batch, so one process idles in it;
    # a small --max-grad-norm so clipping (over sharded and replicated gradients together) acts every step
    return TrainSettings(**{**dict(train="mem", out="unused", batch_size=8, max_steps=6, checkpoint_every=3, lr=1e-3,
                                   progress=False, seed=7, log_every=1, warmup_ratio=0.25, max_grad_norm=0.05, fsdp=True, device="cpu"), **kw})


def _projection():
    torch.manual_seed(1)
    return torch.nn.Linear(32, 8)


def _with_projection(projection):
    """Per-example terms on a base model's hidden states through a replicated projection (as distillation's projections).

    A sharded base model is the FSDP root, whose class ``fully_shard`` swaps: its hidden states
    must still come back.
    """

    def loss(model, batch):
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], output_hidden_states=True)
        first = projection(out.hidden_states[1][:, 0]).pow(2).mean()
        last = projection(out.last_hidden_state[:, 0]).sub(1).pow(2).mean()
        return {"loss": first + last, "first": first}

    return loss


class _Interrupt(Exception):
    pass


def _resume_worker(root: Path) -> None:
    """One process of the launched run: uninterrupted (a), interrupted after the step-3 checkpoint (b), resumed (c)."""
    from protege.engine.trainer import train
    from protege.utils.device import process_group

    torch.set_num_threads(1)
    feats = _features()
    load = lambda: BertModel.from_pretrained(root / "model")  # noqa: E731
    a, proj_a = load(), _projection()
    train(a, feats, settings=_settings(), loss_fn=_with_projection(proj_a), extra_modules=proj_a, work_dir=root / "a", pad_token_id=0)
    calls, proj_b = {"n": 0}, _projection()

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 5:  # step 5: after the checkpoint at step 3
            raise _Interrupt
        return _with_projection(proj_b)(model, batch)

    try:
        train(load(), feats, settings=_settings(), loss_fn=crashing, extra_modules=proj_b, work_dir=root / "b", pad_token_id=0)
    except _Interrupt:
        pass
    c, proj_c = load(), _projection()
    result = train(c, feats, settings=_settings(resume=True), loss_fn=_with_projection(proj_c), extra_modules=proj_c,
                   work_dir=root / "b", pad_token_id=0)
    if process_group()[0] == 0:
        torch.save({"a": a.state_dict() | {"proj." + k: v for k, v in proj_a.state_dict().items()},
                    "c": c.state_dict() | {"proj." + k: v for k, v in proj_c.state_dict().items()}, "steps": result.steps},
                   root / "weights.pt")


def test_fsdp_resume_with_a_projection_matches_an_uninterrupted_run_and_one_process(tmp_path, monkeypatch):
    from protege.engine.trainer import train

    torch.manual_seed(0)
    tok = build_tokenizer(tmp_path / "model")
    BertModel(tiny_bert_config(len(tok), hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)).save_pretrained(tmp_path / "model")
    monkeypatch.setenv("PROTEGE_TEST_DIR", str(tmp_path))
    ref, proj = BertModel.from_pretrained(tmp_path / "model"), _projection()
    train(ref, _features(), settings=_settings(),  # fsdp=True in one process: a no-op
          loss_fn=_with_projection(proj), extra_modules=proj, work_dir=tmp_path / "ref", pad_token_id=0)
    env = _env() | {"PYTHONPATH": os.pathsep.join([str(ROOT / "tests" / "engine"), str(ROOT / "tests"), os.environ.get("PYTHONPATH", "")])}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          "-m", "test_fsdp"], capture_output=True, text=True, timeout=240, env=env)
    assert run.returncode == 0, run.stderr[-3000:]
    saved = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert saved["steps"] == 6
    for name, weight in saved["a"].items():  # resumed == uninterrupted, bit for bit
        assert torch.equal(weight, saved["c"][name]), name
    # 2 sharded processes vs 1 (stated tolerance 1e-6; only the reduction order differs)
    expected = ref.state_dict() | {"proj." + k: v for k, v in proj.state_dict().items()}
    assert max((w - saved["a"][k]).abs().max().item() for k, w in expected.items()) < 1e-6
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 7))


if __name__ == "__main__":  # under torch.distributed.run, from the test above
    _resume_worker(Path(os.environ["PROTEGE_TEST_DIR"]))
