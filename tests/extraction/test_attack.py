"""protege.extract end to end on tiny models: hard labels vs soft targets, log reuse, watermark, CLI."""

import json

import pytest

import protege
from protege.cli.main import main
from protege.extraction import RunningServer, Watermark, create_app, verify_watermark
from protege.extraction.accounts import Accounts

FAST = ["--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "16"]
KEY = "attacker-key-42"


def _extract(victim, out, backbone_dir, corpus_file, dev_file, **kw):
    args = dict(student=str(backbone_dir), queries="random", query_corpus=str(corpus_file), budget=240, eval=str(dev_file),
                out=str(out), epochs=8, lr=3e-3, batch_size=16, max_length=32, speed=False, progress=False)
    return protege.extract(victim=victim, **{**args, **kw})


@pytest.fixture(scope="module")
def clean_run(tmp_path_factory, make_rule_victim, backbone_dir, corpus_file, dev_file):
    """A student extracted from a label-only victim (the hard-label path)."""
    victim = make_rule_victim("label")
    out = tmp_path_factory.mktemp("runs") / "stolen"
    return out, _extract(victim, out, backbone_dir, corpus_file, dev_file), victim


def _log_keys(out):
    return {k for line in (out / "train_log.jsonl").read_text().splitlines() for k in json.loads(line) if k in ("ce", "kd")}


def test_label_answers_train_on_hard_labels_and_report_against_the_victim(clean_run):
    out, metrics, victim = clean_run
    assert victim.queries == 240 + 60  # the budget, plus the evaluation texts for agreement
    x = metrics["extraction"]
    assert (x["targets"], x["sent"], x["from_log"], x["eval_sent"]) == ("hard", 240, 0, 60)
    assert _log_keys(out) == {"ce"}
    assert metrics["eval"]["agreement"]["agreement"] >= 0.8 and "kl" not in metrics["eval"]["agreement"]
    assert metrics["teacher"]["eval"]["metrics"]["accuracy"] == 1.0  # the rule victim is right on its own task
    assert metrics["ratios"]["retention"] == pytest.approx(metrics["eval"]["metrics"]["accuracy"])
    assert {"config.json", "model.safetensors", "metrics.json", "README.md", "protege_config.json"} <= {p.name for p in out.iterdir()}
    assert not (out.parent / ".stolen.partial").exists()
    assert len((out.parent / "stolen.queries.jsonl").read_text().splitlines()) == 1 + 240


def test_probability_answers_train_on_soft_targets(tmp_path, make_rule_victim, backbone_dir, corpus_file, dev_file):
    victim = make_rule_victim("probs")
    metrics = _extract(victim, tmp_path / "soft", backbone_dir, corpus_file, dev_file)
    assert metrics["extraction"]["targets"] == "soft" and metrics["extraction"]["output"] == "probs"
    assert _log_keys(tmp_path / "soft") == {"kd"}
    assert metrics["eval"]["agreement"]["agreement"] >= 0.8 and "kl" in metrics["eval"]["agreement"]


def test_a_rerun_reuses_the_paid_answers(clean_run, make_rule_victim, backbone_dir, corpus_file, dev_file):
    out, _, _ = clean_run
    fresh = make_rule_victim("label")
    metrics = _extract(fresh, out.parent / "again", backbone_dir, corpus_file, dev_file, budget=100, max_steps=2,
                       query_log=str(out.parent / "stolen.queries.jsonl"))
    assert fresh.queries == 0  # the first 100 queries and the evaluation texts were already answered
    assert (metrics["extraction"]["sent"], metrics["extraction"]["from_log"]) == (0, 100)


def test_pair_tasks_send_the_first_text_with_words_replaced(tmp_path, make_rule_victim, backbone_dir, corpus_file):
    seen = []

    class PairVictim(make_rule_victim):
        def predict(self, texts, pairs=None):
            seen.extend(zip(texts, pairs))
            return super().predict(texts, pairs)

    metrics = _extract(PairVictim("label"), tmp_path / "pairs", backbone_dir, corpus_file, None, eval=None, budget=40,
                       pairs=True, pair_replace=2, max_steps=1)
    assert len(seen) == 40 and all(a != b and len(a.split()) == len(b.split()) for a, b in seen[:10])
    logged = [json.loads(line) for line in (tmp_path / "pairs.queries.jsonl").read_text().splitlines()[1:]]
    assert [(r["text"], r["text_pair"]) for r in logged] == seen and metrics["extraction"]["sent"] == 40


def test_a_model_trained_on_watermarked_answers_is_caught(clean_run, make_rule_victim, tmp_path, backbone_dir, corpus_file, dev_file):
    marked = make_rule_victim("label", watermark=Watermark("owner-secret-1", 0.1))
    _extract(marked, tmp_path / "marked", backbone_dir, corpus_file, dev_file, epochs=25, lr=3e-3, warmup_ratio=0.0,
             victim_agreement=False, eval=None)
    log = tmp_path / "marked.queries.jsonl"
    guilty = verify_watermark(str(tmp_path / "marked"), log, key="owner-secret-1", fraction=0.1)
    assert guilty["verdict"] and guilty["match_rate"] > 0.5 and guilty["watermarked"] >= 15
    independent = verify_watermark(str(clean_run[0]), log, key="owner-secret-1", fraction=0.1)  # same queries, true answers
    assert not independent["verdict"]
    assert main(["verify-watermark", str(tmp_path / "marked"), "--log", str(log), "--key", "owner-secret-1",
                 "--fraction", "0.1", "--out", str(tmp_path / "v.json")]) == 0
    assert json.loads((tmp_path / "v.json").read_text())["verdict"] is True


def test_cli_extracts_over_http_and_keeps_the_key_out_of_every_file(tmp_path, make_rule_victim, backbone_dir, corpus_file, dev_file,
                                                                   capsys):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({KEY: {"budget": 1000, "rate": None}}))
    accounts = Accounts.from_file(keys)
    out = tmp_path / "runs" / "stolen"
    with RunningServer(create_app(make_rule_victim("probs"), accounts=accounts, max_texts=16)) as server:
        code = main(["extract", "--victim", server.url, "--api-key", KEY, "--student", str(backbone_dir), "--queries", "random",
                     "--query-corpus", str(corpus_file), "--budget", "64", "--eval", str(dev_file), "--out", str(out),
                     "--max-steps", "3", *FAST])
        assert code == 0
        used = accounts.usage(accounts.find(KEY))["used"]
    accounts.close()
    assert used == 64 + 60
    printed = capsys.readouterr().out
    assert "agreement with teacher" in printed and "64 random (64 sent now" in printed and "soft targets" in printed
    written = [p for p in tmp_path.joinpath("runs").rglob("*") if p.is_file()]
    assert len(written) > 5 and not any(KEY in p.read_text(errors="ignore") for p in written)
    assert json.loads((out / "metrics.json").read_text())["extraction"]["victim"] == server.url


