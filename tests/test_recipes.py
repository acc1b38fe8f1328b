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
