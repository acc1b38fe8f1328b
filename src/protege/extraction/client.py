"""The attacker's (or auditor's) side of the API: an HTTP client, and query collection into a log.

:class:`HttpVictim` speaks the server's JSON API with the interface of an in-process
:class:`~protege.extraction.victim.Victim` (``info()``, ``predict(texts, pairs)``), so
:func:`collect` works on either. It retries failed requests with exponential backoff and
jitter, waits out rate limits (``Retry-After``), splits batches the key's rate cannot carry, and
sends a ``request_id`` so that a retry is never charged twice. :func:`collect` sends exactly the
queries the log does not hold yet, in batches, and appends each answered batch durably before the
next one: an interrupted run resumes where it stopped without re-querying. To a server it logs
each request (id and texts) durably *before* sending it, so a run killed after the server charged
a request but before its answers reached the log sends that request again under the same id, and
the server answers it from its store without charging it again.
"""

from __future__ import annotations

import random
import re
import sys
import time
import uuid
from dataclasses import dataclass

from protege.errors import ProtegeError
from protege.extraction import require_extra

__all__ = ["HttpVictim", "BudgetExhaustedError", "connect", "collect", "Collected"]


class BudgetExhaustedError(ProtegeError):
    """The server's budget for this key cannot pay for the request (``remaining`` queries left)."""

    def __init__(self, message: str, remaining: int | None):
        super().__init__(message)
        self.remaining = remaining


