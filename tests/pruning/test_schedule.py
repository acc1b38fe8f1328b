"""The cubic schedule of Zhu & Gupta (2017) and its hook into a training loop."""

import pytest
import torch

from protege.errors import ProtegeError
from protege.pruning import GradualConfig, GradualSchedule, cubic_sparsity, pruning_callback, sparsity_report


def test_cubic_schedule_limits_and_shape():
    s = lambda t: cubic_sparsity(t, initial=0.1, final=0.9, start=10, end=110)  # noqa: E731
    assert s(0) == s(10) == pytest.approx(0.1)
    assert s(110) == s(500) == pytest.approx(0.9)
    assert s(60) == pytest.approx(0.9 - 0.8 * 0.5 ** 3)  # the formula at the midpoint
    values = [s(t) for t in range(10, 111)]
    assert all(b >= a for a, b in zip(values, values[1:]))  # never decreases
    assert values[50] - values[0] > values[-1] - values[50]  # fast early, slow late
    with pytest.raises(ProtegeError):
        cubic_sparsity(5, initial=0, final=0.5, start=10, end=10)


def test_schedule_events_end_at_the_final_sparsity():
    sched = GradualSchedule(GradualConfig(sparsity=0.8, prune_start=0.1, prune_end=0.7, prune_every=7), total_steps=100)
    events = sched.events()
    assert (sched.start, sched.end) == (10, 70)
    assert events[0] == (10, 0.0) and events[-1] == (70, pytest.approx(0.8))
    assert [t for t, _ in events] == [10, 17, 24, 31, 38, 45, 52, 59, 66, 70]
    assert GradualSchedule(GradualConfig(sparsity=0.5), total_steps=100).every == 7  # ~10 events by default
    with pytest.raises(ProtegeError, match="no room"):
        GradualSchedule(GradualConfig(sparsity=0.5, prune_start=0.5, prune_end=0.6), total_steps=3)


def test_gradual_pruning_inside_the_training_loop(tiny_teacher, tiny_tokenizer, tmp_path):
    """The schedule rides the engine's on_step event: it prunes at the due steps, to the scheduled targets."""
    from protege.data import Examples, encode
    from protege.engine import Callback, TrainSettings, train

    from helpers import make_sentences

    rows = make_sentences(24, seed=3)
    features = encode(Examples([t for t, _ in rows], None, [y for _, y in rows], "mem", "sentence", None, "label"),
                      tiny_tokenizer, max_length=16)
    sched = GradualSchedule(GradualConfig(sparsity=0.6, prune_end=0.5, prune_every=2), total_steps=12)
    seen = []
    sched.step_(tiny_teacher, 0)
    record = Callback(on_step=lambda step, model: seen.append(round(sparsity_report(model)["sparsity"], 4)))
    settings = TrainSettings(train="mem", out="unused", batch_size=2, max_steps=12, lr=1e-3, progress=False, speed=False)
    train(tiny_teacher, features, settings=settings, loss_fn=lambda m, b: {"loss": m(**b).loss}, work_dir=tmp_path,
          pad_token_id=0, callbacks=[pruning_callback(sched, tiny_teacher), record])
    assert len(seen) == 12
    due = [t for t in range(1, 13) if sched.due(t)]
    assert due == [2, 4, 6]
    assert [seen[t - 1] for t in due] == pytest.approx([sched.target(t) for t in due], abs=1e-3)
    assert seen[-1] == pytest.approx(0.6, abs=1e-3)


def test_gradual_config_validation():
    with pytest.raises(ProtegeError, match="--sparsity is required"):
        GradualConfig()
    with pytest.raises(ProtegeError, match="above --sparsity"):
        GradualConfig(sparsity=0.3, initial_sparsity=0.5)
    with pytest.raises(ProtegeError, match="before --prune-end"):
        GradualConfig(sparsity=0.3, prune_start=0.8, prune_end=0.5)
