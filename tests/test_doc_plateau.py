"""The plateau tables of Experiment 1 (docs/results/conll2003.md and docs/experiments.md) are
written by hand from the kept runs in ``docs/results/conll2003-paper/plateau/epochs-80``: their
test scores, gaps in points and best epochs must be what those runs' ``comparison.json`` and
``results.json`` say, so that a rerun kept without its prose updated fails here."""

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
KEPT = PAPER / "plateau" / "epochs-80"
DOC = ROOT / "docs" / "results" / "conll2003.md"
SECTION = "### Trained to the plateau: seeds 0, 1 and 2 at cap 80"
TASKS = ("pos", "chunk", "ner")
ROWS = {"single task": "single", "hard sharing": "hard", "sparse sharing": "sparse"}
# the rows trained to the plateau over seeds 0-2 later, each kept in plateau/epochs-80-ROW
LATER = {
    "soft sharing": "soft",
    "hierarchical sharing": "hierarchical",
    "cross-stitch sharing": "cross_stitch",
}


def seeds_of(path: Path) -> dict[str, dict[str, list[float]]]:
    """mechanism -> task -> the test score of each seed, from a ``comparison.json``."""
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return {
        row["mechanism"]: {t: row["tasks"][t]["test_seeds"] for t in TASKS} for row in data["rows"]
    }


def points(a: float, b: float) -> str:
    return f"{100 * (a - b):+.2f}"


def gap_of_means(scores: dict[str, dict[str, list[float]]], mechanism: str, task: str) -> str:
    return points(statistics.mean(scores[mechanism][task]), statistics.mean(scores["single"][task]))


def section() -> str:
    return md_tables.section(DOC.read_text(encoding="utf-8"), SECTION)


@pytest.fixture(scope="module")
def plateau() -> dict[str, dict[str, list[float]]]:
    return seeds_of(KEPT / "comparison.json")


@pytest.fixture(scope="module")
def twenty() -> dict[str, dict[str, list[float]]]:
    return seeds_of(PAPER / "runs" / "comparison.json")


def test_the_test_scores_and_gaps_are_the_kept_runs(
    plateau: dict[str, dict[str, list[float]]], twenty: dict[str, dict[str, list[float]]]
) -> None:
    rows = table(section(), "| test | POS acc |")
    for name, mechanism in ROWS.items():
        for task, cell in zip(TASKS, rows[name], strict=True):
            scores = plateau[mechanism][task]
            mean = statistics.mean(scores)
            assert cell == " / ".join(f"{s:.4f}" for s in scores) + f"; {mean:.4f}", (name, task)
    for mechanism in ("hard", "sparse"):
        by_seed = rows[f"{mechanism} minus single, seed by seed (points)"]
        means = rows[f"{mechanism} minus single, means: at the plateau / at 20 epochs"]
        for i, task in enumerate(TASKS):
            ours, single = plateau[mechanism][task], plateau["single"][task]
            gaps = [points(a, b) for a, b in zip(ours, single, strict=True)]
            assert by_seed[i] == " / ".join(gaps), (mechanism, task)
            expected = f"{gap_of_means(plateau, mechanism, task)} / "
            assert means[i] == expected + gap_of_means(twenty, mechanism, task), (mechanism, task)
    against_hard = rows["sparse minus hard, seed by seed (points)"]
    for i, task in enumerate(TASKS):
        pairs = zip(plateau["sparse"][task], plateau["hard"][task], strict=True)
        assert against_hard[i] == " / ".join(points(a, b) for a, b in pairs), task


def test_the_best_epochs_are_the_kept_runs() -> None:
    rows = table(section(), "| seed | single-task POS |")
    for seed in (0, 1, 2):
        where = "" if seed == 0 else f"seed-{seed}/"
        runs = [f"single/{where}{t}" for t in TASKS] + [f"hard/{where}", f"sparse/{where}"]
        for run, cell in zip(runs, rows[str(seed)], strict=True):
            result = json.loads((KEPT / run / "results.json").read_text(encoding="utf-8"))
            assert cell == f"{result['best_epoch']} / {result['epochs_run']}", (seed, run)


