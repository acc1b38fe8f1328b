"""An ensemble of classifiers as the teacher: the exact mean, the temperature, the checks, the run and its report."""

import copy
import json

import jsonschema
import numpy as np
import pytest
import torch

from protege.cli.main import main
from protege.engine.finish import SCHEMA_PATH
from protege.errors import ProtegeError
from protege.models.ensemble import Ensemble, check_same_labels, combine_logits, load_ensemble

FAST = ["--no-progress", "--no-speed", "--max-length", "32", "--batch-size", "8", "--max-steps", "2"]


@pytest.fixture(scope="module")
def second_teacher_dir(tmp_path_factory, _tiny_teacher_session, tiny_tokenizer):
    """Another tiny classifier of the same labels and tokenizer (other weights, sharper outputs)."""
    model = copy.deepcopy(_tiny_teacher_session[0])
    torch.manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    d = tmp_path_factory.mktemp("teacher_b")
    model.save_pretrained(d)
    tiny_tokenizer.save_pretrained(d)
    return d


def _batch(tokenizer):
    return dict(tokenizer(["the movie was good", "a dull and boring plot", "great fine film"], padding=True,
                          return_tensors="pt"))


def test_an_ensemble_of_two_classifiers_gives_exactly_the_mean_of_their_probabilities(tiny_teacher_dir, second_teacher_dir):
    ensemble, tokenizer = load_ensemble([tiny_teacher_dir, second_teacher_dir])
    a, b = ensemble.members
    batch = _batch(tokenizer)
    with torch.no_grad():
        za, zb = a(**batch).logits, b(**batch).logits
        assert not torch.allclose(za.softmax(-1), zb.softmax(-1), atol=1e-3)  # two different teachers
        mean = (za.softmax(-1) + zb.softmax(-1)) / 2
        assert torch.allclose(ensemble(**batch).logits.softmax(-1), mean, atol=1e-6)
        # at the KD temperature: the mean of the softened distributions, read by a loss that divides by T
        soft = ensemble.softened(3.0)(**batch).logits
        assert torch.allclose((soft / 3.0).softmax(-1), ((za / 3.0).softmax(-1) + (zb / 3.0).softmax(-1)) / 2, atol=1e-6)
        weighted = Ensemble([a, b], weights=[3, 1])(**batch).logits
        assert torch.allclose(weighted.softmax(-1), 0.75 * za.softmax(-1) + 0.25 * zb.softmax(-1), atol=1e-6)
        assert torch.allclose(Ensemble([a, b], mode="logits")(**batch).logits, (za + zb) / 2, atol=1e-6)


def test_averaging_at_the_temperature_is_not_softening_the_mean():
    z = [torch.tensor([[6.0, 0.0, 0.0]]), torch.tensor([[0.0, 6.0, 0.0]])]  # members sure of different answers
    T = 4.0
    at_t = (combine_logits(z, temperature=T) / T).softmax(-1)
    reference = (torch.softmax(z[0] / T, -1) + torch.softmax(z[1] / T, -1)) / 2
    assert torch.allclose(at_t, reference, atol=1e-6)
    softened_mean = (combine_logits(z) / T).softmax(-1)  # the T=1 mean, softened afterwards: another distribution
    assert reference[0, 2].item() == pytest.approx(1 / (np.exp(1.5) + 2), abs=1e-6)  # the third class: 0.154 ...
    assert softened_mean[0, 2].item() == pytest.approx(0.1171, abs=1e-3)  # ... not 0.117
    assert torch.allclose(combine_logits(z, temperature=T).sum(-1), torch.zeros(1), atol=1e-5)  # centred


