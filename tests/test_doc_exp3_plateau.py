"""The table of Experiment 3's plateau section (docs/results/exp3.md) is written by hand from the
kept runs in ``docs/results/exp3-paper/plateau/epochs-80`` and the 20-epoch runs in
``docs/results/exp3-paper/runs``: each cell must be what their ``results.json`` say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from md_tables import section, table

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "docs" / "results" / "exp3-paper"
DOC = ROOT / "docs" / "results" / "exp3.md"
SECTION = "### Trained to the plateau: seed 0 (seeds 1 and 2 under way)"
TASKS = ("pos", "chunk", "ner")
ROWS = ("hard", "sparse", "cross_stitch", "hierarchical")  # the 20-epoch sharing rows


def results(run: Path) -> Any:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


def plateau_run(task: str) -> Path:
    """Seed 0's single-task run of ``task``, in whichever layout the comparison wrote it."""
    one = PAPER / "plateau" / "epochs-80" / "single"
    several = one / "seed-0" / task
    return several if several.is_dir() else one / task


def test_the_single_task_plateau_table_is_the_kept_runs() -> None:
    rows = table(section(DOC.read_text(encoding="utf-8"), SECTION), "| single task, seed 0")
    capped, plateau, epochs = [], [], []
    for task in TASKS:
        short = results(PAPER / "runs" / "single" / task)
        long = results(plateau_run(task))
        assert short["seed"] == long["seed"] == 0
        capped.append(f"{100 * short['tasks'][task]['test']:.2f}")
        plateau.append(f"{100 * long['tasks'][task]['test']:.2f}")
        epochs.append(f"{long['best_epoch']} / {long['epochs_run']}")
    assert rows["cap 20 (the table above)"] == capped
    assert rows["cap 80"] == plateau
    assert rows["best epoch / epochs run, cap 80"] == epochs
    for task in TASKS:
        config = (plateau_run(task) / "config.toml").read_text(encoding="utf-8")
        assert "\nepochs = 80\n" in config and "\nseed = 0\n" in config, task


def test_the_chunking_gain_and_the_rows_it_passes_are_the_kept_runs() -> None:
    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    short = results(PAPER / "runs" / "single" / "chunk")["tasks"]["chunk"]["test"]
    long = results(plateau_run("chunk"))["tasks"]["chunk"]["test"]
    assert f"gained {100 * (long - short):.2f} points: {100 * long:.2f}," in body
    shared = [results(PAPER / "runs" / r)["tasks"]["chunk"]["test"] for r in ROWS]
    assert f"({100 * min(shared):.2f} to {100 * max(shared):.2f})" in body
    assert max(shared) < long
    assert f"{93.71 - 100 * long:.2f} under the paper's single-task 93.71" in body


@pytest.mark.parametrize("row, name", [("hard", "hard sharing"), ("sparse", "sparse sharing")])
def test_a_sharing_rows_plateau_table_is_the_kept_runs(row: str, name: str) -> None:
    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, f"| {name}, seed 0")
    ours = results(PAPER / "plateau" / "epochs-80" / row)
    ours20 = results(PAPER / "runs" / row)
    assert ours["seed"] == ours20["seed"] == 0
    assert f"(best epoch {ours['best_epoch']} of {ours['epochs_run']}," in body
    cells, gaps = [], []
    for task in TASKS:
        single = results(plateau_run(task))["tasks"][task]["test"]
        single20 = results(PAPER / "runs" / "single" / task)["tasks"][task]["test"]
        test, test20 = ours["tasks"][task]["test"], ours20["tasks"][task]["test"]
        cells.append(f"{100 * test:.2f}")
        gaps.append(f"{100 * (test - single):+.2f} / {100 * (test20 - single20):+.2f}")
    assert rows["cap 80"] == cells
    assert rows["minus single task: at the plateau / at 20 epochs (points)"] == gaps


def test_sparse_sharings_plateau_is_ahead_of_hard_sharing_by_the_table_and_searched_as_at_20() -> (
    None
):
    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, "| sparse sharing, seed 0")
    sparse = results(PAPER / "plateau" / "epochs-80" / "sparse")
    hard = results(PAPER / "plateau" / "epochs-80" / "hard")
    gaps = [f"{100 * (sparse['tasks'][t]['test'] - hard['tasks'][t]['test']):+.2f}" for t in TASKS]
    assert rows["minus hard sharing, at the plateau (points)"] == gaps
    # the search is the 20-epoch run's: only the subnets' training after it ran longer
    assert sparse["sparse"] == results(PAPER / "runs" / "sparse")["sparse"]
    pos, chunk, ner = (f"{sparse['sparse']['density'][t]:.2f}" for t in TASKS)
    assert f"POS {pos}, chunking {chunk}, NER {ner} of the weights" in body
    assert f"overlap ratio {sparse['sparse']['overlap_ratio']:.3f})" in body
