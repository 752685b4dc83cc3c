"""``recipes/negative_transfer/mask_origin.py``: the share of each task's selected mask that
another task keeps too, and the share among the rewind point's largest weights, read from a
tiny sparse run's checkpoints."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.app.run import run
from mtlshare.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "negative_transfer" / "mask_origin.py"
TINY = [
    "mechanism=sparse",
    "train.epochs=1",
    "data.n_train=40",
    "data.n_dev=40",
    "data.n_test=40",
    "data.n_tasks=2",
    "sparse.round_steps=5",
    "sparse.warmup_steps=5",
    "sparse.alpha=0.5",
    "trunk.hidden=[16, 16]",
]


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mask_origin", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sparse_run(out: Path, *extra: str) -> dict:
    cfg = load_config(ROOT / "recipes" / "demo" / "demo.toml", [*TINY, *extra])
    run(cfg, out, progress=False)
    return json.loads((out / "results.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pruned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("origin") / "run"
    return out, sparse_run(
        out, "sparse.target_density=0.3", "sparse.select=density", "sparse.select_density=0.3"
    )


def test_largest_ranks_magnitudes_over_every_tensor_together() -> None:
    weights = {"a": torch.tensor([3.0, -5.0]), "b": torch.tensor([[1.0, 4.0]])}
    top = script().largest(weights, 2)
    assert top["a"].tolist() == [False, True] and top["b"].tolist() == [[False, True]]
    assert [int(m.sum()) for m in script().largest(weights, 4).values()] == [2, 2]
    assert [int(m.sum()) for m in script().largest(weights, 0).values()] == [0, 0]


def test_the_shares_agree_with_the_runs_own_densities_and_overlap(pruned) -> None:
    out, results = pruned
    rows = script().mask_origin(out)
    assert [r[0] for r in rows] == list(results["sparse"]["density"])
    for task, dens, _, among in rows:
        assert dens == pytest.approx(results["sparse"]["density"][task], abs=1e-4)
        assert 0.0 <= among < 1.0  # the rounds trained: not only the rewind point's largest
    (_, d1, s1, _), (_, d2, s2, _) = rows
    # Eq. 4 for two masks: |A & B| / |A | B|; the shares are |A & B| / |A| and / |B|
    both = s1 * d1
    assert both == pytest.approx(s2 * d2)
    ratio = results["sparse"]["overlap_ratio"]
    assert both / (d1 + d2 - both) == pytest.approx(ratio, abs=1e-3)
    assert d1 < 0.5  # pruned: a share of 1 would not be forced


def test_an_unpruned_mask_is_all_shared_and_all_among_the_largest(tmp_path) -> None:
    out = tmp_path / "run"
    sparse_run(out, "sparse.select=round", "sparse.select_round=0")
    rows = script().mask_origin(out)
    assert [(d, s, a) for _, d, s, a in rows] == [(1.0, 1.0, 1.0)] * 2


def test_masks_of_rounds_that_move_no_weight_are_the_rewind_points_largest(tmp_path) -> None:
    """With a learning rate too small to change a float32 weight, every round prunes the
    rewind point's own smallest weights: each mask is exactly its largest ones."""
    out = tmp_path / "run"
    sparse_run(out, "train.lr=1e-30", "sparse.select=density", "sparse.select_density=0.3")
    rows = script().mask_origin(out)
    assert all(dens < 0.5 and among == 1.0 for _, dens, _, among in rows)


def test_the_command_prints_a_table_and_refuses_a_run_without_checkpoints(pruned, tmp_path):
    out, _ = pruned
    done = subprocess.run([sys.executable, str(SCRIPT), str(out)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == script().HEADER.splitlines() and len(lines) == 4
    assert lines[2].startswith(f"| {out} | t1 | ")
    bare = tmp_path / "bare"
    bare.mkdir()
    done = subprocess.run([sys.executable, str(SCRIPT), str(bare)], capture_output=True, text=True)
    assert (done.returncode, done.stdout) == (2, "")
    assert (
        done.stderr.strip() == f"mask_origin: {bare}/checkpoint/best: missing (a sparse run's own)"
    )
