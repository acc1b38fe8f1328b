"""The training loop: learning happens, resume reproduces an uninterrupted run, best/early stopping."""

import json

import pytest
import torch

from protege.engine.config import TrainSettings
from protege.engine.staging import has_checkpoint
from protege.engine.trainer import train

from helpers import encoded_sentences


def _features(tokenizer, n=64):
    return encoded_sentences(tokenizer, n)


def _settings(**kw):
    base = dict(train="mem", out="unused", batch_size=8, max_steps=8, checkpoint_every=3, lr=1e-3, progress=False, seed=7,
                log_every=1, warmup_ratio=0.25)
    return TrainSettings(**{**base, **kw})


def _loss(model, batch):
    out = model(**batch)
    return {"loss": out.loss, "ce": out.loss}


class Interrupt(Exception):
    pass


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_teacher, tiny_tokenizer, tmp_path):
    feats = _features(tiny_tokenizer)
    model_a = tiny_teacher
    import copy

    model_b = copy.deepcopy(tiny_teacher)
    model_c = copy.deepcopy(tiny_teacher)
    train(model_a, feats, settings=_settings(), loss_fn=_loss, work_dir=tmp_path / "a", pad_token_id=0)

    calls = {"n": 0}

    def crashing(model, batch):
        calls["n"] += 1
        if calls["n"] == 6:  # after the checkpoint at step 3
            raise Interrupt
        return _loss(model, batch)

    with pytest.raises(Interrupt):
        train(model_b, feats, settings=_settings(), loss_fn=crashing, work_dir=tmp_path / "b", pad_token_id=0)
    assert has_checkpoint(tmp_path / "b")
    result = train(model_c, feats, settings=_settings(resume=True), loss_fn=_loss, work_dir=tmp_path / "b", pad_token_id=0)
    assert result.steps == 8
    for (name, a), (_, c) in zip(model_a.state_dict().items(), model_c.state_dict().items()):
        assert torch.equal(a, c), name
    # the log of the resumed run has each step exactly once
    steps = [json.loads(line)["step"] for line in (tmp_path / "b" / "train_log.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 9))


def test_training_lowers_the_loss_and_logs_every_term(tiny_teacher, tiny_tokenizer, tmp_path):
    feats = _features(tiny_tokenizer)
    result = train(tiny_teacher, feats, settings=_settings(max_steps=30, checkpoint_every=None), loss_fn=_loss,
                   work_dir=tmp_path, pad_token_id=0)
    records = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert {"step", "lr", "loss", "ce", "examples_per_s"} <= set(records[0])
    first = sum(r["loss"] for r in records[:5]) / 5
    last = sum(r["loss"] for r in records[-5:]) / 5
    assert last < first
    assert result.steps == 30 and result.examples_per_s > 0


def test_grad_accumulation_matches_a_bigger_batch(tiny_teacher, tiny_tokenizer, tmp_path):
    import copy

    feats = _features(tiny_tokenizer, n=32)
    tiny_teacher.config.hidden_dropout_prob = 0.0
    a, b = copy.deepcopy(tiny_teacher), copy.deepcopy(tiny_teacher)
    for m in (a, b):
        for mod in m.modules():
            if isinstance(mod, torch.nn.Dropout):
                mod.p = 0.0
    s = dict(max_steps=2, checkpoint_every=None, group_by_length=False, max_grad_norm=0.0)
    train(a, feats, settings=_settings(batch_size=16, **s), loss_fn=_loss, work_dir=tmp_path / "a", pad_token_id=0)
    train(b, feats, settings=_settings(batch_size=8, grad_accum=2, **s), loss_fn=_loss, work_dir=tmp_path / "b", pad_token_id=0)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.allclose(x, y, atol=1e-5), name


def test_keeps_the_best_evaluation_and_stops_early(tiny_teacher, tiny_tokenizer, tmp_path):
    feats = _features(tiny_tokenizer)
    scores = iter([0.5, 0.9, 0.6, 0.7, 0.8, 0.95])
    snapshots = {}

    def eval_fn(model):
        value = next(scores)
        snapshots[value] = {k: v.clone() for k, v in model.state_dict().items()}
        return {"accuracy": value}

    result = train(tiny_teacher, feats, settings=_settings(max_steps=12, eval_every=2, patience=3, checkpoint_every=None),
                   loss_fn=_loss, work_dir=tmp_path, pad_token_id=0, eval_fn=eval_fn, primary="accuracy")
    assert result.stopped_early and result.steps == 10  # evals at 2..10; three without gain after 0.9 at step 4
    assert result.best == {"accuracy": 0.9} and result.best_step == 4
    for k, v in tiny_teacher.state_dict().items():
        assert torch.equal(v, snapshots[0.9][k]), k


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tiny_teacher, tiny_tokenizer, tmp_path):
    from protege.engine.checkpoints import latest_step
    from protege.errors import ProtegeError

    feats = _features(tiny_tokenizer)
    calls = {"n": 0}

    def loss(model, batch):
        calls["n"] += 1
        out = _loss(model, batch)
        return {k: v * float("nan") for k, v in out.items()} if calls["n"] >= 5 else out  # step 5 goes bad

    with pytest.raises(ProtegeError, match="NaN or infinite") as err:
        train(tiny_teacher, feats, settings=_settings(checkpoint_every=3, log_every=100), loss_fn=loss, work_dir=tmp_path,
              pad_token_id=0)
    assert "last good checkpoint is kept" in str(err.value)
    assert latest_step(tmp_path) == 3  # the step-6 checkpoint was never written over it
    state = torch.load(tmp_path / "checkpoints" / "step-3" / "modules.pt", weights_only=False)["model"]
    assert all(torch.isfinite(v).all() for v in state.values())
