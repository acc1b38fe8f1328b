"""Every shipped recipe is a valid config (torchtune's habit: one parametrised test over all)."""

from pathlib import Path

import pytest

from protege.recipes.distill.config import build_distill_config
from protege.utils.config import load_recipe

RECIPES = sorted((Path(__file__).resolve().parents[1] / "recipes").glob("*.yaml"))


def test_there_are_recipes():
    assert RECIPES


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: p.name)
def test_recipe_builds_a_valid_config(path):
    values = {"teacher": "t", "out": "o", **load_recipe(path)}
    if values.get("objective", "task") == "task":  # general objectives read --train-text instead of a labeled --train
        values.setdefault("train", "train.tsv")
    cfg = build_distill_config(values, source=str(path))
    assert cfg.losses.weights and any(cfg.losses.weights.values())


def test_relative_paths_in_a_recipe_resolve_against_its_folder(tiny_teacher_dir, tiny_data_dir, tmp_path, monkeypatch):
    """A recipe that names data beside itself works from any working directory."""
    import shutil

    from protege.cli.main import main

    folder = tmp_path / "project"
    folder.mkdir()
    shutil.copy(tiny_data_dir / "train.tsv", folder / "train.tsv")
    (folder / "r.yaml").write_text("train: train.tsv\nstudent_layers: [0, 2]\nmax_steps: 1\nmax_length: 32\n")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["distill", "--config", str(folder / "r.yaml"), "--teacher", str(tiny_teacher_dir), "--out", "s",
                 "--no-progress", "--no-speed"]) == 0
    assert (elsewhere / "s" / "model.safetensors").exists()
