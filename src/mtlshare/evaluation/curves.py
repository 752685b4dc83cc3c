"""Dev curves: every run's dev score per epoch, read from the ``metrics.jsonl`` files under a
run or comparison folder, drawn one panel per task with a line per run. They show whether the
scores had plateaued when training stopped.

matplotlib is imported inside the plotting function: it is heavy and only reports need it.
"""

from __future__ import annotations

import errno
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from mtlshare.errors import MtlshareError, check_output_file
from mtlshare.evaluation.looks import looks
from mtlshare.evaluation.plots import save_figure
from mtlshare.files import parse_json, parse_toml

METRICS = "metrics.jsonl"
RESULTS = "results.json"  # beside it: each task's metric, and a sparse run's search
ADDED = "add_task.json"  # beside an added task's results: its best epoch
COLUMNS = 3  # panels to a row of the figure
METRIC_NAMES = {"accuracy": "accuracy", "span_f1": "span F1", "mse": "MSE", "mae": "MAE"}

Curves = dict[str, dict[str, list[tuple[int, float]]]]  # run label -> task -> (epoch, dev)


def read_curves(folder: str | Path) -> Curves:
    """Every run's dev curve under ``folder`` (the folder itself when it is a run), labelled by
    its path below ``folder`` (``hard/seed-0``; a single-task run ``single/seed-0/ner``).

    Raises:
        MtlshareError: no run under ``folder``, a metrics file that is not UTF-8, or a metrics
            line that is not a JSON object (naming the file and line).
    """
    folder = Path(folder)
    runs = _runs(folder)
    if not runs:
        raise MtlshareError(f"{folder}: no {METRICS} below it; is it a run or comparison folder?")
    return {label: _curve(path) for label, path in runs}


def _runs(folder: Path) -> list[tuple[str, Path]]:
    """Every ``metrics.jsonl`` under ``folder``, sorted, with its run's label: its folder's
    path below ``folder``, or ``folder``'s name for the folder itself."""
    return [
        (str(path.parent.relative_to(folder)) if path.parent != folder else folder.name, path)
        for path in sorted(folder.rglob(METRICS))
    ]


def _curve(path: Path) -> dict[str, list[tuple[int, float]]]:
    by_task: dict[str, list[tuple[int, float]]] = {}
    try:
        text = read_text(path)
    except UnicodeDecodeError as e:
        raise MtlshareError(f"{path}: not UTF-8 text (byte {e.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = parse_json(line)
        except json.JSONDecodeError as e:
            raise MtlshareError(f"{path}:{number}: not a JSON line ({e.msg})") from None
        if not isinstance(record, dict):
            raise MtlshareError(f"{path}:{number}: not a JSON object")
        dev, epoch = record.get("dev"), _count(record.get("epoch"))
        if not isinstance(dev, dict) or epoch is None:
            continue  # not an epoch's evaluation
        for task, value in dev.items():
            if (score := _number(value)) is not None:
                by_task.setdefault(task, []).append((epoch, score))
    return by_task


def read_text(path: Path) -> str:
    """``path``'s UTF-8 text, from a regular file only: a FIFO or a device where a run's file
    should be (a damaged folder) would block the read, or never end it; it is an ``OSError``,
    as a missing file is."""
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "not a regular file", str(path))
    return path.read_text(encoding="utf-8")


