"""Builders for tests: a tiny WordPiece tokenizer, tiny BERT configs, synthetic sentiment data."""

import json
import random

WORDS = (
    "the a an movie film plot actor story this that is was it and but very really not "
    "good great fine wonderful superb lovely bad awful boring terrible dull poor "
    "sports business world science game team market stock city police "
    "one two three he she they we you i of to in on for with"
).split()
POSITIVE = ["good", "great", "wonderful", "superb", "lovely", "fine"]
NEGATIVE = ["bad", "awful", "boring", "terrible", "dull", "poor"]
NEUTRAL = [w for w in WORDS if w not in POSITIVE + NEGATIVE]


def build_tokenizer(directory):
    """A WordPiece tokenizer (BERT-style) over WORDS plus letters, saved in ``directory``."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS
    vocab += list("abcdefghijklmnopqrstuvwxyz.,!?'") + ["##" + c for c in "abcdefghijklmnopqrstuvwxyz"]
    vocab = {tok: i for i, tok in enumerate(dict.fromkeys(vocab))}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tk.normalizer = normalizers.BertNormalizer(lowercase=True)
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tk.decoder = decoders.WordPiece()
    tk.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])],
    )
    tok = PreTrainedTokenizerFast(
        tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]", cls_token="[CLS]", sep_token="[SEP]",
        mask_token="[MASK]", model_input_names=["input_ids", "token_type_ids", "attention_mask"],
    )
    directory.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(directory)
    return tok


def tiny_bert_config(vocab_size, num_labels=2, layers=4, hidden=32, **kw):
    """A 4-layer, hidden-32 BERT config for tests."""
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=2,
        intermediate_size=2 * hidden, max_position_embeddings=64, num_labels=num_labels, **kw,
    )


def make_sentences(n, seed=0, pair=False):
    """Synthetic sentiment data: label 1 iff the sentence holds more positive than negative words."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randint(0, 1)
        words = rng.sample(NEUTRAL, rng.randint(2, 8))
        words += rng.sample(POSITIVE if label else NEGATIVE, rng.randint(1, 2))
        rng.shuffle(words)
        rows.append((" ".join(words), label))
    return rows


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


def make_flipped_student(folder, teacher_dir, data):
    """Teacher layers 0 and 2 with a new random head centred on ``data``: about half the answers flip."""
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    import protege

    tokenizer = AutoTokenizer.from_pretrained(teacher_dir)
    student = protege.keep_layers(AutoModelForSequenceClassification.from_pretrained(teacher_dir), [0, 2])
    texts = [line.split("\t")[0] for line in data.read_text().splitlines()[1:]]
    torch.manual_seed(1)
    with torch.no_grad():
        student.classifier.weight.normal_(0.0, 2.0)
        logits = student(**tokenizer(texts, padding=True, return_tensors="pt")).logits
        student.classifier.bias[1] -= (logits[:, 1] - logits[:, 0]).median()
    student.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def encoded_sentences(tokenizer, n, *, seed=3, max_length=32):
    """``n`` labelled sentences of :func:`make_sentences`, tokenised as the trainer takes them."""
    from protege.data import Examples
    from protege.data.batching import encode

    rows = make_sentences(n, seed=seed)
    ex = Examples([s for s, _ in rows], None, [y for _, y in rows], "mem", "sentence", None, "label")
    return encode(ex, tokenizer, max_length=max_length)


def interrupt_on_call(real, n):
    """``real`` wrapped to raise KeyboardInterrupt (a Ctrl-C) on its ``n``-th call."""
    calls = {"n": 0}

    def wrapped(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == n:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    return wrapped
