"""Reading tables, detecting columns, inferring and mapping label spaces."""

import json
from pathlib import Path

import pytest

from protege.data import tables
from protege.data.tables import (
    CLASSIFICATION,
    REGRESSION,
    Examples,
    LabelSpace,
    infer_label_space,
    load_examples,
    map_labels,
    read_table,
)
from protege.errors import ProtegeError

SHARED = (Path(__file__).resolve().parents[2] / ".." / "shared" / "data").resolve()


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return path


def one_line(err):
    msg = str(err.value)
    assert "\n" not in msg
    return msg


# ---------------------------------------------------------------------------------------------
# real data


@pytest.mark.parametrize(
    "rel, n, pair, problem, num_labels",
    [
        ("glue/sst2/train.tsv", 67349, None, CLASSIFICATION, 2),
        ("glue/sst2/dev.tsv", 872, None, CLASSIFICATION, 2),
        ("glue/mrpc/train.tsv", 2576, "sentence2", CLASSIFICATION, 2),
        ("glue/mrpc/dev.tsv", 1500, "sentence2", CLASSIFICATION, 2),
        ("glue/rte/train.tsv", 1244, "sentence2", CLASSIFICATION, 2),
        ("glue/rte/dev.tsv", 139, "sentence2", CLASSIFICATION, 2),
        ("glue/stsb/train.tsv", 4249, "sentence2", REGRESSION, 1),
        ("glue/stsb/dev.tsv", 1500, "sentence2", REGRESSION, 1),
        ("agnews/dev.tsv", 10001, None, CLASSIFICATION, 4),  # README says 10,000; the file holds 10,001
    ],
)
def test_real_files_load(rel, n, pair, problem, num_labels):
    ex = load_examples(SHARED / rel, require_labels=True)
    assert len(ex) == n
    assert ex.text_pair_column == pair
    assert (ex.text_pairs is not None) == (pair is not None)
    assert ex.label_column == "label"
    assert all(isinstance(t, str) and t.strip() for t in ex.texts)
    space = infer_label_space(ex.labels)
    assert space.problem_type == problem
    assert space.num_labels == num_labels
    mapped = map_labels(ex, space)
    kind = float if problem == REGRESSION else int
    assert all(type(y) is kind for y in mapped.labels)


def test_real_tsv_keeps_quotes():
    ex = load_examples(SHARED / "glue/mrpc/train.tsv")
    assert ex.texts[0].startswith('Amrozi accused his brother, whom he called "the witness"')
    stsb = load_examples(SHARED / "glue/stsb/dev.tsv")
    assert stsb.labels[:2] == [4.25, 2.2]


# ---------------------------------------------------------------------------------------------
# read_table


def test_tsv_no_quoting_and_na_stays_text(tmp_path):
    p = write(tmp_path / "a.tsv", 'sentence\tlabel\n"quoted start\t1\nNA\t0\nnull\t1\n')
    df = read_table(str(p))
    assert df["sentence"].tolist() == ['"quoted start', "NA", "null"]
    assert df["label"].tolist() == ["1", "0", "1"]


def test_tsv_crlf_and_bom(tmp_path):
    p = tmp_path / "a.tsv"
    p.write_bytes("\ufeffsentence\tlabel\r\nhello\t1\r\nbye\t0\r\n".encode("utf-8"))
    ex = load_examples(p)
    assert ex.texts == ["hello", "bye"] and ex.labels == [1, 0]


def test_tsv_wrong_field_count_names_line(tmp_path):
    p = write(tmp_path / "a.tsv", "sentence\tlabel\nok\t1\nbad\tx\t1\n")
    with pytest.raises(ProtegeError, match=r"line 3: expected 2 tab-separated fields"):
        read_table(str(p))
    p = write(tmp_path / "b.tsv", "sentence\tlabel\nok\t1\nmissing\n")
    with pytest.raises(ProtegeError, match="line 3"):
        read_table(str(p))


