"""Structured pruning of causal LMs (protege.pruning.decoder) and ``protege prune`` on a decoder, end to end."""

import contextlib
import copy
import json

import jsonschema
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

from protege.cli.main import main
from protege.engine.finish import SCHEMA_PATH
from protege.errors import ProtegeError
from protege.pruning.decoder import (DecoderImportance, DecoderPruneConfig, calibration_batches, check_decoder_prune, choose_layers,
                                     decoder_importance, decoder_layout, prune_decoder_)

from helpers import build_decoder_tokenizer, make_sentences

FAST = ["--no-progress", "--speed-seconds", "0.1", "--max-length", "16", "--batch-size", "8"]


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    """A tiny GQA Llama (hidden 64, 4 heads of 16, 2 KV heads, 4 layers, FFN 128), its tokenizer and two text files."""
    root = tmp_path_factory.mktemp("dec")
    tok = build_decoder_tokenizer(root / "lm", bos=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=64, num_hidden_layers=4, num_attention_heads=4,
                                         num_key_value_heads=2, head_dim=16, intermediate_size=128, max_position_embeddings=64,
                                         initializer_range=0.2, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id))
    model.save_pretrained(root / "lm")
    (root / "train.txt").write_text("\n".join(s for s, _ in make_sentences(60, 3)) + "\n")
    (root / "heldout.txt").write_text("\n".join(s for s, _ in make_sentences(12, 4)) + "\n")
    return root


@pytest.fixture
def llama(lm_dir):
    return AutoModelForCausalLM.from_pretrained(lm_dir / "lm").eval()


@pytest.fixture
def gpt2():
    torch.manual_seed(1)
    return GPT2LMHeadModel(GPT2Config(vocab_size=100, n_embd=32, n_layer=4, n_head=2, n_positions=64, initializer_range=0.2,
                                      bos_token_id=0, eos_token_id=0)).eval()


def _batches(vocab, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, vocab, (4, 12), generator=g)
    mask = torch.ones_like(ids)
    mask[3, 8:] = 0  # padding is not scored
    return [{"input_ids": ids[:2], "attention_mask": mask[:2]}, {"input_ids": ids[2:], "attention_mask": mask[2:]}]


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


@contextlib.contextmanager
def _skipping(model, layers):
    blocks = model.model.layers if hasattr(model, "model") else model.transformer.h
    hooks = [blocks[i].register_forward_hook(lambda m, a, kw, out: a[0] if a else kw["hidden_states"], with_kwargs=True)
             for i in layers]
    try:
        yield
    finally:
        for h in hooks:
            h.remove()


def test_importance_has_one_score_per_layer_kv_group_and_neuron(llama):
    imp = decoder_importance(llama, _batches(llama.config.vocab_size))
    assert imp.layers.shape == imp.block_influence.shape == (4,) and imp.layer_metric == "kl"
    assert imp.heads.shape == (4, 2) and imp.ffn.shape == (4, 128)
    assert imp.tokens == 4 * 12 - 4
    assert (imp.layers > 0).all() and (imp.heads > 0).all() and (imp.ffn >= 0).all()
    assert imp.summary()["layers"] == pytest.approx(imp.layers.tolist(), abs=1e-5)
    bi = decoder_importance(llama, _batches(llama.config.vocab_size), layers="bi", heads=False, ffn=False)
    assert torch.equal(bi.layers, bi.block_influence) and bi.heads is None and bi.ffn is None


def test_a_near_identity_layer_is_measured_least_important_and_dropped(llama):
    with torch.no_grad():
        llama.model.layers[2].self_attn.o_proj.weight.zero_()
        llama.model.layers[2].mlp.down_proj.weight.zero_()
    for metric in ("kl", "bi"):
        imp = decoder_importance(llama, _batches(llama.config.vocab_size), layers=metric)
        assert int(imp.layers.argmin()) == 2 and float(imp.layers[2]) == pytest.approx(0, abs=1e-6)
        assert float(imp.layers.sort().values[1]) > 1e-4
    summary = prune_decoder_(llama, DecoderPruneConfig(keep_layers=3), imp)
    assert summary["dropped_layers"] == [2] and summary["kept_layers"] == [0, 1, 3]


