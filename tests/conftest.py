"""Shared fixtures: a tiny WordPiece tokenizer, tiny random classifiers and tiny data files.

Everything is built in-process (no downloads) and cached per session; tests that mutate a
model get a deep copy.
"""

import copy

import pytest

from helpers import build_decoder_tokenizer, build_tokenizer, make_sentences, tiny_bert_config, write_sentence_transformer


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


@pytest.fixture(scope="session")
def decoder_tokenizer_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("dec_tok")
    build_decoder_tokenizer(d)
    return d


@pytest.fixture(scope="session")
def general_dir(tmp_path_factory):
    """Folders of every tiny teacher plus a corpus, an STS file and a probe file."""
    import torch
    from transformers import (BertForMaskedLM, BertModel, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM,
                              RobertaConfig, RobertaForMaskedLM)

    root = tmp_path_factory.mktemp("general")
    tok = build_tokenizer(root / "tok")
    torch.manual_seed(0)
    for name, model in (("bert-mlm", BertForMaskedLM(tiny_bert_config(len(tok)))),
                        ("roberta-mlm", RobertaForMaskedLM(RobertaConfig(
                            vocab_size=len(tok), hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                            max_position_embeddings=72, pad_token_id=tok.pad_token_id, type_vocab_size=1))),
                        ("bert-encoder", BertModel(tiny_bert_config(len(tok))))):
        model.save_pretrained(root / name)
        tok.save_pretrained(root / name)
    write_sentence_transformer(root / "st", BertModel(tiny_bert_config(len(tok))).eval(), tok)
    dec = build_decoder_tokenizer(root / "dec_tok")
    dec_bos = build_decoder_tokenizer(root / "dec_tok_bos", bos=True)
    # initializer_range 0.3: peaked next-token distributions, so a kept-layer student starts far (KL ~ 1) from its teacher
    gpt = GPT2LMHeadModel(GPT2Config(vocab_size=len(dec), n_embd=32, n_layer=4, n_head=2, n_positions=64, initializer_range=0.3,
                                     bos_token_id=dec.bos_token_id, eos_token_id=dec.eos_token_id))
    gpt.save_pretrained(root / "gpt2")
    dec.save_pretrained(root / "gpt2")
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=len(dec_bos), hidden_size=32, num_hidden_layers=4, num_attention_heads=4,
                                         num_key_value_heads=2, intermediate_size=64, max_position_embeddings=64, initializer_range=0.3,
                                         bos_token_id=dec_bos.bos_token_id, eos_token_id=dec_bos.eos_token_id, pad_token_id=None))
    llama.save_pretrained(root / "llama")
    dec_bos.save_pretrained(root / "llama")
    (root / "corpus.txt").write_text("\n".join(s for s, _ in make_sentences(240, 3)) + "\n")
    (root / "heldout.txt").write_text("\n".join(s for s, _ in make_sentences(40, 4)) + "\n")
    pairs = zip(make_sentences(40, 5), make_sentences(40, 6))
    (root / "sts.tsv").write_text("sentence1\tsentence2\tlabel\n"
                                  + "".join(f"{a}\t{b}\t{(ya == yb) * 4 + i % 2}\n" for i, ((a, ya), (b, yb)) in enumerate(pairs)))
    (root / "probe_train.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in make_sentences(80, 7)))
    (root / "probe_dev.tsv").write_text("sentence\tlabel\n" + "".join(f"{s}\t{y}\n" for s, y in make_sentences(40, 8)))
    return root
