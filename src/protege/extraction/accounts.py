"""API keys, query budgets persisted across restarts, and per-key rate limits.

Keys come from a JSON file ``{"KEY": {"budget": 100000, "rate": 50}}`` (total queries, queries
per second; either may be null for no limit). Usage lives in a SQLite file beside it: a budget
is checked and charged in one conditional ``UPDATE`` inside a transaction, so a restart (or a
crash) never resets it and concurrent requests never overspend it. The keys themselves are not
stored: usage rows are keyed by the SHA-256 of the key. Rates are token buckets held in memory
(one second of burst).

Requests that carry a ``request_id`` are also recorded there (:meth:`Accounts.begin`): the
lookup of the id and the charge are one transaction, so a retry, concurrent or after a restart,
is never charged twice. A record is *pending* (charged, being answered) until
:meth:`~Accounts.finish` stores the answer or :meth:`~Accounts.abandon` refunds it; the newest
``replay_slots`` answered ones per key are kept. One server process per usage file: pending
records found at start are from a crash (their answers never left) and are refunded.
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["Account", "Accounts", "RateLimited", "BudgetExhausted", "RequestConflict", "key_id", "load_keys"]

REPLAY_SLOTS = 1000  # answered request_ids kept per key: enough for any client's retries and resumes


class RateLimited(Exception):
    """The key sent queries faster than its rate: retry after ``retry_after`` seconds, or, when
    ``max_batch`` is set, the request alone is larger than the rate allows: send smaller ones."""

    def __init__(self, message: str, retry_after: float, max_batch: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.max_batch = max_batch


class RequestConflict(Exception):
    """A ``request_id`` came back with other texts than the request first sent under it."""


class BudgetExhausted(Exception):
    """The key's budget cannot pay for the request; ``remaining`` queries are left."""

    def __init__(self, message: str, remaining: int):
        super().__init__(message)
        self.remaining = remaining


def key_id(key: str) -> str:
    """The stored identity of an API key (its SHA-256, hex)."""
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Account:
    """One key's limits: ``budget`` total queries and ``rate`` queries per second (None: unlimited)."""

    id: str
    budget: int | None
    rate: float | None


def load_keys(path: str | Path) -> dict[str, Account]:
    """Read and check a keys file; returns accounts by key id."""
    p = Path(path)
    if not p.is_file():
        raise ProtegeError(f"{path}: no such keys file; write one like {{\"KEY\": {{\"budget\": 100000, \"rate\": 50}}}}")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ProtegeError(f"{path}: not valid JSON ({err}); write {{\"KEY\": {{\"budget\": 100000, \"rate\": 50}}}}") from None
    if not isinstance(data, dict) or not data:
        raise ProtegeError(f"{path}: must be a non-empty object of key: {{budget, rate}}")
    accounts = {}
    for key, spec in data.items():
        shown = key[:4] + "..." if len(key) > 4 else key
        if len(key) < 8 or any(c.isspace() for c in key):
            raise ProtegeError(f"{path}: key '{shown}' must be at least 8 characters without spaces; use a long random key")
        if not isinstance(spec, dict) or set(spec) - {"budget", "rate"}:
            raise ProtegeError(f"{path}: key '{shown}' must map to {{\"budget\": N, \"rate\": R}} and nothing else")
        budget, rate = spec.get("budget"), spec.get("rate")
        if budget is not None and (isinstance(budget, bool) or not isinstance(budget, int) or budget < 0):
            raise ProtegeError(f"{path}: key '{shown}': budget must be a non-negative integer or null, got {budget!r}")
        if rate is not None and (isinstance(rate, bool) or not isinstance(rate, (int, float)) or not rate > 0
                                 or not math.isfinite(rate)):
            raise ProtegeError(f"{path}: key '{shown}': rate must be a positive number of queries per second or null, got {rate!r}")
        accounts[key_id(key)] = Account(key_id(key), budget, None if rate is None else float(rate))
    return accounts


