"""Dev gaps: each row's dev score minus single-task training's of the same seed, epoch by epoch,
read from the ``metrics.jsonl`` files of a comparison folder (a kept one too).

A row that leads single-task training at equal epochs may only converge faster: its lead then
shrinks as both runs converge. The table shows the gap at chosen epochs, between each run's best
dev score of the task (over all its epochs) and at the epochs the runs kept; a multi-task run
keeps the epoch of its best mean dev score over its tasks, so its kept score of one task can be
below that task's best. Gaps are signed so that positive means the row is better; accuracies and
F1 scores are in points (100 x the difference, two decimals), other metrics in their own units
(four decimals).
"""

from __future__ import annotations

import json
import statistics
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

from mtlshare.errors import MtlshareError
from mtlshare.evaluation.curves import read_curves, read_run_info
from mtlshare.evaluation.report import BASELINE as SINGLE

FRACTIONS = ("accuracy", "span_f1")  # metrics in [0, 1], shown in points


class Curve(NamedTuple):
    """One task's dev scores in one run (epoch -> score) and the epoch the run kept."""

    label: str  # the run's folder below the comparison folder
    scores: dict[int, float]
    kept: int | None  # None where the run has no results (still training)
    higher_is_better: bool | None  # None where the run has no results
    scale: float | None  # 100 for a fraction (points), 1 for another metric, None: no results


Runs = dict[str, dict[int, dict[str, Curve]]]  # row -> seed -> task -> curve
Pick = Callable[[Curve], float | None]  # one score of a curve, None where it has none


def _json(path: Path) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _seed(run: Path) -> int:
    config = run / "config.toml"
    try:
        seed = tomllib.loads(config.read_text(encoding="utf-8")).get("seed")
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise MtlshareError(f"{config}: no seed to read ({e})") from None
    if not isinstance(seed, int) or isinstance(seed, bool):
        raise MtlshareError(f"{config}: no seed to read (seed = {seed!r})")
    return seed


def read_runs(folder: str | Path) -> Runs:
    """Every run's dev curves under ``folder``, by row (the first part of its label), seed
    (its ``config.toml``) and task, with the epoch it kept (``best_epoch`` of its
    ``results.json``) and its metric's direction and scale.

    Raises:
        MtlshareError: no run under ``folder`` or no single-task run; a run without a seed;
            two runs of one row, seed and task.
    """
    folder = Path(folder)
    runs: Runs = {}
    info = read_run_info(folder)
    for label, by_task in read_curves(folder).items():
        run = folder / label if (folder / label).is_dir() else folder  # the folder is a run
        kept = _json(run / "results.json").get("best_epoch")
        kept = kept if isinstance(kept, int) and not isinstance(kept, bool) else None
        row, seed, about = label.split("/")[0], _seed(run), info[label]
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
            tasks[task] = Curve(label, dict(points), kept, higher, scale)
    if SINGLE not in runs:
        raise MtlshareError(f"{folder}: no single-task runs to measure the rows against")
    return _metrics_filled(runs)


def _metrics_filled(runs: Runs) -> Runs:
    """``runs`` with the metric direction and scale of a run still training (no results) taken
    from another run of the same task, or higher-is-better and unscaled where none has them."""
    known: dict[str, tuple[bool | None, float | None]] = {}
    for seeds in runs.values():
        for tasks in seeds.values():
            for task, curve in tasks.items():
                if curve.scale is not None:
                    known.setdefault(task, (curve.higher_is_better, curve.scale))
    for seeds in runs.values():
        for tasks in seeds.values():
            for task, curve in tasks.items():
                if curve.scale is None:
                    higher, scale = known.get(task, (True, 1.0))
                    tasks[task] = curve._replace(higher_is_better=higher, scale=scale)
    return runs


def _at(epoch: int) -> Pick:
    return lambda curve: curve.scores.get(epoch)


def _best(curve: Curve) -> float | None:
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
    return (a - b) * (ours.scale or 1.0) * (-1 if ours.higher_is_better is False else 1)


def _cell(runs: Runs, row: str, task: str, pick: Pick) -> str:
    """The mean gap over the seeds that have it, then every seed's in seed order (``n/a``
    where it has none); empty where no seed has it."""
    each = [
        _gap(tasks.get(task), runs[SINGLE].get(seed, {}).get(task), pick)
        for seed, tasks in sorted(runs[row].items())
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
    ``kept epochs`` (see the module docstring)."""
    runs = read_runs(folder)
    picks = [*(_at(e) for e in epochs), _best, _kept]
    columns = [*(f"epoch {e}" for e in epochs), "best of each", "kept epochs"]
    lines = ["| row, task | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    for row in sorted(r for r in runs if r != SINGLE):
        for task in sorted({t for tasks in runs[row].values() for t in tasks}):
            cells = [_cell(runs, row, task, pick) for pick in picks]
            lines.append(f"| {row}, {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def parse_epochs(text: str) -> list[int]:
    """``"1,5,10"`` -> ``[1, 5, 10]``: whole numbers of 1 or more, each once.

    Raises:
        MtlshareError: anything else, naming ``--gaps``.
    """
    try:
        epochs = [int(part) for part in text.split(",")]
    except ValueError:
        epochs = []
    if not epochs or min(epochs) < 1 or len(set(epochs)) != len(epochs):
        raise MtlshareError(
            f"--gaps {text!r}: give the epochs as whole numbers of 1 or more, each once, "
            "separated by commas (1,5,10,20)"
        )
    return epochs
