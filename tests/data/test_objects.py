"""The Python API takes objects where the CLI takes paths: DataFrames, datasets splits, texts, model objects."""

import copy
import glob
import json
import tempfile
from pathlib import Path

import pytest

import protege
from helpers import make_sentences
from protege.data import load_examples, read_table
from protege.errors import ProtegeError
from protege.utils.handles import ModelObject, input_scope, lookup, register, scratch_folder

QUIET = dict(progress=False, speed=False, max_length=32, batch_size=8, max_steps=2)
ROWS = make_sentences(48, 3)
NAMES = ["negative", "positive"]


def _frame(named=False):
    import pandas as pd

    return pd.DataFrame({"sentence": [s for s, _ in ROWS], "label": [NAMES[y] if named else y for _, y in ROWS]})


def _dataset(names=("neg", "pos")):
    import datasets

    features = datasets.Features({"text": datasets.Value("string"), "label": datasets.ClassLabel(names=list(names))})
    return datasets.Dataset.from_dict({"text": [s for s, _ in ROWS], "label": [y for _, y in ROWS]}, features=features)


def _scratch():
    return set(glob.glob(str(Path(tempfile.gettempdir()) / "protege-input-*")))


def test_every_table_object_reads_into_examples():
    texts, labels = [s for s, _ in ROWS], [y for _, y in ROWS]
    for obj in (_frame(), (texts, labels), [{"text": t, "label": y} for t, y in zip(texts, labels)],
                {"text": texts, "label": labels}):
        ex = load_examples(obj)
        assert ex.texts == texts and ex.labels == labels, type(obj)
    assert load_examples(texts).labels is None and load_examples(texts).source == "<list of 48 texts>"
    assert load_examples(_frame()).source == "<pandas.DataFrame 48 rows>"


def test_a_datasets_classlabel_brings_its_names_and_a_datasetdict_its_split():
    import datasets

    ex = load_examples(_dataset(("pos", "neg")))
    assert ex.labels == [y for _, y in ROWS] and ex.label_names == ("pos", "neg")
    assert ex.select([0, 1]).label_names == ("pos", "neg")  # a subset keeps the names
    splits = datasets.DatasetDict({"train": _dataset(), "validation": _dataset().select(range(5))})
    assert len(load_examples(splits)) == 48 and len(load_examples(splits, split="validation")) == 5
    with pytest.raises(ProtegeError, match=r"no split 'test' \(splits: train, validation\)"):
        load_examples(splits, split="test")


def test_bad_objects_fail_in_one_line():
    with pytest.raises(ProtegeError, match="expected a path, a datasets name or a pandas.DataFrame.*got int"):
        read_table(42)
    with pytest.raises(ProtegeError, match="3 texts but 2 labels"):
        load_examples((["a b", "c d", "e f"], [0, 1]))
    with pytest.raises(ProtegeError, match="no rows"):
        read_table(_frame().iloc[:0])


def test_handles_live_as_long_as_their_scope():
    with pytest.raises(RuntimeError):
        register(object(), "x")
    with input_scope():
        a, b = register(_frame(), "pandas.DataFrame 48 rows"), register(_frame(), "pandas.DataFrame 48 rows")
        assert (a, b) == ("<pandas.DataFrame 48 rows>", "<pandas.DataFrame 48 rows #2>")
        assert len(load_examples(a)) == 48 and lookup("runs/teacher") is None
        folder = scratch_folder(a)
        assert folder.is_dir() and scratch_folder(a) == folder
    assert lookup(a) is None and not folder.exists()


def test_finetune_takes_a_model_object_a_dataframe_and_a_dataset(tiny_teacher, tiny_tokenizer, tmp_path):
    """A model object is trained as a copy (the caller's is untouched); the JSON files name the objects."""
    before, scratch = copy.deepcopy(tiny_teacher.state_dict()), _scratch()
    out = tmp_path / "ft"
    metrics = protege.finetune(model=tiny_teacher, tokenizer=tiny_tokenizer, train=_frame(named=True), eval=_dataset(NAMES),
                               out=str(out), **QUIET)
    config = json.loads((out / "protege_config.json").read_text())
    assert config["model"] == "<BertForSequenceClassification 41.2K parameters>"
    assert config["train"] == "<pandas.DataFrame 48 rows>" and config["eval"] == "<datasets.Dataset 48 rows>"
    assert json.loads((out / "metrics.json").read_text())["config"]["train"] == "<pandas.DataFrame 48 rows>"
    assert "accuracy" in metrics["eval"]["metrics"]
    assert all(tiny_teacher.state_dict()[k].equal(v) for k, v in before.items())
    assert all(p.requires_grad for p in tiny_teacher.parameters()) and not tiny_teacher.training
    assert _scratch() <= scratch  # the saved copy is gone


