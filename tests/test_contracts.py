"""Contract tests over every extension table: a new objective, pruning method or query strategy cannot skip them.

Each table is read at collection time, so adding a row adds its cases here.
"""

import dataclasses
import math

import pytest
import torch

from protege.data.queries import QUERY_STRATEGIES, make_queries
from protege.objectives.registry import CONTRACT, OBJECTIVES, objective_class
from protege.pruning.config import METHODS
from protege.recipes.distill.config import build_distill_config

from helpers import make_sentences

# teacher folder (under general_dir, or the task teacher) and the config fields each objective needs
_SETUP = {
    "task": (None, dict(train="unused.tsv", alpha_hidden=1.0, alpha_ce=1.0)),
    "mlm": ("bert-mlm", dict(train_text="corpus.txt")),
    "tinybert": ("bert-encoder", dict(train_text="corpus.txt", student_hidden=16, student_num_layers=2)),
    "embedding": ("st", dict(train_text="corpus.txt", alpha_hidden=1.0)),
    "clm": ("gpt2", dict(train_text="corpus.txt")),
}


def test_every_objective_has_a_test_setup():
    assert set(_SETUP) == set(OBJECTIVES)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_objective_contract(name, general_dir, tiny_teacher_dir, tmp_path):
    """Built from a DistillConfig, every objective has the contract's members, and its loss trains the student."""
    from protege.data.batching import collate, encode
    from protege.data.tables import Examples

    folder, fields = _SETUP[name]
    teacher = str(tiny_teacher_dir if folder is None else general_dir / folder)
    text_fields = {k: str(general_dir / v) if k == "train_text" else v for k, v in fields.items()}
    cfg = build_distill_config(dict(objective=name, teacher=teacher, out=str(tmp_path / "s"), max_length=32, **text_fields))
    obj = objective_class(name)(cfg)
    missing = [m for m in CONTRACT if not hasattr(obj, m)]
    assert not missing, f"{name} lacks {missing}"
    active = {k for k, v in obj.weights.items() if v}
    assert obj.kind == name and active and all(v >= 0 for v in obj.weights.values())
    assert len(obj.layer_map) >= 1 or name == "clm"
    rows = make_sentences(8, seed=1)
    features = encode(Examples([t for t, _ in rows], None, [y for _, y in rows] if name == "task" else None, "mem", "sentence",
                               None, "label" if name == "task" else None), obj.tokenizer, max_length=32)
    obj.prepare(features)
    batch = collate(features, obj.tokenizer.pad_token_id or 0)
    terms = obj.loss(obj.student, batch)
    assert set(terms) == active | {"loss"}, "loss returns exactly its weighted terms plus their sum"
    values = {k: float(v.detach()) for k, v in terms.items()}
    assert math.isfinite(values["loss"])
    assert values["loss"] == pytest.approx(sum(obj.weights[k] * v for k, v in values.items() if k != "loss"), rel=1e-5, abs=1e-6)
    terms["loss"].backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in obj.student.parameters())
    assert all(p.grad is None for p in obj.teacher.parameters()), "the teacher never learns"
    scores = obj.held_out(obj.student, obj.eval_features(features), torch.device("cpu"))
    assert isinstance(scores, dict) and set(scores) <= {"model", "teacher", "agreement"} and scores
    obj.save(tmp_path / "saved")
    assert any((tmp_path / "saved").iterdir())


@pytest.mark.parametrize("method", sorted(METHODS))
def test_pruning_method_contract(method):
    """Every method's config is a frozen dataclass whose fields all carry help (they become flags) and validate."""
    from protege.errors import ProtegeError
    from protege.recipes.prune_steps import METHOD_STEPS as _METHODS

    cls = METHODS[method]
    assert method in _METHODS, "a registered method has an implementation in the recipe"
    assert dataclasses.is_dataclass(cls) and cls.__dataclass_params__.frozen
    assert (cls.__doc__ or "").strip(), "the docstring is the --help section"
    for f in dataclasses.fields(cls):
        assert f.metadata.get("help"), f"{method}.{f.name} has no help text"
    with pytest.raises((ProtegeError, TypeError)):
        cls(**{f.name: float("nan") for f in dataclasses.fields(cls) if f.type in ("float", float)} or {"_no_such_field": 1})


@pytest.mark.parametrize("strategy", sorted(QUERY_STRATEGIES))
def test_query_strategy_contract(strategy, tiny_tokenizer, tmp_path):
    """Every strategy gives exactly n non-empty texts, the same ones for the same seed, and pairs on request."""
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("\n".join(t for t, _ in make_sentences(60, seed=3)) + "\n")
    texts, pairs = make_queries(strategy, 25, seed=1, corpus=str(corpus), tokenizer=tiny_tokenizer)
    again, _ = make_queries(strategy, 25, seed=1, corpus=str(corpus), tokenizer=tiny_tokenizer)
    assert len(texts) == 25 and all(t.strip() for t in texts) and pairs is None
    assert texts == again
    _, pairs = make_queries(strategy, 25, seed=1, corpus=str(corpus), tokenizer=tiny_tokenizer, pairs=True)
    assert pairs is not None and len(pairs) == 25
