"""Tests for protege.models.loading: loading classifiers, backbones, configs and tokenizers from
local folders, with one-line ProtegeErrors for the usual mistakes. No hub ids (no network)."""

import pytest
import torch

from protege.errors import ProtegeError
from protege.models import (
    load_backbone_as_classifier,
    load_classifier,
    load_config,
    load_tokenizer,
    pretrained_student,
    problem_type_of,
)


def tiny_bert_config(vocab_size, num_labels=2, **kw):
    """A 4-layer hidden-32 BERT config (built here so this file depends on no test helper module)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=4, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=64, num_labels=num_labels, **kw)


@pytest.fixture(scope="session")
def plain_bert(tmp_path_factory):
    """A save_pretrained folder of a plain BertModel (a backbone, not a classifier), and the model."""
    from transformers import BertModel

    torch.manual_seed(1)
    model = BertModel(tiny_bert_config(100)).eval()
    d = tmp_path_factory.mktemp("plain_bert")
    model.save_pretrained(d)
    return d, model


@pytest.fixture
def plain_bert_dir(plain_bert):
    return str(plain_bert[0])


def _ids():
    return torch.tensor([[2, 10, 11, 12, 3, 0], [2, 20, 21, 22, 23, 3]]), torch.tensor([[1, 1, 1, 1, 1, 0], [1] * 6])


# --- load_classifier ----------------------------------------------------------------------------


def test_load_classifier_returns_eval_model_with_teacher_weights(tiny_teacher_dir, tiny_teacher):
    model = load_classifier(str(tiny_teacher_dir))
    assert type(model).__name__ == "BertForSequenceClassification"
    assert not model.training
    assert all(not m.training for m in model.modules())
    assert model.config.num_labels == 2 and model.config.id2label == {0: "negative", 1: "positive"}
    ids, mask = _ids()
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids, attention_mask=mask).logits,
                           tiny_teacher(input_ids=ids, attention_mask=mask).logits)


def test_load_classifier_accepts_a_trained_model_left_in_train_mode(tiny_teacher, tmp_path):
    tiny_teacher.train().save_pretrained(tmp_path)
    assert not load_classifier(str(tmp_path)).training


def test_load_classifier_rejects_a_backbone(plain_bert_dir):
    with pytest.raises(ProtegeError) as info:
        load_classifier(plain_bert_dir)
    msg = str(info.value)
    assert "not a sequence classifier" in msg
    assert "protege finetune" in msg
    assert "BertModel" in msg
    assert msg.startswith("teacher ")
    with pytest.raises(ProtegeError, match=r"^model .*not a sequence classifier"):
        load_classifier(plain_bert_dir, role="model")


@pytest.mark.parametrize("name", ["./nope/model", "/nonexistent-protege-dir/nope/model"])
def test_load_classifier_missing_folder(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ProtegeError, match="no such model folder") as info:
        load_classifier(name)
    assert name in str(info.value)
    assert "\n" not in str(info.value)


def test_load_classifier_folder_without_config(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(ProtegeError, match="no config.json"):
        load_classifier(str(tmp_path))


def test_load_classifier_rejects_multi_label(tiny_teacher, tmp_path):
    tiny_teacher.config.problem_type = "multi_label_classification"
    tiny_teacher.save_pretrained(tmp_path)
    with pytest.raises(ProtegeError, match="multi-label"):
        load_classifier(str(tmp_path))


def test_load_config_reads_a_folder_and_fails_clearly(tiny_teacher_dir, tmp_path):
    cfg = load_config(str(tiny_teacher_dir))
    assert cfg.model_type == "bert" and cfg.num_hidden_layers == 4
    with pytest.raises(ProtegeError, match="no config.json"):
        load_config(str(tmp_path))
    with pytest.raises(ProtegeError, match="no such model folder"):
        load_config(str(tmp_path / "missing" / "x"))


def test_load_classifier_expands_user(tiny_teacher_dir, monkeypatch):
    monkeypatch.setenv("HOME", str(tiny_teacher_dir.parent))
    model = load_classifier(f"~/{tiny_teacher_dir.name}")
    assert model.config.num_hidden_layers == 4


# --- load_tokenizer -----------------------------------------------------------------------------


def test_load_tokenizer(tiny_tokenizer_dir, tiny_tokenizer, tmp_path):
    tok = load_tokenizer(str(tiny_tokenizer_dir))
    assert tok.is_fast
    assert tok.get_vocab() == tiny_tokenizer.get_vocab()
    with pytest.raises(ProtegeError, match="could not load a tokenizer"):
        load_tokenizer(str(tmp_path))


# --- load_backbone_as_classifier ----------------------------------------------------------------


def test_backbone_as_regression_head(plain_bert, plain_bert_dir):
    model = load_backbone_as_classifier(plain_bert_dir, problem_type="regression", id2label=None)
    assert type(model).__name__ == "BertForSequenceClassification"
    assert model.config.num_labels == 1
    assert model.config.problem_type == "regression"
    assert problem_type_of(model.config) == "regression"
    assert model.classifier.weight.shape == (1, 32)
    # The backbone weights are the saved ones, not a fresh init.
    saved = plain_bert[1].state_dict()
    got = model.bert.state_dict()
    for k in ("embeddings.word_embeddings.weight", "encoder.layer.3.output.dense.weight", "pooler.dense.weight"):
        assert torch.equal(got[k], saved[k]), k
    ids, mask = _ids()
    with torch.no_grad():
        assert model.eval()(input_ids=ids, attention_mask=mask).logits.shape == (2, 1)


def test_backbone_with_labels(plain_bert_dir):
    model = load_backbone_as_classifier(plain_bert_dir, problem_type="single_label_classification",
                                        id2label={0: "neg", 1: "pos"})
    assert model.config.num_labels == 2
    assert model.config.label2id == {"neg": 0, "pos": 1}
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert model.config.problem_type == "single_label_classification"
    assert model.classifier.weight.shape == (2, 32)


def test_backbone_with_string_keyed_labels(plain_bert_dir):
    model = load_backbone_as_classifier(plain_bert_dir, problem_type="single_label_classification",
                                        id2label={"0": "a", "1": "b", "2": "c"})
    assert model.config.num_labels == 3
    assert model.config.id2label == {0: "a", 1: "b", 2: "c"}
    assert model.config.label2id == {"a": 0, "b": 1, "c": 2}


def test_classifier_as_backbone_gets_a_new_head_size(tiny_teacher_dir):
    model = load_backbone_as_classifier(str(tiny_teacher_dir), problem_type="regression", id2label=None)
    assert model.config.num_labels == 1
    assert model.classifier.weight.shape == (1, 32)


def test_backbone_missing_folder(tmp_path):
    with pytest.raises(ProtegeError, match="no such model folder"):
        load_backbone_as_classifier(str(tmp_path / "a" / "b"), problem_type="regression", id2label=None)
    with pytest.raises(ProtegeError, match="no config.json"):
        load_backbone_as_classifier(str(tmp_path), problem_type="regression", id2label=None)


def test_pretrained_student_takes_the_teacher_label_space(plain_bert_dir, tiny_teacher):
    student = pretrained_student(plain_bert_dir, tiny_teacher.config)
    assert student.config.id2label == {0: "negative", 1: "positive"}
    assert student.config.label2id == {"negative": 0, "positive": 1}
    reg = pretrained_student(plain_bert_dir, tiny_bert_config(100, num_labels=1))
    assert reg.config.num_labels == 1 and reg.config.problem_type == "regression"


# --- problem_type_of ----------------------------------------------------------------------------


def test_problem_type_of():
    assert problem_type_of(tiny_bert_config(100, num_labels=1)) == "regression"
    assert problem_type_of(tiny_bert_config(100, num_labels=3)) == "single_label_classification"
    assert problem_type_of(tiny_bert_config(100, num_labels=2)) == "single_label_classification"
    # An explicit problem type wins over the label count.
    assert problem_type_of(tiny_bert_config(100, num_labels=3, problem_type="regression")) == "regression"
    with pytest.raises(ProtegeError, match="multi-label"):
        problem_type_of(tiny_bert_config(100, num_labels=3, problem_type="multi_label_classification"))
