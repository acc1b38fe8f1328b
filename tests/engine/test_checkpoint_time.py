"""Checkpoints by time as well as by steps, what a Ctrl-C loses, and --save-best-model (issue 16, item 3)."""

import copy

import pytest
import torch

import protege.engine.cadence as cadence
from protege.cli.main import main
from protege.engine.cadence import Cadence
from protege.engine.checkpoints import latest_step
from protege.engine.config import TrainSettings
from protege.engine.staging import has_checkpoint
from protege.engine.trainer import train
from protege.errors import ProtegeError

from helpers import encoded_sentences, interrupt_on_call


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self):
        self.now = 0.0

    def monotonic(self):
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(cadence, "time", c)
    return c


def _features(tokenizer, n=64):
    return encoded_sentences(tokenizer, n)


def _settings(**kw):
    # 64 examples / batch 8: one epoch is 8 steps, the default step checkpoint (end of epoch 1) is at step 8
    base = dict(train="mem", out="unused", batch_size=8, max_steps=12, lr=1e-3, progress=False, seed=7, log_every=1,
                warmup_ratio=0.25)
    return TrainSettings(**{**base, **kw})


def _loss(model, batch):
    out = model(**batch)
    return {"loss": out.loss}


def test_ctrl_c_before_the_first_step_checkpoint_keeps_the_timed_one_and_resumes_exactly(tiny_teacher, tiny_tokenizer,
                                                                                          tmp_path, clock):
    feats = _features(tiny_tokenizer)
    model_a, model_b, model_c = tiny_teacher, copy.deepcopy(tiny_teacher), copy.deepcopy(tiny_teacher)
    train(model_a, feats, settings=_settings(), loss_fn=_loss, work_dir=tmp_path / "a", pad_token_id=0)
    calls = {"n": 0}

    def slow_then_ctrl_c(model, batch):
        calls["n"] += 1
        if calls["n"] == 3:
            clock.now += 10 * 60  # step 3 takes the default --checkpoint-minutes 10
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return _loss(model, batch)

    with pytest.raises(KeyboardInterrupt) as info:
        train(model_b, feats, settings=_settings(), loss_fn=slow_then_ctrl_c, work_dir=tmp_path / "b", pad_token_id=0)
    assert latest_step(tmp_path / "b") == 3  # long before the step checkpoint at 8
    where, lost = info.value.protege_interrupted
    assert where == tmp_path / "b"
    assert lost == ("at step 4 of 12; the checkpoint at step 3 is kept (1 step since then will be trained again): "
                    "run the same command with --resume")
    result = train(model_c, feats, settings=_settings(resume=True), loss_fn=_loss, work_dir=tmp_path / "b", pad_token_id=0)
    assert result.steps == 12
    for (name, a), (_, c) in zip(model_a.state_dict().items(), model_c.state_dict().items()):
        assert torch.equal(a, c), name


def test_the_time_interval_restarts_at_each_checkpoint_and_0_turns_it_off(tiny_teacher, tiny_tokenizer, tmp_path, clock):
    feats = _features(tiny_tokenizer)
    written = []

    class Tick:
        def on_step(self, step, model):
            clock.now += 4 * 60  # four minutes a step

        def on_checkpoint(self, step, path):
            written.append(step)

    train(copy.deepcopy(tiny_teacher), feats, settings=_settings(checkpoint_minutes=10), loss_fn=_loss, work_dir=tmp_path / "on",
          pad_token_id=0, callbacks=[Tick()])
    assert written == [3, 6, 8, 11]  # by time after 12 minutes, by steps at 8 (which restarts the interval)
    written.clear()

    def ctrl_c_in_step_5(model, batch):
        if clock.now >= 4 * 4 * 60:
            raise KeyboardInterrupt
        return _loss(model, batch)

    clock.now = 0.0
    with pytest.raises(KeyboardInterrupt) as info:
        train(copy.deepcopy(tiny_teacher), feats, settings=_settings(checkpoint_minutes=0), loss_fn=ctrl_c_in_step_5,
              work_dir=tmp_path / "off", pad_token_id=0, callbacks=[Tick()])
    assert written == [] and not has_checkpoint(tmp_path / "off")
    _, lost = info.value.protege_interrupted
    assert lost.startswith("at step 4 of 12, before the first checkpoint: the 4 steps trained (")
    assert lost.endswith("are lost and nothing can be resumed; the first checkpoint would have come at step 8 "
                         "(--checkpoint-every)")
    assert "--resume" not in lost


def test_several_processes_follow_the_main_process_clock_at_log_steps_only(monkeypatch, clock):
    calls = []

    def broadcast(flag, world, device=None):  # stands in for rank 0's answer reaching every process
        calls.append(flag)
        return main_late

    monkeypatch.setattr(cadence, "broadcast_flag", broadcast)
    c = Cadence(every=100, seconds=60.0, total=1000, world=2, sync_every=5)
    clock.now = 3600.0  # this process's clock says late at every step
    main_late = False
    assert [c.due(s) for s in range(1, 11)] == [False] * 10  # the main process says not yet
    assert len(calls) == 2  # one broadcast per log step (5, 10), none at the other steps
    main_late = True
    assert [c.due(s) for s in range(11, 16)] == [False, False, False, False, True]
    assert c.due(100) and len(calls) == 3  # the step interval needs no broadcast