class Accounts:
    """Keys with their budgets (persisted in ``usage_path``, SQLite) and rate limits (in memory)."""

    def __init__(self, accounts: dict[str, Account], usage_path: str | Path, *, clock=time.monotonic,
                 replay_slots: int = REPLAY_SLOTS):
        self._accounts = accounts
        self._clock = clock
        self._replay_slots = replay_slots
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, last refill time)
        self.usage_path = Path(usage_path)
        try:
            if str(usage_path) != ":memory:":
                self.usage_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.usage_path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS usage (key_id TEXT PRIMARY KEY, used INTEGER NOT NULL)")
            # result NULL: charged and still being answered (pending); else the JSON answered
            self._db.execute("CREATE TABLE IF NOT EXISTS replays (key_id TEXT NOT NULL, request_id TEXT NOT NULL, "
                             "digest TEXT NOT NULL, n INTEGER NOT NULL, result TEXT, PRIMARY KEY (key_id, request_id))")
            self._db.executemany("INSERT OR IGNORE INTO usage VALUES (?, 0)", [(k,) for k in accounts])
            with self._transaction():  # pending at start: the last server died before answering; refund
                self._db.execute("UPDATE usage SET used = MAX(0, used - (SELECT COALESCE(SUM(n), 0) FROM replays "
                                 "WHERE replays.key_id = usage.key_id AND result IS NULL))")
                self._db.execute("DELETE FROM replays WHERE result IS NULL")
        except sqlite3.Error as err:
            raise ProtegeError(f"cannot use {self.usage_path} as the usage database ({err}); pass another --usage file") from None

    @classmethod
    def keyless(cls) -> "Accounts":
        """No keys and nothing charged, in memory: only request replays are recorded (an open server)."""
        return cls({}, ":memory:")

    @classmethod
    def from_file(cls, keys_path: str | Path, usage_path: str | Path | None = None) -> "Accounts":
        """Accounts of a keys file; usage defaults to ``KEYS.usage.sqlite`` beside it."""
        keys_path = Path(keys_path)
        return cls(load_keys(keys_path), usage_path or keys_path.with_suffix(".usage.sqlite"))

    def __len__(self) -> int:
        return len(self._accounts)

    def close(self) -> None:
        """Close the usage database."""
        self._db.close()

    def find(self, key: str | None) -> Account | None:
        """The account of ``key``, or None for a missing or unknown key."""
        return self._accounts.get(key_id(key)) if key else None

    def used(self, account: Account) -> int:
        """Queries charged to ``account`` so far (across restarts)."""
        with self._lock:
            row = self._db.execute("SELECT used FROM usage WHERE key_id = ?", (account.id,)).fetchone()
        return int(row[0]) if row else 0

    def usage(self, account: Account) -> dict:
        """``{"budget", "used", "remaining", "rate"}`` of an account (None for unlimited)."""
        used = self.used(account)
        remaining = None if account.budget is None else max(0, account.budget - used)
        return {"budget": account.budget, "used": used, "remaining": remaining, "rate": account.rate}

    def max_batch(self, account: Account) -> int | None:
        """The most queries one request can carry under the rate limit (one second of burst)."""
        return None if account.rate is None else max(1, int(account.rate))

    def charge(self, account: Account, n: int) -> int | None:
        """Charge ``n`` queries or raise :class:`RateLimited` / :class:`BudgetExhausted`; returns what remains."""
        with self._lock:
            return self._charge(account, n)

    def begin(self, account: Account | None, n: int, request_id: str, digest: str) -> tuple[str, object]:
        """Charge a request of ``n`` queries and record it as pending, unless its id was seen: one transaction.

        Returns ``("charged", remaining)``, ``("done", stored result)`` or ``("pending", None)``
        (being answered: ask again); raises :class:`RequestConflict` when the id came with
        another ``digest`` (other texts), and what :meth:`charge` raises. ``account`` None: no charge.
        """
        owner = account.id if account is not None else ""
        with self._lock, self._transaction():
            row = self._db.execute("SELECT digest, result FROM replays WHERE key_id = ? AND request_id = ?",
                                   (owner, request_id)).fetchone()
            if row is not None:
                if row[0] != digest:
                    raise RequestConflict(f"request_id '{request_id}' was already used for other texts; "
                                          "send a new request_id for a new request")
                return ("pending", None) if row[1] is None else ("done", json.loads(row[1]))
            remaining = self._charge(account, n) if account is not None else None
            self._db.execute("INSERT INTO replays VALUES (?, ?, ?, ?, NULL)", (owner, request_id, digest, n))
            return "charged", remaining

    def finish(self, account: Account | None, request_id: str, result: dict) -> None:
        """Store the answer of a pending request (replayed to its retries); keep the newest records per key."""
        owner = account.id if account is not None else ""
        with self._lock, self._transaction():
            self._db.execute("UPDATE replays SET result = ? WHERE key_id = ? AND request_id = ?",
                             (json.dumps(result, separators=(",", ":")), owner, request_id))
            self._db.execute("DELETE FROM replays WHERE key_id = ? AND result IS NOT NULL AND rowid NOT IN (SELECT rowid "
                             "FROM replays WHERE key_id = ? AND result IS NOT NULL ORDER BY rowid DESC LIMIT ?)",
                             (owner, owner, self._replay_slots))

    def abandon(self, account: Account | None, request_id: str) -> None:
        """Forget a pending request that could not be answered and refund its charge."""
        owner = account.id if account is not None else ""
        with self._lock, self._transaction():
            row = self._db.execute("SELECT n FROM replays WHERE key_id = ? AND request_id = ? AND result IS NULL",
                                   (owner, request_id)).fetchone()
            if row is not None:
                self._db.execute("DELETE FROM replays WHERE key_id = ? AND request_id = ?", (owner, request_id))
                self._db.execute("UPDATE usage SET used = MAX(0, used - ?) WHERE key_id = ?", (row[0], owner))

    @contextmanager
    def _transaction(self):
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _charge(self, account: Account, n: int) -> int | None:
        # the caller holds the lock (and, from begin, the transaction)
        tokens = self._refill(account)
        if account.rate is not None:
            burst = self.max_batch(account)
            if n > burst:
                raise RateLimited(f"{n} queries in one request exceed the rate limit of {account.rate:g} per second; "
                                  f"send at most {burst} per request", retry_after=0.0, max_batch=burst)
            if tokens + 1e-9 < n:
                wait = (n - tokens) / account.rate
                raise RateLimited(f"rate limit of {account.rate:g} queries per second exceeded; retry in {wait:.2f} s", wait)
        remaining = None
        if account.budget is not None:
            cur = self._db.execute("UPDATE usage SET used = used + ? WHERE key_id = ? AND used + ? <= ?",
                                   (n, account.id, n, account.budget))
            if cur.rowcount != 1:
                used = self._db.execute("SELECT used FROM usage WHERE key_id = ?", (account.id,)).fetchone()[0]
                left = max(0, account.budget - used)
                raise BudgetExhausted(f"query budget exhausted: {left} of {account.budget} queries left, "
                                      f"this request needs {n}", remaining=left)
            remaining = account.budget - self._db.execute("SELECT used FROM usage WHERE key_id = ?",
                                                          (account.id,)).fetchone()[0]
        else:
            self._db.execute("UPDATE usage SET used = used + ? WHERE key_id = ?", (n, account.id))
        if account.rate is not None:
            self._buckets[account.id] = (tokens - n, self._buckets[account.id][1])
        return remaining

    def refund(self, account: Account, n: int) -> None:
        """Give back ``n`` queries charged for a request that could not be answered."""
        with self._lock:
            self._db.execute("UPDATE usage SET used = MAX(0, used - ?) WHERE key_id = ?", (n, account.id))

    def _refill(self, account: Account) -> float:
        if account.rate is None:
            return math.inf
        now = self._clock()
        burst = float(self.max_batch(account))
        tokens, last = self._buckets.get(account.id, (burst, now))
        tokens = min(burst, tokens + (now - last) * account.rate)
        self._buckets[account.id] = (tokens, now)
        return tokens