def test_pruned_model_equals_the_dense_one_with_the_removed_parts_zeroed(llama):
    """Removing a KV group = zeroing its query heads' o_proj columns; a neuron = its down_proj column; a layer = skipping it."""
    dense = copy.deepcopy(llama)
    imp = decoder_importance(llama, _batches(llama.config.vocab_size))
    summary = prune_decoder_(llama, DecoderPruneConfig(keep_layers=3, keep_heads=2, keep_ffn=32), imp)
    assert len(summary["kept_layers"]) == 3 and summary["after"]["heads"] == [2] * 3 and summary["after"]["kv_heads"] == [1] * 3
    with torch.no_grad():
        for new, old in enumerate(summary["kept_layers"]):
            group = summary["kept_kv_groups"][str(new)][0]
            assert group == int(imp.heads[old].argmax())
            cols = torch.ones(64, dtype=torch.bool)
            cols[group * 32:(group + 1) * 32] = False  # the group's two query heads of 16
            dense.model.layers[old].self_attn.o_proj.weight[:, cols] = 0
            neurons = torch.ones(128, dtype=torch.bool)
            neurons[torch.topk(imp.ffn[old], 32).indices] = False
            dense.model.layers[old].mlp.down_proj.weight[:, neurons] = 0
    ids = _batches(llama.config.vocab_size, seed=5)[0]["input_ids"]
    with _skipping(dense, summary["dropped_layers"]):
        expected = _logits(dense, ids)
    assert torch.allclose(_logits(llama, ids), expected, atol=1e-5)


def test_saved_pruned_llama_loads_stock_with_the_same_logits_and_generates_with_a_cache(llama, tmp_path):
    imp = decoder_importance(llama, _batches(llama.config.vocab_size))
    summary = prune_decoder_(llama, DecoderPruneConfig(keep_layers=2, keep_heads=2, keep_ffn=48), imp)
    c = llama.config
    assert (c.num_hidden_layers, c.num_attention_heads, c.num_key_value_heads, c.head_dim, c.intermediate_size) == (2, 2, 1, 16, 48)
    assert c.num_attention_heads % c.num_key_value_heads == 0
    assert [layer.self_attn.layer_idx for layer in llama.model.layers] == [0, 1]
    llama.save_pretrained(tmp_path / "p")
    assert "head_dim" in json.loads((tmp_path / "p" / "config.json").read_text())
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "p").eval()
    assert decoder_layout(loaded) == summary["after"] == {"layers": 2, "heads": [2, 2], "kv_heads": [1, 1], "head_dim": 16,
                                                         "ffn": [48, 48]}
    ids = _batches(c.vocab_size, seed=7)[0]["input_ids"]
    assert torch.equal(_logits(loaded, ids), _logits(llama, ids))
    prompt = ids[:1, :5]
    cached = loaded.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True)
    assert torch.equal(cached, loaded.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=False))
    assert torch.equal(cached, llama.generate(prompt, max_new_tokens=6, do_sample=False, use_cache=True))


def test_pruning_nothing_is_the_identity(llama):
    ids = _batches(llama.config.vocab_size)[0]["input_ids"]
    before = _logits(llama, ids)
    summary = prune_decoder_(llama, DecoderPruneConfig(keep_layers=4, keep_heads=4, keep_ffn=128))  # nothing to rank
    assert summary["dropped_layers"] == [] and summary["before"] == summary["after"]
    assert torch.equal(_logits(llama, ids), before)


def test_gpt2_layers_and_ffn_reload_stock_and_generate(gpt2, tmp_path):
    imp = decoder_importance(gpt2, _batches(100))
    assert imp.heads.shape == (4, 2) and imp.ffn.shape == (4, 128)
    summary = prune_decoder_(gpt2, DecoderPruneConfig(keep_layers=3, keep_ffn=40), imp)
    assert summary["after"]["ffn"] == [40] * 3 and gpt2.config.n_inner == 40 and gpt2.config.n_layer == 3
    gpt2.save_pretrained(tmp_path / "g")
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path / "g").eval()
    ids = _batches(100, seed=3)[0]["input_ids"]
    assert torch.equal(_logits(loaded, ids), _logits(gpt2, ids))
    prompt = ids[:1, :4]
    assert torch.equal(loaded.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=True),
                       loaded.generate(prompt, max_new_tokens=5, do_sample=False, use_cache=False))
    with pytest.raises(ProtegeError, match="n_embd / n_head"):
        check_decoder_prune(gpt2.config, DecoderPruneConfig(keep_heads=1))


