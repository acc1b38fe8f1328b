"""Honest inference speed: batch-1 latency and batched throughput, several models interleaved.

Each result also says how far to trust it: ``latency_cv`` and ``throughput_cv`` are the
coefficient of variation of the median timing over :data:`ROUNDS` consecutive rounds of the
measurement, each timing first divided by the median time of the same input (so inputs of
different lengths do not count as noise). Above about 10% the machine was too busy to trust
the numbers (``protege report`` says so).
"""

from __future__ import annotations

import math
import platform
import time
from pathlib import Path

import numpy as np
import torch

from protege.errors import ProtegeError

__all__ = ["measure_speed", "compare_speed", "timing_spread", "ROUNDS"]

# enough distinct inputs to vary lengths without tokenising a whole data set
_MAX_SINGLES = 1024
_MAX_BATCHES = 32
# a model too slow to reach min_runs in its budget stops at this multiple of the budget,
# though never before _FLOOR_RUNS runs, so a percentile is never read off one sample
_OVERRUN = 3.0
_FLOOR_RUNS = 5
ROUNDS = 5  # consecutive rounds the timed runs are split into to measure their spread


def measure_speed(model, tokenizer, texts, *, max_length: int = 128, batch_size: int = 32, warmup: int = 3,
                  min_runs: int = 20, max_seconds: float = 10.0, device: str = "cpu") -> dict:
    """Latency and throughput of ``model`` on ``texts``.

    Inputs are tokenised before timing (truncated to ``max_length``). Batch-1 latency cycles
    through single texts (no padding); throughput runs batches of ``batch_size`` texts with
    dynamic padding. Each phase runs ``warmup`` untimed passes, then timed passes
    (``time.perf_counter`` under ``torch.inference_mode`` in eval mode) until it has at least
    ``min_runs`` and has spent its half of ``max_seconds``; a model too slow to reach
    ``min_runs`` stops at three times that half, after at least ``min(min_runs, 5)`` runs. The model is moved to ``device``; its
    train/eval mode is restored afterwards.

    Returns "latency_ms_p50", "latency_ms_p95", "latency_runs", "throughput_per_s" (examples/s),
    "throughput_batch_size", "throughput_runs", "latency_cv" and "throughput_cv" (the spread
    between rounds, :func:`timing_spread`; None when too few inputs repeated), "threads",
    "device", "cpu", "torch" and "max_length".
    """
    return compare_speed({"model": (model, tokenizer)}, texts, max_length=max_length, batch_size=batch_size,
                         warmup=warmup, min_runs=min_runs, max_seconds=max_seconds, device=device)["model"]


def compare_speed(models: dict, texts, *, max_length: int = 128, batch_size: int = 32, warmup: int = 3,
                  min_runs: int = 20, max_seconds: float = 10.0, device: str = "cpu") -> dict[str, dict]:
    """Measure several models on the same inputs, interleaved.

    ``models`` maps a name to ``(model, tokenizer)``. Timed runs go round-robin over the
    models (alternating the order each round) so drift in machine load touches all of them
    alike; ``max_seconds`` is each model's share, so the whole call takes about
    ``len(models) * max_seconds``. Returns ``{name: result}`` with the keys of
    :func:`measure_speed`.
    """
    texts = _check(models, texts, max_length, batch_size, warmup, min_runs, max_seconds)
    device = torch.device(device)
    benches = []
    try:
        for name, (model, tok) in models.items():
            benches.append(_Bench(name, model, tok, texts, max_length, batch_size, device))
        with torch.inference_mode():
            budget = max_seconds * len(benches) / 2
            _phase(benches, _Bench.single, warmup, min_runs, budget)
            _phase(benches, _Bench.batch, warmup, min_runs, budget)
    finally:
        for b in benches:
            b.model.train(b.was_training)
    info = {"threads": torch.get_num_threads(), "device": str(device), "cpu": _cpu_name(),
            "torch": torch.__version__, "max_length": max_length}
    if device.type == "cuda":
        info["accelerator"] = torch.cuda.get_device_name(device)
    return {b.name: {**b.result(), **info} for b in benches}


