"""Class names travel: names in the data, a datasets ClassLabel or --label-names become the model's id2label."""

import json

import pytest

import protege
from helpers import make_sentences, tiny_bert_config
from protege.data import LabelSpace, infer_label_space, name_classes, parse_label_names
from protege.errors import ProtegeError

QUIET = dict(progress=False, speed=False, max_length=32, batch_size=8, max_steps=2)
ROWS = make_sentences(48, 4)


def _pipeline_labels(folder):
    from transformers import pipeline

    classify = pipeline("text-classification", model=str(folder), device="cpu")
    return {r["label"] for r in classify(["good great fine", "bad awful poor", "movie plot"], top_k=None)[0]}


def test_label_names_are_parsed_and_counted():
    two = LabelSpace("single_label_classification", {0: "0", 1: "1"})
    assert parse_label_names("neg, pos") == ("neg", "pos") and parse_label_names(["neg", "pos"], two) == ("neg", "pos")
    assert parse_label_names(None, two) is None
    for bad, message in (("neg,pos,neutral", r"gives 3 names \(neg, pos, neutral\) for 2 classes"), ("neg,,pos", "empty name"),
                         ("neg,neg", "names 'neg' twice"), ("neg", "one name")):
        with pytest.raises(ProtegeError, match=message):
            parse_label_names(bad, two)
    with pytest.raises(ProtegeError, match="regression"):
        parse_label_names("a,b", LabelSpace("regression", None))


def test_names_name_class_ids_and_order_name_labels():
    assert name_classes(infer_label_space([0, 1, 1]), ("neg", "pos")).id2label == {0: "neg", 1: "pos"}
    # a ClassLabel may name a class the data lacks
    assert name_classes(infer_label_space([0, 1]), ("a", "b", "c")).id2label == {0: "a", 1: "b", 2: "c"}
    # names in the data take the ids of their place in the given order, not the sorted one
    assert name_classes(infer_label_space(["pos", "neg"]), ("pos", "neg")).id2label == {0: "pos", 1: "neg"}
    with pytest.raises(ProtegeError, match="label 2 has no class name"):
        name_classes(infer_label_space([0, 1, 2]), ("neg", "pos"))
    with pytest.raises(ProtegeError, match="label 'meh' is not one of the class names"):
        name_classes(infer_label_space(["neg", "meh"]), ("neg", "pos"))


def test_finetune_on_named_labels_prints_the_names(tiny_teacher_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "ft"
    protege.finetune(model=str(tiny_teacher_dir), train=str(tiny_data_dir / "train_names.tsv"), out=str(out), **QUIET)
    assert _pipeline_labels(out) == {"negative", "positive"}


def test_label_names_flag_names_class_ids_and_a_wrong_count_fails_before_writing(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    from protege.cli.main import main

    out = tmp_path / "ft"
    flags = ["--model", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"), "--max-steps", "2", "--max-length", "32",
             "--batch-size", "8", "--no-progress", "--no-speed"]
    assert main(["finetune", *flags, "--label-names", "neg,pos,meh", "--out", str(out)]) == 2
    assert "--label-names gives 3 names (neg, pos, meh) for 2 classes" in capsys.readouterr().err and not out.exists()
    assert main(["finetune", *flags, "--label-names", "neg,pos", "--out", str(out)]) == 0
    assert _pipeline_labels(out) == {"neg", "pos"}
    assert json.loads((out / "protege_config.json").read_text())["label_names"] == "neg,pos"


def test_a_students_classes_take_the_classlabel_names_when_the_teacher_only_numbers_them(tiny_tokenizer, tmp_path):
    import datasets
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    teacher = BertForSequenceClassification(tiny_bert_config(len(tiny_tokenizer)))  # id2label LABEL_0, LABEL_1
    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=["neg", "pos"])})
    data = datasets.Dataset.from_dict({"text": [s for s, _ in ROWS], "label": [y for _, y in ROWS]}, features=features)
    out = tmp_path / "s"
    protege.distill(teacher=teacher, tokenizer=tiny_tokenizer, train=data, student_layers="0,2", out=str(out), **QUIET)
    assert _pipeline_labels(out) == {"neg", "pos"}
    # --label-names renames them explicitly, and the data's labels may be those names
    named = [{"text": s, "label": ["bad", "good"][y]} for s, y in ROWS]
    protege.distill(teacher=teacher, tokenizer=tiny_tokenizer, train=named, label_names=["bad", "good"], student_layers="0,2",
                    out=str(tmp_path / "s2"), **QUIET)
    assert _pipeline_labels(tmp_path / "s2") == {"bad", "good"}
    with pytest.raises(ProtegeError, match="--label-names gives 3 names"):
        protege.distill(teacher=teacher, tokenizer=tiny_tokenizer, train=data, label_names="a,b,c", out=str(tmp_path / "s3"), **QUIET)
    assert not (tmp_path / "s3").exists()


def test_a_student_keeps_its_teachers_names(tiny_teacher_dir, tiny_data_dir, tmp_path):
    out = tmp_path / "s"
    protege.distill(teacher=str(tiny_teacher_dir), train=str(tiny_data_dir / "train.tsv"), student_layers="0,2", out=str(out), **QUIET)
    assert _pipeline_labels(out) == {"negative", "positive"}


def test_general_distillation_refuses_label_names():
    from protege.recipes.distill.config import build_distill_config

    with pytest.raises(ProtegeError, match="--label-names names a classifier's classes; --objective mlm trains no classifier"):
        build_distill_config({"teacher": "t", "objective": "mlm", "train_text": "c.txt", "out": "o", "label_names": "a,b"})
