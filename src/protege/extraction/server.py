"""The prediction server: a :class:`~protege.extraction.victim.Victim` behind HTTP (FastAPI + uvicorn).

API (JSON in, JSON out; errors are ``{"error": "one line"}``)::

    GET  /health                      {"status": "ok", "labels": [...], "output": "label", "max_texts": 64, ...}
    GET  /usage      (key)            {"budget": 100000, "used": 120, "remaining": 99880, "rate": 50, "max_batch": 50}
    POST /predict    (key)            {"texts": ["..."]} or {"pairs": [["...", "..."]]}, optional "request_id"
                                   -> {"answers": [{"label": 1, "name": "positive", ...}], "remaining": 99816}

The key goes in ``Authorization: Bearer KEY`` or ``X-API-Key: KEY``. Status codes: 401 no or
unknown key; 429 rate limit (with ``Retry-After``) or budget exhausted (``"reason"`` says which);
400 malformed or too deeply nested JSON; 413 a body, a text or a batch too large (too large for
the key's rate: ``"max_batch"``); 422 wrong fields or types, empty texts, invalid Unicode (a lone
surrogate); 409 a ``request_id`` reused for other texts; 500 the model failed (the queries are
refunded); 503 a duplicate still waiting for its first attempt (retry). A request with a
``request_id`` is charged once: its retries, concurrent or after a restart, get the stored answer
free (:meth:`~protege.extraction.accounts.Accounts.begin`). Nothing a client sends can stop the server.
"""

# no ``from __future__ import annotations``: FastAPI reads the endpoints' annotations (Request,
# imported inside create_app because fastapi is an optional extra) at definition time.
import asyncio
import hashlib
import json
import socket
import sys
import threading
import time

from protege.errors import ProtegeError
from protege.extraction import require_extra
from protege.extraction.accounts import Accounts, BudgetExhausted, RateLimited, RequestConflict
from protege.extraction.config import ServeConfig, is_loopback

__all__ = ["BadRequest", "parse_request", "create_app", "RunningServer", "serve"]

_REPLAY_WAIT = 30.0  # seconds a duplicate waits for its first attempt's answer before a 503