def test_csv_json_jsonl_parquet(tmp_path):
    import pandas as pd

    csv = write(tmp_path / "a.csv", 'text,label\n"hello, ""world""",pos\nNA,neg\n')
    ex = load_examples(csv)
    assert ex.texts == ['hello, "world"', "NA"] and ex.labels == ["pos", "neg"]

    rows = [{"text": "a b", "label": 1}, {"text": "c d", "label": 0}]
    jl = write(tmp_path / "a.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "\n")
    assert load_examples(jl).labels == [1, 0]
    js = write(tmp_path / "a.json", json.dumps(rows))
    assert load_examples(js).texts == ["a b", "c d"]
    js_lines = write(tmp_path / "b.json", "".join(json.dumps(r) + "\n" for r in rows))
    assert load_examples(js_lines).texts == ["a b", "c d"]

    pq = tmp_path / "a.parquet"
    pd.DataFrame({"review": ["x", "y"], "target": [0.5, 1.5]}).to_parquet(pq)
    ex = load_examples(pq)
    assert ex.text_column == "review" and ex.label_column == "target" and ex.labels == [0.5, 1.5]
    assert infer_label_space(ex.labels).problem_type == REGRESSION


def test_bad_json_line(tmp_path):
    p = write(tmp_path / "a.jsonl", '{"text": "a", "label": 1}\n{"text": oops}\n')
    with pytest.raises(ProtegeError, match=r"line 2: invalid JSON"):
        read_table(str(p))
    p = write(tmp_path / "b.jsonl", '["not", "an", "object"]\n')
    with pytest.raises(ProtegeError, match="not a JSON object"):
        read_table(str(p))


def test_missing_empty_and_unknown_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProtegeError, match=r"nope\.tsv: no such file") as e:
        read_table("nope.tsv")
    one_line(e)
    with pytest.raises(ProtegeError, match="no such file"):
        read_table(str(tmp_path / "sub" / "train"))
    (tmp_path / "data").mkdir()
    with pytest.raises(ProtegeError, match="no such file"):
        read_table("data/train")  # ./data exists: a missing file, not a hub name
    with pytest.raises(ProtegeError, match="is a folder"):
        read_table(str(tmp_path / "data"))
    write(tmp_path / "empty.tsv", "")
    with pytest.raises(ProtegeError, match="empty"):
        read_table("empty.tsv")
    write(tmp_path / "header.tsv", "sentence\tlabel\n")
    with pytest.raises(ProtegeError, match="no rows"):
        read_table("header.tsv")
    write(tmp_path / "header.csv", "sentence,label\n")
    with pytest.raises(ProtegeError, match="no rows"):
        read_table("header.csv")
    write(tmp_path / "a.txt", "hello\n")
    with pytest.raises(ProtegeError, match=r"unsupported file type '\.txt'.*\.tsv, \.csv"):
        read_table("a.txt")
    (tmp_path / "bin.tsv").write_bytes(b"sentence\tlabel\n\xff\xfe\t1\n")
    with pytest.raises(ProtegeError, match="not UTF-8"):
        read_table("bin.tsv")


def test_hub_names_go_to_datasets(monkeypatch):
    import datasets

    calls = []

    class FakeDS:
        def to_pandas(self):
            import pandas as pd

            return pd.DataFrame({"sentence": ["a", "b"], "label": [0, 1]})

    def fake_load(name, config=None, split=None):
        calls.append((name, config, split))
        if name == "offline":
            raise ConnectionError("Couldn't reach 'offline' on the Hub (LocalEntryNotFoundError)\nmore detail")
        return FakeDS()

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    assert len(read_table("glue:sst2", split="validation")) == 2
    assert len(read_table("stanfordnlp/imdb")) == 2
    ex = load_examples("imdb")
    assert ex.labels == [0, 1]
    assert calls == [("glue", "sst2", "validation"), ("stanfordnlp/imdb", None, "train"), ("imdb", None, "train")]
    with pytest.raises(ProtegeError) as e:
        read_table("offline")
    msg = one_line(e)
    assert msg == (
        "could not load dataset 'offline' from the Hugging Face hub "
        "(Couldn't reach 'offline' on the Hub (LocalEntryNotFoundError)); pass a local file"
    )


# ---------------------------------------------------------------------------------------------
# load_examples


def test_tiny_data(tiny_data_dir):
    ex = load_examples(tiny_data_dir / "train.tsv", require_labels=True)
    assert len(ex) == 160 and set(ex.labels) == {0, 1}
    names = load_examples(tiny_data_dir / "train_names.tsv")
    assert set(names.labels) == {"negative", "positive"}
    space = infer_label_space(names.labels)
    assert space.id2label == {0: "negative", 1: "positive"}
    assert map_labels(names, space).labels == ex.labels


