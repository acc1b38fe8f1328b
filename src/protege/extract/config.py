"""Configs of ``protege serve`` and ``protege extract``: frozen dataclasses validated on construction.

As in :mod:`protege.distill.config`, one field is one CLI flag, one YAML key and one keyword
argument of :func:`protege.serve` / :func:`protege.extract`.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass

from protege.distill.config import TrainSettings, _f, _positive
from protege.errors import ProtegeError
from protege.extract.defenses.hardening import OUTPUT_MODES, check_output_mode
from protege.extract.defenses.watermark import DEFAULT_FRACTION

__all__ = ["ServeConfig", "ExtractConfig", "TRAIN_FROM_ANSWERS", "is_loopback"]

# ``train`` of TrainSettings is not a flag of extract: the training data are the victim's answers.
TRAIN_FROM_ANSWERS = "victim-answers"
HIDDEN_FLAGS = ("train", "max_train_examples")


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

    model: str = _f(None, "classifier to serve: save_pretrained folder or hub id", required=True)
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


@dataclass(frozen=True, kw_only=True)
class ExtractConfig(TrainSettings):
    """``protege extract``: query a victim, then train a pretrained student on its answers.

    Hard labels (cross-entropy) when the victim returns only labels; soft targets (KD at
    ``temperature``) when it returns probabilities. Training flags are those of ``distill``.
    """

    train: str = _f(TRAIN_FROM_ANSWERS, "(set by extract: the student trains on the victim's answers)")
    victim: str = _f(None, "the victim: URL of a protege server (http://127.0.0.1:8000) or a classifier folder queried in-process",
                     required=True)
    api_key: str | None = _f(None, "API key for the server (default: $PROTEGE_API_KEY)")
    victim_output: str = _f("label", "output mode of an in-process victim folder: label, probs or top-k (a server sets its own)")
    student: str = _f(None, "pretrained backbone the attacker starts from (folder or hub id); gets a new head", required=True)
    queries: str = _f("random", "random, wiki, or a FILE of queries (one per line, or a table with a text column)")
    query_corpus: str | None = _f(None, "text file, one sentence a line: RANDOM takes word frequencies and lengths from it "
                                        "(default: the student's vocabulary), WIKI takes its sentences")
    budget: int = _f(None, "queries to spend, exactly (answers already in --query-log are reused, not re-sent)", required=True)
    query_seed: int = _f(0, "seed of the query generator (separate from --seed, so retraining reuses the log)")
    pairs: bool = _f(False, "the victim classifies text pairs: the second text is the first with --pair-replace words replaced")
    pair_replace: int = _f(3, "words replaced to make the second text of a pair")
    query_batch: int = _f(32, "texts per request")
    query_log: str | None = _f(None, "JSONL log of queries and answers, resumable (default: OUT.queries.jsonl)")
    victim_agreement: bool = _f(True, "also send the --eval texts (beyond --budget) to report agreement with the victim")
    temperature: float = _f(1.0, "softmax temperature of the soft-target loss when the victim returns probabilities")
    retries: int = _f(5, "retries of a failed request (exponential backoff)")
    timeout: float = _f(60.0, "seconds to wait for one answer")

    def __post_init__(self):
        if self.train != TRAIN_FROM_ANSWERS or self.max_train_examples is not None:
            raise ProtegeError("extract has no --train: the student learns from the victim's answers to --queries; use --budget")
        if not self.victim:
            raise ProtegeError("--victim is required (http://HOST:PORT of a protege server, or a classifier folder)")
        if not self.student:
            raise ProtegeError("--student is required (the pretrained backbone to train on the victim's answers)")
        _positive(self, "budget", "query_batch", "pair_replace")
        if self.victim_output not in OUTPUT_MODES:
            raise ProtegeError(f"--victim-output must be one of {', '.join(OUTPUT_MODES)}, got {self.victim_output!r}")
        if not (self.temperature > 0 and math.isfinite(self.temperature)):
            raise ProtegeError(f"--temperature must be > 0, got {self.temperature}")
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ProtegeError(f"--retries must be a non-negative integer, got {self.retries!r}")
        if not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise ProtegeError(f"--timeout must be > 0 seconds, got {self.timeout}")
        super().__post_init__()

    @property
    def remote(self) -> bool:
        """Whether the victim is an HTTP server."""
        return self.victim.startswith(("http://", "https://"))