def test_a_budget_too_small_fails_before_sending_anything(tmp_path, make_rule_victim, backbone_dir, corpus_file, capsys):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({KEY: {"budget": 50, "rate": None}}))
    accounts, victim, out = Accounts.from_file(keys), make_rule_victim("label"), tmp_path / "stolen"
    with RunningServer(create_app(victim, accounts=accounts)) as server:
        code = main(["extract", "--victim", server.url, "--api-key", KEY, "--student", str(backbone_dir), "--query-corpus",
                     str(corpus_file), "--budget", "64", "--out", str(out), *FAST])
    accounts.close()
    assert code == 2 and "has 50 queries left but this run needs 64" in _error(capsys)
    assert victim.queries == 0 and not out.exists() and not (tmp_path / "stolen.queries.jsonl").exists()


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("protege: error: ") and "Traceback" not in "\n".join(err), err
    return err[-1]


@pytest.mark.parametrize("args, needle", [
    (["--budget", "0"], "--budget must be a positive integer"),
    (["--student", ""], "--student is required"),
    (["--train", "data.tsv"], "extract has no --train"),
    (["--queries", "wiki"], "--queries wiki needs --query-corpus"),
    (["--victim", "http://127.0.0.1:9", "--retries", "0"], "cannot reach"),
    (["--victim-output", "everything"], "--victim-output"),
    (["--eval", "missing.tsv"], "no such file"),
])
def test_bad_extract_input_fails_cleanly(args, needle, tiny_teacher_dir, backbone_dir, tmp_path, capsys):
    out = tmp_path / "out"
    base = {"--victim": str(tiny_teacher_dir), "--student": str(backbone_dir), "--budget": "10", "--out": str(out)}
    base.update(dict(zip(args[::2], args[1::2])))
    argv = ["extract"] + [x for kv in base.items() for x in kv] + ["--no-progress", "--max-steps", "1", "--no-speed"]
    assert main(argv) == 2
    assert needle in _error(capsys)
    assert not out.exists()


def test_cli_serve_checks_its_flags_and_detect_measures(tiny_teacher_dir, dev_file, corpus_file, tmp_path, capsys):
    assert main(["serve", str(tiny_teacher_dir), "--host", "0.0.0.0"]) == 2
    assert "without --keys" in _error(capsys)
    assert main(["serve", str(tiny_teacher_dir), "--output", "label", "--decimals", "2"]) == 2
    assert "--decimals" in _error(capsys)
    assert main(["detect", str(tiny_teacher_dir), "--genuine", str(dev_file), "--ood", str(corpus_file), "--queries", "random",
                 "--n", "40", "--out", str(tmp_path / "d.json")]) == 0
    printed = capsys.readouterr().out
    assert "random queries" in printed and "false positives" in printed
    report = json.loads((tmp_path / "d.json").read_text())["report"]
    assert set(report["false_positive_rate"]) == {"genuine", f"{corpus_file.parent.name}/sentences"}


def test_protege_extract_is_a_plain_function_beside_the_extraction_package():
    import inspect

    import protege.extraction.victim  # noqa: F401 - must not shadow the verb

    assert inspect.isfunction(protege.extract) and protege.Victim is protege.extraction.Victim


def test_the_extracted_run_writes_the_one_metrics_schema(clean_run):
    import jsonschema

    from protege.engine.finish import SCHEMA_PATH

    out, _, _ = clean_run
    metrics = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(metrics, json.loads(SCHEMA_PATH.read_text()))
    assert metrics["method"] == "extract" and "api_key" not in metrics["config"]
