"""Students of masked LMs, causal LMs, encoders and sentence-transformers teachers."""

import numpy as np
import pytest
import torch
from transformers import AutoConfig, AutoTokenizer, BertConfig

from protege.errors import ProtegeError
from protege.models import keep_layers, num_layers
from protege.models.families import load_model, smaller_config, smaller_model
from protege.models.sentence import (SentenceEncoder, is_sentence_transformer, load_sentence_encoder, pool, read_pipeline,
                                     save_sentence_encoder)

KINDS = {"bert-mlm": "mlm", "roberta-mlm": "mlm", "bert-encoder": "encoder", "gpt2": "clm", "llama": "clm"}


def _ids(n=2, length=7, vocab=40):
    return torch.randint(5, vocab, (n, length), generator=torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", list(KINDS))
def test_keep_layers_and_smaller_model_work_for_every_kind(general_dir, name):
    teacher = load_model(str(general_dir / name), KINDS[name])
    ids = _ids()
    kept = keep_layers(teacher, [0, 3])
    assert num_layers(kept.config) == 2 and num_layers(teacher.config) == 4
    out_t, out_k = teacher(input_ids=ids), kept(input_ids=ids)
    first = out_t.logits if hasattr(out_t, "logits") else out_t.last_hidden_state
    assert (out_k.logits if hasattr(out_k, "logits") else out_k.last_hidden_state).shape == first.shape
    small = smaller_model(teacher.config, KINDS[name], num_layers=2, hidden_size=16, seed=0)
    out_s = small(input_ids=ids, output_hidden_states=True)
    assert out_s.hidden_states[-1].shape[-1] == 16 and len(out_s.hidden_states) == 3
    if hasattr(out_s, "logits"):
        assert out_s.logits.shape[-1] == first.shape[-1]  # the vocabulary is kept


def test_smaller_config_keeps_the_head_dimension_and_fixes_decoder_fields(general_dir):
    minilm_like = BertConfig(vocab_size=100, hidden_size=384, num_attention_heads=12, intermediate_size=1536)
    cfg = smaller_config(minilm_like, num_layers=4, hidden_size=256)
    assert (cfg.hidden_size, cfg.num_attention_heads, cfg.intermediate_size, cfg.num_hidden_layers) == (256, 8, 1024, 4)
    assert smaller_config(minilm_like, hidden_size=100).num_attention_heads == 10  # 32 does not divide 100: largest divisor <= 12
    llama = AutoConfig.from_pretrained(general_dir / "llama")
    small = smaller_config(llama, hidden_size=24, num_heads=3)
    assert small.head_dim == 8 and small.num_key_value_heads == 3 and small.num_hidden_layers == 4
    with pytest.raises(ProtegeError, match="divisible"):
        smaller_config(minilm_like, hidden_size=256, num_heads=12)


def test_loading_the_wrong_kind_fails_with_a_hint(general_dir):
    with pytest.raises(ProtegeError, match="not a masked language model"):
        load_model(str(general_dir / "gpt2"), "mlm")
    with pytest.raises(ProtegeError, match="not a causal language model"):
        load_model(str(general_dir / "bert-mlm"), "clm")


@pytest.mark.parametrize("mode", ["mean", "cls", "max", "mean_sqrt_len_tokens", "weightedmean", "lasttoken"])
def test_pooling_ignores_padding(mode):
    states = torch.randn(1, 3, 4)
    padded = torch.cat([states, torch.full((1, 2, 4), 100.0)], dim=1)
    a = pool(states, torch.ones(1, 3), (mode,))
    b = pool(padded, torch.tensor([[1, 1, 1, 0, 0]]), (mode,))
    assert torch.allclose(a, b, atol=1e-6)


def test_sentence_transformers_loads_a_protege_student_and_agrees(general_dir, tmp_path):
    from sentence_transformers import SentenceTransformer

    teacher = load_sentence_encoder(general_dir / "st")
    pipeline = read_pipeline(general_dir / "st")
    assert pipeline.pooling == ("mean",) and pipeline.normalize and pipeline.max_seq_length == 64
    tok = AutoTokenizer.from_pretrained(general_dir / "st")
    student = SentenceEncoder(keep_layers(teacher.transformer, [0, 2]), teacher.pooling, teacher.normalize,
                              max_seq_length=teacher.max_seq_length)
    save_sentence_encoder(student, tok, tmp_path / "s")
    assert is_sentence_transformer(tmp_path / "s")
    texts = ["the movie was good", "a very dull and boring plot"]
    ours = student.eval()(**tok(texts, padding=True, return_tensors="pt")).embeddings.detach().numpy()
    theirs = SentenceTransformer(str(tmp_path / "s"), device="cpu").encode(texts)
    np.testing.assert_allclose(theirs, ours, atol=1e-5)
    assert np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-5)
    reloaded = load_sentence_encoder(tmp_path / "s")
    np.testing.assert_allclose(reloaded(**tok(texts, padding=True, return_tensors="pt")).embeddings.detach().numpy(), ours, atol=1e-6)
