"""Teacher-output cache: exact contents, fingerprinting, reuse, budget, and equivalence with live teachers."""

import copy
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from protege.cli.main import main
from protege.data.batching import collate, encode
from protege.objectives.cache import CacheSpec, estimate_bytes, fingerprint, open_or_build_cache
from protege.errors import ProtegeError

from helpers import encoded_sentences


def _features(tokenizer, n=40, seed=5, max_length=32):
    return encoded_sentences(tokenizer, n, seed=seed, max_length=max_length)


def test_cached_outputs_equal_the_teachers(tiny_teacher, tiny_tokenizer, tmp_path):
    tiny_teacher.set_attn_implementation("eager")
    feats = _features(tiny_tokenizer)
    spec = CacheSpec(hidden=(0, 2), attentions=(1,))
    cache = open_or_build_cache(tmp_path, tiny_teacher, feats, spec, pad_token_id=0, progress=False, log=lambda m: None)
    idx = [3, 17, 0, 39]
    batch = collate([{k: v for k, v in feats[i].items() if k != "labels"} for i in idx], 0)
    with torch.no_grad():
        ref = tiny_teacher(**batch, output_hidden_states=True, output_attentions=True)
    got = cache.outputs(torch.tensor(idx), batch["input_ids"].shape[1], "cpu")
    assert torch.allclose(got.logits, ref.logits, atol=1e-5)
    mask = batch["attention_mask"].bool()
    for j in (0, 2):
        assert torch.allclose(got.hidden_states[j][mask], ref.hidden_states[j][mask], atol=2e-2)  # stored in fp16
        assert (got.hidden_states[j][~mask] == 0).all()
    both = mask[:, None, :, None] & mask[:, None, None, :]
    assert torch.allclose(got.attentions[1][both.expand_as(got.attentions[1])],
                          ref.attentions[1][both.expand_as(ref.attentions[1])], atol=1e-3)
    assert got.hidden_states[1] is None and got.attentions[0] is None
    manifest = json.loads((cache.folder / "manifest.json").read_text())
    assert manifest["n"] == 40 and manifest["bytes"] >= estimate_bytes(tiny_teacher.config, feats, spec) * 0.9


def test_fingerprint_tracks_weights_data_and_length(tiny_teacher, tiny_tokenizer):
    feats = _features(tiny_tokenizer)
    base = fingerprint(tiny_teacher, feats)
    assert fingerprint(copy.deepcopy(tiny_teacher), feats) == base
    changed = copy.deepcopy(tiny_teacher)
    with torch.no_grad():
        changed.classifier.bias[0] += 1e-3
    assert fingerprint(changed, feats) != base
    assert fingerprint(tiny_teacher, _features(tiny_tokenizer, seed=6)) != base
    assert fingerprint(tiny_teacher, _features(tiny_tokenizer, max_length=6)) != base


def test_reuse_superset_and_rebuild_on_change(tiny_teacher, tiny_tokenizer, tmp_path):
    feats = _features(tiny_tokenizer)
    logs = []
    first = open_or_build_cache(tmp_path, tiny_teacher, feats, CacheSpec(hidden=(0, 1, 2)), pad_token_id=0, progress=False, log=logs.append)
    again = open_or_build_cache(tmp_path, tiny_teacher, feats, CacheSpec(hidden=(1,)), pad_token_id=0, progress=False, log=logs.append)
    assert again.folder == first.folder and "reusing" in logs[-1]
    changed = copy.deepcopy(tiny_teacher)
    with torch.no_grad():
        changed.classifier.bias[0] += 1.0
    rebuilt = open_or_build_cache(tmp_path, changed, feats, CacheSpec(), pad_token_id=0, progress=False, log=logs.append)
    assert rebuilt.folder != first.folder and "building" in logs[-1]
    assert not list(tmp_path.glob(".*tmp*"))