def test_agreeing_members_return_their_centred_logits_and_weights_are_respected():
    z = torch.tensor([[2.0, -1.0, 0.5], [0.0, 0.3, -4.0]])
    for T in (1.0, 2.5):
        assert torch.allclose(combine_logits([z, z.clone()], temperature=T), z - z.mean(-1, keepdim=True), atol=1e-5)
    other = torch.randn(2, 3)
    assert torch.allclose(combine_logits([z, other], [1.0, 0.0]), z - z.mean(-1, keepdim=True), atol=1e-5)
    scores = [torch.tensor([[1.0], [2.0]]), torch.tensor([[3.0], [0.0]])]  # regression: the weighted mean
    assert torch.allclose(combine_logits(scores, [1, 3]), torch.tensor([[2.5], [0.5]]))
    ml = [torch.tensor([[2.0, -3.0]]), torch.tensor([[-1.0, 1.0]])]  # multi-label: each label's mean probability
    out = combine_logits(ml, temperature=2.0, multi_label=True)
    assert torch.allclose(torch.sigmoid(out / 2.0), (torch.sigmoid(ml[0] / 2.0) + torch.sigmoid(ml[1] / 2.0)) / 2, atol=1e-6)
    with pytest.raises(ProtegeError, match="weights"):
        combine_logits([z, z], [0, 0])


def test_members_of_other_labels_or_vocabularies_are_refused(tiny_teacher_dir, tmp_path, tiny_tokenizer):
    from transformers import AutoConfig

    configs = [AutoConfig.from_pretrained(tiny_teacher_dir) for _ in range(2)]
    configs[1].id2label = {0: "positive", 1: "negative"}
    with pytest.raises(ProtegeError, match="label space.*same order"):
        check_same_labels(configs, ["a", "b"])
    other = _copy_folder(tiny_teacher_dir, tmp_path / "other_vocab")
    tok = copy.deepcopy(tiny_tokenizer)
    tok.add_tokens(["zebra"])
    tok.save_pretrained(other)
    with pytest.raises(ProtegeError, match="different vocabulary.*share one tokenizer"):
        load_ensemble([tiny_teacher_dir, other])


@pytest.mark.parametrize("change", ["labels", "vocabulary"])
def test_a_mismatched_ensemble_exits_2_with_one_line_and_writes_nothing(change, tiny_teacher_dir, tiny_data_dir, tiny_tokenizer,
                                                                        tmp_path, capsys):
    other = _copy_folder(tiny_teacher_dir, tmp_path / "inputs" / "b")
    if change == "labels":
        cfg = json.loads((other / "config.json").read_text())
        cfg["id2label"], cfg["label2id"] = {"0": "neg", "1": "pos"}, {"neg": 0, "pos": 1}
        (other / "config.json").write_text(json.dumps(cfg))
    else:
        tok = copy.deepcopy(tiny_tokenizer)
        tok.add_tokens(["zebra"])
        tok.save_pretrained(other)
    runs = tmp_path / "runs"
    code = main(["distill", "--teacher", str(tiny_teacher_dir), "--teacher", str(other), "--train", str(tiny_data_dir / "train.tsv"),
                 "--cache-teacher", str(runs / "cache"), "--out", str(runs / "student"), *FAST])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and str(other) in err[0]
    assert ("label space" if change == "labels" else "vocabulary") in err[0]
    assert not runs.exists()


