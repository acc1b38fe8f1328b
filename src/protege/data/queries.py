"""Query generators of Krishna et al. (2020), "Thieves on Sesame Street!", section 3.

- RANDOM: nonsense. Each query is a sequence of words drawn from a unigram distribution (the
  word frequencies of a corpus, or uniformly from the whole-word entries of a tokenizer's
  vocabulary), its length drawn from the corpus's sentence lengths (or, without a corpus, a
  log-normal around 20 words, the length of a typical English sentence).
- WIKI: real text. Sentences of a corpus (e.g. ``wiki/sentences.txt``) in a seeded order; past
  the end of the corpus, spans of its running text with sentence-like lengths.
- FILE: the attacker's own queries, one per line (or a table with a text column), in order.
- Pairs (NLI-style tasks): the second text is the first with ``k`` words replaced by words from
  the same unigram distribution.

Everything is a function of the seed, and prefix-stable: the first N queries of a budget of
2N are the queries of a budget of N, so one query log serves several budgets.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from protege.errors import ProtegeError

__all__ = ["Unigram", "QUERY_STRATEGIES", "read_corpus", "words", "random_queries", "wiki_queries", "pair_queries",
           "make_queries", "DEFAULT_LENGTH_MEDIAN"]

DEFAULT_LENGTH_MEDIAN = 20
_DEFAULT_LENGTH_SPREAD = 0.47  # log-space sd: a 1.6x geometric spread, like English sentence lengths
_MAX_WORDS = 64
_BLOCK = 1024  # queries per seeded block: what makes generation prefix-stable
_STREAMS = {"random": 0, "wiki-order": 1, "wiki-spans": 2, "pairs": 3, "lengths": 4}
_WORD = re.compile(r"\w+(?:'\w+)?|[^\w\s]")
_TABLES = (".tsv", ".csv", ".jsonl", ".ndjson", ".json", ".parquet")


def words(text: str) -> list[str]:
    """Words and punctuation marks of ``text`` (how corpora are counted and queries are cut)."""
    return _WORD.findall(text)


@dataclass(frozen=True)
class Unigram:
    """A word distribution to sample queries from."""

    vocab: tuple[str, ...]
    probs: np.ndarray

    @classmethod
    def from_texts(cls, texts: list[str]) -> "Unigram":
        """Word frequencies of ``texts``."""
        counts = Counter(w for t in texts for w in words(t))
        if not counts:
            raise ProtegeError("the query corpus holds no words; pass a text file with sentences")
        vocab, freq = zip(*sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
        f = np.asarray(freq, dtype=np.float64)
        return cls(tuple(vocab), f / f.sum())

    @classmethod
    def from_tokenizer(cls, tokenizer) -> "Unigram":
        """Uniform over the whole-word entries of a tokenizer's vocabulary (WordPiece, BPE or SentencePiece)."""
        special = set(getattr(tokenizer, "all_special_tokens", []))
        vocab = tokenizer.get_vocab()
        marked = [t[1:] for t in vocab if t[:1] in ("\u0120", "\u2581") and t[1:].isalpha()]  # BPE Ġ / SentencePiece ▁ word starts
        plain = [t for t in vocab if t not in special and not t.startswith("##") and t.isalpha() and t.isascii()]
        chosen = sorted(set(marked or plain))
        if len(chosen) < 2:
            raise ProtegeError("the tokenizer has too few whole-word tokens for RANDOM queries; pass --query-corpus FILE")
        return cls(tuple(chosen), np.full(len(chosen), 1.0 / len(chosen)))

    def sample(self, rng: np.random.Generator, k: int) -> list[str]:
        """``k`` words drawn independently."""
        return [self.vocab[i] for i in rng.choice(len(self.vocab), size=k, p=self.probs)]


def read_corpus(path: str | Path) -> list[str]:
    """Texts of a corpus: the non-empty lines of a text file, or the text column of a table."""
    p = Path(path)
    if not p.is_file():
        raise ProtegeError(f"{path}: no such file; pass a text file with one sentence per line")
    if p.suffix.lower() in _TABLES:
        from protege.data import load_examples

        return list(load_examples(str(p)).texts)
    try:
        lines = [line.strip() for line in p.read_text(encoding="utf-8").splitlines()]
    except UnicodeDecodeError:
        raise ProtegeError(f"{path}: not UTF-8 text; re-save it as UTF-8") from None
    lines = [line for line in lines if line]
    if not lines:
        raise ProtegeError(f"{path}: no non-empty lines; pass a text file with one sentence per line")
    return lines


def _rng(seed: int, stream: str, block: int) -> np.random.Generator:
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, _STREAMS[stream], block])


def _lengths(rng: np.random.Generator, size: int, corpus_lengths: np.ndarray | None) -> np.ndarray:
    if corpus_lengths is not None:
        return rng.choice(corpus_lengths, size=size)
    drawn = np.exp(rng.normal(math.log(DEFAULT_LENGTH_MEDIAN), _DEFAULT_LENGTH_SPREAD, size=size))
    return np.clip(np.rint(drawn), 1, _MAX_WORDS).astype(np.int64)


def _corpus_lengths(texts: list[str] | None) -> np.ndarray | None:
    if not texts:
        return None
    lengths = np.asarray([min(len(words(t)), _MAX_WORDS) for t in texts], dtype=np.int64)
    return lengths[lengths > 0]


