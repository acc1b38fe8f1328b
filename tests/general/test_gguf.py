"""GGUF teachers: a tiny Llama written as a real GGUF file, dequantized once into a stock folder, distilled;
and the bad inputs (no file, not GGUF, an architecture transformers cannot read, no gguf package)."""

import json

import gguf  # in the test extra (and the gguf extra)
import numpy as np
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from protege.cli.main import main
from protege.errors import ProtegeError
from protege.models.gguf import gguf_folder, is_gguf

FAST = ["--no-progress", "--max-length", "16", "--batch-size", "4", "--lr", "2e-3", "--max-steps", "2"]


def _byte_chars() -> list[str]:
    # GPT-2's byte-to-unicode table: the 256 base tokens of a byte-level BPE vocabulary
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for _, c in sorted(zip(bs, cs))]


def write_tiny_gguf(path, *, arch: str = "llama", seed: int = 0) -> None:
    """A 2-layer Llama (hidden 32, 4 query / 2 KV heads) with a byte-level BPE tokenizer, as llama.cpp writes it (F32)."""
    rng = np.random.default_rng(seed)
    tokens = _byte_chars() + ["th", "the", "Ġt", "Ġth", "Ġthe", "<s>", "</s>"]
    v, h, f, layers, heads, kv = len(tokens), 32, 64, 2, 4, 2
    w = gguf.GGUFWriter(str(path), arch)
    w.add_block_count(layers)
    w.add_context_length(64)
    w.add_embedding_length(h)
    w.add_feed_forward_length(f)
    w.add_head_count(heads)
    w.add_head_count_kv(kv)
    w.add_layer_norm_rms_eps(1e-5)
    w.add_rope_freq_base(10000.0)
    w.add_rope_dimension_count(h // heads)
    w.add_vocab_size(v)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * v)
    w.add_token_merges(["t h", "th e", "Ġ t", "Ġt h", "Ġth e"])
    w.add_bos_token_id(v - 2)
    w.add_eos_token_id(v - 1)

    def t(*shape):
        return (rng.standard_normal(shape) * 0.3).astype(np.float32)

    w.add_tensor("token_embd.weight", t(v, h))
    w.add_tensor("output_norm.weight", np.ones(h, np.float32))
    w.add_tensor("output.weight", t(v, h))
    hd = h // heads
    for i in range(layers):
        for name, shape in (("attn_q", (heads * hd, h)), ("attn_k", (kv * hd, h)), ("attn_v", (kv * hd, h)),
                            ("attn_output", (h, heads * hd)), ("ffn_gate", (f, h)), ("ffn_up", (f, h)), ("ffn_down", (h, f))):
            w.add_tensor(f"blk.{i}.{name}.weight", t(*shape))
        w.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(h, np.float32))
        w.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(h, np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("PROTEGE_CACHE", str(root))
    return root


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory):
    path = tmp_path_factory.mktemp("gguf") / "tiny-llama.F32.gguf"
    write_tiny_gguf(path)
    return path


def test_is_gguf():
    assert is_gguf("a/b/Model.Q4_1.GGUF") and is_gguf("x.gguf") and not is_gguf("runs/teacher") and not is_gguf("x.gguf.txt")


def test_converted_folder_is_stock_and_matches_the_gguf_load(tiny_gguf, cache):
    folder = gguf_folder(tiny_gguf)
    assert folder.parent == cache / "gguf" and {"config.json", "model.safetensors", "tokenizer.json"} <= {p.name for p in folder.iterdir()}
    assert json.loads((folder / "protege_gguf.json").read_text())["source"] == tiny_gguf.name
    plain = AutoModelForCausalLM.from_pretrained(folder).eval()
    assert not hasattr(plain.config, "quantization_config")
    direct = AutoModelForCausalLM.from_pretrained(str(tiny_gguf.parent), gguf_file=tiny_gguf.name).eval()
    tok = AutoTokenizer.from_pretrained(folder)
    ids = torch.tensor([tok("the cat sat on the mat")["input_ids"]])
    with torch.no_grad():
        assert torch.equal(plain(ids).logits, direct(ids).logits)
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert gguf_folder(tiny_gguf) == folder and (folder / "model.safetensors").stat().st_mtime_ns == stamp  # reused, not redone
    assert [p.name for p in (cache / "gguf").iterdir()] == [folder.name]  # no staging folder left behind


def test_distill_from_a_gguf_teacher(tiny_gguf, cache, tmp_path, capsys):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(f"the cat {i} sat on the mat with the {i % 7} dogs" for i in range(120)) + "\n")
    out = tmp_path / "student"
    code = main(["distill", "--objective", "clm", "--teacher", str(tiny_gguf), "--train-text", str(text), "--student-layers", "0",
                 "--out", str(out), *FAST, "--speed", "--speed-seconds", "0.05"])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    student = AutoModelForCausalLM.from_pretrained(out)
    assert student.config.num_hidden_layers == 1 and student.config.num_key_value_heads == 2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["teacher"]["model"] == str(tiny_gguf)
    for part in (metrics, metrics["teacher"]):  # generation speed beside the teacher, measured interleaved
        assert part["speed"]["generate_tokens_per_s"] > 0 and part["speed"]["prefill_tokens_per_s"] > 0
    assert metrics["ratios"]["generate_speedup"] > 0
    assert "generation (tokens/s, batch 1)" in printed.out


def _refused(capsys, argv, match):
    code = main(argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("protege: error: "), err
    assert match in err[0], err[0]


def _argv(teacher, tmp_path):
    text = tmp_path / "corpus.txt"
    text.write_text("\n".join(f"the cat {i} sat" for i in range(60)) + "\n")
    return ["distill", "--objective", "clm", "--teacher", str(teacher), "--train-text", str(text), "--out", str(tmp_path / "out"), *FAST]


def test_bad_gguf_inputs_leave_nothing(tmp_path, cache, capsys, monkeypatch):
    _refused(capsys, _argv(tmp_path / "missing.gguf", tmp_path), "no such GGUF file")
    fake = tmp_path / "fake.gguf"
    fake.write_bytes(b"not a gguf file at all")
    _refused(capsys, _argv(fake, tmp_path), "not a GGUF file")
    odd = tmp_path / "odd.gguf"
    write_tiny_gguf(odd, arch="notanarch")
    _refused(capsys, _argv(odd, tmp_path), "transformers cannot dequantize odd.gguf")
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    _refused(capsys, _argv(odd, tmp_path), "pip install 'protege[gguf]'")
    assert not (tmp_path / "out").exists() and not cache.exists()
    with pytest.raises(ProtegeError, match="no such GGUF file"):
        gguf_folder(tmp_path / "missing.gguf")
