"""The query log: every query and its answer, appended to a JSON-lines file that survives crashes.

Queries cost money (or budget), so they are never sent twice: the client appends each answered
batch with one ``write`` followed by ``fsync`` before it asks for the next, and a run that was
interrupted reads the log back and continues after its last complete line (a torn last line,
from a crash mid-write, is cut off). The server writes the same format for its owner
(``serve --answer-log``), which is what :func:`~protege.extract.verify_watermark` reads.

Layout: a header line ``{"protege_query_log": 1, "meta": {...}}``, then one record per query,
``{"text": ..., "text_pair": ... (pairs only), "answer": {...}}`` plus optional fields.
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
            self.meta, self._records = self._read(repair=False)
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
            self.meta, self._records = self._read(repair=True)
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

    def append(self, records: list[dict]) -> None:
        """Append ``records`` durably: one write, flush and fsync, then they count as logged."""
        if self._handle is None:
            raise ProtegeError(f"{self.path} was opened read-only or is closed")
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

    def _write(self, rows: list[dict]) -> None:
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

    def _read(self, *, repair: bool) -> tuple[dict, list[dict]]:
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
        records = []
        for lineno, line in enumerate(lines[1:], start=2):
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                raise ProtegeError(f"{self.path} line {lineno} is not valid JSON; the log is damaged, "
                                   "truncate it before that line to keep the earlier answers") from None
            records.append(record)
        return header.get("meta") or {}, records
