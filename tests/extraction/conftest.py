"""Fixtures for extraction tests: a rule victim (no torch), a tiny backbone, tiny data and corpus files."""

import math

import numpy as np
import pytest
import torch

from protege.extraction.defenses.hardening import harden

from helpers import NEGATIVE, POSITIVE, build_tokenizer, make_sentences, tiny_bert_config


class RuleVictim:
    """A victim without weights: positive iff the text holds more positive than negative words.

    Speaks the Victim interface (``info``, ``predict``) and answers like a Victim (watermark,
    then hardening); counts calls and queries.
    """

    labels = ["negative", "positive"]

    def __init__(self, output="label", watermark=None):
        self.output, self.watermark, self.name = output, watermark, "rule-victim"
        self.calls = self.queries = 0

    def info(self):
        return {"labels": list(self.labels), "output": self.output, "top_k": None, "decimals": None}

    def predict(self, texts, pairs=None):
        self.calls += 1
        self.queries += len(texts)
        probs = []
        for t in texts:
            words = t.split()
            score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
            p = 1 / (1 + math.exp(-2 * score)) if score else 0.4  # no sentiment words: negative, unsure
            probs.append([1 - p, p])
        if self.watermark is not None:
            probs, _ = self.watermark.apply(np.array(probs), texts, pairs)
        return harden(np.array(probs), self.labels, output=self.output)


@pytest.fixture
def rule_victim():
    """A fresh label-only rule victim."""
    return RuleVictim()


@pytest.fixture(scope="session")
def make_rule_victim():
    """The RuleVictim class: ``make_rule_victim("probs", watermark=...)``."""
    return RuleVictim


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory):
    """A tiny pretrained-style backbone (BertModel, no head) with the tiny tokenizer: the attacker's start."""
    from transformers import BertModel

    d = tmp_path_factory.mktemp("backbone")
    tok = build_tokenizer(d)
    torch.manual_seed(1)
    BertModel(tiny_bert_config(len(tok), layers=2)).save_pretrained(d)
    return d


@pytest.fixture(scope="session")
def corpus_file(tmp_path_factory):
    """A text corpus, one sentence a line, in the tiny vocabulary (the attacker's public text)."""
    path = tmp_path_factory.mktemp("corpus") / "sentences.txt"
    path.write_text("".join(s + "\n" for s, _ in make_sentences(400, seed=11)))
    return path


@pytest.fixture(scope="session")
def dev_file(tmp_path_factory):
    """Labeled evaluation data (sentence, label names) for the rule victim's task."""
    path = tmp_path_factory.mktemp("dev") / "dev.tsv"
    names = ["negative", "positive"]
    path.write_text("sentence\tlabel\n" + "".join(f"{s}\t{names[y]}\n" for s, y in make_sentences(60, seed=5)))
    return path


@pytest.fixture(scope="module", autouse=True)
def _one_thread():
    """Tiny models run faster on one thread (and far faster on a busy machine); restored after each module."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