def test_distill_takes_a_teacher_object_and_a_datasetdict(tiny_teacher, tiny_tokenizer, tmp_path):
    import datasets

    splits = datasets.DatasetDict({"train": _dataset(NAMES), "validation": _dataset(NAMES).select(range(16))})
    out, scratch = tmp_path / "s", _scratch()
    metrics = protege.distill(teacher=tiny_teacher, tokenizer=tiny_tokenizer, train=splits, eval=splits, student_layers="0,2",
                              out=str(out), **QUIET)
    assert metrics["eval"]["source"] == "<datasets.DatasetDict train/validation>" and metrics["eval"]["n"] == 16
    config = json.loads((out / "protege_config.json").read_text())
    assert config["teacher"].startswith("<BertForSequenceClassification") and config["train"] == "<datasets.DatasetDict train/validation>"
    assert (out / "model.safetensors").exists() and _scratch() <= scratch


def test_a_model_object_needs_its_tokenizer_and_a_tokenizer_needs_a_model_object(tiny_teacher, tiny_teacher_dir, tiny_tokenizer,
                                                                                  tmp_path):
    scratch = _scratch()
    with pytest.raises(ProtegeError, match=r"teacher= is a model object: pass its tokenizer too"):
        protege.distill(teacher=tiny_teacher, train=_frame(), out=str(tmp_path / "a"), **QUIET)
    with pytest.raises(ProtegeError, match=r"tokenizer= goes with a model object"):
        protege.distill(teacher=str(tiny_teacher_dir), tokenizer=tiny_tokenizer, train=_frame(), out=str(tmp_path / "b"), **QUIET)
    with pytest.raises(ProtegeError, match=r"train=: expected a path.*got set"):
        protege.finetune(model=str(tiny_teacher_dir), train={"a b"}, out=str(tmp_path / "c"), **QUIET)
    with pytest.raises(ProtegeError, match=r"model= must be a model folder, a hub id or a transformers model object; got int"):
        protege.finetune(model=3, tokenizer=tiny_tokenizer, train=_frame(), out=str(tmp_path / "d"), **QUIET)
    assert not list(tmp_path.iterdir()) and _scratch() <= scratch


def test_evaluate_takes_objects_and_the_general_options(tiny_teacher, tiny_tokenizer, general_dir):
    """``protege.evaluate`` takes what the CLI takes: eval for classifiers, sts / eval_text for general models."""
    import pandas as pd

    metrics = protege.evaluate(tiny_teacher, tokenizer=tiny_tokenizer, eval=_frame(named=True), speed=False, max_length=32)
    assert metrics["eval"]["source"] == "<pandas.DataFrame 48 rows>" and 0 <= metrics["eval"]["metrics"]["accuracy"] <= 1
    sts = pd.read_csv(general_dir / "sts.tsv", sep="\t")
    metrics = protege.evaluate(str(general_dir / "st"), sts=sts, speed=False, max_length=32)
    assert -1 <= metrics["eval"]["metrics"]["spearman"] <= 1
    lines = (general_dir / "heldout.txt").read_text().split("\n")
    metrics = protege.evaluate(str(general_dir / "gpt2"), eval_text=[line for line in lines if line], speed=False,
                               max_length=32)
    assert metrics["eval"]["metrics"]["perplexity"] > 1


def test_prune_takes_a_model_object_and_a_dataframe(tiny_teacher, tiny_tokenizer, tmp_path):
    out, scratch = tmp_path / "p", _scratch()
    protege.prune(tiny_teacher, tokenizer=tiny_tokenizer, method="magnitude", sparsity=0.5, recover="none",
                  eval=_frame(named=True), out=str(out), **{k: v for k, v in QUIET.items() if k in ("speed", "progress")})
    config = json.loads((out / "protege_config.json").read_text())
    assert config["model"].startswith("<BertForSequenceClassification") and config["eval"] == "<pandas.DataFrame 48 rows>"
    assert (out / "model.safetensors").exists() and _scratch() <= scratch
