"""Experiment 1's other sharing rows trained to the plateau over seeds 0-2
(docs/results/conll2003.md): each such row is kept in a folder of its own,
``docs/results/conll2003-paper/plateau/epochs-80-ROW``, beside copies of single-task training's
plateau runs, and its section's table and prose are written by hand from that folder's
``comparison.json`` and ``results.json``, the 20-epoch runs' and hard sharing's plateau runs'.
A rerun kept without its prose updated fails here."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

import pytest

import md_tables
from md_tables import table

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "docs" / "results" / "conll2003-paper"
DOC = ROOT / "docs" / "results" / "conll2003.md"
TASKS = ("pos", "chunk", "ner")
SEEDS = (0, 1, 2)
# the paper's Table 3, Exp1, in points: the row minus single task / minus hard sharing
PAPER_SOFT = {
    "pos": (0.07, 95.16 - 95.34),
    "chunk": (0.79, 90.71 - 90.92),
    "ner": (-0.01, 89.35 - 88.68),
}
PAPER_HIERARCHICAL = {
    "pos": (95.09 - 95.09, 95.09 - 95.34),
    "chunk": (90.89 - 89.92, 90.89 - 90.92),
    "ner": (89.30 - 89.36, 89.30 - 88.68),
}

Scores = dict[str, list[float]]  # task -> the test score of each seed


def seeds_of(path: Path) -> dict[str, Scores]:
    """mechanism -> task -> the test score of each seed, from a ``comparison.json``."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {
        row["mechanism"]: {t: row["tasks"][t]["test_seeds"] for t in TASKS} for row in data["rows"]
    }


def points(a: float, b: float) -> str:
    return f"{100 * (a - b):+.2f}"


def mean_gap(ours: Scores, theirs: Scores, task: str) -> str:
    return points(statistics.mean(ours[task]), statistics.mean(theirs[task]))


def result(run: Path) -> Any:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


def run_of(folder: Path, seed: int) -> Path:
    """A seed's run in a kept comparison: seed 0 in the one-seed layout, the others in
    ``seed-N``."""
    return folder if seed == 0 else folder / f"seed-{seed}"


@pytest.mark.parametrize(
    ("row", "name", "heading", "paper"),
    [
        ("soft", "soft", "#### Soft sharing at the plateau: seeds 0, 1 and 2", PAPER_SOFT),
        (
            "hierarchical",
            "hierarchical",
            "#### Hierarchical sharing at the plateau: seeds 0, 1 and 2",
            PAPER_HIERARCHICAL,
        ),
        # Table 3 has no cross-stitch row: its section says so instead
        (
            "cross_stitch",
            "cross-stitch",
            "#### Cross-stitch at the plateau: seeds 0, 1 and 2",
            None,
        ),
    ],
)
def test_a_rows_three_seed_plateau_table_is_the_kept_runs(
    row: str, name: str, heading: str, paper: dict[str, tuple[float, float]] | None
) -> None:
    kept = PAPER / "plateau" / f"epochs-80-{row}"
    body = md_tables.section(DOC.read_text(encoding="utf-8"), heading)
    text = " ".join(body.split())
    rows = table(body, "| test | POS acc |")
    plateau = seeds_of(kept / "comparison.json")
    twenty = seeds_of(PAPER / "runs" / "comparison.json")
    hard = seeds_of(PAPER / "plateau" / "epochs-80" / "comparison.json")
    # the single-task runs beside it are the copies of the kept plateau runs, seed by seed
    assert (
        plateau["single"] == seeds_of(PAPER / "plateau" / "epochs-80" / "comparison.json")["single"]
    )
    for label, scores in (("single task", plateau["single"]), (f"{name} sharing", plateau[row])):
        for task, cell in zip(TASKS, rows[label], strict=True):
            expected = " / ".join(f"{s:.4f}" for s in scores[task])
            assert cell == expected + f"; {statistics.mean(scores[task]):.4f}", (label, task)
    for i, task in enumerate(TASKS):
        pairs = zip(plateau[row][task], plateau["single"][task], strict=True)
        by_seed = " / ".join(points(a, b) for a, b in pairs)
        assert rows[f"{name} minus single, seed by seed (points)"][i] == by_seed, task
        means = f"{mean_gap(plateau[row], plateau['single'], task)} / "
        means += mean_gap(twenty[row], twenty["single"], task)
        assert (
            rows[f"{name} minus single, means: at the plateau / at 20 epochs (points)"][i] == means
        )
        against_hard = mean_gap(plateau[row], hard["hard"], task)
        assert (
            rows[f"{name} minus hard sharing, means at the plateau (points)"][i] == against_hard
        ), task
        if paper is None:
            continue
        single, minus_hard = paper[task]
        assert rows[f"paper: {name} minus single / minus hard (points)"][i] == (
            f"{single:+.2f} / {minus_hard:+.2f}"
        ), task
    if paper is None:
        assert not any(label.startswith("paper:") for label in rows)
        assert f"The paper's Table 3 has no {name} row" in text
    ahead = sum(
        a > b for t in TASKS for a, b in zip(plateau[row][t], plateau["single"][t], strict=True)
    )
    assert f"({ahead} of 9 seed-and-task pairs ahead;" in text
    runs = [result(run_of(kept / row, s)) for s in SEEDS]
    for seed, run in zip(SEEDS, runs, strict=True):
        assert run["seed"] == seed and run["mechanism"] == row
        config = (run_of(kept / row, seed) / "config.toml").read_text(encoding="utf-8")
        assert "\nepochs = 80\n" in config and f"\nseed = {seed}\n" in config, seed
        assert run["best_epoch"] + 5 == run["epochs_run"] < 80, seed  # ended by the early stop
    epochs = [f"{r['best_epoch']} / {r['epochs_run']}" for r in runs]
    assert (
        f"(best epoch / epochs run: seed 1 {epochs[1]}, seed 2 {epochs[2]}; "
        f"seed 0, above, {epochs[0]})" in text
    )
    seconds = [f"{r['train_seconds']:,.0f}" for r in runs[1:]]
    assert f"{seconds[0]} and {seconds[1]} s of training" in text
    # the docs' accounts of it: Experiment 1's bullet (docs/experiments.md), the README's Status
    pages = [ROOT / "README.md", ROOT / "docs" / "experiments.md"]
    readme = " ".join(" ".join(p.read_text(encoding="utf-8") for p in pages).split())
    stops = ", ".join(str(r["epochs_run"]) for r in runs[:2]) + f" and {runs[2]['epochs_run']}"
    assert f"{name.capitalize()} sharing, seeds 0-2 (early stops at epochs {stops})" in readme
    at_plateau = [mean_gap(plateau[row], plateau["single"], t) for t in TASKS]
    at_20 = [mean_gap(twenty[row], twenty["single"], t) for t in TASKS]
    assert (
        f"{at_plateau[0]}, {at_plateau[1]} and {at_plateau[2]} points on the means "
        f"(POS, chunking, NER; at 20 epochs {at_20[0]}, {at_20[1]} and {at_20[2]})" in readme
    )


