"""Configs of ``protege serve`` and ``protege extract``: frozen dataclasses validated on construction.

As in :mod:`protege.recipes.distill.config`, one field is one CLI flag, one YAML key and one keyword
argument of :func:`protege.serve` / :func:`protege.extract`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from protege.utils.config import check_positive, option
from protege.errors import ProtegeError
from protege.extraction.defenses.hardening import check_output_mode
from protege.extraction.defenses.watermark import DEFAULT_FRACTION

__all__ = ["ServeConfig", "VerifyWatermarkConfig", "DetectConfig", "is_loopback"]



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

    model: str = option(None, "classifier to serve: save_pretrained folder or hub id", required=True, positional=True)
    host: str = option("127.0.0.1", "address to bind (loopback by default; another address needs --keys)")
    port: int = option(8000, "TCP port (0: any free port, printed at start)")
    output: str = option("label", "what an answer reveals: label (argmax only), probs, or top-k")
    top_k: int | None = option(None, "classes returned with --output top-k (default 1)")
    decimals: int | None = option(None, "round returned probabilities to this many decimals (a hardening defense)")
    keys: str | None = option(None, 'API keys: JSON file {"KEY": {"budget": 100000, "rate": 50}} (queries, queries/s)')
    usage: str | None = option(None, "SQLite file where usage persists across restarts (default: KEYS.usage.sqlite)")
    max_texts: int = option(64, "most texts (or pairs) in one request")
    max_chars: int = option(2000, "longest text accepted, in characters")
    max_length: int = option(128, "tokens per text seen by the model (longer inputs are truncated)")
    batch_size: int = option(32, "texts per forward pass")
    device: str = option("cpu", "cpu, cuda or cuda:N")
    watermark_key: str | None = option(None, "secret that picks the watermarked queries (default: $PROTEGE_WATERMARK_KEY; none: no watermark)")
    watermark_fraction: float = option(DEFAULT_FRACTION, "fraction of queries answered wrong when watermarking")
    answer_log: str | None = option(None, "append every answered query to this JSONL log (evidence for verify-watermark)")
    log_level: str = option("warning", "uvicorn log level: critical, error, warning, info (one line per request) or debug")

    def __post_init__(self):
        if not self.model:
            raise ProtegeError("serve needs a model: protege serve runs/victim --port 8000")
        if isinstance(self.port, bool) or not isinstance(self.port, int) or not 0 <= self.port <= 65535:
            raise ProtegeError(f"--port must be an integer in 0..65535, got {self.port!r}")
        check_positive(self, "max_texts", "max_chars", "batch_size")
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


@dataclass(frozen=True, kw_only=True)
class VerifyWatermarkConfig:
    """``protege verify-watermark SUSPECT --log LOG``: did the suspect memorise a server's watermark?"""

    suspect: str = option(None, "the model suspected of being extracted: classifier folder or hub id", required=True,
                      positional=True)
    log: str = option(None, "query log of served answers (serve --answer-log, or a client's log)", required=True)
    key: str | None = option(None, "the server's --watermark-key (default: $PROTEGE_WATERMARK_KEY)")
    fraction: float = option(DEFAULT_FRACTION, "the server's --watermark-fraction")
    alpha: float = option(1e-3, "significance level of the verdict")
    max_controls: int = option(5000, "unwatermarked queries used as the control")
    max_length: int = option(128, "tokens per text seen by the suspect")
    batch_size: int = option(64, "texts per forward pass")
    out: str | None = option(None, "also write the result to this JSON file", metavar="FILE.json")

    def __post_init__(self):
        if not self.suspect or not self.log:
            raise ProtegeError("verify-watermark needs a suspect model and the served answers: SUSPECT --log LOG")
        check_positive(self, "max_controls", "max_length", "batch_size")
        if not 0 < self.fraction < 0.5:
            raise ProtegeError(f"--fraction must be in (0, 0.5), got {self.fraction}")
        if not 0 < self.alpha < 1:
            raise ProtegeError(f"--alpha must be in (0, 1), got {self.alpha}")


@dataclass(frozen=True, kw_only=True)
class DetectConfig:
    """``protege detect VICTIM --genuine FILE``: train and measure a detector of extraction queries."""

    victim: str = option(None, "the served classifier (folder): its hidden states are the detector's features", required=True,
                     positional=True)
    genuine: str = option(None, "real inputs of the victim's task (table or one text per line)", required=True)
    ood: tuple[str, ...] | None = option(None, "genuine out-of-distribution users", many=True)
    queries: str = option("random,wiki", "generated query kinds to detect")
    query_corpus: str | None = option(None, "corpus for the generated queries (one sentence per line)")
    n: int = option(2000, "texts per set")
    target_fpr: float = option(0.05, "false-positive rate on genuine inputs the threshold is set for")
    seed: int = option(0, "seed of the sampling and the generated queries")
    max_length: int = option(128, "tokens per text seen by the victim")
    out: str | None = option(None, "write the detector and its report here", metavar="FILE.json")

    def __post_init__(self):
        if not self.victim or not self.genuine:
            raise ProtegeError("detect needs the victim and its genuine inputs: VICTIM --genuine FILE")
        check_positive(self, "n", "max_length")
        if not 0 < self.target_fpr < 1:
            raise ProtegeError(f"--target-fpr must be in (0, 1), got {self.target_fpr}")
