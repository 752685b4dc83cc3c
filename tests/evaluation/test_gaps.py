"""Dev gaps (``mtlshare curves --gaps``): each row's dev score minus single-task training's of
the same seed at chosen epochs, between the runs' best scores and at their kept epochs; and the
tables kept in docs/results are what it prints for the kept runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlshare.cli import main
from mtlshare.errors import MtlshareError
from mtlshare.evaluation.gaps import gap_table, parse_epochs

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "docs" / "results"


def run(
    folder: Path,
    seed: int,
    dev: list[dict[str, float]],
    kept: int | None = None,
    metric: str = "accuracy",
    higher: bool = True,
) -> None:
    """A run folder with its seed, one metrics line per epoch (a sparse run's search lines,
    which have no ``epoch``, before them) and, when ``kept`` is given, results that keep that
    epoch and name each task's metric."""
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(f'mechanism = "hard"\nseed = {seed}\n')
    lines = [{"round": 0, "task": "a", "dev_score": 0.1}]
    lines += [{"dev": d, "epoch": e, "step": 10 * e} for e, d in enumerate(dev, 1)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    if kept is not None:
        tasks = {t: {"metric": metric, "higher_is_better": higher} for t in dev[0]}
        (folder / "results.json").write_text(json.dumps({"best_epoch": kept, "tasks": tasks}))


def test_gaps_are_points_against_the_single_run_of_the_same_seed(tmp_path: Path) -> None:
    run(tmp_path / "single" / "seed-0" / "a", 0, [{"a": 0.5}, {"a": 0.6}, {"a": 0.7}], kept=3)
    run(tmp_path / "single" / "seed-1" / "a", 1, [{"a": 0.4}, {"a": 0.8}, {"a": 0.7}], kept=2)
    run(tmp_path / "single" / "seed-0" / "b", 0, [{"b": 0.2}], kept=1)
    run(tmp_path / "hard" / "seed-0", 0, [{"a": 0.6, "b": 0.1}, {"a": 0.65, "b": 0.3}], kept=1)
    run(tmp_path / "hard" / "seed-1", 1, [{"a": 0.45, "b": 0.9}, {"a": 0.7, "b": 0.9}])
    assert gap_table(tmp_path, [1, 3]).splitlines() == [
        "| row, task (seeds 0 / 1) | epoch 1 | epoch 3 | best of each | kept epochs |",
        "|---|---:|---:|---:|---:|",
        # seed 0: +10 at epoch 1, best 65 against 70, kept 60 (epoch 1) against 70 (epoch 3);
        # seed 1: +5 at epoch 1, and still training: no best yet, no kept epoch
        "| hard, a | +7.50 (+10.00 / +5.00) |  | -5.00 (-5.00 / n/a) | -10.00 (-10.00 / n/a) |",
        # seed 1 has no single-task run of b
        "| hard, b | -10.00 (-10.00 / n/a) |  | +10.00 (+10.00 / n/a) | -10.00 (-10.00 / n/a) |",
    ]


def test_a_lower_is_better_metric_is_signed_so_that_positive_is_better(tmp_path: Path) -> None:
    """MSE 0.4 against 0.5 is a gap of +0.1000 in MSE's own units (no points, four decimals),
    also for a run still training, whose results do not say how it is scored; the best of
    each run is its lowest MSE."""
    mse = {"metric": "mse", "higher": False}
    run(tmp_path / "single" / "t", 0, [{"t": 0.5}, {"t": 0.3}], kept=2, **mse)  # type: ignore[arg-type]
    run(tmp_path / "hard", 0, [{"t": 0.4}, {"t": 0.35}], kept=2, **mse)  # type: ignore[arg-type]
    run(tmp_path / "soft", 0, [{"t": 0.6}, {"t": 0.2}])  # still training: no results
    assert gap_table(tmp_path, [1]).splitlines()[2:] == [
        "| hard, t | +0.1000 (+0.1000) | -0.0500 (-0.0500) | -0.0500 (-0.0500) |",
        "| soft, t | -0.1000 (-0.1000) |  |  |",  # still training: no best or kept epoch
    ]


def test_seeds_a_row_lacks_are_n_a_and_a_tie_is_not_negative(tmp_path: Path) -> None:
    """The brackets list every seed of the folder: a row trained for seed 0 only shows n/a
    for seeds 1 and 2. An MSE equal to single-task training's is +0.0000, not -0.0000."""
    mse = {"metric": "mse", "higher": False}
    for seed in (0, 1, 2):
        run(tmp_path / "single" / f"seed-{seed}" / "t", seed, [{"t": 0.5}], kept=1, **mse)  # type: ignore[arg-type]
    run(tmp_path / "hard" / "seed-0", 0, [{"t": 0.5}], kept=1, **mse)  # type: ignore[arg-type]
    assert gap_table(tmp_path, [1]).splitlines()[::2] == [
        "| row, task (seeds 0 / 1 / 2) | epoch 1 | best of each | kept epochs |",
        "| hard, t | +0.0000 (+0.0000 / n/a / n/a) | +0.0000 (+0.0000 / n/a / n/a) "
        "| +0.0000 (+0.0000 / n/a / n/a) |",
    ]


def test_seeds_are_in_numeric_order_and_a_negative_zero_tie_is_not_negative(
    tmp_path: Path,
) -> None:
    """Seeds 8 and 1 (which a set of ints lists as 8, 1) read 1 / 8 in the header and the
    brackets; a score of -0.0 against 0.0 is a tie, +0.00, not -0.00."""
    for seed, hard in ((8, 0.6), (1, -0.0)):
        run(tmp_path / "single" / f"seed-{seed}" / "a", seed, [{"a": 0.0}], kept=1)
        run(tmp_path / "hard" / f"seed-{seed}", seed, [{"a": hard}], kept=1)
    assert gap_table(tmp_path, [1]).splitlines()[::2] == [
        "| row, task (seeds 1 / 8) | epoch 1 | best of each | kept epochs |",
        "| hard, a | +30.00 (+0.00 / +60.00) | +30.00 (+0.00 / +60.00) | +30.00 (+0.00 / +60.00) |",
    ]


def test_an_added_task_keeps_the_epoch_of_its_add_task_summary(tmp_path: Path) -> None:
    """An add-task run's best epoch is in add_task.json, not results.json; a sparse row's
    runs, whose curves start after the mask search, are marked as the figure marks them."""
    run(tmp_path / "single" / "t", 0, [{"t": 0.5}, {"t": 0.6}], kept=2)
    run(tmp_path / "hard+t", 0, [{"t": 0.7}, {"t": 0.4}])
    (tmp_path / "hard+t" / "results.json").write_text(
        json.dumps({"tasks": {"t": {"metric": "accuracy", "higher_is_better": True}}})
    )
    (tmp_path / "hard+t" / "add_task.json").write_text(json.dumps({"best_epoch": 1}))
    run(tmp_path / "sparse", 0, [{"t": 0.5}], kept=1)
    (tmp_path / "sparse" / "results.json").write_text(
        json.dumps({"best_epoch": 1, "sparse": {"rounds": [{"task": "t"}]}})
    )
    assert gap_table(tmp_path, [2]).splitlines()[2:] == [
        "| hard+t, t | -20.00 (-20.00) | +10.00 (+10.00) | +10.00 (+10.00) |",
        "| sparse (after mask search), t |  | -10.00 (-10.00) | -10.00 (-10.00) |",
    ]


def test_the_curves_command_prints_the_table_after_how_the_runs_ended(tmp_path, capsys) -> None:
    run(tmp_path / "cmp" / "single" / "a", 0, [{"a": 0.5}], kept=1)
    run(tmp_path / "cmp" / "hard", 0, [{"a": 0.6}], kept=1)
    out = tmp_path / "c.png"
    assert main(["curves", str(tmp_path / "cmp"), "--out", str(out), "--gaps", "1"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[-3:] == [
        "| row, task (seed 0) | epoch 1 | best of each | kept epochs |",
        "|---|---:|---:|---:|",
        "| hard, a | +10.00 (+10.00) | +10.00 (+10.00) | +10.00 (+10.00) |",
    ]
    assert out.is_file() and printed[-4] == "" and printed[1].startswith("| run | best epoch")


@pytest.mark.parametrize("text", ["x", "0", "1,1", "1,,5", "-3", "2.5", "", "+3", "1_0", "\u0663"])
def test_bad_epochs_are_one_line_before_anything_is_written(tmp_path, capsys, text) -> None:
    run(tmp_path / "cmp" / "single" / "a", 0, [{"a": 0.5}], kept=1)
    out = tmp_path / "c.png"
    assert main(["curves", str(tmp_path / "cmp"), "--out", str(out), "--gaps", text]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--gaps {text!r}: give the epochs as whole numbers" in err[0]
    assert not out.exists()
    with pytest.raises(MtlshareError):
        parse_epochs(text)
    assert parse_epochs("20,1,5") == [20, 1, 5]


@pytest.mark.parametrize(
    ("folder", "says"),
    [
        ("hard-only", "no 'single' row below it to measure the rows against"),
        ("single-only", "no row besides 'single' to measure against it"),
        ("training", "task 'a': no run has finished to say how it is scored"),
        ("no-seed", "config.toml: no seed to read"),
        ("twice", "two runs of 'hard', seed 0, task 'a': hard and hard/seed-0"),
        ("bool-seed", "config.toml: no seed to read (seed = True)"),
        ("not-utf8", "config.toml: no seed to read ("),
        ("nested-seed", "config.toml: no seed to read (nested too deep"),
    ],
)
def test_bad_folders_are_one_line_and_exit_2(tmp_path, capsys, folder: str, says: str) -> None:
    run(tmp_path / "hard-only" / "hard", 0, [{"a": 0.5}])
    run(tmp_path / "single-only" / "single" / "a", 0, [{"a": 0.5}], kept=1)
    run(tmp_path / "training" / "single" / "a", 0, [{"a": 0.5}])
    run(tmp_path / "training" / "hard", 0, [{"a": 0.5}])
    run(tmp_path / "no-seed" / "single" / "a", 0, [{"a": 0.5}])
    (tmp_path / "no-seed" / "single" / "a" / "config.toml").write_text('mechanism = "single"\n')
    run(tmp_path / "twice" / "single" / "a", 0, [{"a": 0.5}])
    run(tmp_path / "twice" / "hard", 0, [{"a": 0.5}])
    run(tmp_path / "twice" / "hard" / "seed-0", 0, [{"a": 0.5}])
    # seed = true is no seed (a bool is an int to Python); a config.toml that is not UTF-8
    run(tmp_path / "bool-seed" / "single" / "a", 0, [{"a": 0.5}], kept=1)
    (tmp_path / "bool-seed" / "single" / "a" / "config.toml").write_text("seed = true\n")
    run(tmp_path / "not-utf8" / "single" / "a", 0, [{"a": 0.5}], kept=1)
    (tmp_path / "not-utf8" / "single" / "a" / "config.toml").write_bytes(b"seed = 0 # \xff\n")
    # nested deeper than the TOML parser recurses
    run(tmp_path / "nested-seed" / "single" / "a", 0, [{"a": 0.5}], kept=1)
    nested = "seed = 0\nx = " + "[" * 5_000 + "]" * 5_000 + "\n"
    (tmp_path / "nested-seed" / "single" / "a" / "config.toml").write_text(nested)
    out = tmp_path / f"{folder}.png"
    assert main(["curves", str(tmp_path / folder), "--out", str(out), "--gaps", "1"]) == 2
    printed = capsys.readouterr()
    err = printed.err.strip().splitlines()
    assert len(err) == 1 and says in err[0], err
    assert printed.out == "" and not out.exists()  # nothing printed or drawn before it


@pytest.mark.parametrize(
    ("kept", "runs", "epochs"),
    [
        ("conll2003-paper/dev_gaps-20-epochs.md", "conll2003-paper/runs", [1, 5, 10, 20, 30]),
        (
            "conll2003-paper/plateau/dev_gaps-epochs-80.md",
            "conll2003-paper/plateau/epochs-80",
            [1, 5, 10, 20, 30],
        ),
        (
            "conll2003-paper/plateau/dev_gaps-epochs-80-other-rows.md",
            "conll2003-paper/plateau/epochs-80-other-rows",
            [1, 5, 10, 20, 30],
        ),
        (
            "conll2003-paper/plateau/dev_gaps-epochs-80-soft.md",
            "conll2003-paper/plateau/epochs-80-soft",
            [1, 5, 10, 20, 30],
        ),
        (
            "conll2003-paper/plateau/dev_gaps-epochs-80-hierarchical.md",
            "conll2003-paper/plateau/epochs-80-hierarchical",
            [1, 5, 10, 20, 30],
        ),
        (
            "conll2003-paper/plateau/dev_gaps-epochs-80-cross_stitch.md",
            "conll2003-paper/plateau/epochs-80-cross_stitch",
            [1, 5, 10, 20, 30],
        ),
        ("exp3-paper/dev_gaps-20-epochs.md", "exp3-paper/runs", [1, 5, 10, 15, 20]),
    ],
)
def test_the_kept_tables_are_what_it_prints_for_the_kept_runs(
    kept: str, runs: str, epochs: list[int]
) -> None:
    expected = (RESULTS / kept).read_text(encoding="utf-8")
    assert gap_table(RESULTS / runs, epochs) + "\n" == expected
