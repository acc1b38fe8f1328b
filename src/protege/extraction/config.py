"""Configs of ``protege serve`` and ``protege extract``: frozen dataclasses validated on construction.

As in :mod:`protege.recipes.distill.config`, one field is one CLI flag, one YAML key and one keyword
argument of :func:`protege.serve` / :func:`protege.extract`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from protege.utils.config import check_positive as _positive
from protege.utils.config import option as _f
from protege.errors import ProtegeError
from protege.extraction.defenses.hardening import check_output_mode
from protege.extraction.defenses.watermark import DEFAULT_FRACTION

__all__ = ["ServeConfig", "is_loopback"]



def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True, kw_only=True)
class ServeConfig:
    """``protege serve``: a classifier behind an HTTP prediction API with keys, budgets and defenses."""

    model: str = _f(None, "classifier to serve: save_pretrained folder or hub id", required=True, positional=True)
    host: str = _f("127.0.0.1", "address to bind (loopback by default; another address needs --keys)")
    port: int = _f(8000, "TCP port (0: any free port, printed at start)")
    output: str = _f("label", "what an answer reveals: label (argmax only), probs, or top-k")
    top_k: int | None = _f(None, "classes returned with --output top-k (default 1)")
    decimals: int | None = _f(None, "round returned probabilities to this many decimals (a hardening defense)")
    keys: str | None = _f(None, 'API keys: JSON file {"KEY": {"budget": 100000, "rate": 50}} (queries, queries/s)')
    usage: str | None = _f(None, "SQLite file where usage persists across restarts (default: KEYS.usage.sqlite)")
    max_texts: int = _f(64, "most texts (or pairs) in one request")
    max_chars: int = _f(2000, "longest text accepted, in characters")
    max_length: int = _f(128, "tokens per text seen by the model (longer inputs are truncated)")
    batch_size: int = _f(32, "texts per forward pass")
    device: str = _f("cpu", "cpu, cuda or cuda:N")
    watermark_key: str | None = _f(None, "secret that picks the watermarked queries (default: $PROTEGE_WATERMARK_KEY; none: no watermark)")
    watermark_fraction: float = _f(DEFAULT_FRACTION, "fraction of queries answered wrong when watermarking")
    answer_log: str | None = _f(None, "append every answered query to this JSONL log (evidence for verify-watermark)")
    log_level: str = _f("warning", "uvicorn log level: critical, error, warning, info (one line per request) or debug")

    def __post_init__(self):
        if not self.model:
            raise ProtegeError("serve needs a model: protege serve runs/victim --port 8000")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ProtegeError(f"--port must be an integer in 0..65535, got {self.port!r}")
        _positive(self, "max_texts", "max_chars", "batch_size")
        if self.max_length < 2:
            raise ProtegeError(f"--max-length must be at least 2, got {self.max_length}")
        check_output_mode(self.output, top_k=self.top_k, decimals=self.decimals)
        if not 0 < self.watermark_fraction < 0.5:
            raise ProtegeError(f"--watermark-fraction must be in (0, 0.5), got {self.watermark_fraction}")
        if not is_loopback(self.host) and not self.keys:
            raise ProtegeError(f"binding to {self.host} without --keys would let anyone who can reach it query the model; "
                               "pass --keys keys.json or keep the default --host 127.0.0.1")
        if self.log_level not in ("critical", "error", "warning", "info", "debug"):
            raise ProtegeError(f"--log-level must be critical, error, warning, info or debug, got {self.log_level!r}")