def test_choose_layers_least_important_or_one_contiguous_run():
    scores = [5, 1, 1, 0.5, 4, 3]
    assert choose_layers(scores, 4) == [0, 2, 4, 5]  # drops 0.5 and the first 1
    assert choose_layers(scores, 4, contiguous=True) == [0, 1, 4, 5]  # the run (1, 0.5) sums lowest
    assert choose_layers(scores, 6) == list(range(6))


@pytest.mark.parametrize("cfg, needle", [
    (dict(keep_heads=3), "whole KV groups"),
    (dict(keep_heads=8), "more than the 4 attention heads"),
    (dict(keep_ffn=129), "more than the 128 FFN neurons"),
    (dict(keep_layers=5), "more than the model's 4 layers"),
    (dict(keep_layers=(0, 4)), "outside 0..3"),
])
def test_configs_that_do_not_fit_are_refused(llama, cfg, needle):
    with pytest.raises(ProtegeError, match=needle):
        prune_decoder_(llama, DecoderPruneConfig(**cfg))


def test_ranking_without_or_with_foreign_importance_is_refused(llama):
    with pytest.raises(ProtegeError, match="needs measured importance"):
        prune_decoder_(llama, DecoderPruneConfig(keep_ffn=32))
    other = DecoderImportance(layers=None, layer_metric=None, block_influence=torch.zeros(4), heads=None,
                              ffn=torch.ones(4, 64), tokens=1)  # measured on a model with 64 neurons per layer
    with pytest.raises(ProtegeError, match=r"shape \(4, 64\), this model needs \(4, 128\)"):
        prune_decoder_(llama, DecoderPruneConfig(keep_ffn=32), other)
    with pytest.raises(ProtegeError, match="needs measured importance"):
        prune_decoder_(llama, DecoderPruneConfig(keep_heads=2), other)  # no head scores in it
    with pytest.raises(ProtegeError, match="increasing"):
        DecoderPruneConfig(keep_layers=(2, 1))


def test_calibration_batches_pack_text(lm_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(lm_dir / "lm")
    tok.pad_token = tok.eos_token
    batches = calibration_batches(tok, [s for s, _ in make_sentences(30, 1)], max_length=16, num_sequences=5, batch_size=2)
    assert [b["input_ids"].shape[0] for b in batches] == [2, 2, 1] and batches[0]["input_ids"].shape[1] == 16


# --- protege prune on a causal LM ---------------------------------------------------------------

def test_cli_prunes_measures_and_recovers_a_causal_lm(lm_dir, tmp_path, capsys):
    out = tmp_path / "pruned"
    argv = ["prune", str(lm_dir / "lm"), "--method", "structured", "--keep-layers", "2", "--keep-heads", "2", "--keep-ffn", "64",
            "--train-text", str(lm_dir / "train.txt"), "--eval-text", str(lm_dir / "heldout.txt"), "--recover", "distill",
            "--max-steps", "3", "--lr", "1e-3", "--out", str(out), *FAST]
    assert main(argv) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "pruning: structured" in printed
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md", "protege_config.json",
            "train_log.jsonl"} <= files and "recovery-student" not in files
    m = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(m, json.loads(SCHEMA_PATH.read_text()))
    p = m["pruning"]
    assert m["method"] == "prune" and p["method"] == "structured" and 0 < p["sparsity"] < 1
    st = p["structure"]
    assert st["after"] == {"layers": 2, "heads": [2, 2], "kv_heads": [1, 1], "head_dim": 16, "ffn": [64, 64]}
    assert len(st["scores"]["layers"]) == 4 and st["layer_importance"] == "kl" and len(st["dropped_layers"]) == 2
    assert m["training"]["steps"] == 3 and m["training"]["recovery"] == "distill" and m["config"]["temperature"] == 1.0
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert "kd" in log[-1] and "lm" not in log[-1]  # forward KL to the dense model
    assert m["eval"]["metrics"]["perplexity"] > 1 and 0 <= m["eval"]["agreement"]["agreement"] <= 1
    assert m["teacher"]["eval"]["metrics"]["perplexity"] > 1
    assert p["remaining_parameters"] < p["dense_parameters"]
    model = AutoModelForCausalLM.from_pretrained(out).eval()  # stock loading
    assert model.config.num_hidden_layers == 2 and model.config.num_key_value_heads == 1
    assert sum(t.numel() for t in model.parameters()) == m["size"]["parameters"]
    card = (out / "README.md").read_text()
    assert "## Pruning" in card and "pruned from" in card and "AutoModelForCausalLM" in card


