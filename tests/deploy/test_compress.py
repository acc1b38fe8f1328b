"""protege compress: a budget picks a verified winner, an impossible one exits 1, an interrupted run resumes."""

import json

import pytest

from protege.cli.main import main
from protege.engine.finish import SCHEMA_PATH


def _argv(tiny_teacher_dir, tiny_data_dir, out, candidates, *budget):
    return ["compress", "--teacher", str(tiny_teacher_dir), "--train", str(tiny_data_dir / "train.tsv"), "--eval",
            str(tiny_data_dir / "dev.tsv"), "--out", str(out), "--candidates", str(candidates), "--no-include-teacher",
            "--variants", "pytorch-fp32,onnx-int8-dynamic", "--max-steps", "2", "--batch-size", "8", "--max-length", "32",
            "--speed-seconds", "0.05", "--no-progress", *budget]


def _forbid(monkeypatch, module, name):
    monkeypatch.setattr(module, name, lambda *a, **k: pytest.fail(f"{name} ran again instead of reusing its folder"))


def test_default_grid_is_small_and_explained():
    from protege.recipes.compress import default_grid

    grid = default_grid(12)
    assert [(c["layers"], c["ffn"]) for c in grid] == [(6, 1.0), (6, 0.5), (4, 1.0), (4, 0.5), (2, 1.0), (2, 0.5)]
    assert [c["layers"] for c in default_grid(4)] == [2, 2, 1, 1]
    assert default_grid(1) == []


def test_budgets_pick_by_their_rule():
    from protege.recipes.compress import pick_winner

    def point(name, quality, speedup, p50, parity=True):
        return {"name": name, "quality": quality, "retention": quality / 0.9, "speedup": speedup, "latency_ms_p50": p50,
                "parity": parity}

    points = [point("big", 0.9, 2.0, 5.0), point("mid", 0.88, 6.0, 2.0), point("tiny", 0.8, 12.0, 1.0),
              point("broken", 0.95, 20.0, 0.5, parity=False)]
    assert pick_winner(points, {"kind": "target_speedup", "value": 5}) == ("mid", "tiny")
    assert pick_winner(points, {"kind": "target_latency_ms", "value": 1.5}) == ("tiny", "tiny")
    assert pick_winner(points, {"kind": "min_retention", "value": 0.97}) == ("mid", "big")
    assert pick_winner(points, {"kind": "target_speedup", "value": 50}) == (None, "tiny")  # never the failing variant


def test_impossible_budget_exits_1_then_a_resumed_run_reuses_every_stage(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys,
                                                                          monkeypatch):
    import jsonschema

    import protege.recipes.distill.api as distill_api
    import protege.recipes.export as export_recipe

    cands = tmp_path / "c.yaml"
    cands.write_text("- layers: 1\n")
    out = tmp_path / "ship"
    assert main(_argv(tiny_teacher_dir, tiny_data_dir, out, cands, "--target-speedup", "1000000")) == 1
    captured = capsys.readouterr()
    assert "no candidate meets the budget" in captured.err and "closest: L1-ffn100/" in captured.err
    assert "L1-ffn100/onnx-int8-dynamic" in captured.out and "closest" in captured.out
    staging = tmp_path / ".ship.partial"
    assert not out.exists() and (staging / "candidates" / "L1-ffn100" / "export" / "metrics.json").is_file()

    # the same stages under other training settings would be stale: refused
    argv = _argv(tiny_teacher_dir, tiny_data_dir, out, cands, "--min-retention", "0.5", "--resume")
    assert main([a if a != "2" else "3" for a in argv]) == 2
    assert "max_steps" in capsys.readouterr().err

    _forbid(monkeypatch, distill_api, "distill")
    _forbid(monkeypatch, export_recipe, "export")
    assert main(argv) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    jsonschema.validate(metrics, json.loads(SCHEMA_PATH.read_text()))
    winner = metrics["compress"]["winner"]
    assert winner.startswith("L1-ffn100/") and metrics["export"]["recommended"] == winner.split("/")[1]
    assert (out / winner.split("/")[1] / "protege_export.json").is_file() and not staging.exists()
    assert "How it was chosen" in (out / "README.md").read_text()

    capsys.readouterr()
    report = tmp_path / "e.json"
    assert main(["evaluate", str(out), "--eval", str(tiny_data_dir / "dev.tsv"), "--no-speed", "--max-length", "32",
                 "--out", str(report)]) == 0  # the shipped folder is what evaluate measures
    assert json.loads(report.read_text())["variant"] == metrics["variant"]


def test_an_interrupted_run_resumes_from_its_finished_stages(tiny_teacher_dir, tiny_data_dir, tmp_path, capsys, monkeypatch):
    import protege.recipes.distill.api as distill_api
    import protege.recipes.prune as prune_recipe

    cands = tmp_path / "c.yaml"
    cands.write_text("- layers: 1\n- {layers: 2, ffn: 0.5}\n")
    out = tmp_path / "ship"
    real_prune = prune_recipe.prune

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(prune_recipe, "prune", interrupted)
    assert main(_argv(tiny_teacher_dir, tiny_data_dir, out, cands, "--target-speedup", "0.001")) == 130
    assert "--resume" in capsys.readouterr().err
    staging = tmp_path / ".ship.partial" / "candidates"
    assert (staging / "L1-ffn100" / "export" / "metrics.json").is_file()
    assert (staging / "L2-ffn50" / "student" / "metrics.json").is_file() and not (staging / "L2-ffn50" / "pruned").exists()

    # without --resume the kept work is not thrown away silently
    assert main(_argv(tiny_teacher_dir, tiny_data_dir, out, cands, "--target-speedup", "0.001")) == 2
    assert "--resume" in capsys.readouterr().err

    calls = []
    monkeypatch.setattr(prune_recipe, "prune", lambda *a, **k: calls.append("prune") or real_prune(*a, **k))
    _forbid(monkeypatch, distill_api, "distill")
    assert main(_argv(tiny_teacher_dir, tiny_data_dir, out, cands, "--target-speedup", "0.001", "--resume")) == 0
    assert calls == ["prune"]
    metrics = json.loads((out / "metrics.json").read_text())
    assert {p["candidate"] for p in metrics["compress"]["candidates"]} == {"L1-ffn100", "L2-ffn50"}
    assert json.loads((out / "candidates" / "L2-ffn50" / "pruned" / "config.json").read_text())["intermediate_size"] == 32
    best = max((p for p in metrics["compress"]["candidates"] if p["parity"]), key=lambda p: (p["quality"], p["speedup"]))
    assert metrics["compress"]["winner"] == best["name"]


def test_candidates_with_one_layer_count_share_one_distillation(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch):
    import protege.recipes.distill.api as distill_api

    cands = tmp_path / "c.yaml"
    cands.write_text("- layers: 1\n- {layers: 1, ffn: 0.5}\n")
    out = tmp_path / "ship"
    real, calls = distill_api.distill, []
    monkeypatch.setattr(distill_api, "distill", lambda *a, **k: calls.append(k["out"]) or real(*a, **k))
    assert main(_argv(tiny_teacher_dir, tiny_data_dir, out, cands, "--target-speedup", "0.001")) == 0
    assert len(calls) == 1 and calls[0].endswith("L1-ffn100/student")
    shared = out / "candidates" / "L1-ffn50"
    assert not (shared / "student").exists()
    pruned = json.loads((shared / "pruned" / "metrics.json").read_text())
    assert pruned["config"]["model"].endswith("L1-ffn100/student")
