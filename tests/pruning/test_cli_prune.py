"""``protege prune`` end to end through ``protege.cli.main.main``: one run per method, files and numbers checked."""

import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForSequenceClassification

from protege.cli.main import main
from protege.pruning import layout, load_pruned

FAST = ["--no-progress", "--speed-seconds", "0.1", "--max-length", "32", "--batch-size", "16"]


def _run(capsys, *argv):
    assert main(["prune", *map(str, argv), *FAST]) == 0, capsys.readouterr().err
    return capsys.readouterr().out


def _metrics(out):
    return json.loads((out / "metrics.json").read_text())


def _zeros(masks):
    return sum(int((~m).sum()) for m in masks.values()), sum(m.numel() for m in masks.values())


@pytest.fixture(scope="module")
def magnitude_run(tiny_teacher_dir, tiny_data_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "p60"
    argv = ["prune", str(tiny_teacher_dir), "--method", "magnitude", "--sparsity", "0.6", "--scope", "global",
            "--eval", str(tiny_data_dir / "dev.tsv"), "--out", str(out), *FAST]
    assert main(argv) == 0
    return out


def test_magnitude_writes_a_stock_folder_masks_and_an_honest_report(magnitude_run, capsys):
    out = magnitude_run
    files = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.json", "README.md", "protege_config.json",
            "pruning_masks.safetensors"} <= files
    assert not (out.parent / f".{out.name}.partial").exists()
    m = _metrics(out)
    p = m["pruning"]
    masks = load_file(str(out / "pruning_masks.safetensors"))
    zeros, total = _zeros(masks)
    assert zeros == round(0.6 * total) == p["zeroed_parameters"] and p["candidate_parameters"] == total
    assert p["sparsity"] == pytest.approx(0.6, abs=1e-4)
    model = AutoModelForSequenceClassification.from_pretrained(out)  # stock loading
    weights = dict(model.named_parameters())
    assert sum(int((weights[n] == 0).sum()) for n in masks) == zeros
    assert p["remaining_parameters"] == sum(int((w != 0).sum()) for w in weights.values())
    for key in ("latency_ms_batch1", "latency_ms_batch32", "dense_latency_ms_batch1", "dense_latency_ms_batch32"):
        assert p[key] > 0
    assert "no speedup is expected" in p["speed_note"]
    assert m["teacher"]["eval"]["metrics"]["accuracy"] >= 0 and "agreement" in m["eval"]["agreement"]
    card = (out / "README.md").read_text()
    assert "## Pruning" in card and "pruned from" in card and "distilled" not in card


def test_magnitude_prints_the_pruning_section(tiny_teacher_dir, tmp_path, capsys):
    out = tmp_path / "p30"
    printed = _run(capsys, tiny_teacher_dir, "--method", "magnitude", "--sparsity", "0.3", "--scope", "layer",
                   "--include-classifier", "--no-speed", "--out", out)
    p = _metrics(out)["pruning"]
    assert "pruning: magnitude, sparsity 30.0% of candidate weights" in printed
    assert "layer 3: query 30.0%" in printed and "classifier: 29.7%" in printed  # round(0.3 * 64) of 64
    assert "classifier.weight" in p["per_layer"] and p["faster"] is None and "latency_ms_batch1" not in p


def test_masks_apply_another_runs_masks(magnitude_run, tiny_teacher_dir, tmp_path, capsys):
    out = tmp_path / "same-mask"
    printed = _run(capsys, tiny_teacher_dir, "--method", "masks", "--masks", magnitude_run, "--no-speed", "--out", out)
    ours, theirs = load_file(str(out / "pruning_masks.safetensors")), load_file(str(magnitude_run / "pruning_masks.safetensors"))
    assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)
    assert "sparsity 60.0%" in printed


