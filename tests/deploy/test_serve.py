"""protege serve on an exported folder: the shipped artifact answers, as the fp32 model does (loopback only)."""

import json

import numpy as np
import pytest


def test_an_exported_folder_is_served(exported, tmp_path):
    httpx = pytest.importorskip("httpx")
    from protege.extraction import RunningServer, Victim, create_app
    from protege.extraction.accounts import Accounts, load_keys

    out, metrics = exported
    victim = Victim(str(out / "onnx-int8-dynamic"), output="probs", max_length=32)
    reference = Victim(str(out / "pytorch-fp32"), output="probs", max_length=32)
    texts = ["a good movie", "dull and boring", "the plot was not great"]
    assert type(victim.model).__name__ == "OrtClassifier"
    assert np.allclose(victim.probabilities(texts), reference.probabilities(texts), atol=1e-2)
    shipped = Victim(str(out), max_length=32).model  # the export folder serves its recommended variant
    assert getattr(shipped, "info", {"variant": "pytorch-fp32"})["variant"] == metrics["export"]["recommended"]

    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"key-deploy-0001": {"budget": 10, "rate": None}}))
    accounts = Accounts(load_keys(keys), keys.with_suffix(".usage.sqlite"))
    with RunningServer(create_app(victim, accounts=accounts, max_texts=8, max_chars=200)) as server:
        assert server.url.startswith("http://127.0.0.1:")
        answer = httpx.post(f"{server.url}/predict", json={"texts": texts}, headers={"X-API-Key": "key-deploy-0001"}, timeout=30)
        assert answer.status_code == 200
        assert answer.json()["answers"] == victim.predict(texts)
    accounts.close()
