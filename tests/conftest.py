"""Shared fixtures: a tiny WordPiece tokenizer, tiny random classifiers and tiny data files.

Everything is built in-process (no downloads) and cached per session; tests that mutate a
model get a deep copy.
"""

import copy

import pytest

from helpers import build_tokenizer, make_sentences, tiny_bert_config


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny models run fastest on one thread; OpenMP workers only contend on a busy machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory):
    """Folder holding the tiny tokenizer."""
    d = tmp_path_factory.mktemp("tok")
    build_tokenizer(d)
    return d


@pytest.fixture(scope="session")
def tiny_tokenizer(tiny_tokenizer_dir):
    """The tiny tokenizer object."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_tokenizer_dir)


@pytest.fixture(scope="session")
def _tiny_teacher_session(tmp_path_factory, tiny_tokenizer):
    import torch
    from transformers import BertForSequenceClassification

    torch.manual_seed(0)
    cfg = tiny_bert_config(len(tiny_tokenizer), id2label={0: "negative", 1: "positive"},
                           label2id={"negative": 0, "positive": 1})
    model = BertForSequenceClassification(cfg).eval()
    d = tmp_path_factory.mktemp("teacher")
    model.save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return model, d


@pytest.fixture
def tiny_teacher(_tiny_teacher_session):
    """A fresh copy of a 4-layer hidden-32 BERT classifier (random weights, eval mode)."""
    return copy.deepcopy(_tiny_teacher_session[0])


@pytest.fixture(scope="session")
def tiny_teacher_dir(_tiny_teacher_session):
    """A save_pretrained folder (model + tokenizer) of the tiny teacher; do not modify."""
    return _tiny_teacher_session[1]


@pytest.fixture(scope="session")
def tiny_data_dir(tmp_path_factory):
    """train.tsv / dev.tsv with columns sentence, label (ints), plus label-name and pair variants."""
    d = tmp_path_factory.mktemp("data")
    for name, n, seed in [("train", 160, 1), ("dev", 48, 2)]:
        rows = make_sentences(n, seed)
        (d / f"{name}.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in rows))
        names = ["negative", "positive"]
        (d / f"{name}_names.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{names[y]}\n" for s, y in rows))
    return d
