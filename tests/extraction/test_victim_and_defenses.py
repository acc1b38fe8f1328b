"""The in-process Victim, output hardening, the watermark and its verification, the query detector."""

import numpy as np
import pytest

from protege.errors import ProtegeError
from protege.extraction import Victim, Watermark, harden, targets_from_answers, verify_watermark
from protege.extraction.defenses.detector import Detector, detection_report, train_detector
from protege.extraction.defenses.hardening import answers_are_soft
from protege.data.queries import Unigram, random_queries

from helpers import make_sentences

NAMES = ["neg", "neu", "pos"]


def test_harden_reveals_label_probs_or_top_k():
    probs = np.array([[0.1234, 0.2, 0.6766], [0.5, 0.3, 0.2]])
    assert harden(probs, NAMES) == [{"label": 2, "name": "pos"}, {"label": 0, "name": "neg"}]
    rounded = harden(probs, NAMES, output="probs", decimals=1)
    assert rounded[0]["probs"] == [0.1, 0.2, 0.7] and rounded[0]["label"] == 2
    top = harden(probs, NAMES, output="top-k", top_k=2, decimals=2)
    assert top[0]["top_k"] == [[2, 0.68], [1, 0.2]] and top[1]["top_k"] == [[0, 0.5], [1, 0.3]]
    for bad in (dict(output="argmax"), dict(output="label", decimals=2), dict(output="probs", top_k=2),
                dict(output="top-k", top_k=4)):
        with pytest.raises(ProtegeError):
            harden(probs, NAMES, **bad)


def test_targets_recover_what_each_mode_reveals():
    probs = np.array([[0.1, 0.2, 0.7]])
    hard = harden(probs, NAMES)
    assert not answers_are_soft(hard)
    assert targets_from_answers(hard, 3).tolist() == [[0, 0, 1]]
    assert np.allclose(targets_from_answers(harden(probs, NAMES, output="probs"), 3), probs)
    top1 = targets_from_answers(harden(probs, NAMES, output="top-k"), 3)  # the rest of the mass, spread evenly
    assert np.allclose(top1, [[0.15, 0.15, 0.7]])
    assert np.allclose(targets_from_answers([{"label": 0, "probs": [0.5, 0.3, 0.3]}], 3).sum(), 1.0)
    with pytest.raises(ProtegeError, match="valid 'label'"):
        targets_from_answers([{"label": 5}], 3)


def test_victim_answers_in_every_mode_and_counts_queries(tiny_teacher_dir):
    texts = ["good movie", "a dull plot", "the film"]
    label = Victim(str(tiny_teacher_dir))
    probs = Victim(str(tiny_teacher_dir), output="probs", decimals=3)
    topk = Victim(str(tiny_teacher_dir), output="top-k")
    a, b, c = label.predict(texts), probs.predict(texts), topk.predict(texts)
    raw = label.probabilities(texts)
    assert [x["label"] for x in a] == raw.argmax(1).tolist() == [x["label"] for x in b] == [x["label"] for x in c]
    assert np.allclose([x["probs"] for x in b], raw, atol=5e-4)
    assert all(len(x["top_k"]) == 1 for x in c) and set(a[0]) == {"label", "name"}
    assert label.calls == 1 and label.queries == 3
    assert label.info() == {"labels": ["negative", "positive"], "output": "label", "top_k": None, "decimals": None}
    pooled, p = label.embed(texts, ["a", "b", "c"])
    assert pooled.shape == (3, 32) and p.shape == (3, 2)
    for bad in ([], [""], ["ok", 3], "a string"):
        with pytest.raises(ProtegeError):
            label.predict(bad)
    with pytest.raises(ProtegeError, match="one pair per text"):
        label.predict(["a", "b"], ["c"])


