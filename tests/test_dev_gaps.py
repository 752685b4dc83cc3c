"""``recipes/conll2003/dev_gaps.py``: each row's dev score minus single-task training's of the
same seed, at chosen epochs and between the best scores; and the tables kept in
docs/results are what it prints for the kept runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "conll2003" / "dev_gaps.py"
RESULTS = ROOT / "docs" / "results"


def gaps(*args: str | Path) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, str(SCRIPT), *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False)


def run(folder: Path, seed: int, dev: list[dict[str, float]], kept: int | None = None) -> None:
    """A run folder with its seed, one metrics line per epoch (a sparse run's search lines,
    which have no ``epoch``, before them) and, when ``kept`` is given, results that keep that
    epoch."""
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(f'mechanism = "hard"\nseed = {seed}\n')
    lines = [{"round": 0, "task": "a", "dev_score": 0.1}]
    lines += [{"dev": d, "epoch": e, "step": 10 * e} for e, d in enumerate(dev, 1)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if kept is not None:
        tasks = {t: {"metric": "accuracy", "higher_is_better": True} for t in dev[0]}
        (folder / "results.json").write_text(json.dumps({"best_epoch": kept, "tasks": tasks}))


def test_gaps_are_points_against_the_single_run_of_the_same_seed(tmp_path: Path) -> None:
    run(tmp_path / "single" / "seed-0" / "a", 0, [{"a": 0.5}, {"a": 0.6}, {"a": 0.7}], kept=3)
    run(tmp_path / "single" / "seed-1" / "a", 1, [{"a": 0.4}, {"a": 0.8}, {"a": 0.7}], kept=2)
    run(tmp_path / "single" / "seed-0" / "b", 0, [{"b": 0.2}], kept=1)
    run(tmp_path / "hard" / "seed-0", 0, [{"a": 0.6, "b": 0.1}, {"a": 0.65, "b": 0.3}], kept=1)
    run(tmp_path / "hard" / "seed-1", 1, [{"a": 0.45, "b": 0.9}, {"a": 0.7, "b": 0.9}])
    done = gaps(tmp_path, "--epochs", "1,3")
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "| row, task | epoch 1 | epoch 3 | best of each | kept epochs |",
        "|---|---:|---:|---:|---:|",
        # seed 0: +10 at epoch 1, best 65 against 70, kept 60 (epoch 1) against 70 (epoch 3);
        # seed 1: +5 at epoch 1, best 70 against 80, and no results: no kept epoch
        "| hard, a | +7.50 (+10.00 / +5.00) |  | -7.50 (-5.00 / -10.00) | -10.00 (-10.00 / n/a) |",
        # seed 1 has no single-task run of b
        "| hard, b | -10.00 (-10.00 / n/a) |  | +10.00 (+10.00 / n/a) | -10.00 (-10.00 / n/a) |",
    ]


@pytest.mark.parametrize(
    ("folder", "says"),
    [
        ("missing", "no metrics.jsonl below it"),
        ("hard-only", "no single-task runs to measure the rows against"),
        ("no-seed", "config.toml: no seed to read"),
        ("twice", "two runs of 'hard', seed 0, task 'a': hard and hard/seed-0"),
        ("lower", "'a' is scored lower-is-better"),
    ],
)
def test_bad_folders_are_one_line_and_exit_2(tmp_path: Path, folder: str, says: str) -> None:
    run(tmp_path / "hard-only" / "hard", 0, [{"a": 0.5}])
    run(tmp_path / "no-seed" / "single" / "a", 0, [{"a": 0.5}])
    (tmp_path / "no-seed" / "single" / "a" / "config.toml").write_text('mechanism = "single"\n')
    run(tmp_path / "twice" / "single" / "a", 0, [{"a": 0.5}])
    run(tmp_path / "twice" / "hard", 0, [{"a": 0.5}])
    run(tmp_path / "twice" / "hard" / "seed-0", 0, [{"a": 0.5}])
    run(tmp_path / "lower" / "single" / "a", 0, [{"a": 0.5}], kept=1)
    results = tmp_path / "lower" / "single" / "a" / "results.json"
    results.write_text(results.read_text().replace("true", "false"))
    done = gaps(tmp_path / folder)
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.splitlines()) == 1 and says in done.stderr, done.stderr


def test_epochs_that_are_not_numbers_are_refused(tmp_path: Path) -> None:
    done = gaps(tmp_path, "--epochs", "1,x")
    assert done.returncode == 2 and "--epochs: '1,x' is not a list of whole numbers" in done.stderr


@pytest.mark.parametrize(
    ("kept", "runs", "epochs"),
    [
        ("conll2003-paper/dev_gaps-20-epochs.md", "conll2003-paper/runs", "1,5,10,20,30"),
        (
            "conll2003-paper/plateau/dev_gaps-epochs-80.md",
            "conll2003-paper/plateau/epochs-80",
            "1,5,10,20,30",
        ),
        ("exp3-paper/dev_gaps-20-epochs.md", "exp3-paper/runs", "1,5,10,15,20"),
    ],
)
def test_the_kept_tables_are_what_it_prints_for_the_kept_runs(
    kept: str, runs: str, epochs: str
) -> None:
    done = gaps(RESULTS / runs, "--epochs", epochs)
    assert done.returncode == 0, done.stderr
    assert done.stdout == (RESULTS / kept).read_text(encoding="utf-8")
