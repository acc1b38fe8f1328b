"""The cubic schedule of Zhu & Gupta (2017) and its hook into a training loop."""

import pytest
import torch

from protege.errors import ProtegeError
from protege.prune import GradualConfig, GradualSchedule, cubic_sparsity, on_optimizer_steps, sparsity_report


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


def test_gradual_pruning_inside_a_training_loop(tiny_teacher):
    sched = GradualSchedule(GradualConfig(sparsity=0.6, prune_end=0.5, prune_every=2), total_steps=12)
    opt = torch.optim.SGD(tiny_teacher.parameters(), lr=1e-3)
    seen = []

    def after(step):
        sched.step_(tiny_teacher, step)
        seen.append(round(sparsity_report(tiny_teacher)["sparsity"], 4))

    sched.step_(tiny_teacher, 0)
    x = torch.randint(5, 60, (2, 7))
    with on_optimizer_steps(after) as count:
        for _ in range(12):
            tiny_teacher(input_ids=x).logits.sum().backward()
            opt.step()
            opt.zero_grad()
    assert count["n"] == 12
    due = [t for t in range(1, 13) if sched.due(t)]
    assert due == [2, 4, 6]
    assert [seen[t - 1] for t in due] == pytest.approx([sched.target(t) for t in due], abs=1e-3)
    assert seen[-1] == pytest.approx(0.6, abs=1e-3)
    opt.step()  # outside the block: no more callbacks
    assert count["n"] == 12


def test_gradual_config_validation():
    with pytest.raises(ProtegeError, match="--sparsity is required"):
        GradualConfig()
    with pytest.raises(ProtegeError, match="above --sparsity"):
        GradualConfig(sparsity=0.3, initial_sparsity=0.5)
    with pytest.raises(ProtegeError, match="before --prune-end"):
        GradualConfig(sparsity=0.3, prune_start=0.8, prune_end=0.5)