def random_queries(n: int, *, unigram: Unigram, seed: int = 0, corpus: list[str] | None = None) -> list[str]:
    """``n`` RANDOM queries: words from ``unigram``, lengths from ``corpus`` sentences (or the default)."""
    lengths = _corpus_lengths(corpus)
    out: list[str] = []
    for block in range(math.ceil(n / _BLOCK)):
        rng = _rng(seed, "random", block)
        sizes = _lengths(rng, _BLOCK, lengths)
        drawn = unigram.sample(rng, int(sizes.sum()))
        start = 0
        for size in sizes[: n - len(out)]:
            out.append(" ".join(drawn[start:start + size]))
            start += size
    return out


def wiki_queries(n: int, *, corpus: list[str], seed: int = 0) -> list[str]:
    """``n`` WIKI queries: corpus sentences in a seeded order, then spans of its running text."""
    if not corpus:
        raise ProtegeError("WIKI queries need a corpus; pass --query-corpus FILE (one sentence per line)")
    order = np.random.default_rng([int(seed) & 0xFFFFFFFF, _STREAMS["wiki-order"]]).permutation(len(corpus))
    out = [corpus[i] for i in order[:n]]
    if len(out) == n:
        return out
    stream = [w for t in corpus for w in words(t)]
    lengths = _corpus_lengths(corpus)
    for block in range(math.ceil((n - len(corpus)) / _BLOCK)):
        rng = _rng(seed, "wiki-spans", block)
        sizes = np.minimum(_lengths(rng, _BLOCK, lengths), len(stream))
        starts = rng.integers(0, len(stream) - sizes + 1)
        for size, start in zip(sizes[: n - len(out)], starts):
            out.append(" ".join(stream[start:start + size]))
    return out


def pair_queries(texts: list[str], *, unigram: Unigram, replace: int = 3, seed: int = 0) -> list[str]:
    """Second texts for pair tasks: each text with ``replace`` of its words swapped for random ones."""
    out: list[str] = []
    for block in range(math.ceil(len(texts) / _BLOCK)):
        rng = _rng(seed, "pairs", block)
        replacements = iter(unigram.sample(rng, _BLOCK * replace))  # one draw per block: sampling is O(vocabulary)
        for text in texts[block * _BLOCK:(block + 1) * _BLOCK]:
            ws = words(text) or [text]
            for pos in rng.choice(len(ws), size=min(replace, len(ws)), replace=False):
                ws[pos] = next(replacements)
            out.append(" ".join(ws))
    return out


def _random_strategy(n: int, *, seed: int, lines: list[str] | None, tokenizer) -> tuple[list[str], Unigram]:
    if lines is None and tokenizer is None:
        raise ProtegeError("RANDOM queries need words: pass --query-corpus FILE or a student with a tokenizer")
    unigram = Unigram.from_texts(lines) if lines else Unigram.from_tokenizer(tokenizer)
    return random_queries(n, unigram=unigram, seed=seed, corpus=lines), unigram


def _wiki_strategy(n: int, *, seed: int, lines: list[str] | None, tokenizer) -> tuple[list[str], Unigram]:
    if lines is None:
        raise ProtegeError("--queries wiki needs --query-corpus FILE (one sentence per line, e.g. wiki/sentences.txt)")
    return wiki_queries(n, corpus=lines, seed=seed), Unigram.from_texts(lines)


# --queries NAME -> strategy(n, seed=, lines=corpus lines or None, tokenizer=) -> (texts, unigram for pairs);
# add a strategy here and the contract test (tests/test_contracts.py) covers it
QUERY_STRATEGIES = {"random": _random_strategy, "wiki": _wiki_strategy}


def make_queries(spec: str, n: int, *, seed: int = 0, corpus: str | None = None, tokenizer=None, pairs: bool = False,
                 replace: int = 3) -> tuple[list[str], list[str] | None]:
    """``n`` queries for ``spec`` (``random``, ``wiki`` or a file), as ``(texts, second texts or None)``.

    ``corpus`` is a text file: RANDOM takes word frequencies and lengths from it (else the
    words of ``tokenizer``), WIKI takes its sentences. ``pairs`` makes second texts with the
    word-replacement heuristic, unless the query file has its own.
    """
    if not isinstance(n, int) or n < 1:
        raise ProtegeError(f"--budget must be a positive integer, got {n!r}")
    kind = spec.strip().lower()
    lines = read_corpus(corpus) if corpus else None
    file_pairs = None
    if kind in QUERY_STRATEGIES:
        texts, unigram = QUERY_STRATEGIES[kind](n, seed=seed, lines=lines, tokenizer=tokenizer)
    else:  # anything else names a file of the attacker's own queries
        texts, file_pairs = _file_queries(spec, n)
        unigram = Unigram.from_texts(lines or texts)
    if file_pairs is not None or not pairs:
        return texts, file_pairs
    return texts, pair_queries(texts, unigram=unigram, replace=replace, seed=seed)


def _file_queries(path: str, n: int) -> tuple[list[str], list[str] | None]:
    p = Path(path)
    if not p.is_file():
        raise ProtegeError(f"--queries must be random, wiki or a file of queries; {path} is neither")
    if p.suffix.lower() in _TABLES:
        from protege.data import load_examples

        ex = load_examples(str(p))
        texts, pairs = list(ex.texts), None if ex.text_pairs is None else list(ex.text_pairs)
    else:
        texts, pairs = read_corpus(p), None
    if len(texts) < n:
        raise ProtegeError(f"{path} holds {len(texts)} queries, fewer than --budget {n}; lower --budget or add queries")
    return texts[:n], None if pairs is None else pairs[:n]
