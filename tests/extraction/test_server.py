"""The HTTP contract on loopback with a tiny model: keys, budgets, rate limits, bad input, persistence."""

import json
import sys

import httpx
import pytest

from protege.errors import ProtegeError
from protege.extraction import QueryLog, RunningServer, Victim, create_app
from protege.extraction.accounts import Accounts, load_keys
from protege.extraction.config import ServeConfig

KEY, RATED, OPEN = "key-alpha-0001", "key-rated-0002", "key-open-0003"


class Clock:
    """A clock the test moves by hand: rate limits without sleeping."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture(scope="module")
def victim(tiny_teacher_dir):
    return Victim(str(tiny_teacher_dir), max_length=32)


@pytest.fixture
def keys_file(tmp_path):
    path = tmp_path / "keys.json"
    path.write_text(json.dumps({KEY: {"budget": 100, "rate": None}, RATED: {"budget": None, "rate": 5},
                                OPEN: {"budget": None, "rate": None}}))
    return path


def _server(victim, keys_file, clock=None, **kw):
    usage = keys_file.with_suffix(".usage.sqlite")
    accounts = Accounts(load_keys(keys_file), usage) if clock is None else Accounts(load_keys(keys_file), usage, clock=clock)
    return RunningServer(create_app(victim, accounts=accounts, max_texts=8, max_chars=200, **kw)), accounts


def _post(url, body, key=KEY, raw=False):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if raw:
        return httpx.post(f"{url}/predict", content=body, headers={**headers, "content-type": "application/json"})
    return httpx.post(f"{url}/predict", json=body, headers=headers)


def test_keys_answers_and_status_codes(victim, keys_file):
    server, accounts = _server(victim, keys_file)
    with server:
        url = server.url
        assert url.startswith("http://127.0.0.1:")
        health = httpx.get(f"{url}/health").json()
        assert health["status"] == "ok" and health["labels"] == ["negative", "positive"] and health["max_texts"] == 8
        assert _post(url, {"texts": ["good"]}, key=None).status_code == 401
        refused = _post(url, {"texts": ["good"]}, key="not-a-key-at-all")
        assert refused.status_code == 401 and "unknown API key" in refused.json()["error"]
        ok = _post(url, {"texts": ["good movie", "dull"]})
        assert ok.status_code == 200 and ok.json()["remaining"] == 98
        assert ok.json()["answers"] == victim.predict(["good movie", "dull"])
        other = httpx.post(f"{url}/predict", json={"pairs": [["a film", "the plot"]]}, headers={"X-API-Key": KEY})
        assert other.status_code == 200 and len(other.json()["answers"]) == 1
        usage = httpx.get(f"{url}/usage", headers={"X-API-Key": KEY}).json()
        assert usage == {"budget": 100, "used": 3, "remaining": 97, "rate": None, "max_batch": None}
        missing = httpx.get(f"{url}/nowhere")
        assert missing.status_code == 404 and "error" in missing.json()
    accounts.close()


def test_budget_is_exact_and_survives_a_restart(victim, keys_file):
    server, accounts = _server(victim, keys_file)
    with server:
        for _ in range(12):
            assert _post(server.url, {"texts": ["good"] * 8}).status_code == 200
        over = _post(server.url, {"texts": ["good"] * 8})
        assert over.status_code == 429 and over.json()["reason"] == "budget" and over.json()["remaining"] == 4
        assert _post(server.url, {"texts": ["good"] * 4}).json()["remaining"] == 0
        assert _post(server.url, {"texts": ["good"]}).status_code == 429
    accounts.close()
    server, accounts = _server(victim, keys_file)  # a restart: usage comes back from the database
    with server:
        assert httpx.get(f"{server.url}/usage", headers={"X-API-Key": KEY}).json()["used"] == 100
        assert _post(server.url, {"texts": ["good"]}).status_code == 429
    accounts.close()
    keys = json.loads(keys_file.read_text())
    keys[KEY]["budget"] = 103  # the owner raises the budget: the spent part stays spent
    keys_file.write_text(json.dumps(keys))
    server, accounts = _server(victim, keys_file)
    with server:
        assert _post(server.url, {"texts": ["good"] * 3}).json()["remaining"] == 0
    accounts.close()


def test_rate_limit_per_key(victim, keys_file):
    clock = Clock()
    server, accounts = _server(victim, keys_file, clock=clock)
    with server:
        assert _post(server.url, {"texts": ["a"] * 5}, key=RATED).status_code == 200
        limited = _post(server.url, {"texts": ["a"] * 2}, key=RATED)
        assert limited.status_code == 429 and limited.json()["reason"] == "rate"
        assert limited.json()["retry_after"] == pytest.approx(0.4) and limited.headers["retry-after"] == "1"
        too_big = _post(server.url, {"texts": ["a"] * 6}, key=RATED)
        assert too_big.status_code == 413 and too_big.json()["max_batch"] == 5
        assert _post(server.url, {"texts": ["a"] * 8}, key=OPEN).status_code == 200  # other keys are not slowed
        clock.now += 0.4
        assert _post(server.url, {"texts": ["a"] * 2}, key=RATED).status_code == 200
    accounts.close()


BAD = [
    (b"{not json", 400, "not valid JSON"),
    (b"\xff\xfe", 400, "not valid JSON"),
    (b"[1, 2]", 400, "JSON object"),
    (b'{"texts": "one"}', 422, "non-empty list"),
    (b'{"texts": []}', 422, "non-empty list"),
    (b'{"texts": [1]}', 422, "texts[0] must be a string"),
    (b'{"texts": ["ok", "  "]}', 422, "texts[1] is empty"),
    (b'{"texts": ["' + b"x" * 201 + b'"]}', 413, "limit is 200"),
    (b'{"texts": [' + b",".join([b'"a"'] * 9) + b"]}", 413, "too many texts"),
    (b'{"texts": ["a"], "temperature": 9}', 422, "unknown field 'temperature'"),
    (b'{"texts": ["a"], "pairs": [["a", "b"]]}', 422, "exactly one"),
    (b'{"pairs": [["a"]]}', 422, "pairs[0]"),
    (b'{"texts": ["a"], "request_id": 7}', 422, "request_id"),
    (b'{"texts": ["' + b"y" * 400_000 + b'"]}', 413, "bytes"),
]


def test_bad_requests_get_a_clear_4xx_cost_nothing_and_the_server_stays_up(victim, keys_file):
    server, accounts = _server(victim, keys_file)
    with server:
        for body, status, needle in BAD:
            response = _post(server.url, body, raw=True)
            assert response.status_code == status, (body[:40], response.text)
            assert needle in response.json()["error"], (body[:40], response.json())
        assert httpx.get(f"{server.url}/usage", headers={"X-API-Key": KEY}).json()["used"] == 0
        assert httpx.get(f"{server.url}/health").status_code == 200
        assert _post(server.url, {"texts": ["still serving"]}).status_code == 200
    accounts.close()


class Flaky:
    """A victim whose first ``failures`` calls raise."""

    def __init__(self, inner, failures):
        self.inner, self.failures = inner, failures

    def info(self):
        return self.inner.info()

    def predict(self, texts, pairs=None):
        if self.failures > 0:
            self.failures -= 1
            raise RuntimeError("GPU on fire")
        return self.inner.predict(texts, pairs)


def test_failures_are_refunded_retries_are_not_charged_twice(victim, keys_file, tmp_path):
    from protege.extraction import HttpVictim

    log = QueryLog(tmp_path / "served.jsonl")
    server, accounts = _server(Flaky(victim, 2), keys_file, answer_log=log)
    with server:
        failed = _post(server.url, {"texts": ["good"]})
        assert failed.status_code == 500 and "not charged" in failed.json()["error"] and "fire" not in failed.text
        with HttpVictim(server.url, KEY, sleep=lambda s: None) as client:
            assert len(client.predict(["good movie", "bad film"])) == 2  # one more 500, then a retry succeeds
            assert client.requests == 3  # /health, the failed try, the retry
        body = {"texts": ["a", "b", "c"], "request_id": "same-request"}
        first, again = _post(server.url, body), _post(server.url, body)
        assert first.json() == again.json()
        assert httpx.get(f"{server.url}/usage", headers={"X-API-Key": KEY}).json()["used"] == 5
    accounts.close()
    log.close()
    served = QueryLog(tmp_path / "served.jsonl", readonly=True).records()
    assert [r["text"] for r in served] == ["good movie", "bad film", "a", "b", "c"]
    assert KEY not in (tmp_path / "served.jsonl").read_text() and served[0]["key"]


def test_serving_without_keys_is_open_and_only_on_loopback(victim, tmp_path):
    with RunningServer(create_app(victim)) as server:
        assert _post(server.url, {"texts": ["good"]}, key=None).status_code == 200
    with pytest.raises(ProtegeError, match="without --keys"):
        ServeConfig(model="m", host="0.0.0.0")
    assert ServeConfig(model="m", host="0.0.0.0", keys="k.json").host == "0.0.0.0"
    with pytest.raises(ProtegeError, match="--output"):
        ServeConfig(model="m", output="everything")


@pytest.mark.parametrize("content, needle", [
    ("{", "not valid JSON"),
    ("{}", "non-empty object"),
    ('{"short": {"budget": 1}}', "at least 8 characters"),
    ('{"long-enough-key": {"budget": -1}}', "budget"),
    ('{"long-enough-key": {"rate": 0}}', "rate"),
    ('{"long-enough-key": {"budget": 1, "plan": "gold"}}', "nothing else"),
])
def test_bad_keys_files_fail_with_one_line(tmp_path, content, needle):
    path = tmp_path / "keys.json"
    path.write_text(content)
    with pytest.raises(ProtegeError, match=needle):
        load_keys(path)


def test_a_missing_extra_names_the_install_command(monkeypatch, victim):
    monkeypatch.setitem(sys.modules, "fastapi", None)  # import fastapi now raises ImportError
    with pytest.raises(ProtegeError, match=r"pip install 'protege\[extract\]'"):
        create_app(victim)
