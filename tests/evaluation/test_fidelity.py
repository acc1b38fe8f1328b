"""Fidelity statistics on constructed predictions: each number equals one computed by hand or by scipy/sklearn."""

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon
from sklearn.metrics import brier_score_loss

from protege.evaluation.fidelity import (calibration, confidence_buckets, distribution_distances, fidelity_report, flips,
                                         mcnemar_exact, quantile_buckets, regression_errors)
from protege.evaluation.gates import FIGURES
from protege.evaluation.internals import attention_js, internals_figures, linear_cka, resolve_layer_map
from protege.evaluation.rarity import rare_examples, token_lengths, train_token_counts


def logits_of(probs):
    """Logits whose softmax is ``probs`` (rows sum to 1)."""
    return np.log(np.asarray(probs, dtype=np.float64))


def one_hot_logits(classes, n_classes=2, margin=3.0):
    out = np.zeros((len(classes), n_classes))
    out[np.arange(len(classes)), classes] = margin
    return out


# --- flips and McNemar ----------------------------------------------------------------------------

def test_flips_count_both_ways_and_mcnemar_is_the_exact_binomial_test():
    y = np.array([0] * 10 + [1] * 10)
    teacher, student = y.copy(), y.copy()
    teacher[[0, 1]] = 1  # the teacher is wrong on examples 0 and 1
    student[[1, 2, 3, 4, 5, 6]] = 1 - y[[1, 2, 3, 4, 5, 6]]  # lost on 2-6, gained on 0, both wrong on 1
    f = flips(one_hot_logits(student), one_hot_logits(teacher), y)
    assert (f["lost"], f["gained"]) == (5, 1)
    assert f["changed"] == 6 and f["lost_rate"] == 5 / 20 and f["gained_rate"] == 1 / 20
    # by hand: P(X >= 5 | n=6, 1/2) = (6 + 1) / 64; two-sided doubles it
    assert f["mcnemar_p_worse"] == pytest.approx(7 / 64)
    assert f["mcnemar_p"] == pytest.approx(14 / 64)
    assert f["mcnemar_p"] == pytest.approx(stats.binomtest(5, 6, 0.5).pvalue)


def test_mcnemar_without_discordant_pairs_is_one_and_symmetric_otherwise():
    assert mcnemar_exact(0, 0) == (1.0, 1.0)
    two, worse = mcnemar_exact(1, 9)
    assert two == pytest.approx(mcnemar_exact(9, 1)[0])
    assert worse == pytest.approx(1 - stats.binom.cdf(0, 10, 0.5))  # P(X >= 1)
    assert mcnemar_exact(9, 1)[1] == pytest.approx(11 / 1024)


def test_flips_on_three_classes_count_both_wrong_but_different_as_changed_only():
    y = np.array([0, 1, 2, 2])
    teacher, student = np.array([0, 1, 0, 2]), np.array([0, 2, 1, 2])
    f = flips(one_hot_logits(student, 3), one_hot_logits(teacher, 3), y)
    assert (f["lost"], f["gained"], f["changed"]) == (1, 0, 2)


# --- distances and calibration ----------------------------------------------------------------------

def test_kl_and_total_variation_equal_scipy_per_example():
    rng = np.random.default_rng(0)
    s, t = rng.normal(size=(50, 4)), rng.normal(size=(50, 4))
    kl, tv = distribution_distances(s, t)
    p_s = np.exp(s) / np.exp(s).sum(1, keepdims=True)
    p_t = np.exp(t) / np.exp(t).sum(1, keepdims=True)
    assert np.allclose(kl, [stats.entropy(a, b) for a, b in zip(p_t, p_s)])
    assert np.allclose(tv, 0.5 * np.abs(p_t - p_s).sum(1))
    same_kl, same_tv = distribution_distances(t, t)
    assert np.all(same_kl == 0) and np.allclose(same_tv, 0)


