"""Each row's dev score minus single-task training's, epoch by epoch, in a comparison folder.

    python recipes/conll2003/dev_gaps.py docs/results/conll2003-paper/plateau/epochs-80

prints a Markdown table: for every row but ``single`` and every task, the gap in points between
the row's dev score and that of single-task training of the same seed, at epochs 1, 5, 10, 20
and 30, between the two runs' best dev scores of the task (over all their epochs), and at the
epochs the two runs kept (a multi-task run keeps the epoch of its best mean dev score, so its
kept score of one task may be below that task's best); the mean over the seeds that have the
value first, then each seed's in seed order, ``n/a`` for a seed without it. It shows whether a
row's lead comes at equal epochs only (it shrinks as both runs converge) or holds at the
plateau. ``--epochs 1,5,10`` picks other epochs.

A sparse-sharing run's epochs are those of its subnets' training, which starts from the weights
of its multi-task warm-up, so its epoch 1 follows the warm-up's epochs. The scores are
accuracies and F1 scores (higher is better); a folder with another metric is refused.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from mtlshare.errors import MtlshareError
from mtlshare.evaluation.curves import read_curves, read_run_info

Runs = dict[str, dict[int, dict[str, "Curve"]]]  # row -> seed -> task -> curve


class Curve(NamedTuple):
    """One task's dev scores in one run (epoch -> score) and the epoch the run kept."""

    label: str  # the run's folder below the comparison folder
    scores: dict[int, float]
    kept: int | None  # None where the run has no results (still training)


def _seed(folder: Path, label: str) -> int:
    """The seed in the config of the run at ``folder / label``."""
    config = folder / label / "config.toml"
    try:
        seed = tomllib.loads(config.read_text(encoding="utf-8"))["seed"]
    except (OSError, tomllib.TOMLDecodeError, KeyError) as e:
        raise MtlshareError(f"{config}: no seed to read ({e})") from None
    return int(seed)


def _kept(folder: Path, label: str) -> int | None:
    """The epoch the run at ``folder / label`` kept (``best_epoch`` of its results)."""
    try:
        results = json.loads((folder / label / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    best = results.get("best_epoch") if isinstance(results, dict) else None
    return best if isinstance(best, int) and not isinstance(best, bool) else None


def read_runs(folder: Path) -> Runs:
    """Every run's dev curves under ``folder``, by row (``single`` or another), seed and task.

    Raises:
        MtlshareError: two runs of one row, seed and task; a run without a seed; a task whose
            metric is lower-is-better.
    """
    runs: Runs = {}
    info = read_run_info(folder)
    for label, by_task in read_curves(folder).items():
        lower = [t for t, higher in info[label].higher_is_better.items() if not higher]
        if lower:
            raise MtlshareError(
                f"{folder / label}: {lower[0]!r} is scored lower-is-better; "
                "this script reads accuracies and F1 scores"
            )
        row, seed, kept = label.split("/")[0], _seed(folder, label), _kept(folder, label)
        tasks = runs.setdefault(row, {}).setdefault(seed, {})
        for task, points in by_task.items():
            if task in tasks:
                raise MtlshareError(
                    f"{folder}: two runs of {row!r}, seed {seed}, task {task!r}: "
                    f"{tasks[task].label} and {label}"
                )
            tasks[task] = Curve(label, dict(points), kept)
    if "single" not in runs:
        raise MtlshareError(f"{folder}: no single-task runs to measure the rows against")
    return runs


Pick = Callable[[Curve], float | None]  # one score of a curve, None where it has none


def _at(epoch: int) -> Pick:
    return lambda curve: curve.scores.get(epoch)


def _best(curve: Curve) -> float | None:
    return max(curve.scores.values(), default=None)


def _kept_score(curve: Curve) -> float | None:
    return curve.scores.get(curve.kept) if curve.kept is not None else None


def _cell(runs: Runs, row: str, task: str, pick: Pick) -> str:
    """The mean gap over the seeds that have it, then every seed's (``n/a`` where it has
    none); empty where no seed has it."""
    each: list[float | None] = []
    for seed, tasks in sorted(runs[row].items()):
        ours, theirs = tasks.get(task), runs["single"].get(seed, {}).get(task)
        a = pick(ours) if ours is not None else None
        b = pick(theirs) if theirs is not None else None
        each.append(100 * (a - b) if a is not None and b is not None else None)
    found = [v for v in each if v is not None]
    if not found:
        return ""
    shown = " / ".join("n/a" if v is None else f"{v:+.2f}" for v in each)
    return f"{statistics.mean(found):+.2f} ({shown})"


def gaps(folder: Path, epochs: list[int]) -> str:
    runs = read_runs(folder)
    picks = [*(_at(e) for e in epochs), _best, _kept_score]
    columns = [*(f"epoch {e}" for e in epochs), "best of each", "kept epochs"]
    lines = ["| row, task | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in sorted(r for r in runs if r != "single"):
        for task in sorted({t for tasks in runs[row].values() for t in tasks}):
            cells = [_cell(runs, row, task, pick) for pick in picks]
            lines.append(f"| {row}, {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("folder", type=Path, help="a comparison folder (a kept one too)")
    parser.add_argument("--epochs", default="1,5,10,20,30", help="comma-separated epochs")
    args = parser.parse_args(argv)
    try:
        epochs = [int(e) for e in args.epochs.split(",")]
    except ValueError:
        parser.error(f"--epochs: {args.epochs!r} is not a list of whole numbers")
    try:
        print(gaps(args.folder, epochs))
    except MtlshareError as e:
        print(f"dev_gaps: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