class HttpVictim:
    """A protege prediction server at ``url``, used like a :class:`~protege.extraction.victim.Victim`.

    ``requests`` counts HTTP requests sent (retries included) and ``queries`` texts answered.
    ``sleep`` is injectable for tests.
    """

    accepts_request_id = True  # predict(..., request_id=): the server answers a repeated id free

    def __init__(self, url: str, api_key: str | None = None, *, timeout: float = 60.0, retries: int = 5,
                 backoff: float = 0.5, max_backoff: float = 30.0, max_rate_waits: int = 10_000, sleep=time.sleep):
        require_extra("httpx")
        import httpx

        if not url.startswith(("http://", "https://")):
            raise ProtegeError(f"victim URL must start with http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.name = re.sub(r"//[^/@]*@", "//", self.url)  # never report credentials in a URL
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self._http = httpx.Client(base_url=self.url, timeout=timeout, headers=headers, follow_redirects=False)
        self._retries, self._backoff, self._max_backoff = retries, backoff, max_backoff
        self._max_rate_waits, self._sleep = max_rate_waits, sleep
        self._info: dict | None = None
        self._max_batch: int | None = None
        self.requests = 0
        self.queries = 0

    def __repr__(self) -> str:
        return f"HttpVictim({self.url!r})"

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def __enter__(self) -> "HttpVictim":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def info(self) -> dict:
        """``GET /health``: label names, output mode and request limits (fetched once)."""
        if self._info is None:
            self._info = self._call("GET", "/health")
            if not isinstance(self._info.get("labels"), list) or len(self._info["labels"]) < 2:
                raise ProtegeError(f"{self.url}/health names no labels; is this a protege server?")
        return self._info

    @property
    def labels(self) -> list[str]:
        """The victim's label names, by class id."""
        return list(self.info()["labels"])

    def usage(self) -> dict:
        """``GET /usage``: this key's budget, queries used and left, rate and largest batch."""
        usage = self._call("GET", "/usage")
        self._max_batch = usage.get("max_batch")
        return usage

    def predict(self, texts: list[str], pairs: list[str] | None = None, *, request_id: str | None = None) -> list[dict]:
        """Answers of the server, one per text (batches larger than the server allows are split).

        ``request_id`` (at most 100 characters) names the request, so that sending it again, even
        from another process, is not charged again; by default each call is a new request.
        """
        limit = min(x for x in (self.info().get("max_texts"), self._max_batch, len(texts)) if x)
        answers: list[dict] = []
        start = 0
        while start < len(texts):
            end = min(start + limit, len(texts))
            # a part's id names its span: the same split, on a resend, gives the same ids
            body = {"request_id": f"{request_id}.{start}-{end}" if request_id else uuid.uuid4().hex}
            if pairs is None:
                body["texts"] = list(texts[start:end])
            else:
                body["pairs"] = [[a, b] for a, b in zip(texts[start:end], pairs[start:end])]
            try:
                got = self._call("POST", "/predict", json=body)["answers"]
            except _TooLarge as small:
                limit = self._max_batch = max(1, min(small.max_batch, end - start - 1))
                continue
            if not isinstance(got, list) or len(got) != end - start:
                raise ProtegeError(f"{self.url} answered {len(got) if isinstance(got, list) else 'no'} answers "
                                   f"for {end - start} texts; is this a protege server?")
            answers.extend(got)
            self.queries += len(got)
            start = end
        return answers

    def _call(self, method: str, path: str, **kwargs) -> dict:
        import httpx

        failures = waits = 0
        while True:
            self.requests += 1
            try:
                response = self._http.request(method, path, **kwargs)
            except httpx.TransportError as err:
                failures += 1
                if failures > self._retries:
                    raise ProtegeError(f"cannot reach {self.url}{path} after {self._retries} retries ({type(err).__name__}: "
                                       f"{str(err)[:120]}); is the server running?") from None
                self._sleep(self._delay(failures))
                continue
            status, data = response.status_code, _json(response)
            if status == 200:
                return data
            message = data.get("error") or response.text[:200] or response.reason_phrase
            if status == 429 and data.get("reason") == "rate" and waits < self._max_rate_waits:
                waits += 1
                self._sleep(float(data.get("retry_after") or response.headers.get("retry-after") or 1.0))
                continue
            if status == 413 and data.get("max_batch"):
                raise _TooLarge(int(data["max_batch"]))
            if status >= 500 and failures < self._retries:
                failures += 1
                self._sleep(self._delay(failures))
                continue
            if status == 429 and data.get("reason") == "budget":
                raise BudgetExhaustedError(f"{self.url}: {message}", data.get("remaining"))
            if status == 401:
                raise ProtegeError(f"{self.url} refused the API key ({message}); pass --api-key or set PROTEGE_API_KEY")
            raise ProtegeError(f"{self.url}{path} answered {status}: {message}")

    def _delay(self, failures: int) -> float:
        return min(self._max_backoff, self._backoff * 2 ** (failures - 1)) * (0.5 + random.random() / 2)


class _TooLarge(Exception):
    def __init__(self, max_batch: int):
        super().__init__(max_batch)
        self.max_batch = max_batch


def _json(response) -> dict:
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def connect(victim: str, api_key: str | None = None, *, output: str = "label", timeout: float = 60.0,
            retries: int = 5, max_length: int = 128, batch_size: int = 32):
    """An :class:`HttpVictim` for a URL, or an in-process :class:`~protege.extraction.victim.Victim` for a folder."""
    if victim.startswith(("http://", "https://")):
        return HttpVictim(victim, api_key, timeout=timeout, retries=retries)
    from protege.extraction.victim import Victim

    return Victim(victim, output=output, max_length=max_length, batch_size=batch_size)


@dataclass
class Collected:
    """Queries with their answers; ``new`` were sent by this call, ``reused`` came from the log."""

    texts: list[str]
    pairs: list[str] | None
    answers: list[dict]
    new: int
    reused: int
    seconds: float


def collect(victim, texts: list[str], pairs: list[str] | None = None, *, log, batch_size: int = 32,
            progress: bool = False) -> Collected:
    """Answers of ``victim`` to every query, sending only those ``log`` does not hold yet.

    The log must start with these very queries (same generator and seed); a log holding more
    serves a smaller budget from its first entries. Each answered batch is appended durably
    before the next is sent, so the number of queries paid for is exactly ``len(texts)`` minus
    what was logged, even across interruptions. A victim with ``accepts_request_id`` (an
    :class:`HttpVictim`) gets each request logged first and, after a crash, the unanswered one
    again under the same ``request_id``, which its server answers without charging again.
    """
    records = log.records()
    reused = min(len(records), len(texts))
    for i in range(reused):
        if records[i].get("text") != texts[i] or (pairs is not None and records[i].get("text_pair") != pairs[i]):
            raise ProtegeError(f"{log.path} entry {i + 1} is not the query this run sends; " + _OTHER_QUERIES)
    ids = getattr(victim, "accepts_request_id", False)
    resend = log.pending() if ids and reused < len(texts) else None
    if resend is not None:
        _check_resend(resend, texts, pairs, log)
    answers = [r["answer"] for r in records[:reused]]
    started = time.perf_counter()
    bar = _progress(progress, len(texts), reused)
    try:
        start = reused
        while start < len(texts):
            if resend is not None:  # logged, maybe charged, answers lost: the same request, free on the server
                first, chunk, second, rid = resend["start"], resend["texts"], resend.get("text_pairs"), resend["request_id"]
                resend = None
            else:
                first, chunk = start, texts[start:start + batch_size]
                second = None if pairs is None else pairs[start:start + batch_size]
                rid = None
                if ids:  # logged before it is sent: a death after the server's charge resends it, not pays again
                    rid = uuid.uuid4().hex
                    log.intend(rid, first, chunk, second)
            try:
                got = victim.predict(chunk, second, request_id=rid) if ids else victim.predict(chunk, second)
            except BudgetExhaustedError as spent:
                raise BudgetExhaustedError(f"{spent}; {start} of {len(texts)} queries are answered and kept in {log.path}: "
                                           "with more budget, run the same command again to continue", spent.remaining) from None
            new = range(start - first, len(chunk))  # a resent request may be partly logged already
            log.append([{"text": chunk[i], **({"text_pair": second[i]} if second is not None else {}), "answer": got[i]}
                        for i in new])
            answers.extend(got[i] for i in new)
            if bar is not None:
                bar.update(min(len(new), len(texts) - start))
            start = first + len(chunk)
    finally:
        if bar is not None:
            bar.close()
    return Collected(list(texts), None if pairs is None else list(pairs), answers[:len(texts)], len(texts) - reused, reused,
                     time.perf_counter() - started)


_OTHER_QUERIES = ("the log was made with other --queries/--query-seed/--query-corpus/--pairs: "
                  "pass the same ones or another --query-log")


def _check_resend(request: dict, texts: list[str], pairs: list[str] | None, log) -> None:
    """A pending request is sent again only if it is the query this run would send there."""
    first, seconds = request["start"], request.get("text_pairs")
    for i, text in enumerate(request["texts"][:len(texts) - first]):
        if text != texts[first + i] or (seconds is None) != (pairs is None) or (pairs and seconds[i] != pairs[first + i]):
            raise ProtegeError(f"{log.path}: the request logged for entry {first + i + 1} is not the query this run sends; "
                               + _OTHER_QUERIES)


def _progress(enabled: bool, total: int, initial: int):
    if not enabled or initial >= total:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="query", unit="q", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0)
