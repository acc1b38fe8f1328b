"""Issue 12, item 6 (data): a JSON list or object in a text column is refused with the row and column, not turned
into its string form; and the split of data/tables.py keeps every import working."""

import json
from pathlib import Path

import pytest

import protege.data
from protege.cli.main import main
from protege.data import tables
from protege.data.tables import load_examples
from protege.errors import ProtegeError


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


GOOD = {"sentence": "a fine film", "label": 1}


@pytest.mark.parametrize("value, kind", [(["a", "b"], "a JSON list"), ({"text": "a"}, "a JSON object"), ([], "a JSON list")])
def test_a_structure_in_the_text_column_is_refused_naming_row_and_column(tmp_path, value, kind):
    src = _jsonl(tmp_path / "train.jsonl", [GOOD, {"sentence": value, "label": 0}])
    with pytest.raises(ProtegeError) as info:
        load_examples(str(src))
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{src} row 2: column 'sentence' holds {kind}, not text")


def test_a_structure_in_the_pair_or_label_column_is_refused(tmp_path):
    pairs = _jsonl(tmp_path / "pairs.jsonl", [{"sentence1": "a", "sentence2": {"x": 1}, "label": 0}])
    with pytest.raises(ProtegeError, match=r"row 1: column 'sentence2' holds a JSON object, not text"):
        load_examples(str(pairs))
    labels = _jsonl(tmp_path / "labels.jsonl", [GOOD, {"sentence": "b", "label": {"a": 1}}])
    with pytest.raises(ProtegeError, match=r"row 2: column 'label' holds a JSON object, not one label"):
        load_examples(str(labels))
    sets = _jsonl(tmp_path / "sets.jsonl", [GOOD, {"sentence": "b", "label": [0, 1]}])  # a label set: multi-label
    assert load_examples(str(sets)).labels == [1, [0, 1]]


def test_a_parquet_list_column_is_refused(tmp_path):
    import pandas as pd

    pytest.importorskip("pyarrow")
    src = tmp_path / "train.parquet"
    pd.DataFrame({"sentence": [["a", "b"], ["c"]], "label": [0, 1]}).to_parquet(src)
    with pytest.raises(ProtegeError, match=r"row 1: column 'sentence' holds a JSON list"):
        load_examples(str(src))


def test_numbers_and_plain_strings_still_read(tmp_path):
    src = _jsonl(tmp_path / "ok.jsonl", [GOOD, {"sentence": 42, "label": 0}])
    assert load_examples(str(src)).texts == ["a fine film", "42"]


def test_distill_on_a_list_text_exits_2_and_writes_nothing(tiny_teacher_dir, tmp_path, capsys):
    src = _jsonl(tmp_path / "train.jsonl", [GOOD, {"sentence": ["a", "b"], "label": 1}])
    out = tmp_path / "student"
    code = main(["distill", "--teacher", str(tiny_teacher_dir), "--train", str(src), "--out", str(out), "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and "row 2: column 'sentence' holds a JSON list" in err and "Traceback" not in err
    assert not out.exists() and not (tmp_path / ".student.partial").exists()


def test_the_split_modules_keep_every_name_and_stay_small():
    from protege.data import columns, labels, reading

    for name in tables.__all__:
        assert getattr(tables, name) is getattr(protege.data, name, getattr(tables, name))
    assert tables.load_examples is columns.load_examples and tables.map_labels is labels.map_labels
    assert tables.read_table is reading.read_table and callable(tables._looks_like_hub_name)  # used by data.text
    for module in (columns, labels, reading, tables):
        assert len(Path(module.__file__).read_text().splitlines()) <= 400
