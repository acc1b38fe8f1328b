"""The server's accounting of retries: one charge per request_id (concurrent, restarted, failed), and bad bytes as 4xx."""

import json
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from protege.extraction import HttpVictim, RunningServer, create_app
from protege.extraction.accounts import Accounts, load_keys

KEY = "replay-key-0001"


class Slow:
    """A victim that takes ``seconds`` per call (so that retries overlap the first attempt) and may fail first."""

    def __init__(self, inner, seconds, failures=0):
        self.inner, self.seconds, self.failures = inner, seconds, failures
        self.calls = 0
        self._lock = threading.Lock()

    def info(self):
        return self.inner.info()

    def predict(self, texts, pairs=None):
        with self._lock:
            self.calls += 1
            fail = self.failures > 0
            self.failures -= fail
        time.sleep(self.seconds)
        if fail:
            raise RuntimeError("GPU on fire")
        return self.inner.predict(texts, pairs)


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({KEY: {"budget": 1000, "rate": None}}))
    return path


def _accounts(keys_file, **kw):
    return Accounts(load_keys(keys_file), keys_file.with_suffix(".usage.sqlite"), **kw)


def _post(url, body, raw=False):
    headers = {"Authorization": f"Bearer {KEY}"}
    if raw:
        return httpx.post(f"{url}/predict", content=body, headers={**headers, "content-type": "application/json"}, timeout=30)
    return httpx.post(f"{url}/predict", json=body, headers=headers, timeout=30)


def _used(url):
    return httpx.get(f"{url}/usage", headers={"X-API-Key": KEY}).json()["used"]


def _one_line_error(response, status):
    assert response.status_code == status, response.text
    message = response.json()["error"]
    assert message and "\n" not in message and "Traceback" not in response.text
    return message


def test_sixteen_concurrent_requests_with_one_request_id_are_charged_once(rule_victim, keys_file):
    victim, accounts = Slow(rule_victim, 0.3), _accounts(keys_file)
    body = {"texts": ["good film", "bad plot"], "request_id": "one-id"}
    with RunningServer(create_app(victim, accounts=accounts)) as server:
        with ThreadPoolExecutor(16) as pool:
            responses = list(pool.map(lambda _: _post(server.url, body), range(16)))
        assert [r.status_code for r in responses] == [200] * 16
        assert all(r.json() == responses[0].json() for r in responses)
        assert _used(server.url) == 2 and victim.calls == 1
    accounts.close()


def test_a_duplicate_that_waits_too_long_is_told_to_retry(rule_victim, keys_file):
    victim, accounts = Slow(rule_victim, 1.0), _accounts(keys_file)
    body = {"texts": ["slow", "answer"], "request_id": "slow-one"}
    with RunningServer(create_app(victim, accounts=accounts, replay_wait=0.1)) as server:
        with ThreadPoolExecutor(2) as pool:
            first, second = pool.map(lambda delay: (time.sleep(delay), _post(server.url, body))[1], (0.0, 0.1))
        assert first.status_code == 200
        assert "still being answered" in _one_line_error(second, 503) and second.headers["retry-after"] == "1"
        assert _post(server.url, body).json() == first.json() and _used(server.url) == 2 and victim.calls == 1
    accounts.close()


def test_a_timed_out_client_retry_is_not_charged_again(rule_victim, keys_file):
    victim, accounts = Slow(rule_victim, 0.6), _accounts(keys_file)
    texts = [f"good text {i}" for i in range(64)]
    with RunningServer(create_app(victim, accounts=accounts)) as server:
        with HttpVictim(server.url, KEY, timeout=0.25, retries=8, sleep=lambda s: None) as client:
            assert client.predict(texts) == rule_victim.predict(texts)
            assert client.requests > 2  # /health, the timed-out attempt, then retries
        assert _used(server.url) == 64 and victim.calls == 1
    accounts.close()


