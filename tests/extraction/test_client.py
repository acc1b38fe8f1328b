"""The client and the query log: exact budgets, resume without re-querying, damaged and foreign logs."""

import json
import socket

import httpx
import pytest

from protege.errors import ProtegeError
from protege.extraction import HttpVictim, QueryLog, RunningServer, collect, create_app
from protege.extraction.accounts import Accounts
from protege.extraction.client import BudgetExhaustedError

TEXTS = [f"text number {i}" for i in range(100)]


class Interrupted(Exception):
    pass


class Dying:
    """Answers ``alive`` calls, then the process 'dies'."""

    def __init__(self, inner, alive):
        self.inner, self.alive = inner, alive

    def predict(self, texts, pairs=None):
        if self.alive == 0:
            raise Interrupted
        self.alive -= 1
        return self.inner.predict(texts, pairs)


def test_an_interrupted_run_resumes_without_re_querying(rule_victim, tmp_path):
    path = tmp_path / "log.jsonl"
    with pytest.raises(Interrupted), QueryLog(path) as log:
        collect(Dying(rule_victim, 3), TEXTS, log=log, batch_size=16)
    assert rule_victim.queries == 48 and len(QueryLog(path, readonly=True)) == 48
    with QueryLog(path) as log:
        got = collect(rule_victim, TEXTS, log=log, batch_size=16)
    assert (got.new, got.reused) == (52, 48)
    assert rule_victim.queries == 100  # every query sent exactly once
    assert got.answers == rule_victim.predict(TEXTS)
    with QueryLog(path) as log:  # a smaller budget is served from the log's first entries
        again = collect(rule_victim, TEXTS[:30], log=log, batch_size=16)
    assert (again.new, again.reused, len(again.answers)) == (0, 30, 30)


def test_a_torn_last_line_is_cut_and_foreign_logs_are_refused(rule_victim, tmp_path):
    path = tmp_path / "log.jsonl"
    with QueryLog(path, meta={"queries": "random"}) as log:
        collect(rule_victim, TEXTS[:20], log=log, batch_size=8)
    with open(path, "ab") as f:  # a crash in the middle of an append
        f.write(b'{"text": "text number 20", "ans')
    with QueryLog(path) as log:
        assert len(log) == 20 and log.meta == {"queries": "random"}
        got = collect(rule_victim, TEXTS[:24], log=log, batch_size=8)
        assert got.new == 4
    assert path.read_text().count("\n") == 25 and json.loads(path.read_text().splitlines()[-1])["text"] == "text number 23"
    with QueryLog(path) as log, pytest.raises(ProtegeError, match="entry 1 is not the query"):
        collect(rule_victim, ["something else"] + TEXTS[1:24], log=log)
    with QueryLog(path), pytest.raises(ProtegeError, match="in use by another run"):
        QueryLog(path)
    (tmp_path / "other.jsonl").write_text('{"some": "json"}\n')
    with pytest.raises(ProtegeError, match="not a protege query log"):
        QueryLog(tmp_path / "other.jsonl")


@pytest.fixture
def server(rule_victim, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"attacker-key-01": {"budget": 70, "rate": None}}))
    accounts = Accounts.from_file(keys)
    with RunningServer(create_app(rule_victim, accounts=accounts, max_texts=10)) as running:
        yield running
    accounts.close()


def test_the_budget_is_spent_exactly_and_an_exhausted_one_keeps_what_was_answered(server, rule_victim, tmp_path):
    path = tmp_path / "log.jsonl"
    with HttpVictim(server.url, "attacker-key-01") as victim, QueryLog(path) as log:
        got = collect(victim, TEXTS[:45], log=log, batch_size=32)  # batches of 32 are split to the server's 10
        assert got.new == 45 and victim.usage()["used"] == 45 and rule_victim.queries == 45
        with pytest.raises(BudgetExhaustedError, match="65 of 100 queries are answered and kept"):
            collect(victim, TEXTS, log=log, batch_size=20)  # 25 left: one batch of 20, then 20 > 5
        assert len(log) == 65 and victim.usage() == {"budget": 70, "used": 65, "remaining": 5, "rate": None, "max_batch": None}


def test_client_errors_are_one_line(server, tmp_path):
    with HttpVictim(server.url, "wrong-key-0000") as victim, pytest.raises(ProtegeError, match="refused the API key"):
        victim.predict(["a"])
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    waits = []
    with HttpVictim(f"http://127.0.0.1:{port}", retries=2, sleep=waits.append) as victim:
        with pytest.raises(ProtegeError, match="cannot reach .* after 2 retries"):
            victim.info()
    assert len(waits) == 2 and waits[1] > waits[0] * 0.9  # exponential backoff (with jitter)
    with pytest.raises(ProtegeError, match="http://"):
        HttpVictim("ftp://example")
    assert HttpVictim("http://user:secret@127.0.0.1:1").name == "http://127.0.0.1:1"
    assert httpx.get(f"{server.url}/health").json()["keys"] is True


