"""An MPNet sentence-embedding teacher (all-mpnet-base-v2's architecture, tiny): kept layers keep the encoder's
relative attention bias, the embedding objective distils it, and sentence-transformers loads the student."""

import json

import numpy as np
import pytest
import torch
from transformers import MPNetConfig, MPNetModel

import protege
from protege.models import keep_layers, load_tokenizer
from protege.models.sentence import load_sentence_encoder

from helpers import build_tokenizer, make_sentences, write_sentence_transformer

TEXTS = ["the movie was good", "a very dull and boring plot with a bad actor"]


@pytest.fixture(scope="module")
def mpnet_st(tmp_path_factory):
    root = tmp_path_factory.mktemp("mpnet")
    tok = build_tokenizer(root / "tok")
    torch.manual_seed(0)
    config = MPNetConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=4, num_attention_heads=4, intermediate_size=64,
                         max_position_embeddings=72, pad_token_id=tok.pad_token_id)
    write_sentence_transformer(root / "st", MPNetModel(config).eval(), tok)
    (root / "corpus.txt").write_text("\n".join(s for s, _ in make_sentences(160, 3)) + "\n")
    return root


def test_kept_mpnet_layers_keep_the_relative_attention_bias(mpnet_st):
    teacher = load_sentence_encoder(mpnet_st / "st").transformer
    batch = load_tokenizer(str(mpnet_st / "st"))(TEXTS, padding=True, return_tensors="pt")
    student = keep_layers(teacher, [0, 3])
    assert len(student.encoder.layer) == student.config.num_hidden_layers == 2
    bias, t_bias = student.encoder.relative_attention_bias.weight, teacher.encoder.relative_attention_bias.weight
    assert torch.equal(bias, t_bias) and bias.data_ptr() != t_bias.data_ptr()  # copied, not shared
    with torch.no_grad():
        s = student(**batch, output_hidden_states=True).hidden_states
        t = teacher(**batch, output_hidden_states=True).hidden_states
        assert torch.equal(keep_layers(teacher, [0, 1, 2, 3])(**batch).last_hidden_state, t[-1])
    assert len(s) == 3 and torch.allclose(s[1], t[1], atol=1e-6)  # block 0 sees the same position bias
    assert not torch.allclose(s[2], t[2], atol=1e-3)  # block 3 follows block 0 now


def test_mpnet_embedding_student_distils_and_loads_in_sentence_transformers(mpnet_st, tmp_path):
    from sentence_transformers import SentenceTransformer

    out = tmp_path / "s"
    metrics = protege.distill(objective="embedding", teacher=str(mpnet_st / "st"), train_text=str(mpnet_st / "corpus.txt"),
                              student_layers="0,3", out=str(out), max_steps=20, lr=3e-3, progress=False, speed=False,
                              max_length=32, batch_size=8, log_every=1)
    losses = [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines() if '"loss"' in line]
    assert np.mean(losses[-5:]) < np.mean(losses[:5])
    assert metrics["student"]["layer_map"] == [0, 3]
    config = json.loads((out / "config.json").read_text())
    assert (config["model_type"], config["num_hidden_layers"]) == ("mpnet", 2)
    ours = load_sentence_encoder(out)
    assert ours.transformer.encoder.relative_attention_bias.weight.shape == (32, 4)
    with torch.no_grad():
        expected = ours(**load_tokenizer(str(out))(TEXTS, padding=True, return_tensors="pt")).embeddings.numpy()
    theirs = SentenceTransformer(str(out), device="cpu").encode(TEXTS)
    np.testing.assert_allclose(theirs, expected, atol=1e-5)
    assert np.allclose(np.linalg.norm(theirs, axis=1), 1.0, atol=1e-5)
    assert 0 < metrics["eval"]["agreement"]["cosine_to_teacher"] <= 1