class _Bench:
    """One model with its pre-tokenised inputs and the times measured so far."""

    def __init__(self, name, model, tokenizer, texts, max_length, batch_size, device):
        self.name, self.model, self.device, self.batch_size = name, model, device, batch_size
        self.was_training = model.training
        enc = dict(truncation=True, max_length=max_length, return_tensors="pt")
        self.singles = [self._to(tokenizer(t, **enc)) for t in texts[:_MAX_SINGLES]]
        n_batches = min(max(1, math.ceil(len(texts) / batch_size)), _MAX_BATCHES)
        # cycle through texts so every batch is full even when texts are few
        self.batches = [
            self._to(tokenizer([texts[(b * batch_size + j) % len(texts)] for j in range(batch_size)],
                               padding=True, **enc))
            for b in range(n_batches)
        ]
        self.latencies, self.batch_times = [], []
        self.latency_inputs, self.batch_inputs = [], []  # which input each timing ran, to measure noise
        self._i = self._j = 0
        model.to(device).eval()

    def _to(self, encoding):
        return {k: v.to(self.device) for k, v in encoding.items()}

    def _timed(self, inputs) -> float:
        _sync(self.device)
        start = time.perf_counter()
        self.model(**inputs)
        _sync(self.device)
        return time.perf_counter() - start

    def single(self, timed: bool) -> None:
        which = self._i % len(self.singles)
        seconds = self._timed(self.singles[which])
        self._i += 1
        if timed:
            self.latencies.append(seconds)
            self.latency_inputs.append(which)

    def batch(self, timed: bool) -> None:
        which = self._j % len(self.batches)
        seconds = self._timed(self.batches[which])
        self._j += 1
        if timed:
            self.batch_times.append(seconds)
            self.batch_inputs.append(which)

    def result(self) -> dict:
        ms = np.asarray(self.latencies) * 1000.0
        return {
            "latency_ms_p50": float(np.percentile(ms, 50)),
            "latency_ms_p95": float(np.percentile(ms, 95)),
            "latency_runs": len(self.latencies),
            "throughput_per_s": float(self.batch_size * len(self.batch_times) / sum(self.batch_times)),
            "throughput_batch_size": self.batch_size,
            "throughput_runs": len(self.batch_times),
            "latency_cv": timing_spread(self.latencies, self.latency_inputs),
            "throughput_cv": timing_spread(self.batch_times, self.batch_inputs),
        }


def timing_spread(times, inputs, rounds: int = ROUNDS) -> float | None:
    """How much repeated timings of the same work vary: the coefficient of variation of the median over
    ``rounds`` consecutive rounds, each timing divided by the median time of its input.

    Timings of an input that ran only once are left out (their ratio says nothing); None when
    fewer than two timings per round remain.
    """
    t, idx = np.asarray(times, dtype=float), np.asarray(inputs)
    if len(t) != len(idx) or len(t) == 0:
        return None
    keep = np.bincount(idx)[idx] >= 2
    if keep.sum() < 2 * rounds:
        return None
    order = np.argsort(idx, kind="stable")
    ids, starts = np.unique(idx[order], return_index=True)
    median_of = np.zeros(int(idx.max()) + 1)
    median_of[ids] = [np.median(group) for group in np.split(t[order], starts[1:])]
    ratios = t[keep] / median_of[idx[keep]]  # in time order
    per_round = np.array([np.median(r) for r in np.array_split(ratios, rounds)])
    mean = per_round.mean()
    return float(per_round.std() / mean) if mean > 0 else None


def _phase(benches, step, warmup, min_runs, budget) -> None:
    for b in benches:
        for _ in range(warmup):
            step(b, False)
    start, rounds = time.perf_counter(), 0
    while True:
        # alternate the order so no model always runs right after the same neighbour
        for b in benches if rounds % 2 == 0 else reversed(benches):
            step(b, True)
        rounds += 1
        elapsed = time.perf_counter() - start
        if rounds >= min_runs and elapsed >= budget:
            return
        if rounds >= min(min_runs, _FLOOR_RUNS) and elapsed >= _OVERRUN * budget:
            return


def _check(models, texts, max_length, batch_size, warmup, min_runs, max_seconds) -> list[str]:
    if not isinstance(models, dict) or not models:
        raise ProtegeError("models must be a non-empty dict of name -> (model, tokenizer)")
    for name, pair in models.items():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise ProtegeError(f"models[{name!r}] must be a (model, tokenizer) pair")
    if isinstance(texts, (str, bytes)):
        raise ProtegeError("texts must be a list of strings, not a single string")
    texts = list(texts)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ProtegeError("texts must be a non-empty list of strings")
    for name, value, low in [("max_length", max_length, 1), ("batch_size", batch_size, 1),
                             ("warmup", warmup, 0), ("min_runs", min_runs, 1)]:
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ProtegeError(f"{name} must be an integer >= {low}, got {value!r}")
    if isinstance(max_seconds, bool) or not isinstance(max_seconds, (int, float)) or not max_seconds > 0:
        raise ProtegeError(f"max_seconds must be a positive number, got {max_seconds!r}")
    return texts


def _sync(device: torch.device) -> None:
    # asynchronous devices must finish their work before the clock is read
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"