class BadRequest(Exception):
    """A request the server refuses: ``status`` and a one-line message."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


def parse_request(body: bytes, *, max_texts: int, max_chars: int) -> tuple[list[str], list[str] | None, str | None]:
    """``(texts, second texts or None, request_id or None)`` of a /predict body, or :class:`BadRequest`."""
    example = '{"texts": ["a first text", "another"]}'
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise BadRequest(400, f"the body is not valid JSON ({str(err).splitlines()[0]}); send {example}") from None
    except RecursionError:  # e.g. 100000 nested lists: the parser gives up before the stack does
        raise BadRequest(400, f"the body is nested too deeply to be a request; send {example}") from None
    if not isinstance(obj, dict):
        raise BadRequest(400, f"the body must be a JSON object; send {example}")
    unknown = sorted(set(obj) - {"texts", "pairs", "request_id"})
    if unknown:
        raise BadRequest(422, f"unknown field '{unknown[0]}'; send \"texts\" (or \"pairs\") and optionally \"request_id\"")
    if ("texts" in obj) == ("pairs" in obj):
        raise BadRequest(422, f"send exactly one of \"texts\" or \"pairs\"; e.g. {example}")
    rid = obj.get("request_id")
    if rid is not None and (not isinstance(rid, str) or not 0 < len(rid) <= 128):
        raise BadRequest(422, "\"request_id\" must be a string of 1 to 128 characters")
    if rid is not None:
        _unicode(rid, "request_id")
    field = "texts" if "texts" in obj else "pairs"
    items = obj[field]
    if not isinstance(items, list) or not items:
        raise BadRequest(422, f"\"{field}\" must be a non-empty list")
    if len(items) > max_texts:
        raise BadRequest(413, f"too many {field}: {len(items)} in one request, the limit is {max_texts}; split the batch")
    if field == "pairs":
        for i, pair in enumerate(items):
            if not isinstance(pair, list) or len(pair) != 2:
                raise BadRequest(422, f"pairs[{i}] must be a list of two strings [\"first\", \"second\"]")
        texts = [_text(p[0], f"pairs[{i}][0]", max_chars) for i, p in enumerate(items)]
        seconds = [_text(p[1], f"pairs[{i}][1]", max_chars) for i, p in enumerate(items)]
        return texts, seconds, rid
    return [_text(t, f"texts[{i}]", max_chars) for i, t in enumerate(items)], None, rid


def _text(value, where: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(422, f"{where} must be a string, got {type(value).__name__}")
    if not value.strip():
        raise BadRequest(422, f"{where} is empty; send non-empty texts")
    if len(value) > max_chars:
        raise BadRequest(413, f"{where} has {len(value)} characters, the limit is {max_chars}; shorten it")
    return _unicode(value, where)


def _unicode(value: str, where: str) -> str:
    # JSON can escape a lone surrogate ("\ud800"): no tokenizer, database or log can encode it
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:
        raise BadRequest(422, f"{where} holds a lone surrogate (\\u{ord(value[err.start]):04x} at character {err.start}); "
                              "send valid Unicode text") from None
    return value


def _digest(texts: list[str], pairs: list[str] | None) -> str:
    # what a request_id is bound to: its texts (and second texts), hashed
    return hashlib.sha256(json.dumps([texts, pairs]).encode("ascii")).hexdigest()


def create_app(victim, *, accounts: Accounts | None = None, max_texts: int = 64, max_chars: int = 2000, answer_log=None,
               replay_wait: float = _REPLAY_WAIT):
    """A FastAPI app serving ``victim``; ``accounts`` None means no keys (open, unlimited).

    ``replay_wait``: seconds a duplicate request waits for its first attempt before a 503.
    """
    require_extra("fastapi")
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse
    from starlette.concurrency import run_in_threadpool
    from starlette.exceptions import HTTPException

    app = FastAPI(title="protege prediction API", docs_url=None, redoc_url=None, openapi_url=None)
    max_body = max_texts * (2 * max_chars * 6 + 64) + 1024  # 2 texts of max_chars, JSON-escaped (\uXXXX), per item
    ledger = accounts if accounts is not None else Accounts.keyless()  # records request_ids, charges keys
    lock = threading.Lock()

    def error(status: int, message: str, **extra) -> JSONResponse:
        headers = {"Retry-After": str(max(1, int(extra["retry_after"] + 0.999)))} if "retry_after" in extra else None
        return JSONResponse({"error": message, **extra}, status_code=status, headers=headers)

    def account_of(request: Request):
        if accounts is None:
            return None, None
        auth = request.headers.get("authorization", "")
        key = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-api-key")
        account = accounts.find(key)
        if account is None:
            what = "unknown API key" if key else "no API key"
            return None, error(401, f"{what}; send it as 'Authorization: Bearer KEY' or 'X-API-Key: KEY'")
        return account, None

    def answer(texts, pairs, account) -> list[dict]:
        answers = victim.predict(texts, pairs)
        if answer_log is not None:
            tag = account.id[:16] if account is not None else None
            rows = [{"text": t, **({"text_pair": pairs[i]} if pairs is not None else {}), "answer": a, "key": tag,
                     "time": round(time.time(), 3)} for i, (t, a) in enumerate(zip(texts, answers))]
            with lock:
                answer_log.append(rows)
        return answers

    @app.exception_handler(HTTPException)
    async def http_error(request, exc):
        return error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def internal_error(request, exc):
        return error(500, "internal server error; the request was not charged")

    @app.get("/health")
    async def health():
        return {"status": "ok", **victim.info(), "max_texts": max_texts, "max_chars": max_chars,
                "keys": accounts is not None}

    @app.get("/usage")
    async def usage(request: Request):
        account, refused = account_of(request)
        if refused is not None:
            return refused
        if account is None:
            return {"budget": None, "used": None, "remaining": None, "rate": None, "max_batch": None}
        return {**await run_in_threadpool(accounts.usage, account), "max_batch": accounts.max_batch(account)}

    @app.post("/predict")
    async def predict(request: Request):
        account, refused = account_of(request)
        if refused is not None:
            return refused
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body:
            return error(413, f"the body has {declared} bytes, the limit is {max_body}; send fewer or shorter texts")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > max_body:
                return error(413, f"the body exceeds {max_body} bytes; send fewer or shorter texts")
        try:
            texts, pairs, rid = parse_request(bytes(body), max_texts=max_texts, max_chars=max_chars)
        except BadRequest as bad:
            return error(bad.status, str(bad))
        try:
            remaining = await admit(account, texts, pairs, rid)
        except RequestConflict as reused:
            return error(409, str(reused))
        except RateLimited as limited:
            if limited.max_batch is not None:
                return error(413, str(limited), reason="rate", max_batch=limited.max_batch)
            return error(429, str(limited), reason="rate", retry_after=round(limited.retry_after, 3))
        except BudgetExhausted as spent:
            return error(429, str(spent), reason="budget", remaining=spent.remaining)
        if isinstance(remaining, _Replayed):
            return remaining.response
        try:
            answers = await run_in_threadpool(answer, texts, pairs, account)
            result = {"answers": answers, "remaining": remaining}
            if rid is not None:
                await run_in_threadpool(ledger.finish, account, rid, result)
        except Exception as err:  # noqa: BLE001 - the model failed: refund, answer 500, keep serving
            await run_in_threadpool(refund, account, texts, rid)
            message = str(err).splitlines()[0][:200] if isinstance(err, ProtegeError) else "the model failed on this request"
            return error(500, f"{message}; the request was not charged")
        except BaseException:  # cancelled (shutdown): the answer never leaves, so the charge must not stay
            refund(account, texts, rid)
            raise
        return result

    async def admit(account, texts, pairs, rid):
        """Charge a request, or find its id answered (a :class:`_Replayed`) or being answered (wait)."""
        if rid is None:
            return await run_in_threadpool(accounts.charge, account, len(texts)) if account is not None else None
        digest, delay = _digest(texts, pairs), 0.005
        deadline = time.monotonic() + replay_wait
        while True:
            state, value = await run_in_threadpool(ledger.begin, account, len(texts), rid, digest)
            if state == "charged":
                return value
            if state == "done":
                return _Replayed(value)
            if time.monotonic() > deadline:
                return _Replayed(error(503, f"request_id '{rid}' is still being answered; retry it in a few seconds",
                                       retry_after=1.0))
            await asyncio.sleep(delay)  # the first attempt is computing: its answer is this one's
            delay = min(0.1, delay * 2)

    def refund(account, texts, rid) -> None:
        if rid is not None:
            ledger.abandon(account, rid)
        elif account is not None:
            accounts.refund(account, len(texts))

    return app


class _Replayed:
    """What /predict answers without computing: a stored answer, or an error for a duplicate still waiting."""

    def __init__(self, response):
        self.response = response


def _bind(host: str, port: int) -> socket.socket:
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as err:
        raise ProtegeError(f"cannot listen on {host}:{port} ({err.strerror or err}); choose another --port or --host") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def _url(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class RunningServer:
    """Serve ``app`` from a background thread (tests, notebooks, benchmarks)::

        with RunningServer(create_app(victim)) as server:
            HttpVictim(server.url).predict(["a text"])
    """

    def __init__(self, app, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning"):
        require_extra("uvicorn")
        import uvicorn

        self._sock = _bind(host, port)
        self.url = _url(self._sock)
        self._server = uvicorn.Server(uvicorn.Config(app, log_level=log_level, lifespan="off"))
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True)

    def __enter__(self) -> "RunningServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def start(self, timeout: float = 20.0) -> "RunningServer":
        """Start serving; returns once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server at {self.url} did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Stop serving and wait for in-flight requests."""
        self._server.should_exit = True
        self._thread.join(timeout=20)
        self._sock.close()


def serve(config: ServeConfig | None = None, **kwargs) -> None:
    """Serve a classifier over HTTP until interrupted (``protege serve``).

    Keyword arguments are the fields of :class:`~protege.extraction.config.ServeConfig`.
    """
    import os

    require_extra("fastapi", "uvicorn")
    import uvicorn

    from protege.extraction.defenses.watermark import Watermark
    from protege.extraction.querylog import QueryLog
    from protege.extraction.victim import Victim
    from protege.models.loading import quiet_transformers

    if config is not None and kwargs:
        raise TypeError("pass either a config object or keyword arguments, not both")
    cfg = config if config is not None else ServeConfig(**kwargs)
    quiet_transformers()
    key = cfg.watermark_key or os.environ.get("PROTEGE_WATERMARK_KEY")
    watermark = Watermark(key, cfg.watermark_fraction) if key else None
    accounts = Accounts.from_file(cfg.keys, cfg.usage) if cfg.keys else None
    victim = Victim(cfg.model, output=cfg.output, top_k=cfg.top_k, decimals=cfg.decimals, watermark=watermark,
                    max_length=cfg.max_length, batch_size=cfg.batch_size, device=cfg.device)
    answer_log = QueryLog(cfg.answer_log, meta={"served": cfg.model, "output": cfg.output}) if cfg.answer_log else None
    app = create_app(victim, accounts=accounts, max_texts=cfg.max_texts, max_chars=cfg.max_chars, answer_log=answer_log)
    sock = _bind(cfg.host, cfg.port)
    notes = [f"output {cfg.output}", f"{len(accounts)} API keys, usage in {accounts.usage_path}" if accounts else "no API keys",
             "watermarked" if watermark else "no watermark"]
    print(f"protege: serving {cfg.model} at {_url(sock)} ({'; '.join(notes)}); Ctrl-C stops", file=sys.stderr, flush=True)
    if not is_loopback(cfg.host):
        print(f"protege: warning: {cfg.host} is reachable from other machines; keep the keys file secret", file=sys.stderr)
    try:
        uvicorn.Server(uvicorn.Config(app, log_level=cfg.log_level, lifespan="off")).run(sockets=[sock])
    finally:
        sock.close()
        if accounts is not None:
            accounts.close()
        if answer_log is not None:
            answer_log.close()