def test_ece_equals_the_hand_computed_value():
    # confidences 0.95, 0.95 (one right) -> bin 15; 0.65, 0.65 (both right) -> bin 10
    probs = [[0.95, 0.05], [0.05, 0.95], [0.65, 0.35], [0.35, 0.65]]
    cal = calibration(logits_of(probs), [0, 0, 0, 1])
    assert cal["ece"] == pytest.approx(0.5 * abs(0.5 - 0.95) + 0.5 * abs(1.0 - 0.65))
    assert [(b["n"], b["accuracy"]) for b in cal["bins"]] == [(2, 1.0), (2, 0.5)]
    assert cal["bins"][0]["lo"] == pytest.approx(9 / 15) and cal["bins"][1]["hi"] == pytest.approx(1.0)
    perfect = calibration(logits_of([[0.999999, 1e-6]] * 3), [0, 0, 0])
    assert perfect["ece"] == pytest.approx(1e-6, abs=1e-5)


def test_brier_is_twice_sklearn_for_two_classes_and_by_hand_for_three():
    rng = np.random.default_rng(1)
    p1 = rng.uniform(0.01, 0.99, 40)
    y = rng.integers(0, 2, 40)
    cal = calibration(logits_of(np.stack([1 - p1, p1], 1)), y)
    assert cal["brier"] == pytest.approx(2 * brier_score_loss(y, p1))
    three = calibration(logits_of([[0.7, 0.2, 0.1], [0.2, 0.5, 0.3]]), [0, 2])
    assert three["brier"] == pytest.approx(((0.3 ** 2 + 0.2 ** 2 + 0.1 ** 2) + (0.2 ** 2 + 0.5 ** 2 + 0.7 ** 2)) / 2)


def test_regression_errors_count_worse_and_better_beyond_the_tolerance():
    y = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    teacher = y + np.array([0.1, -0.1, 0.0, 0.5, 0.0])
    student = y + np.array([0.5, -0.1, 0.05, 0.0, -1.0])
    e = regression_errors(student, teacher, y, tolerance=0.2)
    # |error| grew by 0.4 and 1.0 (worse), shrank by 0.5 (better), 0 and 0.05 within the tolerance
    assert (e["worse"], e["better"]) == (2, 1)
    assert e["mae_teacher"] == pytest.approx(0.7 / 5) and e["mae_student"] == pytest.approx(1.65 / 5)
    assert e["sign_p_worse"] == pytest.approx(stats.binomtest(2, 3, 0.5, alternative="greater").pvalue)
    assert regression_errors(student, teacher, y)["tolerance"] == pytest.approx(0.1 * np.std(y))


# --- slices -----------------------------------------------------------------------------------------

def test_length_buckets_partition_the_examples_at_the_quartiles():
    lengths = np.array([3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 30, 40])
    buckets = quantile_buckets(lengths, unit="tokens")
    masks = np.array([m for _, m in buckets])
    assert np.all(masks.sum(0) == 1)  # every example in exactly one bucket
    assert [name for name, _ in buckets] == ["3-5 tokens", "6-8 tokens", "9-11 tokens", "12-40 tokens"]
    assert [name for name, _ in quantile_buckets(np.full(5, 7), unit="tokens")] == ["7 tokens"]


def test_confidence_buckets_follow_the_teacher_top_probability():
    probs = [[0.55, 0.45], [0.7, 0.3], [0.85, 0.15], [0.95, 0.05], [0.995, 0.005], [0.3, 0.7]]
    buckets = dict(confidence_buckets(logits_of(probs)))
    assert {k: np.flatnonzero(v).tolist() for k, v in buckets.items()} == {
        "< 0.6": [0], "0.6-0.8": [1, 5], "0.8-0.9": [2], "0.9-0.99": [3], ">= 0.99": [4]}


