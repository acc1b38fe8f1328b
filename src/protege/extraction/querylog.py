"""The query log: every query and its answer, appended to a JSON-lines file that survives crashes.

Queries cost money (or budget), so they are never paid twice: the client appends each answered
batch with one ``write`` followed by ``fsync`` before it asks for the next, and a run that was
interrupted reads the log back and continues after its last complete line (a torn last line,
from a crash mid-write, is cut off). Before sending a request to a server, the client also logs
the request itself (:meth:`QueryLog.intend`): a crash after the server charged it but before its
answers were logged leaves it :meth:`~QueryLog.pending`, and the resumed run sends it again under
the same ``request_id``, which the server answers from its store, free. The server writes the
same format for its owner (``serve --answer-log``), which is what
:func:`~protege.extraction.verify_watermark` reads.

Layout: a header line ``{"protege_query_log": 1, "meta": {...}}``, then one record per query,
``{"text": ..., "text_pair": ... (pairs only), "answer": {...}}`` plus optional fields, and
request lines ``{"request": {"request_id": ..., "start": N, "texts": [...], "text_pairs": [...]}}``
(``start``: the index of the request's first query).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["QueryLog"]

_FORMAT = 1


class QueryLog:
    """An append-only, fsync'd JSONL log of queries and answers (one writer at a time).

    Opening for writing creates the file (and its folder) with a header holding ``meta``, or
    reopens an existing log, repairing a torn last line, and takes an exclusive lock so that a
    second process cannot interleave its appends. ``readonly=True`` only reads.
    """

    def __init__(self, path: str | Path, *, meta: dict | None = None, readonly: bool = False):
        self.path = Path(path)
        self._handle = None
        if readonly:
            if not self.path.is_file():
                raise ProtegeError(f"{self.path}: no such query log")
            self.meta, self._records, self._request = self._read(repair=False)
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._handle = open(self.path, "ab+")
        except OSError as err:
            raise ProtegeError(f"cannot open the query log {self.path} ({err.strerror}); choose a writable --query-log") from None
        try:
            self._lock()
            if self.path.stat().st_size == 0:
                self._write([{"protege_query_log": _FORMAT, "meta": meta or {}}])
            self.meta, self._records, self._request = self._read(repair=True)
        except BaseException:
            self.close()
            raise

    def __len__(self) -> int:
        return len(self._records)

    def __enter__(self) -> "QueryLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def records(self) -> list[dict]:
        """Every logged record, oldest first."""
        return list(self._records)

    def intend(self, request_id: str, start: int, texts: list[str], pairs: list[str] | None = None) -> None:
        """Log a request durably before it is sent: its id, the index of its first query, its texts."""
        request = {"request_id": request_id, "start": start, "texts": list(texts),
                   **({"text_pairs": list(pairs)} if pairs is not None else {})}
        self._write([{"request": request}])
        self._request = request

    def pending(self) -> dict | None:
        """The last logged request whose answers are not all logged (a crash came between), or None."""
        r = self._request
        return r if r is not None and r["start"] <= len(self._records) < r["start"] + len(r["texts"]) else None

    def append(self, records: list[dict]) -> None:
        """Append ``records`` durably: one write, flush and fsync, then they count as logged."""
        self._writable()
        for r in records:
            if not isinstance(r, dict) or not isinstance(r.get("text"), str) or not isinstance(r.get("answer"), dict):
                raise ProtegeError("a query-log record needs a 'text' string and an 'answer' object")
        self._write(records)
        self._records.extend(records)

    def close(self) -> None:
        """Release the lock and the file."""
        if self._handle is not None:
            self._handle.close()  # closing drops the flock
            self._handle = None

    # ------------------------------------------------------------------------------------------

    def _writable(self) -> None:
        if self._handle is None:
            raise ProtegeError(f"{self.path} was opened read-only or is closed")

    def _write(self, rows: list[dict]) -> None:
        self._writable()
        data = "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in rows).encode("utf-8")
        self._handle.seek(0, os.SEEK_END)
        self._handle.write(data)
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def _lock(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - not POSIX: no cross-process guard
            return
        try:
            fcntl.flock(self._handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            self.close()
            raise ProtegeError(f"{self.path} is in use by another run; wait for it or pass another --query-log") from None

    def _read(self, *, repair: bool) -> tuple[dict, list[dict], dict | None]:
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1
        if end < len(data) and repair:  # a crash mid-append left a partial line: drop it
            self._handle.truncate(end)
            self._handle.flush()
            os.fsync(self._handle.fileno())
        lines = data[:end].decode("utf-8", errors="replace").splitlines()
        if not lines:
            raise ProtegeError(f"{self.path} is not a query log (no header line); pass another --query-log")
        try:
            header = json.loads(lines[0])
        except json.JSONDecodeError:
            header = None
        if not isinstance(header, dict) or header.get("protege_query_log") != _FORMAT:
            raise ProtegeError(f"{self.path} is not a protege query log (bad header); pass another --query-log")
        records, request = [], None
        for lineno, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ProtegeError(f"{self.path} line {lineno} is not valid JSON; the log is damaged, "
                                   "truncate it before that line to keep the earlier answers") from None
            if isinstance(record, dict) and "request" in record and "text" not in record:
                request = record["request"]
            else:
                records.append(record)
        return header.get("meta") or {}, records, request