def test_budget_is_checked_before_building(tiny_teacher, tiny_tokenizer, tmp_path):
    feats = _features(tiny_tokenizer)
    with pytest.raises(ProtegeError, match="--cache-budget"):
        open_or_build_cache(tmp_path / "c", tiny_teacher, feats, CacheSpec(hidden=(0, 1, 2, 3, 4)), pad_token_id=0,
                            budget_gb=1e-7, progress=False, log=lambda m: None)
    assert not (tmp_path / "c").exists()


def test_topk_storage_keeps_the_top_log_probs_and_the_rest_mass(tiny_tokenizer, tmp_path):
    from transformers import BertForSequenceClassification

    from helpers import tiny_bert_config

    torch.manual_seed(0)
    model = BertForSequenceClassification(tiny_bert_config(len(tiny_tokenizer), num_labels=10)).eval()
    feats = _features(tiny_tokenizer, n=8)
    cache = open_or_build_cache(tmp_path, model, feats, CacheSpec(topk=3), pad_token_id=0, progress=False, log=lambda m: None)
    batch = collate([{k: v for k, v in f.items() if k != "labels"} for f in feats], 0)
    with torch.no_grad():
        logp = torch.log_softmax(model(**batch).logits, -1)
    got = cache.outputs(torch.arange(8), batch["input_ids"].shape[1], "cpu")
    top = logp.topk(3, -1)
    assert torch.equal(got.topk_indices, top.indices)
    assert torch.allclose(got.topk_values, top.values, atol=1e-5)
    assert torch.allclose(got.rest_mass, 1 - top.values.exp().sum(-1), atol=1e-5)


@pytest.mark.parametrize("extra, weights_close", [([], True), (["--alpha-hidden", "1"], False)], ids=["logits", "hidden"])
def test_distill_with_cache_matches_live_teacher_and_reuses_it(extra, weights_close, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    common = ["distill", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"), "--student-layers", "0,2",
              "--alpha-ce", "1", "--no-progress", "--no-speed", "--max-steps", "6", "--batch-size", "16",
              "--max-length", "32", "--lr", "1e-3", "--log-every", "1", *extra]
    assert main(common + ["--out", str(tmp_path / "live")]) == 0
    assert main(common + ["--out", str(tmp_path / "cached"), "--cache-teacher", str(tmp_path / "cache")]) == 0
    assert "building" in capsys.readouterr().err
    assert main(common + ["--out", str(tmp_path / "cached2"), "--cache-teacher", str(tmp_path / "cache")]) == 0
    assert "reusing" in capsys.readouterr().err
    a = [json.loads(x)["loss"] for x in (tmp_path / "live" / "train_log.jsonl").read_text().splitlines()]
    b = [json.loads(x)["loss"] for x in (tmp_path / "cached" / "train_log.jsonl").read_text().splitlines()]
    assert len(a) == 6 and np.allclose(a, b, atol=1e-3)
    if weights_close:  # logits are cached in fp32: the runs agree up to float noise from different padding
        live, cached = load_file(tmp_path / "live" / "model.safetensors"), load_file(tmp_path / "cached" / "model.safetensors")
        for k in live:
            assert torch.allclose(live[k], cached[k], atol=1e-4), k


def test_cache_teacher_verb_builds_what_distill_then_reuses(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    data = ["--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"), "--max-length", "32",
            "--student-layers", "1,3", "--alpha-hidden", "1", "--no-progress"]
    assert main(["cache-teacher", *data, "--out", str(tmp_path / "cache")]) == 0
    out = capsys.readouterr().out
    assert "160 examples" in out
    (folder,) = list((tmp_path / "cache").iterdir())
    assert json.loads((folder / "manifest.json").read_text())["spec"]["hidden"] == [2, 4]
    assert main(["distill", *data, "--out", str(tmp_path / "s"), "--cache-teacher", str(tmp_path / "cache"),
                 "--max-steps", "2", "--no-speed"]) == 0
    assert "reusing" in capsys.readouterr().err
    assert main(["cache-teacher", *data, "--out", str(tmp_path / "c2"), "--cache-budget", "0.0000001"]) == 2
    assert "--cache-budget" in capsys.readouterr().err
