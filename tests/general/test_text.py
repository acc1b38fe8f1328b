"""Transfer text: reading lines, packing for encoders and decoders, per-line encoding, random word sequences."""

from types import SimpleNamespace

import pytest
from transformers import AutoTokenizer

from protege.data.text import encode_lines, pack_sequences, read_lines, token_counts, tokenize_lines
from protege.recipes.distill.general import transfer_text
from protege.errors import ProtegeError


def test_read_lines_streams_a_text_file(tmp_path):
    f = tmp_path / "c.txt"
    f.write_text("first line\n\n   \nsecond line  \nthird\n")
    assert read_lines(str(f)) == ["first line", "second line", "third"]
    assert read_lines(str(f), max_lines=2) == ["first line", "second line"]
    table = tmp_path / "c.tsv"
    table.write_text("text\tlabel\nhello there\t1\nbye\t0\n")
    assert read_lines(str(table)) == ["hello there", "bye"]


@pytest.mark.parametrize("content, needle", [(None, "no such file"), ("\n \n", "no text"), (b"\xff\xfe\x00bad", "UTF-8")])
def test_read_lines_errors(tmp_path, content, needle):
    f = tmp_path / "c.txt"
    if isinstance(content, bytes):
        f.write_bytes(content)
    elif content is not None:
        f.write_text(content)
    with pytest.raises(ProtegeError, match=needle):
        read_lines(str(f))
    with pytest.raises(ProtegeError, match="folder"):
        read_lines(str(tmp_path))


def test_packing_for_an_encoder(tiny_tokenizer):
    docs = ["the movie was good", "a very dull plot", "she is great"]
    ids = tokenize_lines(docs, tiny_tokenizer)
    feats = pack_sequences(ids, tiny_tokenizer, max_length=6)
    cls, sep = tiny_tokenizer.cls_token_id, tiny_tokenizer.sep_token_id
    assert all(f["input_ids"][0] == cls and f["input_ids"][-1] == sep and len(f["input_ids"]) <= 6 for f in feats)
    body = [t for f in feats for t in f["input_ids"][1:-1]]
    assert body == ids[0] + [sep] + ids[1] + [sep] + ids[2]  # documents in order, separated by [SEP]
    assert all(f["attention_mask"] == [1] * len(f["input_ids"]) for f in feats)


@pytest.mark.parametrize("bos", [False, True])
def test_packing_for_a_decoder(general_dir, bos):
    tok = AutoTokenizer.from_pretrained(general_dir / ("dec_tok_bos" if bos else "dec_tok"))
    docs = ["the movie was good", "a very dull plot"]
    ids = tokenize_lines(docs, tok)
    feats = pack_sequences(ids, tok, max_length=5)
    stream = [t for f in feats for t in f["input_ids"]]
    lead = [tok.bos_token_id] if bos else []
    assert stream == lead + ids[0] + [tok.eos_token_id] + lead + ids[1] + [tok.eos_token_id]
    assert all(len(f["input_ids"]) <= 5 for f in feats)


def test_encode_lines_keeps_one_sentence_per_feature(tiny_tokenizer):
    feats = encode_lines(["good", "the movie was really very good and fine"], tiny_tokenizer, max_length=5)
    assert len(feats) == 2 and len(feats[1]["input_ids"]) == 5 and feats[0]["input_ids"][0] == tiny_tokenizer.cls_token_id
    counts = token_counts(feats, len(tiny_tokenizer))
    assert counts[tiny_tokenizer.cls_token_id] == 2 and counts.sum() == sum(len(f["input_ids"]) for f in feats)


def test_random_transfer_text_from_a_corpus_or_the_vocabulary(tmp_path, tiny_tokenizer):
    corpus = tmp_path / "c.txt"
    corpus.write_text("alpha beta beta gamma\nbeta gamma\n")
    cfg = SimpleNamespace(train_text=None, random_text=50, random_corpus=str(corpus), seed=1)
    lines, source = transfer_text(cfg, tiny_tokenizer)
    assert len(lines) == 50 and "random" in source
    words = [w for line in lines for w in line.split()]
    assert set(words) <= {"alpha", "beta", "gamma"} and words.count("beta") > words.count("alpha")
    assert {len(line.split()) for line in lines} <= {2, 4}  # sentence lengths come from the corpus
    cfg = SimpleNamespace(train_text=None, random_text=30, random_corpus=None, seed=1)
    lines, _ = transfer_text(cfg, tiny_tokenizer)
    assert len(lines) == 30 and all(w in tiny_tokenizer.get_vocab() for line in lines for w in line.split())
    assert transfer_text(cfg, tiny_tokenizer)[0] == lines  # a function of the seed