def test_column_detection_and_pairs(tmp_path):
    p = write(tmp_path / "q.tsv", "id\tquestion1\tquestion2\tis_duplicate\n1\ta?\tb?\t1\n2\tc?\td?\t0\n")
    ex = load_examples(p, label_column="is_duplicate")
    assert (ex.text_column, ex.text_pair_column) == ("question1", "question2")
    assert ex.text_pairs == ["b?", "d?"] and ex.labels == [1, 0]

    p = write(tmp_path / "nli.tsv", "premise\thypothesis\tclass\np\th\tentailment\np2\th2\tcontradiction\n")
    ex = load_examples(p)
    assert ex.text_pair_column == "hypothesis" and ex.label_column == "class"

    p = write(tmp_path / "qa.tsv", "question\tpassage\tlabel\nq\tp\tTrue\n")
    assert load_examples(p).text_pairs == ["p"]

    # a given first-of-pair column still finds its partner; a single "question" needs no passage
    p = write(tmp_path / "s.tsv", "Sentence1\tSentence2\tLabel\na\tb\t0\n")
    ex = load_examples(p, text_column="Sentence1")
    assert ex.text_pair_column == "Sentence2" and ex.label_column == "Label"
    p = write(tmp_path / "single.tsv", "question\tlabel\nwhy\t0\n")
    assert load_examples(p).text_pairs is None

    p = write(tmp_path / "nolabel.tsv", "text\nhello\n")
    ex = load_examples(p)
    assert ex.labels is None and ex.label_column is None


def test_column_errors(tmp_path):
    p = write(tmp_path / "train.tsv", "sentence\tlabel\na\t1\n")
    with pytest.raises(ProtegeError) as e:
        load_examples(p, text_column="txt")
    assert one_line(e) == f"{p}: no column 'txt'; columns are sentence, label; pass --text-column"
    with pytest.raises(ProtegeError, match="no column 'lbl'.*--label-column"):
        load_examples(p, label_column="lbl")
    with pytest.raises(ProtegeError, match="no column 'other'.*--text-pair-column"):
        load_examples(p, text_pair_column="other")

    p = write(tmp_path / "odd.tsv", "body\tstars\nx\t1\n")
    with pytest.raises(ProtegeError, match=r"no text column found; columns are body, stars; pass --text-column"):
        load_examples(p)
    ex = load_examples(p, text_column="body")
    assert ex.labels is None
    with pytest.raises(ProtegeError, match=r"no label column found; columns are body, stars; pass --label-column"):
        load_examples(p, text_column="body", require_labels=True)
    assert load_examples(p, text_column="body", label_column="stars").labels == [1]


def test_empty_texts_and_missing_labels(tmp_path):
    p = write(tmp_path / "dev.tsv", "sentence\tlabel\nok\t1\n   \t0\n")
    with pytest.raises(ProtegeError) as e:
        load_examples(p)
    assert one_line(e) == f"{p} row 2: empty text in column 'sentence'; remove or fill the row"

    p = write(tmp_path / "pairs.tsv", "sentence1\tsentence2\tlabel\na\tb\t1\nc\t\t0\n")
    with pytest.raises(ProtegeError, match="row 2: empty text in column 'sentence2'"):
        load_examples(p)

    p = write(tmp_path / "lab.tsv", "sentence\tlabel\nok\t1\nfine\t\n")
    with pytest.raises(ProtegeError, match="row 2: missing label in column 'label'; remove or fill the row"):
        load_examples(p)

    p = write(tmp_path / "a.jsonl", '{"text": "a", "label": 1}\n{"text": null, "label": 0}\n')
    with pytest.raises(ProtegeError, match="row 2: empty text"):
        load_examples(p)
    p = write(tmp_path / "b.jsonl", '{"text": "a", "label": 1}\n{"text": "b"}\n')
    with pytest.raises(ProtegeError, match="row 2: missing label"):
        load_examples(p)
    p = write(tmp_path / "c.jsonl", '{"text": 5, "label": 1}\n{"text": "b", "label": 0}\n')
    assert load_examples(p).texts == ["5", "b"]


def test_max_examples(tmp_path):
    p = write(tmp_path / "a.tsv", "sentence\tlabel\na\t1\nb\t0\n\t1\n")
    ex = load_examples(p, max_examples=2)  # the bad third row is never read
    assert ex.texts == ["a", "b"]
    with pytest.raises(ProtegeError, match="max_examples"):
        load_examples(p, max_examples=0)


def test_examples_select():
    ex = Examples(["a", "b", "c"], ["x", "y", "z"], [0, 1, 0], "s", "sentence1", "sentence2", "label")
    sub = ex.select([2, 0])
    assert sub.texts == ["c", "a"] and sub.text_pairs == ["z", "x"] and sub.labels == [0, 0]
    assert sub.text_pair_column == "sentence2" and len(sub) == 2 and len(ex) == 3