def test_structured_removes_computation_and_needs_load_pruned_for_heads(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "slim"
    printed = _run(capsys, tiny_teacher_dir, "--method", "structured", "--keep-heads", "1", "--keep-ffn", "32",
                   "--keep-layers", "0,2", "--train", tiny_data_dir / "train.tsv", "--eval", tiny_data_dir / "dev.tsv",
                   "--recover", "distill", "--alpha-hidden", "1", "--max-steps", "3", "--out", out)
    m = _metrics(out)
    p = m["pruning"]
    assert p["structure"]["after"] == {"layers": 2, "heads": [1, 1], "ffn": [32, 32]}
    assert p["structure"]["kept_layers"] == [0, 2]
    assert m["size"]["non_embedding_parameters"] < m["teacher"]["size"]["non_embedding_parameters"] / 2
    assert p["sparsity"] == pytest.approx(1 - p["remaining_non_embedding_parameters"] / p["dense_non_embedding_parameters"])
    assert p["latency_ms_batch32"] > 0 and p["speedup_batch1"] > 0 and "x the dense model's speed" in p["speed_note"]
    assert "load_pruned" in p["loads_with"] and "load_pruned" in (out / "README.md").read_text()
    assert m["training"]["steps"] == 3
    log = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert {"kd", "hidden"} <= set(log[0]) and "eval" in log[-1]
    model = load_pruned(out)
    assert layout(model) == p["structure"]["after"]
    with pytest.raises(RuntimeError):
        AutoModelForSequenceClassification.from_pretrained(out)
    assert "structure: layers 4 -> 2, heads per layer 2 -> 1, FFN neurons per layer 64 -> 32" in printed
    assert f"{m['eval']['metrics']['accuracy']:.4f}" in printed


def test_structured_ffn_only_loads_with_stock_transformers(tiny_teacher_dir, tmp_path, capsys):
    out = tmp_path / "ffn"
    _run(capsys, tiny_teacher_dir, "--method", "structured", "--keep-ffn", "16", "--importance", "magnitude",
         "--no-speed", "--out", out)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.intermediate_size == 16
    assert "from_pretrained" in _metrics(out)["pruning"]["loads_with"]


def test_imp_finds_a_ticket_with_controls(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "ticket"
    printed = _run(capsys, tiny_teacher_dir, "--method", "imp", "--rounds", "2", "--rate", "0.5", "--tolerance", "1",
                   "--rewind-step", "1", "--controls", "--recover", "distill", "--train", tiny_data_dir / "train.tsv",
                   "--eval", tiny_data_dir / "dev.tsv", "--max-steps", "2", "--no-speed", "--out", out)
    lottery = _metrics(out)["pruning"]["lottery"]
    assert [r["round"] for r in lottery["rounds"]] == [1, 2] and all(r["matching"] for r in lottery["rounds"])
    assert lottery["ticket"]["round"] == 2 and lottery["ticket"]["sparsity"] == pytest.approx(0.75, abs=1e-4)
    assert set(lottery["controls"]) == {"random_mask", "reinit"}
    zeros, total = _zeros(load_file(str(out / "pruning_masks.safetensors")))
    assert zeros == round(0.75 * total)
    assert {"round-0", "round-1", "round-2", "random_mask", "reinit"} == {p.name for p in (out / "rounds").iterdir()}
    assert not list(out.rglob("checkpoints")) and not list(out.rglob("best.pt"))
    for name in ("round-1", "random_mask", "reinit"):  # every round and control trained, by distillation
        log = [json.loads(line) for line in (out / "rounds" / name / "train_log.jsonl").read_text().splitlines()]
        assert log[0]["step"] == 2 and "kd" in log[0] and "eval" in log[-1]
    assert "kept round 2" in printed and "random_mask" in printed


def test_gradual_reaches_the_final_sparsity_on_the_cubic_schedule(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "gradual"
    _run(capsys, tiny_teacher_dir, "--method", "gradual", "--sparsity", "0.5", "--prune-every", "2",
         "--train", tiny_data_dir / "train.tsv", "--max-steps", "10", "--no-speed", "--out", out)
    p = _metrics(out)["pruning"]
    assert p["schedule"]["start"] == 0 and p["schedule"]["end"] == 7
    assert [e[0] for e in p["schedule"]["events"]] == [0, 2, 4, 6, 7]
    assert p["schedule"]["events"][-1][1] == pytest.approx(0.5)
    zeros, total = _zeros(load_file(str(out / "pruning_masks.safetensors")))
    assert zeros == round(0.5 * total)


def test_recipe_is_read_and_flags_override_it(tiny_teacher_dir, tmp_path, capsys):
    recipe = tmp_path / "r.yaml"
    recipe.write_text(f"model: {tiny_teacher_dir}\nmethod: magnitude\nsparsity: 0.9\nscope: layer\nspeed: false\n")
    out = tmp_path / "r"
    assert main(["prune", "--config", str(recipe), "--sparsity", "0.2", "--out", str(out), "--no-progress"]) == 0
    config = json.loads((out / "protege_config.json").read_text())
    assert config["sparsity"] == 0.2 and config["scope"] == "layer" and config["method"] == "magnitude"


def _error(capsys):
    err = capsys.readouterr().err.strip().splitlines()
    err = [line for line in err if not line.startswith("[protege]")]
    assert len(err) == 1 and err[0].startswith("protege: error: "), err
    return err[0]


@pytest.mark.parametrize("args, needle", [
    (["--method", "nope"], "--method must be one of"),
    (["--method", "magnitude"], "--sparsity is required"),
    (["--sparsity", "1.5"], "--sparsity must be a fraction"),
    (["--sparsity", "0.5", "--rounds", "3"], "--rounds applies to --method imp"),
    (["--sparsity", "0.5", "--recover", "finetune"], "needs --train"),
    (["--method", "imp", "--eval", "DEV"], "needs --train"),
    (["--method", "imp", "--train", "TRAIN"], "needs --eval"),
    (["--method", "imp", "--train", "TRAIN", "--eval", "DEV", "--rewind-step", "5", "--max-steps", "2"], "--rewind-step 5"),
    (["--method", "gradual", "--sparsity", "0.5", "--train", "TRAIN", "--recover", "finetune"], "--recover distill"),
    (["--method", "gradual", "--sparsity", "0.5", "--train", "TRAIN", "--patience", "2"], "--patience"),
    (["--method", "structured"], "at least one of"),
    (["--method", "structured", "--keep-heads", "5"], "more than the 2 heads"),
    (["--method", "structured", "--keep-layers", "0,9"], "outside 0..3"),
    (["--method", "structured", "--keep-heads", "1"], "needs data"),
    (["--method", "masks", "--masks", "MISSING"], "no such masks file"),
    (["--sparsity", "0.5", "--resume"], "cannot be resumed"),
    (["--sparsity", "0.5", "--train", "MISSING"], "no such file"),
    (["--sparsity", "0.5", "--batch-size", "0", "--no-speed"], "--batch-size"),
])
def test_bad_input_fails_cleanly_before_writing(args, needle, tiny_teacher_dir, tiny_data_dir, tmp_path, capsys):
    out = tmp_path / "out"
    names = {"TRAIN": tiny_data_dir / "train.tsv", "DEV": tiny_data_dir / "dev.tsv", "MISSING": tmp_path / "missing.tsv"}
    args = [str(names.get(a, a)) for a in args]
    assert main(["prune", str(tiny_teacher_dir), *args, "--out", str(out), "--no-progress"]) == 2
    assert needle in _error(capsys)
    assert not out.exists() and not (tmp_path / ".out.partial").exists()


def test_bad_model_and_existing_output(tiny_teacher_dir, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["prune", str(tmp_path / "no" / "model"), "--sparsity", "0.5", "--out", str(out)]) == 2
    assert "no such model folder" in _error(capsys)
    assert main(["prune", "--sparsity", "0.5", "--out", str(out)]) == 2
    assert "a model to prune is required" in _error(capsys)
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    assert main(["prune", str(tiny_teacher_dir), "--sparsity", "0.5", "--out", str(out)]) == 2
    assert "--overwrite" in _error(capsys)
    assert (out / "keep.txt").read_text() == "mine"


def test_help_lists_the_verb_and_every_method(capsys):
    assert main(["--help"]) == 0
    assert "prune" in capsys.readouterr().out
    assert main(["prune", "--help"]) == 0
    text = capsys.readouterr().out
    for flag in ("--sparsity", "--scope", "--rounds", "--rewind-step", "--keep-heads", "--keep-ffn", "--keep-layers",
                 "--prune-every", "--masks", "--recover", "--alpha-kd"):
        assert text.count(flag + " ") >= 1, flag


def test_prune_is_a_plain_function_beside_the_pruning_package(tiny_teacher_dir, tmp_path):
    import inspect

    import protege
    import protege.pruning
    import protege.recipes.prune  # noqa: F401  (importing the recipe module must not shadow the verb)

    assert inspect.isfunction(protege.prune) and protege.pruning.MagnitudeConfig is protege.pruning.config.MagnitudeConfig
    metrics = protege.prune(str(tiny_teacher_dir), method="magnitude", sparsity=0.5, speed=False, progress=False,
                            out=str(tmp_path / "p"))
    assert metrics["pruning"]["sparsity"] == pytest.approx(0.5, abs=1e-4)
    with pytest.raises(TypeError):
        protege.pruning.prune_(None, object())
    assert protege.prune_ is protege.pruning.prune_


def test_multi_process_launch_is_refused_before_anything_is_written(tiny_teacher_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    out = tmp_path / "p"
    assert main(["prune", str(tiny_teacher_dir), "--method", "magnitude", "--sparsity", "0.3", "--out", str(out), *FAST]) == 2
    assert "one process" in _error(capsys) and not out.exists() and not (tmp_path / ".p.partial").exists()
