"""Every shipped recipe loads, and every mechanism its [compare] table lists builds on its data
(a few sentences of it), with its own overrides. Recipes reading ../shared/data skip when it is
absent."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlshare.app.build import build_model, build_problem
from mtlshare.app.compare import row_config
from mtlshare.config import SINGLE, SUBNET, load_config
from mtlshare.training.joint import check_joint

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "recipes").rglob("*.toml"))
SHARED = ROOT.parent / "shared" / "data"
CUT = {"train_sentences": 50, "dev_sentences": 20, "test_sentences": 20}  # a few sentences


def test_recipes_exist():
    names = {str(p.relative_to(ROOT / "recipes")) for p in RECIPES}
    for expected in (
        "conll2003/quick.toml",
        "conll2003/full.toml",
        "negative_transfer/quick.toml",
        "negative_transfer/full.toml",
    ):
        assert expected in names


@pytest.mark.parametrize("path", RECIPES, ids=lambda p: str(p.relative_to(ROOT / "recipes")))
def test_recipe_builds_every_listed_mechanism(path):
    cfg = load_config(path)
    if cfg.experiment != "train":
        return
    small = []
    if cfg.data_source == "conll":
        if not (SHARED / "conll2003" / "train.txt").is_file():
            pytest.skip(f"{SHARED / 'conll2003'} is absent")
        small = [f"data.{k}={n}" for k, n in CUT.items()]
        small.append("data.unseen_tags=map")
        for name, task in cfg.data.tasks.items():  # a task's own corpus is cut the same way
            if task.get("train"):
                small += [f"data.tasks.{name}.{k}={n}" for k, n in CUT.items()]
                if task.get("dev_from_train"):
                    small.append(f"data.tasks.{name}.dev_from_train=10")
    cfg = load_config(path, small)
    problem = build_problem(cfg, path.parent)
    for name in cfg.compare.mechanisms:
        if name in (SINGLE, SUBNET):
            continue
        row = row_config(cfg, name)
        model = build_model(row, problem)
        assert model.param_counts()["counted"] > 0
        if row.train.schedule == "joint":  # a weighting the model cannot take fails here
            check_joint(row.weighting.kind, model)