# ---------------------------------------------------------------------------------------------
# label spaces


def test_infer_label_space():
    assert infer_label_space([0, 2, 1]) == LabelSpace(CLASSIFICATION, {0: "0", 1: "1", 2: "2"})
    assert infer_label_space([1, 3]).id2label == {0: "0", 1: "1", 2: "2", 3: "3"}
    assert infer_label_space([1.0, 0.0]).problem_type == CLASSIFICATION
    assert infer_label_space([0.5, 1]) == LabelSpace(REGRESSION, None)
    assert infer_label_space(["1", "0"]).id2label == {0: "0", 1: "1"}
    assert infer_label_space(["2.5", "1"]).problem_type == REGRESSION
    assert infer_label_space(["pos", "neg", "pos"]).id2label == {0: "neg", 1: "pos"}
    assert infer_label_space([True, False]).id2label == {0: "0", 1: "1"}
    assert infer_label_space([0, 1], problem_type="regression") == LabelSpace(REGRESSION, None)
    assert infer_label_space([0, 1], problem_type="classification").problem_type == CLASSIFICATION


def test_infer_label_space_errors():
    with pytest.raises(ProtegeError, match="only one class"):
        infer_label_space([1, 1, 1])
    with pytest.raises(ProtegeError, match="only one class"):
        infer_label_space(["pos"])
    with pytest.raises(ProtegeError, match="negative"):
        infer_label_space([-1, 0, 1])
    with pytest.raises(ProtegeError, match="mix numbers and names"):
        infer_label_space([0, "pos"])
    with pytest.raises(ProtegeError, match="not a number"):
        infer_label_space(["a", "b"], problem_type="regression")
    with pytest.raises(ProtegeError, match="not a class id"):
        infer_label_space([0.5, 1.0], problem_type="single_label_classification")
    with pytest.raises(ProtegeError, match="unknown problem type 'multi'"):
        infer_label_space([0, 1], problem_type="multi")
    with pytest.raises(ProtegeError, match="no labels"):
        infer_label_space([])


def _ex(labels, source="dev.tsv"):
    return Examples([f"t{i}" for i in range(len(labels))], None, list(labels), source, "sentence", None, "label")


def test_map_labels_classification():
    space = LabelSpace(CLASSIFICATION, {0: "negative", 1: "positive"})
    mapped = map_labels(_ex(["positive", "negative", 1, "0", True, " Positive ", 1.0]), space)
    assert mapped.labels == [1, 0, 1, 0, 1, 1, 1]
    assert all(type(y) is int for y in mapped.labels)
    assert map_labels(_ex(["good", "bad"]), space, label2id={"bad": 0, "good": 1}).labels == [1, 0]
    # a config's generic label2id does not hide the names in id2label
    generic = {"LABEL_0": 0, "LABEL_1": 1}
    assert map_labels(_ex(["positive", "LABEL_0", 1]), space, label2id=generic).labels == [1, 0, 1]
    unlabeled = Examples(["a"], None, None, "x", "sentence", None, None)
    assert map_labels(unlabeled, space) is unlabeled


def test_map_labels_errors():
    space = LabelSpace(CLASSIFICATION, {0: "negative", 1: "positive"})
    labels = ["positive"] * 6 + ["neutral"]
    with pytest.raises(ProtegeError) as e:
        map_labels(_ex(labels), space)
    assert one_line(e) == (
        "dev.tsv row 7: label 'neutral' is not in the teacher's label space (negative, positive); "
        "map it or drop the row"
    )
    with pytest.raises(ProtegeError, match=r"row 1: label 2 is not in"):
        map_labels(_ex([2]), space)
    with pytest.raises(ProtegeError, match=r"row 2: label 0.5 is not in"):
        map_labels(_ex([1, 0.5]), space)
    with pytest.raises(ProtegeError, match=r"row 1: label 'abc' is not a number"):
        map_labels(_ex(["abc"]), LabelSpace(REGRESSION, None))


def test_map_labels_regression():
    mapped = map_labels(_ex(["4.25", 3, 1.5, True]), LabelSpace(REGRESSION, None))
    assert mapped.labels == [4.25, 3.0, 1.5, 1.0] and all(type(y) is float for y in mapped.labels)


def test_module_exports():
    for name in tables.__all__:
        assert hasattr(tables, name)