def test_a_reused_request_id_with_other_texts_is_refused(rule_victim, keys_file):
    accounts = _accounts(keys_file)
    with RunningServer(create_app(rule_victim, accounts=accounts)) as server:
        first = _post(server.url, {"texts": ["a", "b"], "request_id": "r-1"})
        assert first.status_code == 200
        for other in ({"texts": ["a", "c"]}, {"texts": ["a"]}, {"pairs": [["a", "b"]]}):
            assert "request_id" in _one_line_error(_post(server.url, {**other, "request_id": "r-1"}), 409)
        assert _post(server.url, {"texts": ["a", "b"], "request_id": "r-1"}).json() == first.json()
        assert _used(server.url) == 2 and rule_victim.queries == 2
    accounts.close()


def test_replays_survive_a_restart_and_are_bounded_per_key(rule_victim, keys_file):
    accounts = _accounts(keys_file, replay_slots=5)
    with RunningServer(create_app(rule_victim, accounts=accounts)) as server:
        first = _post(server.url, {"texts": ["kept"], "request_id": "before-restart"})
    accounts.close()
    accounts = _accounts(keys_file, replay_slots=5)
    with RunningServer(create_app(rule_victim, accounts=accounts)) as server:
        assert _post(server.url, {"texts": ["kept"], "request_id": "before-restart"}).json() == first.json()
        _one_line_error(_post(server.url, {"texts": ["changed"], "request_id": "before-restart"}), 409)
        assert _used(server.url) == 1
        for i in range(12):
            assert _post(server.url, {"texts": [f"t{i}"], "request_id": f"later-{i}"}).status_code == 200
        assert _used(server.url) == 13
    accounts.close()
    with sqlite3.connect(keys_file.with_suffix(".usage.sqlite")) as db:
        assert db.execute("SELECT COUNT(*) FROM replays").fetchone()[0] == 5  # the newest 5 of this key


def test_a_failed_model_refunds_and_forgets_the_pending_request(rule_victim, keys_file):
    victim, accounts = Slow(rule_victim, 0.2, failures=1), _accounts(keys_file)
    body = {"texts": ["x", "y", "z"], "request_id": "fails-first"}
    with RunningServer(create_app(victim, accounts=accounts)) as server:
        with ThreadPoolExecutor(2) as pool:  # the duplicate waits on the failing attempt, then gets its own answer
            first, second = pool.map(lambda delay: (time.sleep(delay), _post(server.url, body))[1], (0.0, 0.05))
        assert "not charged" in _one_line_error(first, 500)
        assert second.status_code == 200 and len(second.json()["answers"]) == 3
        assert _post(server.url, body).json() == second.json()
        assert _used(server.url) == 3 and victim.calls == 2
    accounts.close()


def test_a_pending_request_left_by_a_crash_is_refunded_at_start(rule_victim, keys_file):
    accounts = _accounts(keys_file)
    account = accounts.find(KEY)
    assert accounts.begin(account, 4, "crashed", "digest")[0] == "charged"
    assert accounts.used(account) == 4
    accounts.close()  # the server died while the model was computing: the answer never left
    accounts = _accounts(keys_file)
    assert accounts.used(account) == 0 and accounts.begin(account, 4, "crashed", "digest")[0] == "charged"
    accounts.close()


@pytest.mark.parametrize("body, status", [
    (b'{"texts": ["\\ud800"]}', 422),
    (b'{"texts": ["ok \\udfff end"]}', 422),
    (b'{"pairs": [["ok", "\\ud83d"]]}', 422),
    (b'{"texts": ["ok"], "request_id": "\\ud800"}', 422),
    (b"[" * 100_000 + b"]" * 100_000, 400),
    (b'{"texts": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", 400),
], ids=["surrogate", "low-surrogate", "pair-surrogate", "request-id-surrogate", "nested-lists", "nested-texts"])
def test_lone_surrogates_and_deep_nesting_are_4xx_and_cost_nothing(rule_victim, keys_file, body, status):
    accounts = _accounts(keys_file)
    with RunningServer(create_app(rule_victim, accounts=accounts)) as server:
        _one_line_error(_post(server.url, body, raw=True), status)
        assert _used(server.url) == 0
        assert _post(server.url, b'{"texts": ["\\ud83d\\ude00 a valid pair"]}', raw=True).status_code == 200
    accounts.close()
