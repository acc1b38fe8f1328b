"""Generation speed of causal LMs, several models interleaved: decode tokens/s at batch 1 and prefill throughput.

What a user of a shrunk decoder waits for is text coming out, so two numbers are measured the
way serving runs them (as llama.cpp's ``llama-bench`` splits them into ``tg`` and ``pp``):

- ``generate_tokens_per_s``: batch 1, greedy, KV cache on, a fixed prompt and exactly
  ``new_tokens`` new tokens (EOS is suppressed until then, so every model does the same work);
  new tokens divided by the wall time of ``generate`` (the short prompt's prefill included).
- ``prefill_tokens_per_s``: one forward pass (filling the KV cache) over a batch of
  ``prefill_batch`` sequences of ``prefill_length`` tokens; tokens divided by its time.

Models take turns within every round, in alternating order, so drift in machine load touches
all of them alike; each number is the median over ``rounds`` rounds, and ``*_cv`` is the
coefficient of variation between rounds (above ~10% the machine was too busy to trust it).
"""

from __future__ import annotations

import time

import numpy as np
import torch

from protege.errors import ProtegeError
from protege.evaluation.speed import _sync

__all__ = ["compare_generation"]


def compare_generation(models: dict, texts: list[str], *, new_tokens: int = 64, prompt_tokens: int = 16,
                       prefill_batch: int = 8, prefill_length: int = 128, rounds: int = 5, warmup: int = 1,
                       device: str = "cpu") -> dict[str, dict]:
    """Decode and prefill speed of each ``name -> (model, tokenizer)`` in ``models``, measured interleaved.

    The prompt is the first ``prompt_tokens`` tokens of ``texts`` joined; the prefill batch is cut
    from the same text (repeated when short). All models must share the tokenizer's vocabulary
    (a student and its teacher do). Returns ``{name: {"generate_tokens_per_s", "generate_ms_per_token",
    "generate_cv", "prefill_tokens_per_s", "prefill_cv", "new_tokens", "prompt_tokens",
    "prefill_batch", "prefill_length", "rounds", "threads", "device"}}``.
    """
    for name, value, low in (("new_tokens", new_tokens, 1), ("prompt_tokens", prompt_tokens, 1), ("prefill_batch", prefill_batch, 1),
                             ("prefill_length", prefill_length, 1), ("rounds", rounds, 1), ("warmup", warmup, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ProtegeError(f"{name} must be an integer >= {low}, got {value!r}")
    if not models:
        raise ProtegeError("models must be a non-empty dict of name -> (model, tokenizer)")
    dev = torch.device(device)
    tokenizer = next(iter(models.values()))[1]
    ids = tokenizer(" ".join(t for t in texts if t), add_special_tokens=False)["input_ids"]
    if not ids:
        raise ProtegeError("the speed text has no tokens; pass held-out text with some words in it")
    need = max(prompt_tokens, prefill_batch * prefill_length)
    ids = (ids * (need // len(ids) + 1))[:need]
    prompt = torch.tensor([ids[:prompt_tokens]], device=dev)
    batch = torch.tensor(ids[: prefill_batch * prefill_length], device=dev).view(prefill_batch, prefill_length)
    state = {name: m.training for name, (m, _) in models.items()}
    times = {name: {"decode": [], "prefill": []} for name in models}
    try:
        for model, _ in models.values():
            model.to(dev).eval()
        with torch.inference_mode():
            for r in range(warmup + rounds):
                order = list(models.items()) if r % 2 == 0 else list(reversed(models.items()))
                for name, (model, tok) in order:
                    decode = _timed(lambda: _generate(model, tok, prompt, new_tokens), dev)
                    prefill = _timed(lambda: model(input_ids=batch, use_cache=True), dev)
                    if r >= warmup:
                        times[name]["decode"].append(decode)
                        times[name]["prefill"].append(prefill)
    finally:
        for name, (model, _) in models.items():
            model.train(state[name])
    out = {}
    for name, t in times.items():
        decode, prefill = np.asarray(t["decode"]), np.asarray(t["prefill"])
        out[name] = {
            "generate_tokens_per_s": float(new_tokens / np.median(decode)),
            "generate_ms_per_token": float(1000.0 * np.median(decode) / new_tokens),
            "generate_cv": _cv(decode),
            "prefill_tokens_per_s": float(prefill_batch * prefill_length / np.median(prefill)),
            "prefill_cv": _cv(prefill),
            "new_tokens": new_tokens, "prompt_tokens": prompt_tokens, "prefill_batch": prefill_batch,
            "prefill_length": prefill_length, "rounds": rounds, "threads": torch.get_num_threads(), "device": str(dev),
        }
    return out


def _generate(model, tokenizer, prompt, new_tokens: int):
    from transformers import GenerationConfig

    eos = tokenizer.eos_token_id
    config = GenerationConfig(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, use_cache=True,
                              eos_token_id=eos, pad_token_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos)
    out = model.generate(input_ids=prompt, attention_mask=torch.ones_like(prompt), generation_config=config)
    if out.shape[1] - prompt.shape[1] != new_tokens:  # the timing would not compare like with like
        raise ProtegeError(f"generate stopped after {out.shape[1] - prompt.shape[1]} of {new_tokens} tokens; "
                           "the model's generation settings cut it short")
    return out


def _timed(fn, device) -> float:
    _sync(device)
    start = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - start


def _cv(values: np.ndarray) -> float | None:
    return float(values.std() / values.mean()) if len(values) > 1 and values.mean() > 0 else None
