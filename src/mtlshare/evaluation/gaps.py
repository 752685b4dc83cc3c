"""Dev gaps: each row's dev score minus single-task training's of the same seed, epoch by epoch,
read from the ``metrics.jsonl`` files of a comparison folder (a kept one too).

A row that leads single-task training at equal epochs may only converge faster: its lead then
shrinks as both runs converge. The table shows the gap at chosen epochs, between each run's best
dev score of the task (over all its epochs; finished runs only) and at the epochs the runs kept;
a multi-task run keeps the epoch of its best mean dev score over its tasks, so its kept score of
one task can be below that task's best. Gaps are signed so that positive means the row is
better; accuracies and F1 scores are in points (100 x the difference, two decimals), other
metrics in their own units (four decimals). A cell gives the mean over the seeds that have the
value, then every seed of the folder in order (``n/a`` where one has none); a cell no seed has
is blank. A row whose runs start after a sparse mask search is marked so: its epoch 1 follows
the search's training.
"""

from __future__ import annotations

import re
import statistics
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

from mtlshare.errors import MtlshareError, plural
from mtlshare.evaluation.curves import read_curves, read_endings, read_run_info, read_text
from mtlshare.evaluation.report import BASELINE as SINGLE
from mtlshare.files import parse_toml

FRACTIONS = ("accuracy", "span_f1")  # metrics in [0, 1], shown in points
SEARCHED = " (after mask search)"  # the figure's mark of such a row


class Curve(NamedTuple):
    """One task's dev scores in one run (epoch -> score) and the epoch the run kept."""

    label: str  # the run's folder below the comparison folder
    scores: dict[int, float]
    kept: int | None  # None where the run has not finished
    higher_is_better: bool | None  # None where the run has no results
    scale: float | None  # 100 for a fraction (points), 1 for another metric, None: no results


Runs = dict[str, dict[int, dict[str, Curve]]]  # row -> seed -> task -> curve
Pick = Callable[[Curve], float | None]  # one score of a curve, None where it has none


def _seed(run: Path) -> int:
    config = run / "config.toml"
    try:
        seed = parse_toml(read_text(config)).get("seed")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise MtlshareError(f"{config}: no seed to read ({e})") from None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise MtlshareError(f"{config}: no seed to read (seed = {seed!r})")
    return seed


def read_runs(folder: str | Path) -> tuple[Runs, set[str]]:
    """Every run's dev curves under ``folder``, by row (the first part of its label), seed
    (its ``config.toml``) and task, with the epoch it kept and its metric's direction and
    scale (from its results, or from another run of the task while it trains); and the rows
    whose runs start after a sparse mask search.

    Raises:
        MtlshareError: no run under ``folder``, no ``single`` row or no other; a run without a
            seed; two runs of one row, seed and task (a folder of several comparisons); a task
            that no finished run says how to score.
    """
    folder = Path(folder)
    runs: Runs = {}
    info, endings = read_run_info(folder), read_endings(folder)
    searched = set()
    for label, by_task in read_curves(folder).items():
        path, ending = endings[label]
        row, seed, about = label.split("/")[0], _seed(path), info[label]
        if about.searched:
            searched.add(row)
        tasks = runs.setdefault(row, {}).setdefault(seed, {})
        for task, points in by_task.items():
            if task in tasks:
                raise MtlshareError(
                    f"{folder}: two runs of {row!r}, seed {seed}, task {task!r}: "
                    f"{tasks[task].label} and {label}; give one comparison's folder"
                )
            metric = about.metric.get(task)
            scale = None if metric is None else 100.0 if metric in FRACTIONS else 1.0
            higher = about.higher_is_better.get(task)
            tasks[task] = Curve(label, dict(points), ending.best, higher, scale)
    if SINGLE not in runs:
        raise MtlshareError(
            f"{folder}: no {SINGLE!r} row below it to measure the rows against (a folder of "
            "`mtlshare compare` has one)"
        )
    if len(runs) == 1:
        raise MtlshareError(f"{folder}: no row besides {SINGLE!r} to measure against it")
    return _metrics_filled(folder, runs), searched


