"""measure_speed and compare_speed on the tiny teacher, with a small time budget."""

import copy

import pytest

from protege.errors import ProtegeError
from protege.evaluation.speed import compare_speed, measure_speed

TEXTS = ["this movie was great", "a dull and boring plot", "the team won the game", "she is not very good"]
FAST = dict(max_seconds=0.2, min_runs=5, warmup=1, batch_size=4, max_length=32)
KEYS = {"latency_ms_p50", "latency_ms_p95", "latency_runs", "throughput_per_s", "throughput_batch_size",
        "threads", "device", "cpu", "torch", "max_length"}


def test_measure_speed(tiny_teacher, tiny_tokenizer):
    tiny_teacher.train()
    r = measure_speed(tiny_teacher, tiny_tokenizer, TEXTS, **FAST)
    assert KEYS <= set(r)
    assert r["latency_ms_p50"] > 0 and r["latency_ms_p95"] >= r["latency_ms_p50"]
    assert r["latency_runs"] >= 5 and r["throughput_per_s"] > 0
    assert r["throughput_batch_size"] == 4 and r["max_length"] == 32 and r["device"] == "cpu"
    assert r["threads"] >= 1 and r["cpu"]
    assert tiny_teacher.training  # mode restored


def test_compare_speed_interleaved(tiny_teacher, tiny_tokenizer):
    models = {"teacher": (tiny_teacher, tiny_tokenizer), "student": (copy.deepcopy(tiny_teacher), tiny_tokenizer)}
    out = compare_speed(models, TEXTS, **FAST)
    assert set(out) == {"teacher", "student"}
    for r in out.values():
        assert KEYS <= set(r) and r["throughput_per_s"] > 0
    # round-robin: every model gets the same number of runs
    assert out["teacher"]["latency_runs"] == out["student"]["latency_runs"]


@pytest.mark.parametrize("kw", [dict(texts=[]), dict(texts="one text"), dict(batch_size=0),
                                dict(min_runs=0), dict(max_seconds=0), dict(warmup=-1)])
def test_bad_arguments(tiny_teacher, tiny_tokenizer, kw):
    args = {"texts": TEXTS, **kw}
    with pytest.raises(ProtegeError):
        measure_speed(tiny_teacher, tiny_tokenizer, args.pop("texts"), **args)


def test_compare_speed_bad_models(tiny_tokenizer):
    with pytest.raises(ProtegeError):
        compare_speed({}, TEXTS)
    with pytest.raises(ProtegeError):
        compare_speed({"a": tiny_tokenizer}, TEXTS)