def _number(value: object) -> float | None:
    """``value`` as a float; None for what is not a number (a boolean, text, an integer too
    large for a float)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        return float(value)
    except OverflowError:
        return None


@dataclass(frozen=True)
class RunInfo:
    """What a run's ``results.json`` says about its dev curve: each task's ``metric`` and
    whether higher is better, and ``searched``: the curve starts after a sparse mask search
    (its epoch 1 follows the search's training, so it is not comparable with other rows')."""

    metric: dict[str, str] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    searched: bool = False


def read_run_info(folder: str | Path) -> dict[str, RunInfo]:
    """A :class:`RunInfo` per run under ``folder``, labelled as in :func:`read_curves`, from
    the ``results.json`` beside each ``metrics.jsonl``. A run without one (still training)
    says searched when its first epoch's step is more than twice the steps of the epoch after
    it (a search ran before it), and knows no metric. Nothing here is an error: the labels of
    a figure are all it feeds."""
    return {label: _run_info(path) for label, path in _runs(Path(folder))}


def _run_info(path: Path) -> RunInfo:
    try:
        results = parse_json(read_text(path.parent / RESULTS))
    except (OSError, ValueError):
        return RunInfo(searched=_steps_show_a_search(path))
    if not isinstance(results, dict):
        return RunInfo()
    metric: dict[str, str] = {}
    higher: dict[str, bool] = {}
    tasks = results.get("tasks")
    for task, about in (tasks if isinstance(tasks, dict) else {}).items():
        if isinstance(about, dict):
            if isinstance(about.get("metric"), str):
                metric[task] = about["metric"]
            if isinstance(about.get("higher_is_better"), bool):
                higher[task] = about["higher_is_better"]
    sparse = results.get("sparse")
    searched = isinstance(sparse, dict) and bool(sparse.get("rounds"))
    return RunInfo(metric, higher, searched)


def read_endings(folder: str | Path) -> dict[str, tuple[Path, Ending]]:
    """Each run's folder and :class:`Ending` under ``folder``, labelled as in
    :func:`read_curves` (an added task's best epoch from its ``add_task.json``)."""
    return {label: (path.parent, _ending(path)) for label, path in _runs(Path(folder))}


class Ending(NamedTuple):
    """How a run ended, as its files say (None where they are silent)."""

    finished: bool  # its results.json is there
    best: int | None  # the selected epoch
    ran: int | None  # epochs run
    cap: int | None  # train.epochs
    keep_last: bool  # train.keep = "last": every epoch trained, none selected


def stopping_table(folder: str | Path) -> str:
    """A markdown table of how every run under ``folder`` (labelled as in :func:`read_curves`)
    ended: its best (selected) epoch, the epochs it ran, its cap (``train.epochs`` of its
    ``config.toml``) and what ended it: the cap, with the best epoch the last one when the
    scores may still have been rising, or the early stop, some epochs after its best. A run
    without results is unfinished ("-"); one with ``train.keep = "last"`` selects no epoch.
    Like the labels of a figure it reads what it can: "?" where a run's files are silent."""
    lines = [
        "| run | best epoch | epochs run | cap | ended by |",
        "|---|---:|---:|---:|---|",
    ]
    for label, path in _runs(Path(folder)):
        end = _ending(path)
        shown: tuple[object, ...] = (end.best, end.ran)
        if not end.finished:
            ended = f"not finished (epoch {_last_epoch(path) or 0} in {METRICS})"
            shown = ("-", "-")
        elif end.keep_last:
            ended = 'train.keep = "last": every epoch trained, the last kept'
            shown = ("-", end.ran)
        elif end.cap is None or end.best is None or end.ran is None:
            ended = "?"
        elif end.ran >= end.cap:
            ended = "the cap, best at the last epoch" if end.best == end.ran else "the cap"
        else:
            ended = f"early stop, {end.ran - end.best} epochs after its best"
        cells = [label, *("?" if v is None else str(v) for v in (*shown, end.cap)), ended]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _ending(path: Path) -> Ending:
    """The :class:`Ending` of the run whose ``metrics.jsonl`` is ``path``: its best epoch and
    epochs run from ``results.json`` (an added task's best epoch from ``add_task.json``, its
    epochs those of ``path``), its cap and ``keep`` from ``config.toml``."""
    config = _toml_object(path.parent / "config.toml")
    found = config.get("train")
    train: dict[str, Any] = found if isinstance(found, dict) else {}
    cap, keep_last = _count(train.get("epochs")), train.get("keep") == "last"
    if not (path.parent / RESULTS).is_file():
        return Ending(False, None, None, cap, keep_last)
    results = _json_object(path.parent / RESULTS) or {}
    best, ran = _count(results.get("best_epoch")), _count(results.get("epochs_run"))
    added = _json_object(path.parent / ADDED)
    if added is not None and ran is None:  # add-task: its own files say these
        best, ran = _count(added.get("best_epoch")), _last_epoch(path)
    return Ending(True, best, ran, cap, keep_last)


def _last_epoch(path: Path) -> int | None:
    return max((e for curve in _curve(path).values() for e, _ in curve), default=None)


def _json_object(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None when it is missing, unreadable or not an object."""
    try:
        found = parse_json(read_text(path))
    except (OSError, ValueError):
        return None
    return found if isinstance(found, dict) else None


def _toml_object(path: Path) -> dict[str, Any]:
    try:
        return parse_toml(read_text(path))
    except (OSError, ValueError):
        return {}


def _count(value: object) -> int | None:
    """``value`` when it is a count of epochs (a whole number a figure's axis can take)."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        return None
    return value


def _steps_show_a_search(path: Path) -> bool:
    steps: list[int] = []
    try:
        lines = read_text(path).splitlines()
    except (OSError, UnicodeDecodeError):
        return False
    for line in lines:
        try:
            record = parse_json(line)
        except ValueError:
            continue
        if isinstance(record, dict) and isinstance(record.get("dev"), dict):
            step = record.get("step")
            if isinstance(step, int) and not isinstance(step, bool):
                steps.append(step)
        if len(steps) == 2:
            return steps[0] > 2 * (steps[1] - steps[0]) > 0
    return False


def _axis_label(task: str, runs: Mapping[str, RunInfo]) -> str:
    """The dev metric of ``task`` and its direction where the runs agree on them."""
    metrics = {r.metric[task] for r in runs.values() if task in r.metric}
    higher = {r.higher_is_better[task] for r in runs.values() if task in r.higher_is_better}
    name = "score"
    if len(metrics) == 1:
        (metric,) = metrics
        name = METRIC_NAMES.get(metric, metric)
    if len(higher) != 1:
        return f"dev {name}"
    return f"dev {name} ({'higher' if higher.pop() else 'lower'} is better)"


def plot_dev_curves(
    curves: Curves,
    path: str | Path,
    title: str = "",
    *,
    beside_others: bool = False,
    runs: Mapping[str, RunInfo] | None = None,
) -> Path:
    """One panel per task, at most three to a row, a line per run (the same look for a row's
    seeds, and the row's look in every figure: ``looks.looks``); save a PNG at ``path``
    (atomically; ``beside_others``: a folder of the user's, as ``save_figure``) and return
    it. One legend beside the panels names every row. ``runs`` (:func:`read_run_info`, by
    run label) names each panel's metric and its direction on the y axis, and marks a row
    whose curves start after a sparse mask search."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    runs = runs or {}
    tasks = sorted({task for curve in curves.values() for task in curve})
    if not tasks:
        raise MtlshareError(f"no dev scores to draw for {path}")
    rows = sorted({label.split("/")[0] for label in curves})
    drawn = looks(rows)
    searched = {label.split("/")[0] for label, info in runs.items() if info.searched}
    columns = min(len(tasks), COLUMNS)
    lines = math.ceil(len(tasks) / columns)
    fig = Figure(figsize=(4.5 * columns + 1.8, 3.4 * lines + 0.4), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(lines, columns, squeeze=False).ravel()
    for ax in axes[len(tasks) :]:
        ax.set_axis_off()
    for ax, task in zip(axes, tasks, strict=False):
        epochs: set[int] = set()
        for label, curve in curves.items():
            points = curve.get(task)
            if not points:
                continue
            look = drawn[label.split("/")[0]]
            ax.plot(
                [e for e, _ in points],
                [v for _, v in points],
                color=look.colour,
                linestyle=look.linestyle,
                marker=".",
                linewidth=1,
            )
            epochs.update(e for e, _ in points)
        ax.set_title(task)
        ax.set_xlabel("epoch")
        if len(epochs) == 1:  # one epoch: one tick, not 0.95 ... 1.05
            (epoch,) = epochs
            ax.set_xlim(epoch - 1, epoch + 1)
            ax.set_xticks([epoch])
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        relevant = {k: v for k, v in runs.items() if task in curves.get(k, {})}
        ax.set_ylabel(_axis_label(task, relevant))
        ax.grid(alpha=0.3)
    handles = [
        Line2D([], [], color=drawn[r].colour, linestyle=drawn[r].linestyle, marker=".")
        for r in rows
    ]
    names = [f"{r} (after mask search)" if r in searched else r for r in rows]
    fig.legend(handles, names, loc="outside right center", fontsize="small", title="run")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path, beside_others=beside_others)


def write_dev_curves(folder: str | Path, out: str | Path | None = None, title: str = "") -> Path:
    """``plot_dev_curves(read_curves(folder))`` at ``out`` (default ``folder/dev_curves.png``):
    a PNG file, in a folder that exists; anything else is refused before anything is read."""
    folder = Path(folder)
    if out is not None:
        out = Path(out)
        if out.suffix.lower() != ".png":
            raise MtlshareError(
                f"--out {out}: the curves are a PNG image; give a path ending in .png"
            )
        check_output_file(out)
    curves = read_curves(folder)
    runs = read_run_info(folder)
    if out is None:
        return plot_dev_curves(curves, folder / "dev_curves.png", title, runs=runs)
    return plot_dev_curves(curves, out, title, beside_others=True, runs=runs)
