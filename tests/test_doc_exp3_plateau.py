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


def single_runs(seed: int) -> dict[str, Any]:
    """Seed ``seed``'s single-task results at the plateau, by task."""
    one = PAPER / "plateau" / "epochs-80" / "single"
    if seed == 0:
        return {t: results(plateau_run(t)) for t in TASKS}
    return {t: results(one / f"seed-{seed}" / t) for t in TASKS}


def test_the_three_seed_single_task_table_is_the_kept_runs() -> None:
    import statistics

    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, "| single task at the plateau, test (%)")
    runs = {seed: single_runs(seed) for seed in (0, 1, 2)}
    scores = {s: [100 * runs[s][t]["tasks"][t]["test"] for t in TASKS] for s in runs}
    for seed in runs:
        assert all(r["seed"] == seed for r in runs[seed].values())
        assert rows[f"seed {seed}"] == [f"{v:.2f}" for v in scores[seed]]
    means = [statistics.mean(scores[s][i] for s in runs) for i in range(3)]
    sds = [statistics.stdev(scores[s][i] for s in runs) for i in range(3)]
    assert rows["mean ± sd"] == [f"{m:.2f} ± {d:.2f}" for m, d in zip(means, sds, strict=True)]
    short = [
        statistics.mean(
            100
            * results(PAPER / "runs" / "single" / (f"seed-{s}/{t}" if s else t))["tasks"][t]["test"]
            for s in runs
        )
        for t in TASKS
    ]
    assert rows["at 20 epochs, mean of seeds 0-2 (the table above)"] == [f"{v:.2f}" for v in short]
    assert rows["best epoch / epochs run, seeds 1 and 2"] == [
        ", ".join(f"{runs[s][t]['best_epoch']} / {runs[s][t]['epochs_run']}" for s in (1, 2))
        for t in TASKS
    ]
    for seed in (1, 2):
        for t in TASKS:
            config = PAPER / "plateau" / "epochs-80" / "single" / f"seed-{seed}" / t / "config.toml"
            text = config.read_text(encoding="utf-8")
            assert "\nepochs = 80\n" in text and f"\nseed = {seed}\n" in text, (seed, t)
    hard = results(PAPER / "plateau" / "epochs-80" / "hard")
    sparse = results(PAPER / "plateau" / "epochs-80" / "sparse")
    for row, name in ((hard, "hard sharing"), (sparse, "sparse sharing")):
        gaps = [100 * row["tasks"][t]["test"] - m for t, m in zip(TASKS, means, strict=True)]
        assert f"{name} {gaps[0]:+.2f}, {gaps[1]:+.2f} and {gaps[2]:+.2f}" in " ".join(body.split())