def test_report_slices_by_label_length_confidence_and_rarity_with_the_right_members():
    y = np.array([0, 0, 1, 1, 1, 0])
    teacher = one_hot_logits([0, 0, 1, 1, 0, 0])
    student = one_hot_logits([0, 1, 1, 0, 0, 0])
    rare = np.array([False, True, False, True, False, False])
    summary, records = fidelity_report(student, teacher, problem_type="single_label_classification", labels=y,
                                       lengths=[5, 5, 9, 9, 20, 20], rare=rare, id2label={0: "neg", 1: "pos"},
                                       texts=[f"t{i}" for i in range(6)], top_k=3)
    sl = summary["slices"]
    by_label = {b["name"]: b for b in sl["label"]}
    assert (by_label["neg"]["n"], by_label["pos"]["n"]) == (3, 3)
    assert by_label["neg"]["flips_lost"] == pytest.approx(1 / 3) and by_label["pos"]["flips_lost"] == pytest.approx(1 / 3)
    assert [(b["name"], b["n"]) for b in sl["rarity"]] == [("rare", 2), ("rest", 4)]
    rare_b = sl["rarity"][0]
    assert rare_b["agreement"] == 0.0 and rare_b["accuracy_delta"] == pytest.approx(-1.0)
    assert [b["n"] for b in sl["length"]] == [2, 2, 2]
    f = summary["figures"]
    assert f["flips_lost"] == pytest.approx(2 / 6) and f["flips_gained"] == 0 and f["agreement"] == pytest.approx(4 / 6)
    assert f["rare_share"] == pytest.approx(2 / 6)
    assert f["rare_accuracy_gap"] == pytest.approx(-1.0 - 0.0)
    assert set(f) <= set(FIGURES)
    # the two changed answers, most changed first, with their text and flip direction
    assert len(records) == 3  # the changed answers, then the most changed of the others up to top_k
    assert {r["index"] for r in records[:2]} == {1, 3} and records[0]["change"] >= records[1]["change"] > records[2]["change"]
    assert {r["index"]: r["flip"] for r in records if r["flip"]} == {1: "lost", 3: "lost"}
    assert records[0]["text"] == f"t{records[0]['index']}" and records[0]["teacher"] in ("neg", "pos")
    assert [r["index"] for r in summary["most_changed"]] == [r["index"] for r in records]


def test_regression_report_is_by_error_and_names_regression_figures_only():
    y = np.linspace(0, 5, 20)
    teacher, student = y + 0.1, y + np.where(np.arange(20) < 5, 2.0, 0.1)
    summary, records = fidelity_report(student[:, None], teacher[:, None], problem_type="regression", labels=y,
                                       lengths=np.arange(20) + 3)
    assert summary["errors"]["worse"] == 5 and summary["figures"]["errors_worse"] == pytest.approx(0.25)
    assert "flips" not in summary and "calibration" not in summary
    assert set(summary["figures"]) <= {k for k, v in FIGURES.items() if v[0] in ("regression", "any")}
    assert sorted(r["index"] for r in records[:5]) == [0, 1, 2, 3, 4]


# --- rarity -----------------------------------------------------------------------------------------

def test_token_counts_are_cached_by_file_and_tokenizer_and_mark_rare_examples(tiny_tokenizer, tmp_path):
    from protege.data import load_examples
    from protege.data.batching import encode

    train = tmp_path / "train.tsv"
    train.write_text("sentence\tlabel\n" + "the movie was good\t1\n" * 6 + "a dull plot\t0\n")
    counts, info = train_token_counts(str(train), tiny_tokenizer, cache_dir=tmp_path / "cache")
    movie = tiny_tokenizer.convert_tokens_to_ids("movie")
    assert counts[movie] == 6 and not info["cached"] and info["examples"] == 7
    again, info2 = train_token_counts(str(train), tiny_tokenizer, cache_dir=tmp_path / "cache")
    assert info2["cached"] and np.array_equal(again, counts)
    train.write_text("sentence\tlabel\nthe movie\t1\n")  # a changed file is recounted
    _, info3 = train_token_counts(str(train), tiny_tokenizer, cache_dir=tmp_path / "cache")
    assert not info3["cached"] and info3["examples"] == 1

    dev = tmp_path / "dev.tsv"
    dev.write_text("sentence\tlabel\nthe movie was good\t1\na dull movie\t0\nthe superb film\t1\n")
    feats = encode(load_examples(str(dev)), tiny_tokenizer, max_length=32)
    rare = rare_examples(feats, counts, special_ids=tiny_tokenizer.all_special_ids)
    assert rare.tolist() == [False, True, True]  # "dull" once (< 5), "superb"/"film" never
    assert token_lengths(feats).tolist() == [6, 5, 5]


