"""Fixtures for extraction tests: a rule victim (no torch), a tiny backbone, tiny data and corpus files."""

import math

import pytest
import torch

from helpers import NEGATIVE, POSITIVE, build_tokenizer, make_sentences, tiny_bert_config


class RuleVictim:
    """A victim without weights: positive iff the text holds more positive than negative words.

    Speaks the Victim interface (``info``, ``predict``); counts calls and queries.
    """

    labels = ["negative", "positive"]

    def __init__(self, output="label"):
        self.output, self.name = output, "rule-victim"
        self.calls = self.queries = 0

    def info(self):
        return {"labels": list(self.labels), "output": self.output, "top_k": None, "decimals": None}

    def predict(self, texts, pairs=None):
        self.calls += 1
        self.queries += len(texts)
        out = []
        for t in texts:
            words = t.split()
            score = sum(w in POSITIVE for w in words) - sum(w in NEGATIVE for w in words)
            p = 1 / (1 + math.exp(-2 * score))
            answer = {"label": int(score > 0), "name": self.labels[int(score > 0)]}
            if self.output == "probs":
                answer["probs"] = [1 - p, p]
            out.append(answer)
        return out


@pytest.fixture
def rule_victim():
    """A fresh label-only rule victim."""
    return RuleVictim()


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