def train_losses(run: Path) -> dict[int, dict[str, float]]:
    """A run's training loss per task (without any penalty) by epoch, from its
    ``metrics.jsonl``."""
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return {r["epoch"]: r["train_loss"] for r in rows if "dev" in r}


def test_soft_sharings_training_losses_stay_above_single_task_trainings() -> None:
    kept = PAPER / "plateau" / "epochs-80-soft"
    text = " ".join(
        md_tables.section(
            DOC.read_text(encoding="utf-8"), "#### Soft sharing at the plateau: seeds 0, 1 and 2"
        ).split()
    )
    last: dict[str, tuple[list[float], list[float]]] = {t: ([], []) for t in TASKS}
    for seed in SEEDS:
        soft = train_losses(run_of(kept / "soft", seed))
        for task in TASKS:
            single = train_losses(run_of(kept / "single", seed) / task)
            both = sorted(set(soft) & set(single))
            assert all(soft[e][task] > single[e][task] for e in both), (seed, task)
            last[task][0].append(soft[both[-1]][task])
            last[task][1].append(single[both[-1]][task])
    for task, name in (("chunk", "chunking"), ("ner", "NER"), ("pos", "POS")):
        ours, theirs = last[task]
        assert (
            f"{min(ours):.3f} to {max(ours):.3f} against {min(theirs):.3f} to {max(theirs):.3f} "
            f"for {name}" in text
        ), task


def test_the_soft_weight_probe_row_is_its_kept_run():
    """Soft sharing's probe at weight 0.0001 (seed 0, trained to its 80-epoch cap) beside the
    recipe's weight's seed 0 and single-task training's, as kept."""
    probe = json.loads(
        (PAPER / "plateau" / "soft-w1e-4-probe" / "seed-0" / "results.json").read_text()
    )
    assert probe["soft"]["weights"] == [0.0001] and probe["seed"] == 0
    assert (probe["best_epoch"], probe["epochs_run"]) == (80, 80)
    other = PAPER / "plateau" / "epochs-80-other-rows"
    soft = json.loads((other / "soft" / "results.json").read_text())
    single = {t: json.loads((other / "single" / t / "results.json").read_text()) for t in TASKS}
    rows = table(DOC.read_text(encoding="utf-8"), "| test, seed 0, by soft sharing's weight |")
    ours = [round(probe["tasks"][t]["test"], 4) for t in TASKS]
    assert rows["soft sharing, weight 0.0001, 80 epochs (best 80)"] == [f"{v:.4f}" for v in ours]
    theirs = [round(soft["tasks"][t]["test"], 4) for t in TASKS]
    alone = [round(single[t]["tasks"][t]["test"], 4) for t in TASKS]
    assert rows["soft sharing, weight 0.001, at the plateau (best 52)"] == [
        f"{v:.4f}" for v in theirs
    ]
    assert soft["best_epoch"] == 52
    gaps = [
        f"{100 * (a - b):+.2f} / {100 * (a - c):+.2f}"
        for a, b, c in zip(ours, alone, theirs, strict=True)
    ]
    assert rows["weight 0.0001 minus single / minus weight 0.001 (points)"] == gaps