_DIES_AFTER_THE_CHARGE = """
import os, signal, sys
from protege.extraction import HttpVictim, QueryLog, collect

class DiesAfterTheAnswer(HttpVictim):
    calls = 0

    def predict(self, texts, pairs=None, **kw):
        got = super().predict(texts, pairs, **kw)
        DiesAfterTheAnswer.calls += 1
        if DiesAfterTheAnswer.calls == 3:  # the server has charged, the log does not hold the answers yet
            os.kill(os.getpid(), signal.SIGKILL)
        return got

url, key, path = sys.argv[1:]
with QueryLog(path) as log:
    collect(DiesAfterTheAnswer(url, key), [f"text number {i}" for i in range(45)], log=log, batch_size=10)
"""


def test_a_client_killed_between_the_charge_and_the_log_write_resumes_free(server, rule_victim, tmp_path):
    import signal
    import subprocess
    import sys

    path = tmp_path / "log.jsonl"
    died = subprocess.run([sys.executable, "-c", _DIES_AFTER_THE_CHARGE, server.url, "attacker-key-01", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert died.returncode == -signal.SIGKILL, died.stderr
    assert len(QueryLog(path, readonly=True)) == 20 and rule_victim.queries == 30
    with HttpVictim(server.url, "attacker-key-01") as victim, QueryLog(path) as log:
        got = collect(victim, TEXTS[:45], log=log, batch_size=10)
        assert victim.usage()["used"] == 45  # each distinct text paid once, the lost answers replayed free
        assert got.answers == rule_victim.predict(TEXTS[:45]) and len(log) == 45 and log.pending() is None


class IdVictim:
    """An in-process victim that takes request ids: records them, and can 'die' after answering call ``dies_at``."""

    accepts_request_id = True

    def __init__(self, inner, dies_at=None):
        self.inner, self.dies_at, self.sent = inner, dies_at, []

    def predict(self, texts, pairs=None, *, request_id=None):
        self.sent.append((request_id, list(texts)))
        got = self.inner.predict(texts, pairs)
        if len(self.sent) == self.dies_at:
            raise Interrupted
        return got


def test_a_logged_but_unanswered_request_is_resent_with_its_request_id(rule_victim, tmp_path):
    path = tmp_path / "log.jsonl"
    first = IdVictim(rule_victim, dies_at=2)
    with pytest.raises(Interrupted), QueryLog(path) as log:
        collect(first, TEXTS[:40], log=log, batch_size=16)
    with QueryLog(path) as log:
        assert len(log) == 16 and log.pending() == {"request_id": first.sent[1][0], "start": 16, "texts": TEXTS[16:32]}
    with open(path, "rb+") as f:  # a crash in the middle of the answers' append: 3 of them made it, then a torn line
        f.seek(0, 2)
        f.write(b"".join(json.dumps({"text": t, "answer": a}).encode() + b"\n"
                         for t, a in zip(TEXTS[16:19], rule_victim.predict(TEXTS[16:19]))) + b'{"text": "te')
    again = IdVictim(rule_victim)
    with QueryLog(path) as log:
        got = collect(again, TEXTS[:40], log=log, batch_size=16)
        assert (got.new, got.reused, len(log)) == (21, 19, 40) and log.pending() is None
    assert again.sent[0] == first.sent[1]  # the same request, under the same id: a server replays it free
    assert [len(t) for _, t in again.sent] == [16, 8] and len({rid for rid, _ in first.sent + again.sent}) == 3
    assert got.answers == rule_victim.predict(TEXTS[:40])


def test_extract_resumes_after_a_death_past_the_charge_within_an_exact_budget(rule_victim, tmp_path, backbone_dir, corpus_file):
    from protege.recipes.extract import extract

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"exact-budget-01": {"budget": 48, "rate": None}}))
    accounts = Accounts.from_file(keys)

    class DiesAfterTheAnswer(HttpVictim):
        def predict(self, texts, pairs=None, **kw):
            got = super().predict(texts, pairs, **kw)
            if self.queries == 32:
                raise Interrupted
            return got

    run = dict(student=str(backbone_dir), query_corpus=str(corpus_file), budget=48, query_batch=16, out=str(tmp_path / "out"),
               max_steps=1, max_length=32, speed=False, progress=False)
    with RunningServer(create_app(rule_victim, accounts=accounts, max_texts=16)) as server:
        with DiesAfterTheAnswer(server.url, "exact-budget-01") as dying, pytest.raises(Interrupted):
            extract(victim=dying, **run)
        assert accounts.used(accounts.find("exact-budget-01")) == 32
        with HttpVictim(server.url, "exact-budget-01") as victim:
            metrics = extract(victim=victim, **run)  # needs 16 more, has 16 left: the lost 16 come free
        assert accounts.used(accounts.find("exact-budget-01")) == 48 and rule_victim.queries == 48
    accounts.close()
    assert (metrics["extraction"]["sent"], metrics["extraction"]["from_log"]) == (32, 16)
