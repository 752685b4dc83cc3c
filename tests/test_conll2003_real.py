"""Brief training on a slice of the real CoNLL-2003 files (``../shared/data/conll2003``): every
task's test metric must beat trivial baselines that always predict the task's most frequent
training tag, or its most frequent tag other than O, scored by the same metric. Skipped when
the shared data is absent."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch

from mtlshare.app.build import build_problem
from mtlshare.app.run import train
from mtlshare.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "conll2003"
RECIPE = ROOT / "recipes" / "conll2003" / "quick.toml"

pytestmark = pytest.mark.skipif(
    not (DATA / "train.txt").is_file(),
    reason=f"the real CoNLL-2003 files are not at {DATA} (../shared/data beside the repository)",
)


def test_brief_training_beats_the_majority_tag_on_every_task(tmp_path):
    cfg = load_config(
        RECIPE,
        [
            f"data.train={DATA / 'train.txt'}",
            f"data.dev={DATA / 'dev.txt'}",
            f"data.test={DATA / 'test.txt'}",
            "data.train_sentences=800",
            "data.dev_sentences=200",
            "data.test_sentences=300",
            "data.word_dim=30",
            "data.char_filters=10",
            "trunk.hidden=[48]",
            "train.epochs=2",
            "train.batch_size=16",
        ],
    )
    problem = build_problem(cfg)
    run = train(cfg, tmp_path / "run", problem=problem, progress=False)
    for td in problem.tasks:
        counts = torch.bincount(td.train.y[td.train.y >= 0], minlength=td.task.out_dim)
        # trivial baselines: every token the most frequent tag, or the most frequent tag
        # other than "O" (for span tasks, where all-"O" scores 0)
        ranked = counts.argsort(descending=True).tolist()
        constants = [ranked[0], next(i for i in ranked if td.task.labels[i] != "O")]
        baseline = max(
            td.task.evaluate(torch.where(td.test.y >= 0, tag, td.test.y), td.test.y)
            for tag in constants
        )
        got = run.results["tasks"][td.task.name]["test"]
        assert math.isfinite(got)
        assert got > baseline + 0.05, (td.task.name, got, baseline)
