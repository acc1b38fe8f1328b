"""Tiny teachers for general distillation, built in-process and cached per session.

A BERT and a RoBERTa masked LM, a bare BERT encoder, a sentence-transformers folder (mean
pooling + normalisation), a GPT-2 and a Llama causal LM; the BERT-style tokenizer of
tests/helpers.py and a decoder-style variant of it (no CLS/SEP; EOS, optionally BOS).
"""

import json

import pytest

from helpers import WORDS, build_tokenizer, make_sentences, tiny_bert_config

FAST = ["--no-progress", "--speed-seconds", "0.2", "--max-length", "32", "--batch-size", "8", "--lr", "2e-3"]


def build_decoder_tokenizer(directory, *, bos: bool = False):
    """A GPT-2-style tokenizer over the test words: EOS (and with ``bos`` a BOS added to every text), no CLS/SEP."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = ["<unk>", "<s>", "</s>"] + WORDS + list("abcdefghijklmnopqrstuvwxyz.,!?'") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab))}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="<unk>"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    if bos:
        tk.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", vocab["<s>"])])
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                  model_input_names=["input_ids", "attention_mask"])
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(directory)
    return tok


def write_sentence_transformer(folder, model, tokenizer, *, pooling="mean", normalize=True):
    """Save ``model`` + ``tokenizer`` as a classic sentence-transformers folder (written by hand, not by protege)."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(json.dumps({
        "word_embedding_dimension": model.config.hidden_size, "pooling_mode_cls_token": pooling == "cls",
        "pooling_mode_mean_tokens": pooling == "mean", "pooling_mode_max_tokens": pooling == "max"}))
    (folder / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    return folder


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
