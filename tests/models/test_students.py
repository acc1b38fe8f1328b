"""Tests for protege.models.students (and the adapters it uses): keep_layers, parse_layer_spec,
smaller_student, check_same_vocabulary."""

import pytest
import torch

from protege.errors import ProtegeError
from protege.models import block_list, check_same_vocabulary, keep_layers, parse_layer_spec, smaller_student


def _batch(vocab=60, seed=0):
    """Two sequences of length 7; the first is padded (mask zeros) after 4 tokens."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, vocab, (2, 7), generator=g)
    mask = torch.tensor([[1, 1, 1, 1, 0, 0, 0], [1, 1, 1, 1, 1, 1, 1]])
    ids[0, 4:] = 0
    return ids, mask


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _layer_idxs(block):
    return [m.layer_idx for m in block.modules() if isinstance(getattr(m, "layer_idx", None), int)]


# --- keep_layers on BERT -----------------------------------------------------------------------


def test_keep_all_layers_reproduces_teacher_logits_with_padding(tiny_teacher):
    ids, mask = _batch()
    student = keep_layers(tiny_teacher, [0, 1, 2, 3])
    with torch.no_grad():
        want = tiny_teacher(input_ids=ids, attention_mask=mask).logits
        got = student(input_ids=ids, attention_mask=mask).logits
    assert got.shape == (2, 2)
    assert torch.equal(got, want)
    assert student is not tiny_teacher


def test_keep_layers_0_2_embeddings_and_first_block_exact(tiny_teacher):
    ids, mask = _batch()
    student = keep_layers(tiny_teacher, [0, 2])
    with torch.no_grad():
        t = tiny_teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        s = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert len(s.hidden_states) == 3 and len(t.hidden_states) == 5
    assert torch.equal(s.hidden_states[0], t.hidden_states[0])
    assert torch.equal(s.hidden_states[1], t.hidden_states[1])
    # Block 1 of the student is teacher block 2, fed teacher block 0's output, not teacher block 1's.
    assert not torch.equal(s.hidden_states[2], t.hidden_states[2])
    assert not torch.equal(s.logits, t.logits)


def test_keep_layers_0_2_copies_the_right_blocks_and_head(tiny_teacher):
    student = keep_layers(tiny_teacher, [0, 2])
    t_blocks, s_blocks = tiny_teacher.bert.encoder.layer, student.bert.encoder.layer
    assert len(s_blocks) == 2
    for s_idx, t_idx in [(0, 0), (1, 2)]:
        s_sd, t_sd = s_blocks[s_idx].state_dict(), t_blocks[t_idx].state_dict()
        assert s_sd.keys() == t_sd.keys() and len(s_sd) > 0
        for k in t_sd:
            assert torch.equal(s_sd[k], t_sd[k]), (s_idx, k)
    # Block 1 is not teacher block 1 (which a naive truncation to two layers would keep).
    assert not torch.equal(s_blocks[1].attention.self.query.weight, t_blocks[1].attention.self.query.weight)
    for head in ("classifier", "bert.pooler", "bert.embeddings"):
        s_sd = student.get_submodule(head).state_dict()
        t_sd = tiny_teacher.get_submodule(head).state_dict()
        assert s_sd.keys() == t_sd.keys()
        for k in t_sd:
            assert torch.equal(s_sd[k], t_sd[k]), (head, k)


def test_keep_layers_config_and_labels(tiny_teacher):
    student = keep_layers(tiny_teacher, [0, 2])
    assert student.config.num_hidden_layers == 2
    assert student.config.num_labels == 2
    assert student.config.id2label == {0: "negative", 1: "positive"}
    assert student.config is not tiny_teacher.config
    assert not student.training  # the copy of an eval-mode teacher stays in eval mode


def test_keep_layers_leaves_teacher_untouched(tiny_teacher):
    before = _snapshot(tiny_teacher)
    student = keep_layers(tiny_teacher, [0, 2])
    assert tiny_teacher.config.num_hidden_layers == 4
    assert len(tiny_teacher.bert.encoder.layer) == 4
    assert [_layer_idxs(b) for b in tiny_teacher.bert.encoder.layer] == [[0], [1], [2], [3]]
    after = tiny_teacher.state_dict()
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k
    assert len(student.state_dict()) < len(after)


def test_keep_layers_shares_no_parameters_with_teacher(tiny_teacher):
    student = keep_layers(tiny_teacher, [0, 2])
    t_ptrs = {p.data_ptr() for p in tiny_teacher.parameters()}
    assert not t_ptrs & {p.data_ptr() for p in student.parameters()}
    t_word = tiny_teacher.bert.embeddings.word_embeddings.weight.detach().clone()
    t_q2 = tiny_teacher.bert.encoder.layer[2].attention.self.query.weight.detach().clone()
    with torch.no_grad():
        student.bert.embeddings.word_embeddings.weight.add_(1.0)
        student.bert.encoder.layer[1].attention.self.query.weight.mul_(0.0)
    assert torch.equal(tiny_teacher.bert.embeddings.word_embeddings.weight, t_word)
    assert torch.equal(tiny_teacher.bert.encoder.layer[2].attention.self.query.weight, t_q2)
    s_cls = student.classifier.weight.detach().clone()
    with torch.no_grad():
        tiny_teacher.classifier.weight.add_(1.0)
    assert torch.equal(student.classifier.weight, s_cls)


def test_keep_layers_renumbers_layer_idx_bert(tiny_teacher):
    student = keep_layers(tiny_teacher, [1, 3])
    assert [_layer_idxs(b) for b in student.bert.encoder.layer] == [[0], [1]]


def test_keep_layers_accepts_text_specs(tiny_teacher):
    student = keep_layers(tiny_teacher, "every-other")
    assert student.config.num_hidden_layers == 2
    assert torch.equal(student.bert.encoder.layer[1].output.dense.weight, tiny_teacher.bert.encoder.layer[2].output.dense.weight)
    last = keep_layers(tiny_teacher, "uniform:1")
    assert torch.equal(last.bert.encoder.layer[0].output.dense.weight, tiny_teacher.bert.encoder.layer[3].output.dense.weight)


def test_keep_layers_bad_spec_raises_and_leaves_teacher(tiny_teacher):
    with pytest.raises(ProtegeError, match="outside 0..3"):
        keep_layers(tiny_teacher, [0, 4])
    assert len(tiny_teacher.bert.encoder.layer) == 4


def test_kept_student_save_and_reload_gives_identical_logits(tiny_teacher, tmp_path):
    from transformers import AutoModelForSequenceClassification

    ids, mask = _batch()
    student = keep_layers(tiny_teacher, [0, 2])
    student.save_pretrained(tmp_path)
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path).eval()
    assert reloaded.config.num_hidden_layers == 2
    assert len(reloaded.bert.encoder.layer) == 2
    with torch.no_grad():
        want = student(input_ids=ids, attention_mask=mask).logits
        got = reloaded(input_ids=ids, attention_mask=mask).logits
    assert torch.equal(got, want)


# --- other architectures ------------------------------------------------------------------------


def _arch_model(arch):
    import transformers as tf

    common = dict(vocab_size=100, max_position_embeddings=64, num_labels=3)
    bert_like = dict(hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64)
    if arch == "roberta":
        cfg = tf.RobertaConfig(**common, **bert_like, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        cls = tf.RobertaForSequenceClassification
    elif arch == "distilbert":
        cfg = tf.DistilBertConfig(**common, dim=32, n_layers=4, n_heads=2, hidden_dim=64)
        cls = tf.DistilBertForSequenceClassification
    elif arch == "electra":
        cfg = tf.ElectraConfig(**common, **bert_like, embedding_size=16)
        cls = tf.ElectraForSequenceClassification
    elif arch == "mpnet":
        cfg = tf.MPNetConfig(**common, **bert_like, pad_token_id=1)
        cls = tf.MPNetForSequenceClassification
    torch.manual_seed(0)
    return cls(cfg).eval()


def _arch_batch():
    ids, mask = _batch(vocab=100, seed=3)
    ids[0, 4:] = 1  # pad id for RoBERTa / MPNet; just a token elsewhere, masked out anyway
    return ids, mask


ARCHS = ["roberta", "distilbert", "electra", "mpnet"]


@pytest.mark.parametrize("arch", ARCHS)
def test_keep_all_layers_exact_other_architectures(arch):
    teacher = _arch_model(arch)
    ids, mask = _arch_batch()
    student = keep_layers(teacher, [0, 1, 2, 3])
    with torch.no_grad():
        want = teacher(input_ids=ids, attention_mask=mask).logits
        got = student(input_ids=ids, attention_mask=mask).logits
    assert got.shape == (2, 3)
    assert torch.equal(got, want)


@pytest.mark.parametrize("arch", ARCHS)
def test_keep_two_layers_other_architectures(arch):
    teacher = _arch_model(arch)
    ids, mask = _arch_batch()
    _, _, t_blocks = block_list(teacher)
    t_idx_before = [_layer_idxs(b) for b in t_blocks]
    student = keep_layers(teacher, [0, 2])
    _, _, s_blocks = block_list(student)
    assert len(s_blocks) == 2 and student.config.num_hidden_layers == 2
    assert sum(1 for m in student.modules() if m.__class__ is t_blocks[0].__class__) == 2
    s_sd, t_sd = s_blocks[1].state_dict(), t_blocks[2].state_dict()
    assert s_sd.keys() == t_sd.keys()
    assert all(torch.equal(s_sd[k], t_sd[k]) for k in t_sd)
    with torch.no_grad():
        t = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
        s = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert s.logits.shape == (2, 3) and torch.isfinite(s.logits).all()
    assert len(s.hidden_states) == 3
    assert torch.equal(s.hidden_states[0], t.hidden_states[0])
    assert torch.equal(s.hidden_states[1], t.hidden_states[1])
    # layer_idx, where the architecture has one, is renumbered in the student only.
    if any(t_idx_before):
        assert t_idx_before == [[i] * len(t_idx_before[0]) for i in range(4)]
        assert [_layer_idxs(b) for b in s_blocks] == [[0] * len(t_idx_before[0]), [1] * len(t_idx_before[0])]
        assert [_layer_idxs(b) for b in t_blocks] == t_idx_before
    assert teacher.config.num_hidden_layers == 4 and len(block_list(teacher)[2]) == 4


def test_layer_idx_present_for_roberta_and_electra():
    # Guard for the renumbering check above: it must not pass vacuously everywhere.
    for arch in ("roberta", "electra"):
        _, _, blocks = block_list(_arch_model(arch))
        assert [_layer_idxs(b) for b in blocks] == [[0], [1], [2], [3]]


# --- parse_layer_spec ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, total, want",
    [
        ("0,2,4", 6, [0, 2, 4]),
        (" 0, 2 ,4 ", 6, [0, 2, 4]),
        ([1, 3], 4, [1, 3]),
        ((1, 3), 4, [1, 3]),
        ("every-other", 6, [0, 2, 4]),
        ("every-other", 5, [0, 2, 4]),
        ("Every-Other", 4, [0, 2]),
        ("uniform:6", 12, [0, 2, 4, 7, 9, 11]),
        ("uniform:3", 6, [0, 2, 5]),
        ("uniform:2", 12, [0, 11]),
        ("uniform:1", 12, [11]),
        ("uniform:4", 4, [0, 1, 2, 3]),
        ("first:2", 6, [0, 1]),
        ("first:6", 6, [0, 1, 2, 3, 4, 5]),
        ("3", 4, [3]),
    ],
)
def test_parse_layer_spec_valid(spec, total, want):
    assert parse_layer_spec(spec, total) == want


@pytest.mark.parametrize(
    "spec, total, fragment",
    [
        ("0,6", 6, "outside 0..5"),
        ([0, 6], 6, "outside 0..5"),
        ("-1,2", 6, "outside 0..5"),
        ("0,2,2", 6, "strictly increasing"),
        ([3, 1], 6, "strictly increasing"),
        ("4,2", 6, "strictly increasing"),
        ("", 6, "no layers"),
        ([], 6, "no layers"),
        (",", 6, "no layers"),
        ("a,b", 6, "use e.g."),
        ("uniform:0", 6, "between 1 and 6"),
        ("uniform:99", 6, "between 1 and 6"),
        ("uniform:x", 6, "between 1 and 6"),
        ("first:7", 6, "between 1 and 6"),
    ],
)
def test_parse_layer_spec_errors(spec, total, fragment):
    with pytest.raises(ProtegeError, match="invalid layer spec") as info:
        parse_layer_spec(spec, total)
    assert fragment in str(info.value)
    assert "\n" not in str(info.value)


def test_parse_layer_spec_out_of_range_names_the_layer():
    with pytest.raises(ProtegeError) as info:
        parse_layer_spec("0,9", 4)
    assert "layer 9" in str(info.value) and "4 layers" in str(info.value)


# --- smaller_student ----------------------------------------------------------------------------


def test_smaller_student_config_and_forward(tiny_teacher):
    student = smaller_student(tiny_teacher.config, num_layers=2, hidden_size=16, num_heads=2, ffn_size=32)
    cfg = student.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (2, 16, 2, 32)
    assert len(student.bert.encoder.layer) == 2
    assert student.bert.embeddings.word_embeddings.weight.shape == (tiny_teacher.config.vocab_size, 16)
    assert student.bert.encoder.layer[0].intermediate.dense.weight.shape == (32, 16)
    assert cfg.num_labels == 2 and cfg.id2label == {0: "negative", 1: "positive"}
    assert cfg.label2id == {"negative": 0, "positive": 1}
    # The teacher's config is not modified.
    t = tiny_teacher.config
    assert (t.num_hidden_layers, t.hidden_size, t.intermediate_size) == (4, 32, 64)
    ids, mask = _batch()
    with torch.no_grad():
        out = student.eval()(input_ids=ids, attention_mask=mask)
    assert out.logits.shape == (2, 2) and torch.isfinite(out.logits).all()


def test_smaller_student_defaults_from_teacher(tiny_teacher):
    student = smaller_student(tiny_teacher.config, num_layers=1)
    cfg = student.config
    assert (cfg.num_hidden_layers, cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size) == (1, 32, 2, 64)
    # Only the width given: FFN follows as 4x width.
    assert smaller_student(tiny_teacher.config, hidden_size=8).config.intermediate_size == 32


@pytest.mark.parametrize("kw, fragment", [
    (dict(hidden_size=30, num_heads=4), "not divisible by 4 heads"),
    (dict(num_heads=3), "width 32 is not divisible by 3"),
    (dict(num_layers=0), "--student-num-layers must be a positive integer"),
    (dict(hidden_size=-16), "--student-hidden must be a positive integer"),
])
def test_smaller_student_errors(tiny_teacher, kw, fragment):
    with pytest.raises(ProtegeError) as info:
        smaller_student(tiny_teacher.config, **kw)
    assert fragment in str(info.value)


def test_smaller_student_seed_determinism(tiny_teacher):
    kw = dict(num_layers=2, hidden_size=16, num_heads=2, ffn_size=32)
    a = smaller_student(tiny_teacher.config, seed=5, **kw).state_dict()
    torch.manual_seed(123)  # global RNG state before the call must not matter
    b = smaller_student(tiny_teacher.config, seed=5, **kw).state_dict()
    c = smaller_student(tiny_teacher.config, seed=6, **kw).state_dict()
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["bert.encoder.layer.0.attention.self.query.weight"],
                           c["bert.encoder.layer.0.attention.self.query.weight"])


def test_smaller_student_distilbert_uses_its_own_field_names():
    teacher = _arch_model("distilbert")
    student = smaller_student(teacher.config, num_layers=2, hidden_size=16, num_heads=2, ffn_size=32)
    cfg = student.config
    assert (cfg.n_layers, cfg.dim, cfg.n_heads, cfg.hidden_dim) == (2, 16, 2, 32)
    assert len(student.distilbert.transformer.layer) == 2
    ids, mask = _arch_batch()
    with torch.no_grad():
        assert student.eval()(input_ids=ids, attention_mask=mask).logits.shape == (2, 3)


# --- check_same_vocabulary ----------------------------------------------------------------------


def _other_tokenizer(words):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {tok: i for i, tok in enumerate(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words)}
    tk = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    return PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="[UNK]", pad_token="[PAD]",
                                   cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]")


def test_check_same_vocabulary_same_tokenizer_passes(tiny_tokenizer, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    assert check_same_vocabulary(tiny_tokenizer, tiny_tokenizer, student_name="x") is None
    again = AutoTokenizer.from_pretrained(tiny_tokenizer_dir)
    assert check_same_vocabulary(tiny_tokenizer, again, student_name="x") is None


def test_check_same_vocabulary_different_vocab_raises(tiny_tokenizer):
    other = _other_tokenizer(["apple", "banana", "cherry"])
    with pytest.raises(ProtegeError, match="vocabulary") as info:
        check_same_vocabulary(tiny_tokenizer, other, student_name="my/student")
    assert "my/student" in str(info.value)
    assert f"{len(other)} vs {len(tiny_tokenizer)}" in str(info.value)


def test_check_same_vocabulary_same_tokens_other_ids_raises(tiny_tokenizer):
    vocab = tiny_tokenizer.get_vocab()
    words = sorted((t for t in vocab if t not in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")), reverse=True)
    permuted = _other_tokenizer(words)
    assert set(permuted.get_vocab()) == set(vocab)
    with pytest.raises(ProtegeError, match="vocabulary"):
        check_same_vocabulary(tiny_tokenizer, permuted, student_name="s")
