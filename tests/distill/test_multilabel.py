"""Multi-label classifiers: label sets read from files, a multi-label teacher fine-tuned, then distilled with sigmoid KD."""

import json
import random

import pytest

import protege
from helpers import NEUTRAL
from protege.data import infer_label_space, load_examples, map_labels
from protege.errors import ProtegeError

QUIET = dict(progress=False, speed=False, max_length=24, batch_size=8, lr=5e-3)
TOPICS = {"pos": ["good", "great", "lovely"], "neg": ["bad", "awful", "dull"], "sport": ["sports", "game", "team"]}
FILLER = [w for w in NEUTRAL if w not in TOPICS["sport"]]


def _rows(n, seed):
    """Sentences holding words of 0-3 topics; the label set names those topics."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        tags = sorted(t for t in TOPICS if rng.random() < 0.5)
        words = rng.sample(FILLER, 2) + [w for t in tags for w in rng.sample(TOPICS[t], 2)]
        rng.shuffle(words)
        rows.append({"sentence": " ".join(words), "label": tags})
    return rows


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def multilabel_teacher(tiny_teacher_dir, tmp_path_factory):
    """A multi-label teacher fine-tuned by protege from the tiny BERT (its head replaced), and its data."""
    d = tmp_path_factory.mktemp("multilabel")
    train, dev = _jsonl(d / "train.jsonl", _rows(96, 1)), _jsonl(d / "dev.jsonl", _rows(32, 2))
    metrics = protege.finetune(model=str(tiny_teacher_dir), train=str(train), eval=str(dev), out=str(d / "teacher"),
                               max_steps=80, **QUIET)
    return d, metrics


def test_label_sets_are_read_from_json_lists_and_comma_cells(tmp_path):
    ex = load_examples(str(_jsonl(tmp_path / "t.jsonl", [{"text": "a", "label": ["sport", "pos"]}, {"text": "b", "label": []}])))
    space = infer_label_space(ex.labels)
    assert space.problem_type == "multi_label_classification" and space.id2label == {0: "pos", 1: "sport"}
    assert map_labels(ex, space).labels == [[1.0, 1.0], [0.0, 0.0]]
    (tmp_path / "t.tsv").write_text("text\tlabel\na\tneg,sport\nb\tpos\nc\t[\"neg\"]\n")
    tsv = load_examples(str(tmp_path / "t.tsv"))
    space = infer_label_space(tsv.labels, problem_type="multi_label_classification")
    assert space.id2label == {0: "neg", 1: "pos", 2: "sport"}
    assert map_labels(tsv, space).labels == [[1.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0, 0.0, 0.0]]
    (tmp_path / "bad.tsv").write_text("text\tlabel\na\tneg,sport\nb\tpos,joy\n")
    with pytest.raises(ProtegeError, match=r"row 2: label 'joy' is not in the model's labels \(neg, pos, sport\)"):
        map_labels(load_examples(str(tmp_path / "bad.tsv")), space)
    with pytest.raises(ProtegeError, match="is a list of labels; use problem type multi_label_classification"):
        infer_label_space(ex.labels, problem_type="single_label_classification")


def test_finetune_trains_a_multilabel_teacher(multilabel_teacher):
    from transformers import AutoModelForSequenceClassification

    d, metrics = multilabel_teacher
    assert metrics["problem_type"] == "multi_label_classification" and metrics["primary_metric"] == "f1_micro"
    scores = metrics["eval"]["metrics"]
    assert set(scores) >= {"f1_micro", "f1_macro", "subset_accuracy"}
    assert scores["f1_micro"] > 0.5
    losses = [r["loss"] for r in map(json.loads, (d / "teacher" / "train_log.jsonl").read_text().splitlines()) if "loss" in r]
    assert losses[0] == pytest.approx(0.69, abs=0.06)  # BCE of 3 labels at about 0.5 each: ln 2
    assert losses[-1] < losses[0] - 0.1  # the topic words decide the labels: a working BCE head learns them
    model = AutoModelForSequenceClassification.from_pretrained(d / "teacher")
    assert model.config.problem_type == "multi_label_classification"
    assert model.config.id2label == {0: "neg", 1: "pos", 2: "sport"}


def test_distill_a_multilabel_teacher_with_sigmoid_kd(multilabel_teacher, tmp_path):
    from transformers import AutoModelForSequenceClassification

    d, teacher_metrics = multilabel_teacher
    out = tmp_path / "student"
    metrics = protege.distill(teacher=str(d / "teacher"), train=str(d / "train.jsonl"), eval=str(d / "dev.jsonl"),
                              student_layers="0,2", out=str(out), max_steps=40, alpha_ce=0.5, temperature=2.0, **QUIET)
    assert metrics["problem_type"] == "multi_label_classification"
    agree = metrics["eval"]["agreement"]
    assert set(agree) == {"agreement", "label_agreement", "kl"}
    assert 1 >= agree["label_agreement"] >= agree["agreement"] and agree["label_agreement"] > 0.8
    assert metrics["teacher"]["eval"]["metrics"]["f1_micro"] == pytest.approx(teacher_metrics["eval"]["metrics"]["f1_micro"])
    steps = [r for r in map(json.loads, (out / "train_log.jsonl").read_text().splitlines()) if "kd" in r]
    assert {"kd", "ce"} <= set(steps[0]) and steps[-1]["kd"] < steps[0]["kd"]  # sigmoid KD and BCE, and KD falls
    student = AutoModelForSequenceClassification.from_pretrained(out)
    assert student.config.problem_type == "multi_label_classification" and student.config.num_hidden_layers == 2


def test_verbs_without_multilabel_support_refuse_it_by_name(multilabel_teacher):
    d, _ = multilabel_teacher
    with pytest.raises(ProtegeError, match="multi-label classifiers are supported by finetune and distill"):
        protege.evaluate(model=str(d / "teacher"), eval=str(d / "dev.jsonl"), speed=False)