def test_watermark_answers_a_keyed_fraction_wrong_the_same_way_every_time(tiny_teacher_dir):
    texts = [f"query number {i} good film" for i in range(2000)]
    wm = Watermark("a-secret-key", 0.1)
    chosen = np.array([wm.selects(t) for t in texts])
    assert 0.07 < chosen.mean() < 0.13
    assert chosen.tolist() == [Watermark("a-secret-key", 0.1).selects(t) for t in texts]
    assert chosen.tolist() != [Watermark("another-key!", 0.1).selects(t) for t in texts]
    assert "a-secret-key" not in repr(wm)
    victim = Victim(str(tiny_teacher_dir), output="probs", watermark=wm)
    plain = Victim(str(tiny_teacher_dir), output="probs")
    sample = texts[:200]
    marked, clean = victim.predict(sample), plain.predict(sample)
    flipped = [m["label"] != c["label"] for m, c in zip(marked, clean)]
    assert flipped == [wm.selects(t) for t in sample] and any(flipped)
    assert victim.predict(sample) == marked  # deterministic: re-asking reveals nothing
    assert "watermark" not in str(victim.info())
    assert wm.wrong_label("x", None, 2, 5) != 2
    with pytest.raises(ProtegeError, match="8 characters"):
        Watermark("short")


def _served_log(n=3000, key="server-secret", fraction=0.05):
    """A served log: a rule labels texts, the watermark flips its keyed fraction."""
    wm = Watermark(key, fraction)
    rng = np.random.default_rng(0)
    records = []
    for i in range(n):
        text = f"text {i} {rng.integers(1_000_000)}"
        true = int(rng.integers(2))
        served = wm.wrong_label(text, None, true, 2) if wm.selects(text) else true
        records.append({"text": text, "answer": {"label": served}, "true": true})
    return records


def test_verify_watermark_tells_a_memorising_model_from_an_independent_one(tmp_path):
    from protege.extraction import QueryLog

    records = _served_log()
    with QueryLog(tmp_path / "served.jsonl") as log:
        log.append(records)
    served = {r["text"]: r["answer"]["label"] for r in records}
    true = {r["text"]: r["true"] for r in records}
    rng = np.random.default_rng(1)

    def stolen(texts, pairs):  # learned the served answers, 80% of them by heart
        return [served[t] if rng.random() < 0.8 else true[t] for t in texts]

    def faithful(texts, pairs):  # agrees with the victim's true answers 90% of the time, never saw the watermark
        return [true[t] if rng.random() < 0.9 else 1 - true[t] for t in texts]

    hit = verify_watermark(stolen, tmp_path / "served.jsonl", key="server-secret", fraction=0.05, num_labels=2)
    assert hit["verdict"] and hit["p_value"] < 1e-10 and hit["match_rate"] > 0.7 and hit["control_rate"] < 0.05
    assert 100 < hit["watermarked"] < 200 and hit["control"] == hit["logged"] - hit["watermarked"]
    miss = verify_watermark(faithful, records, key="server-secret", fraction=0.05, num_labels=2)
    assert not miss["verdict"] and miss["p_value"] > 1e-3
    with pytest.raises(ProtegeError, match="none of the"):
        verify_watermark(stolen, records[:5], key="server-secret", fraction=0.001, num_labels=2)


def test_detector_separates_random_queries_from_real_text(tiny_teacher_dir, tiny_tokenizer, tmp_path):
    victim = Victim(str(tiny_teacher_dir), output="probs")
    genuine = [s for s, _ in make_sentences(160, seed=21)]
    unigram = Unigram.from_tokenizer(tiny_tokenizer)
    queries = random_queries(160, unigram=unigram, seed=0)
    detector, report = detection_report(victim, genuine=genuine, queries={"random": queries},
                                        ood={"shouted": [s.upper() + " !" for s in genuine[:40]]}, target_fpr=0.1)
    assert report["detection_rate"]["random"] > 0.9
    assert report["false_positive_rate"]["genuine"] <= 0.25
    assert set(report["false_positive_rate"]) == {"genuine", "shouted"}
    detector.save(tmp_path / "d.json")
    again = Detector.load(tmp_path / "d.json")
    assert np.allclose(again.scores(victim, queries[:5]), detector.scores(victim, queries[:5]))
    fitted = train_detector(victim, genuine, queries, target_fpr=0.1)
    assert fitted.flags(victim, random_queries(50, unigram=unigram, seed=9)).mean() > 0.8
