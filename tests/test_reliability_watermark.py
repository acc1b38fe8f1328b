"""Issue 12, items 6 and 8 (watermark): served labels outside the suspect's classes are refused (exit 2), and a
query log with missing fields or wrong types is a one-line error, not a traceback."""

import json

import pytest

from protege.cli.main import main
from protege.errors import ProtegeError
from protege.extraction import Watermark, verify_watermark

KEY = "owner-secret-1"


def _log(path, records):
    """A query log written by hand: the header line, then ``records`` as they are (valid or not)."""
    lines = [{"protege_query_log": 1, "meta": {}}] + records
    path.write_text("".join(json.dumps(r) + "\n" for r in lines))
    return path


def _served(n=400, num_labels=2, fraction=0.1):
    wm = Watermark(KEY, fraction)
    out = []
    for i in range(n):
        text = f"query number {i}"
        true = i % num_labels
        out.append({"text": text, "answer": {"label": wm.wrong_label(text, None, true, num_labels) if wm.selects(text) else true}})
    return out


def test_served_labels_outside_the_suspects_classes_are_refused(tmp_path):
    log = _log(tmp_path / "served.jsonl", _served(num_labels=5))  # a 5-class server's answers
    with pytest.raises(ProtegeError) as info:
        verify_watermark(lambda texts, pairs: [0] * len(texts), log, key=KEY, fraction=0.1, num_labels=2)
    msg = str(info.value)
    assert "\n" not in msg and "outside the suspect's 2 classes (0..1)" in msg and str(log) in msg


def test_verify_watermark_cli_exits_2_on_another_tasks_log(tiny_teacher_dir, tmp_path, capsys):
    log = _log(tmp_path / "served.jsonl", _served(num_labels=4))
    out = tmp_path / "verdict.json"
    code = main(["verify-watermark", str(tiny_teacher_dir), "--log", str(log), "--key", KEY, "--fraction", "0.1",
                 "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and "outside the suspect's 2 classes" in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.parametrize("record, problem", [
    ({"answer": {"label": 1}}, "has no 'text' string"),
    ({"text": 7, "answer": {"label": 1}}, "'text' that is not a string"),
    ({"text": "a", "text_pair": ["b"], "answer": {"label": 1}}, "'text_pair' that is not a string"),
    ({"text": "a"}, "has no 'answer' object"),
    ({"text": "a", "answer": "positive"}, "'answer' that is not an object"),
    ({"text": "a", "answer": {}}, "has no answer 'label'"),
    ({"text": "a", "answer": {"label": "positive"}}, "answer label 'positive' that is not a class id"),
    ({"text": "a", "answer": {"label": True}}, "that is not a class id"),
    ({"text": "a", "answer": {"label": 1, "probs": "high"}}, "'probs' that are not a list of numbers"),
    (["a", 1], "is a JSON list, not an object"),
])
def test_malformed_log_records_are_one_line_errors(tmp_path, record, problem):
    log = _log(tmp_path / "served.jsonl", _served(20) + [record])
    with pytest.raises(ProtegeError) as info:
        verify_watermark(lambda texts, pairs: [0] * len(texts), log, key=KEY, fraction=0.1, num_labels=2)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{log}: record 21 ") and problem in msg


def test_an_empty_log_is_an_error_not_a_crash(tmp_path):
    log = _log(tmp_path / "served.jsonl", [])
    with pytest.raises(ProtegeError, match="holds no answered queries"):
        verify_watermark(lambda texts, pairs: [0] * len(texts), log, key=KEY)


def test_the_cli_prints_one_line_for_a_malformed_log(tiny_teacher_dir, tmp_path, capsys):
    log = _log(tmp_path / "served.jsonl", _served(20) + [{"text": "a", "answer": {}}])
    code = main(["verify-watermark", str(tiny_teacher_dir), "--log", str(log), "--key", KEY])
    err = capsys.readouterr().err
    assert code == 2 and "record 21 has no answer 'label'" in err and len(err.strip().splitlines()) == 1


def test_a_valid_log_still_gets_a_verdict(tmp_path):
    records = _served(num_labels=2)
    served = {r["text"]: r["answer"]["label"] for r in records}
    log = _log(tmp_path / "served.jsonl", records)
    r = verify_watermark(lambda texts, pairs: [served[t] for t in texts], log, key=KEY, fraction=0.1, num_labels=2)
    assert r["verdict"] and r["watermarked"] > 10