def test_the_experiments_page_rows_are_the_kept_runs(
    plateau: dict[str, dict[str, list[float]]], twenty: dict[str, dict[str, list[float]]]
) -> None:
    rows = table(
        (ROOT / "docs" / "experiments.md").read_text(encoding="utf-8"), "| test, at the plateau |"
    )
    # the rows trained later over seeds 0-2 are kept in folders of their own
    for mechanism in LATER.values():
        later = seeds_of(PAPER / "plateau" / f"epochs-80-{mechanism}" / "comparison.json")
        assert later["single"] == plateau["single"]  # set against the same single-task runs
        plateau = {**plateau, mechanism: later[mechanism]}
    for name, cells in rows.items():
        mechanism = next(m for prefix, m in {**ROWS, **LATER}.items() if name.startswith(prefix))
        means = ", ".join(f"{statistics.mean(twenty[mechanism][t]):.4f}" for t in TASKS)
        assert name.endswith(f"(20 epochs: {means})"), name
        for task, cell in zip(TASKS, cells, strict=True):
            scores, single = plateau[mechanism][task], plateau["single"][task]
            expected = f"{statistics.mean(scores):.4f}"
            if mechanism != "single":
                gaps = ", ".join(points(a, b) for a, b in zip(scores, single, strict=True))
                expected += f" ({gaps})"
            assert cell == expected, (name, task)
    assert len(rows) == len(ROWS) + len(LATER)


OTHER = PAPER / "plateau" / "epochs-80-other-rows"  # seed 0's other rows, all ended


def result(run: Path) -> Any:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("row", "name", "heading"),
    [
        ("soft", "soft", "#### Soft sharing at the plateau (seed 0)"),
        ("hierarchical", "hierarchical", "#### Hierarchical sharing at the plateau (seed 0)"),
        ("cross_stitch", "cross-stitch", "#### Cross-stitch at the plateau (seed 0)"),
    ],
)
def test_a_seed_0_plateau_table_is_the_kept_runs(row: str, name: str, heading: str) -> None:
    """A row's seed-0 plateau run against single-task training's seed-0 plateau runs, and both
    rows' 20-epoch runs, from their ``results.json``."""
    rows = table(md_tables.section(DOC.read_text(encoding="utf-8"), heading), "| test, seed 0 |")
    for i, task in enumerate(TASKS):
        ours = result(OTHER / row)["tasks"][task]["test"]
        single = result(OTHER / "single" / task)["tasks"][task]["test"]
        ours20 = result(PAPER / "runs" / row)["tasks"][task]["test"]
        single20 = result(PAPER / "runs" / "single" / task)["tasks"][task]["test"]
        assert rows["single task at the plateau"][i] == f"{single:.4f}"
        assert rows[f"{name} sharing at the plateau"][i] == f"{ours:.4f}"
        gaps = f"{points(ours, single)} / {points(ours20, single20)}"
        assert rows[f"{name} minus single: at the plateau / at 20 epochs (points)"][i] == gaps


@pytest.mark.parametrize(
    ("row", "heading", "states_seconds"),
    [
        ("hierarchical", "#### Hierarchical sharing at the plateau (seed 0)", False),
        ("cross_stitch", "#### Cross-stitch at the plateau (seed 0)", True),
    ],
)
def test_a_row_s_epochs_are_the_kept_run_s(row: str, heading: str, states_seconds: bool) -> None:
    text = " ".join(md_tables.section(DOC.read_text(encoding="utf-8"), heading).split())
    kept = result(OTHER / row)
    assert f"after epoch {kept['epochs_run']}, its best dev epoch {kept['best_epoch']}" in text
    if states_seconds:
        assert f"{round(kept['train_seconds']):,} s of training" in text