# --- internals --------------------------------------------------------------------------------------

def test_linear_cka_is_one_for_rotations_and_scalings_and_equal_in_both_forms():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 8))
    q, _ = np.linalg.qr(rng.normal(size=(8, 8)))
    assert linear_cka(x, 3.0 * x @ q) == pytest.approx(1.0)
    assert linear_cka(x, rng.normal(size=(200, 8))) < 0.2
    wide_x, wide_y = rng.normal(size=(10, 50)), rng.normal(size=(10, 40))  # n < d: the Gram form
    xc, yc = wide_x - wide_x.mean(0), wide_y - wide_y.mean(0)
    feature_form = np.linalg.norm(yc.T @ xc) ** 2 / (np.linalg.norm(xc.T @ xc) * np.linalg.norm(yc.T @ yc))
    assert linear_cka(wide_x, wide_y) == pytest.approx(feature_form)


def test_attention_js_is_scipy_jensen_shannon_distance_over_real_queries():
    rng = np.random.default_rng(0)
    a, b = rng.dirichlet(np.ones(4), size=(1, 2, 4)), rng.dirichlet(np.ones(4), size=(1, 2, 4))
    mask = np.array([[True, True, True, False]])
    js = attention_js(a, b, mask)
    expected = [np.mean([jensenshannon(b[0, h, i], a[0, h, i], base=2) for i in range(3)]) for h in range(2)]
    assert np.allclose(js, expected)
    assert np.allclose(attention_js(a, a, mask), 0, atol=1e-6)
    assert internals_figures({"cka_mapped": [0.9, 0.5], "attention_js": [[0.1, 0.3], None]}) == {
        "cka_min": 0.5, "cka_mean": 0.7, "attention_js_mean": pytest.approx(0.2), "attention_js_max": 0.3}


def test_layer_map_is_read_from_metrics_or_matched_by_weights(tiny_teacher, tmp_path):
    import json

    import protege

    student = protege.keep_layers(tiny_teacher, [0, 2])
    assert resolve_layer_map(None, student, tiny_teacher) == ([0, 2], "matched by weights")
    (tmp_path / "metrics.json").write_text(json.dumps({"student": {"layer_map": [1, 3]}}))
    assert resolve_layer_map(tmp_path, student, tiny_teacher) == ([1, 3], "recorded by distill")
    assert resolve_layer_map(None, tiny_teacher, tiny_teacher)[0] == [0, 1, 2, 3]


def test_nan_free_summary_for_a_student_identical_to_its_teacher():
    rng = np.random.default_rng(2)
    t = rng.normal(size=(30, 3))
    summary, records = fidelity_report(t, t, problem_type="single_label_classification", labels=rng.integers(0, 3, 30),
                                       top_k=3)
    f = summary["figures"]
    assert f["agreement"] == 1.0 and f["flips_lost"] == 0 and f["mcnemar_p"] == 1.0 and f["ece_delta"] == 0
    assert all(math.isfinite(v) for v in f.values())
    assert len(records) == 3 and all(r["flip"] is None for r in records)


def test_without_gold_labels_only_teacher_relative_figures_are_reported():
    rng = np.random.default_rng(3)
    s, t = rng.normal(size=(12, 2)), rng.normal(size=(12, 2))
    summary, _ = fidelity_report(s, t, problem_type="single_label_classification", lengths=np.arange(12) + 4)
    assert "flips" not in summary and "calibration" not in summary and "label" not in summary["slices"]
    assert set(summary["figures"]) == {"agreement", "flips_changed", "kl_mean", "kl_p95", "tv_mean", "tv_p95"}


def test_every_gate_figure_is_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "fidelity.md").read_text()
    assert [name for name in FIGURES if f"`{name}`" not in doc] == []