def test_cli_without_recovery_keeps_the_measured_model(lm_dir, tmp_path, capsys):
    out = tmp_path / "p"
    assert main(["prune", str(lm_dir / "lm"), "--method", "structured", "--keep-layers", "3", "--layer-importance", "bi",
                 "--contiguous-layers", "--train-text", str(lm_dir / "train.txt"), "--no-speed", "--out", str(out), *FAST]) == 0
    m = json.loads((out / "metrics.json").read_text())
    st = m["pruning"]["structure"]
    assert "training" not in m and st["layer_importance"] == "bi" and st["contiguous_layers"] is True
    bi = st["scores"]["block_influence"]
    assert st["dropped_layers"] == [min(range(4), key=lambda i: (bi[i], i))]
    assert "layer_importance" in (out / "README.md").read_text()


def test_named_layers_need_no_text(lm_dir, tmp_path):
    import protege

    m = protege.prune(str(lm_dir / "lm"), method="structured", keep_layers="0,3", speed=False, progress=False,
                      max_length=16, out=str(tmp_path / "p"))
    st = m["pruning"]["structure"]
    assert st["kept_layers"] == [0, 3] and st["scores"] is None and st["importance"] is None and "eval" not in m
    assert AutoModelForCausalLM.from_pretrained(tmp_path / "p").config.num_hidden_layers == 2


@pytest.mark.parametrize("args, needle", [
    (["--keep-heads", "3", "--train-text", "TEXT"], "whole KV groups"),
    (["--keep-heads", "8", "--train-text", "TEXT"], "more than the 4 attention heads"),
    (["--keep-layers", "9", "--train-text", "TEXT"], "more than the model's 4 layers"),
    (["--keep-ffn", "32"], "needs calibration text"),
    (["--keep-layers", "0,1", "--recover", "distill"], "needs --train"),
    (["--keep-ffn", "32", "--train-text", "TEXT", "--importance", "magnitude"], "--importance measured"),
    (["--keep-ffn", "32", "--train", "TEXT"], "--train-text"),
    (["--keep-ffn", "32", "--train-text", "TEXT", "--recover", "distill", "--alpha-hidden", "1"], "--alpha-hidden"),
    (["--keep-ffn", "32", "--train-text", "SHORT"], "too short"),
    (["--keep-ffn", "32", "--train-text", "TEXT", "--eval-text", "SHORT"], "too short"),
])
def test_bad_decoder_input_fails_before_writing(args, needle, lm_dir, tmp_path, capsys):
    out = tmp_path / "out"
    (lm_dir / "short.txt").write_text("the cat\n")  # two tokens: not one packed sequence
    args = [{"TEXT": str(lm_dir / "train.txt"), "SHORT": str(lm_dir / "short.txt")}.get(a, a) for a in args]
    assert main(["prune", str(lm_dir / "lm"), "--method", "structured", *args, "--out", str(out), "--no-progress"]) == 2
    err = [line for line in capsys.readouterr().err.strip().splitlines() if not line.startswith("[protege]")]
    assert len(err) == 1 and needle in err[0], err
    assert list(tmp_path.iterdir()) == []


def test_classifier_methods_and_options_are_refused_across_kinds(lm_dir, tiny_teacher_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prune", str(lm_dir / "lm"), "--method", "magnitude", "--sparsity", "0.5", "--out", str(out)]) == 2
    assert "takes --method structured" in capsys.readouterr().err
    assert main(["prune", str(tiny_teacher_dir), "--method", "structured", "--keep-ffn", "8", "--train-text",
                 str(lm_dir / "train.txt"), "--out", str(out)]) == 2
    assert "is for causal LMs" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
