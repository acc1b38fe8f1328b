"""The client and the query log: exact budgets, resume without re-querying, damaged and foreign logs."""

import json
import socket

import httpx
import pytest

from protege.errors import ProtegeError
from protege.extract import HttpVictim, QueryLog, RunningServer, collect, create_app
from protege.extract.accounts import Accounts
from protege.extract.client import BudgetExhaustedError

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
