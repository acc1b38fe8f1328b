"""Query generators: the statistics they promise, determinism, prefix stability, pairs, files."""

from collections import Counter

import numpy as np
import pytest

from protege.errors import ProtegeError
from protege.data.queries import (DEFAULT_LENGTH_MEDIAN, Unigram, make_queries, pair_queries, random_queries, read_corpus,
                                     wiki_queries, words)


def test_random_queries_follow_the_corpus_lengths_and_word_frequencies(corpus_file):
    corpus = read_corpus(corpus_file)
    queries, pairs = make_queries("random", 3000, seed=1, corpus=str(corpus_file))
    assert pairs is None and len(queries) == 3000
    q_len = np.array([len(words(q)) for q in queries])
    c_len = np.array([len(words(c)) for c in corpus])
    assert abs(np.median(q_len) - np.median(c_len)) <= 1
    assert abs(q_len.mean() - c_len.mean()) < 0.1 * c_len.mean()
    assert q_len.min() >= c_len.min() and q_len.max() <= c_len.max()
    c_freq, q_freq = Counter(w for c in corpus for w in words(c)), Counter(w for q in queries for w in words(q))
    c_total, q_total = sum(c_freq.values()), sum(q_freq.values())
    assert set(q_freq) <= set(c_freq)
    for word, count in c_freq.most_common(10):  # frequent words keep their share
        assert q_freq[word] / q_total == pytest.approx(count / c_total, rel=0.25)
    assert queries != corpus[:3000]  # nonsense, not the corpus itself


def test_random_queries_from_a_tokenizer_use_whole_words_with_sentence_lengths(tiny_tokenizer):
    unigram = Unigram.from_tokenizer(tiny_tokenizer)
    assert "[CLS]" not in unigram.vocab and not any(w.startswith("##") for w in unigram.vocab)
    assert np.allclose(unigram.probs, 1 / len(unigram.vocab))
    queries = random_queries(2000, unigram=unigram, seed=0)
    lengths = np.array([len(q.split()) for q in queries])
    assert abs(np.median(lengths) - DEFAULT_LENGTH_MEDIAN) <= 2 and lengths.min() >= 1 and lengths.max() <= 64
    assert {w for q in queries for w in q.split()} <= set(unigram.vocab)


def test_generators_are_deterministic_and_prefix_stable(corpus_file):
    for kind in ("random", "wiki"):
        a, pa = make_queries(kind, 1500, seed=3, corpus=str(corpus_file), pairs=True)
        b, pb = make_queries(kind, 1500, seed=3, corpus=str(corpus_file), pairs=True)
        c, pc = make_queries(kind, 700, seed=3, corpus=str(corpus_file), pairs=True)
        d, _ = make_queries(kind, 700, seed=4, corpus=str(corpus_file))
        assert a == b and pa == pb
        assert a[:700] == c and pa[:700] == pc  # one log serves every smaller budget
        assert d != c


def test_wiki_queries_are_corpus_sentences_then_spans_of_its_text(corpus_file):
    corpus = read_corpus(corpus_file)
    queries = wiki_queries(len(corpus) + 200, corpus=corpus, seed=0)
    assert sorted(queries[:len(corpus)]) == sorted(corpus)  # every sentence once, shuffled
    assert queries[:len(corpus)] != corpus
    stream = " " + " ".join(w for c in corpus for w in words(c)) + " "
    assert all(f" {q} " in stream for q in queries[len(corpus):])
    with pytest.raises(ProtegeError, match="--query-corpus"):
        make_queries("wiki", 5)


def test_pair_heuristic_replaces_k_words(corpus_file):
    corpus = read_corpus(corpus_file)
    unigram = Unigram.from_texts(corpus)
    firsts = corpus[:300]
    seconds = pair_queries(firsts, unigram=unigram, replace=2, seed=0)
    changed = [sum(a != b for a, b in zip(words(f), words(s))) for f, s in zip(firsts, seconds)]
    assert all(len(words(f)) == len(words(s)) for f, s in zip(firsts, seconds))
    assert max(changed) <= 2 and np.mean(changed) > 1.5  # a replacement may draw the same word


def test_query_files_are_used_in_order_with_their_pairs(tmp_path):
    lines = tmp_path / "q.txt"
    lines.write_text("first query\n\nsecond query\nthird\n")
    assert make_queries(str(lines), 2) == (["first query", "second query"], None)
    with pytest.raises(ProtegeError, match="fewer than --budget 5"):
        make_queries(str(lines), 5)
    table = tmp_path / "q.tsv"
    table.write_text("sentence1\tsentence2\tlabel\na b\tc d\t0\ne f\tg h\t1\n")
    assert make_queries(str(table), 2, pairs=True) == (["a b", "e f"], ["c d", "g h"])
    with pytest.raises(ProtegeError, match="random, wiki or a file"):
        make_queries("nonsense", 3)
    with pytest.raises(ProtegeError, match="--budget"):
        make_queries("random", 0, corpus=str(lines))