def test_ctrl_c_before_any_checkpoint_says_what_is_lost_and_not_resume(tiny_teacher_dir, tiny_data_dir, tmp_path,
                                                                       monkeypatch, capsys):
    import protege.objectives.task as task

    monkeypatch.setattr(task, "distillation_losses", interrupt_on_call(task.distillation_losses, 3))
    out = tmp_path / "s"
    assert main(["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"),
                 "--student-layers", "0,2", "--out", str(out), "--no-progress", "--no-speed", "--max-length", "32",
                 "--batch-size", "8", "--max-steps", "6", "--checkpoint-every", "4"]) == 130
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if x.startswith("[protege] interrupted"))
    assert line.startswith("[protege] interrupted at step 2 of 6, before the first checkpoint: the 2 steps trained (")
    assert "nothing can be resumed; the first checkpoint would have come at step 4 (--checkpoint-every) or in " in line
    assert line.endswith(" min (--checkpoint-minutes)") and "--resume" not in err
    assert list(tmp_path.iterdir()) == []  # nothing to resume, nothing left behind


def test_save_best_model_keeps_the_best_evaluation_as_a_loadable_folder(tiny_teacher, tiny_tokenizer, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    feats = _features(tiny_tokenizer)
    scores, at_best = iter([0.5, 0.9, 0.7]), {}

    def scripted_eval(model):  # the best evaluation is the one at step 4
        return {"accuracy": next(scores)}

    def keep_step_4(step, metrics):
        if step == 4:
            at_best.update({k: v.clone() for k, v in model.state_dict().items()})

    def write(folder):
        model.save_pretrained(folder)
        tiny_tokenizer.save_pretrained(folder)

    model = tiny_teacher
    result = train(model, feats, settings=_settings(max_steps=6, eval_every=2, keep_best=False, save_best_model=True),
                   loss_fn=_loss, work_dir=tmp_path, pad_token_id=0, eval_fn=scripted_eval, primary="accuracy",
                   write_model=write, callbacks=[type("Spy", (), {"on_eval": staticmethod(keep_step_4)})()])
    assert result.best_step == 4
    best = AutoModelForSequenceClassification.from_pretrained(tmp_path / "best-model")
    assert AutoTokenizer.from_pretrained(tmp_path / "best-model").pad_token == "[PAD]"
    for name, weight in best.state_dict().items():
        assert torch.equal(weight, at_best[name]), name
    assert not torch.equal(model.state_dict()["classifier.weight"], at_best["classifier.weight"])  # --no-keep-best: the last
    assert not list(tmp_path.glob(".best-model*"))


def test_save_best_model_ships_in_the_output_folder(tiny_teacher_dir, tiny_data_dir, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    out = tmp_path / "s"
    assert main(["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"),
                 "--eval", str(tiny_data_dir / "dev.tsv"), "--student-layers", "0,2", "--out", str(out), "--no-progress",
                 "--no-speed", "--max-length", "32", "--batch-size", "16", "--max-steps", "4", "--eval-every", "2",
                 "--save-best-model"]) == 0
    student = AutoModelForSequenceClassification.from_pretrained(out / "best-model")
    assert student.config.num_hidden_layers == 2 and AutoTokenizer.from_pretrained(out / "best-model").pad_token == "[PAD]"
    assert not (out / "best.pt").exists() and not (out / "checkpoints").exists()


def test_save_best_model_without_evaluation_or_a_writer_is_refused_before_training(tiny_teacher, tiny_tokenizer, tmp_path):
    feats = _features(tiny_tokenizer, n=8)
    with pytest.raises(ProtegeError, match="--save-best-model .* evaluates nothing .* --eval"):
        train(tiny_teacher, feats, settings=_settings(save_best_model=True), loss_fn=_loss, work_dir=tmp_path / "a",
              pad_token_id=0, write_model=lambda folder: None)
    with pytest.raises(ProtegeError, match="--save-best-model is not available for this run"):
        train(tiny_teacher, feats, settings=_settings(save_best_model=True), loss_fn=_loss, work_dir=tmp_path / "b",
              pad_token_id=0, eval_fn=lambda m: {"accuracy": 1.0}, primary="accuracy")
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    with pytest.raises(ProtegeError, match="--checkpoint-minutes must be >= 0"):
        _settings(checkpoint_minutes=-1)


@pytest.mark.parametrize("verb", ["prune", "compress"])
def test_prune_and_compress_refuse_save_best_model_before_anything_runs(verb, tmp_path, capsys):
    args = {"prune": ["prune", str(tmp_path / "m"), "--method", "magnitude"],
            "compress": ["compress", "--teacher", str(tmp_path / "m"), "--train", "t.tsv", "--eval", "e.tsv",
                         "--target-speedup", "2"]}[verb]
    assert main([*args, "--out", str(tmp_path / "out"), "--save-best-model"]) == 2
    assert f"--save-best-model is not available for protege {verb}" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