def test_distilling_an_ensemble_reports_it_and_each_member_and_caches_it_once(tiny_teacher_dir, second_teacher_dir, tiny_data_dir,
                                                                              tiny_tokenizer, tmp_path):
    from protege.evaluation.predict import predict

    a, b = str(tiny_teacher_dir), str(second_teacher_dir)
    out, cache = tmp_path / "student", tmp_path / "cache"
    assert main(["distill", "--teacher", a, "--teacher", b, "--teacher-weights", "2,1", "--train", str(tiny_data_dir / "train.tsv"),
                 "--eval", str(tiny_data_dir / "dev.tsv"), "--student-layers", "0,2", "--temperature", "2",
                 "--cache-teacher", str(cache), "--out", str(out), *FAST]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(metrics, json.loads(SCHEMA_PATH.read_text()))
    assert metrics["teacher"]["model"] == f"ensemble({a}, {b})"
    assert metrics["config"]["teacher"] == [a, b]
    section = metrics["ensemble"]
    assert section["mode"] == "probs" and section["weights"] == pytest.approx([2 / 3, 1 / 3])
    assert section["against_ensemble"]["agreement"] == metrics["eval"]["agreement"]
    assert section["against_ensemble"]["fidelity"]["agreement"] == pytest.approx(metrics["eval"]["agreement"]["agreement"])
    assert [m["model"] for m in section["members"]] == [a, b]
    for member in section["members"]:
        assert {"agreement", "kl"} <= set(member["agreement"]) and "accuracy" in member["eval"]["metrics"]
        assert "flips_lost" in member["fidelity"]
    ensemble, _ = load_ensemble([a, b], weights=[2, 1])
    one = sum(p.numel() for p in ensemble.members[0].parameters())
    assert metrics["teacher"]["size"]["parameters"] == 2 * one  # the ensemble is measured whole
    # the cache holds the ensemble's outputs, once, averaged at the KD temperature
    [folder] = [p for p in cache.iterdir() if (p / "manifest.json").exists()]
    cached = np.load(folder / "logits.npy")
    sentences = [line.split("\t")[0] for line in (tiny_data_dir / "train.tsv").read_text().splitlines()[1:]]
    features = [dict(tiny_tokenizer(s, truncation=True, max_length=32)) for s in sentences]
    members = [torch.from_numpy(predict(m, features, pad_token_id=0)) for m in ensemble.members]
    expected = combine_logits(members, [2, 1], temperature=2.0).numpy()
    assert cached.shape == expected.shape and np.allclose(cached, expected, atol=1e-4)


def test_several_teachers_are_for_task_distillation_without_internal_losses():
    from protege.recipes.distill.config import build_distill_config

    base = {"teacher": ["a", "b"], "train": "t.tsv", "out": "o"}
    assert build_distill_config({**base, "teacher_weights": [1, 0.5]}).ensemble_weights == (1.0, 0.5)
    assert build_distill_config({"teacher": "a", "train": "t.tsv", "out": "o"}).teacher == "a"
    for extra, message in [({"alpha_hidden": 1.0}, "--alpha-hidden reads one teacher's internals"),
                           ({"teacher_weights": "1"}, "needs 2 finite numbers"),
                           ({"teacher": ["a", "a"]}, "given twice"),
                           ({"ensemble": "median"}, "--ensemble must be one of probs, logits")]:
        with pytest.raises(ProtegeError, match=message):
            build_distill_config({**base, **extra})
    with pytest.raises(ProtegeError, match="learns from one --teacher"):
        build_distill_config({"teacher": ["a", "b"], "objective": "mlm", "train_text": "c.txt", "out": "o"})
    with pytest.raises(ProtegeError, match="weighs the members of an ensemble"):
        build_distill_config({"teacher": "a", "train": "t.tsv", "out": "o", "teacher_weights": "1"})


def test_a_yaml_list_of_teachers_is_read_beside_the_recipe(tmp_path):
    import argparse

    from protege.cli.options import options_from_args
    from protege.recipes.distill.config import DistillConfig, build_distill_config

    for name in ("a", "b"):
        (tmp_path / name).mkdir()
    recipe = tmp_path / "r.yaml"
    recipe.write_text("teacher: [a, b]\nteacher_weights: [2, 0.5]\nensemble: logits\ntrain: t.tsv\nout: o\n")
    cfg = build_distill_config(options_from_args(argparse.Namespace(config=str(recipe)), [DistillConfig]))
    assert cfg.teacher == (str(tmp_path / "a"), str(tmp_path / "b")) and cfg.ensemble_weights == (2.0, 0.5)
    assert cfg.ensemble == "logits" and cfg.teacher_name == f"ensemble({tmp_path / 'a'}, {tmp_path / 'b'})"


def _copy_folder(src, dst):
    import shutil

    shutil.copytree(src, dst)
    return dst
