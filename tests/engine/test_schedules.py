"""Optimizers and learning-rate schedules: every row of the two tables, against the curves written out here.

Each table is read at collection time, so a new optimizer or schedule gets these cases too.
"""

import json
import math

import pytest
import torch

from protege.engine.config import TrainSettings
from protege.engine.optim import OPTIMIZERS, SCHEDULES, build_optimizer, build_schedule
from protege.engine.trainer import train
from protege.errors import ProtegeError
from protege.utils.config import build_config

from helpers import encoded_sentences

PEAK = 1e-3


def expected(name: str, step: int, warmup: int, total: int) -> float:
    """The lr after ``step`` updates, from the formulas: linear warmup from 0, then linear / half-cosine decay to 0, or flat."""
    if step < warmup:
        return PEAK * step / warmup
    progress = (step - warmup) / (total - warmup)
    return PEAK * {"linear": 1.0 - progress, "cosine": 0.5 * (1.0 + math.cos(math.pi * progress)),
                   "constant_with_warmup": 1.0}[name]


def test_every_schedule_has_an_expected_curve():
    assert set(SCHEDULES) == {"linear", "cosine", "constant_with_warmup"}  # a new row needs its formula in expected()


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_schedule_object_follows_its_curve(name):
    param = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.SGD([param], lr=PEAK)
    scheduler = build_schedule(name, optimizer, warmup_steps=4, total_steps=20)
    seen = [scheduler.get_last_lr()[0]]
    for _ in range(20):
        optimizer.step()
        scheduler.step()
        seen.append(scheduler.get_last_lr()[0])
    assert seen == pytest.approx([expected(name, s, 4, 20) for s in range(21)], abs=1e-12)
    assert seen[4] == pytest.approx(PEAK)  # the peak is --lr, reached when the warmup ends


def _features(tokenizer, n=48):
    return encoded_sentences(tokenizer, n)


def _settings(**kw):
    base = dict(train="mem", out="unused", batch_size=8, max_steps=10, lr=PEAK, warmup_ratio=0.2, progress=False, seed=7,
                log_every=1, checkpoint_every=None)
    return TrainSettings(**{**base, **kw})


def _loss(model, batch):
    return {"loss": model(**batch).loss}


@pytest.mark.parametrize("name", sorted(SCHEDULES))
def test_a_run_logs_the_lr_of_its_schedule(name, tiny_teacher, tiny_tokenizer, tmp_path):
    train(tiny_teacher, _features(tiny_tokenizer), settings=_settings(lr_scheduler=name), loss_fn=_loss, work_dir=tmp_path,
          pad_token_id=0)
    logged = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    # warmup 0.2 of 10 steps = 2; the record of step s holds the lr the next update uses
    assert [r["lr"] for r in logged] == pytest.approx([expected(name, s, 2, 10) for s in range(1, 11)], abs=1e-12)


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_every_optimizer_trains_and_keeps_its_weight_decay_groups(name, tiny_teacher, tiny_tokenizer, tmp_path):
    groups = [{"params": [torch.nn.Parameter(torch.ones(3, 3))], "weight_decay": 0.1},
              {"params": [torch.nn.Parameter(torch.ones(3))], "weight_decay": 0.0}]
    optimizer = build_optimizer(name, groups, 0.5)
    assert [g["weight_decay"] for g in optimizer.param_groups] == [0.1, 0.0]
    assert all(g["lr"] == 0.5 for g in optimizer.param_groups)  # the given lr, for the schedule to scale

    before = {k: v.clone() for k, v in tiny_teacher.state_dict().items()}
    result = train(tiny_teacher, _features(tiny_tokenizer), settings=_settings(optimizer=name, max_steps=4, lr=1e-2),
                   loss_fn=_loss, work_dir=tmp_path, pad_token_id=0)
    assert result.steps == 4 and math.isfinite(result.final_loss)
    moved = [k for k, v in tiny_teacher.state_dict().items() if not torch.equal(v, before[k])]
    assert any("encoder.layer.0" in k for k in moved)


def test_resume_refuses_a_checkpoint_of_another_optimizer(tiny_teacher, tiny_tokenizer, tmp_path):
    import copy

    feats = _features(tiny_tokenizer)
    train(copy.deepcopy(tiny_teacher), feats, settings=_settings(max_steps=4, checkpoint_every=2), loss_fn=_loss,
          work_dir=tmp_path, pad_token_id=0)
    with pytest.raises(ProtegeError, match="trained with the AdamW optimizer.*--optimizer it started with"):
        train(tiny_teacher, feats, settings=_settings(max_steps=6, checkpoint_every=2, resume=True, optimizer="sgd"),
              loss_fn=_loss, work_dir=tmp_path, pad_token_id=0)


@pytest.mark.parametrize("options, message", [
    ({"lr_scheduler": "cosine_with_restarts"}, "--lr-scheduler must be one of linear, cosine, constant_with_warmup"),
    ({"optimizer": "adam"}, "--optimizer must be one of adamw, adafactor, sgd"),
    ({"optimizer": "adafactor", "fsdp": True}, "--optimizer adafactor cannot train a sharded"),
])
def test_bad_choices_are_one_line_errors_before_torch(options, message):
    with pytest.raises(ProtegeError, match=message):
        build_config(TrainSettings, {"train": "x.tsv", "out": "o", **options})


def test_the_flags_list_every_table_row(capsys):
    from protege.cli.main import main

    assert main(["finetune", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in [*OPTIMIZERS, *SCHEDULES]:
        assert f"{name}:" in text, name
    assert "(default: adamw)" in text and "(default: linear)" in text
