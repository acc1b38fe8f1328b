"""API keys, query budgets persisted across restarts, and per-key rate limits.

Keys come from a JSON file ``{"KEY": {"budget": 100000, "rate": 50}}`` (total queries, queries
per second; either may be null for no limit). Usage lives in a SQLite file beside it: a budget
is checked and charged in one conditional ``UPDATE`` inside a transaction, so a restart (or a
crash) never resets it and concurrent requests never overspend it. The keys themselves are not
stored: usage rows are keyed by the SHA-256 of the key. Rates are token buckets held in memory
(one second of burst).
"""

from __future__ import annotations

import hashlib
import json
import math
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["Account", "Accounts", "RateLimited", "BudgetExhausted", "key_id", "load_keys"]


class RateLimited(Exception):
    """The key sent queries faster than its rate: retry after ``retry_after`` seconds, or, when
    ``max_batch`` is set, the request alone is larger than the rate allows: send smaller ones."""

    def __init__(self, message: str, retry_after: float, max_batch: int | None = None):
        super().__init__(message)
        self.retry_after = retry_after
        self.max_batch = max_batch


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

    def __init__(self, accounts: dict[str, Account], usage_path: str | Path, *, clock=time.monotonic):
        self._accounts = accounts
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: dict[str, tuple[float, float]] = {}  # id -> (tokens, last refill time)
        self.usage_path = Path(usage_path)
        try:
            self.usage_path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.usage_path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("CREATE TABLE IF NOT EXISTS usage (key_id TEXT PRIMARY KEY, used INTEGER NOT NULL)")
            self._db.executemany("INSERT OR IGNORE INTO usage VALUES (?, 0)", [(k,) for k in accounts])
        except sqlite3.Error as err:
            raise ProtegeError(f"cannot use {self.usage_path} as the usage database ({err}); pass another --usage file") from None

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