def _metrics_filled(folder: Path, runs: Runs) -> Runs:
    """``runs`` with the metric direction and scale of a run without results (still
    training) taken from another run of the same task.

    Raises:
        MtlshareError: a task none of whose runs has results.
    """
    known: dict[str, tuple[bool | None, float]] = {}
    for seeds in runs.values():
        for tasks in seeds.values():
            for task, curve in tasks.items():
                if curve.scale is not None:
                    known.setdefault(task, (curve.higher_is_better, curve.scale))
    for seeds in runs.values():
        for tasks in seeds.values():
            for task, curve in tasks.items():
                if curve.scale is None:
                    if task not in known:
                        raise MtlshareError(
                            f"{folder}: task {task!r}: no run has finished to say how it is "
                            "scored (its results.json); --gaps needs one"
                        )
                    higher, scale = known[task]
                    tasks[task] = curve._replace(higher_is_better=higher, scale=scale)
    return runs


def _at(epoch: int) -> Pick:
    return lambda curve: curve.scores.get(epoch)


def _best(curve: Curve) -> float | None:
    """The best dev score of a finished run; None for a run still training, whose best so far
    set beside a finished run's would read as a gap it may yet close."""
    if curve.kept is None:
        return None
    pick = min if curve.higher_is_better is False else max
    return pick(curve.scores.values(), default=None)


def _kept(curve: Curve) -> float | None:
    return curve.scores.get(curve.kept) if curve.kept is not None else None


def _gap(ours: Curve | None, theirs: Curve | None, pick: Pick) -> float | None:
    """``pick`` of ours minus theirs, in points for a fraction, positive when ours is better."""
    if ours is None or theirs is None:
        return None
    a, b = pick(ours), pick(theirs)
    if a is None or b is None:
        return None
    better = b - a if ours.higher_is_better is False else a - b
    return better * (ours.scale or 1.0) + 0.0  # + 0.0: no "-0.00" for a tie


def _cell(runs: Runs, row: str, task: str, seeds: list[int], pick: Pick) -> str:
    each = [
        _gap(runs[row].get(seed, {}).get(task), runs[SINGLE].get(seed, {}).get(task), pick)
        for seed in seeds
    ]
    found = [v for v in each if v is not None]
    if not found:
        return ""
    curves = [c for tasks in runs[row].values() if (c := tasks.get(task)) is not None]
    form = "+.2f" if curves[0].scale == 100.0 else "+.4f"  # points, or the metric's units
    shown = " / ".join("n/a" if v is None else format(v, form) for v in each)
    return f"{format(statistics.mean(found), form)} ({shown})"


def gap_table(folder: str | Path, epochs: list[int]) -> str:
    """A markdown table of every row's dev gap to single-task training under ``folder``: a
    line per row and task, a column per epoch of ``epochs``, then ``best of each`` and
    ``kept epochs`` (see the module docstring); the first column's header names the seeds."""
    runs, searched = read_runs(folder)
    seeds = sorted({seed for by_seed in runs.values() for seed in by_seed})
    picks = [*(_at(e) for e in epochs), _best, _kept]
    columns = [*(f"epoch {e}" for e in epochs), "best of each", "kept epochs"]
    first = f"row, task ({plural('seeds', len(seeds))} {' / '.join(map(str, seeds))})"
    lines = [f"| {first} | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in sorted(r for r in runs if r != SINGLE):
        name = row + SEARCHED if row in searched else row
        for task in sorted({t for tasks in runs[row].values() for t in tasks}):
            cells = [_cell(runs, row, task, seeds, pick) for pick in picks]
            lines.append(f"| {name}, {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_epochs(text: str) -> list[int]:
    """``"1,5,10"`` -> ``[1, 5, 10]``: whole numbers of 1 or more in ASCII digits, each once.

    Raises:
        MtlshareError: anything else, naming ``--gaps``.
    """
    parts = text.split(",")
    epochs = [int(p) for p in parts if re.fullmatch(r"[0-9]+", p)]
    if len(epochs) != len(parts) or min(epochs, default=0) < 1 or len(set(epochs)) != len(parts):
        raise MtlshareError(
            f"--gaps {text!r}: give the epochs as whole numbers of 1 or more, each once, "
            "separated by commas (1,5,10,20)"
        )
    return epochs
