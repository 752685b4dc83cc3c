"""Dev curves: every run's dev score per epoch, read from the ``metrics.jsonl`` files under a
run or comparison folder, drawn one panel per task with a line per run. They show whether the
scores had plateaued when training stopped.

matplotlib is imported inside the plotting function: it is heavy and only reports need it.
"""

from __future__ import annotations

import json
from pathlib import Path

from mtlshare.errors import MtlshareError
from mtlshare.evaluation.plots import save_figure

METRICS = "metrics.jsonl"

Curves = dict[str, dict[str, list[tuple[int, float]]]]  # run label -> task -> (epoch, dev)


def read_curves(folder: str | Path) -> Curves:
    """Every run's dev curve under ``folder`` (the folder itself when it is a run), labelled by
    its path below ``folder`` (``hard/seed-0``; a single-task run ``single/seed-0/ner``).

    Raises:
        MtlshareError: no run under ``folder``, a metrics file that is not UTF-8, or a metrics
            line that is not a JSON object (naming the file and line).
    """
    folder = Path(folder)
    files = sorted(folder.rglob(METRICS))
    if not files:
        raise MtlshareError(f"{folder}: no {METRICS} below it; is it a run or comparison folder?")
    curves: Curves = {}
    for path in files:
        label = str(path.parent.relative_to(folder)) if path.parent != folder else folder.name
        curves[label] = _curve(path)
    return curves


def _curve(path: Path) -> dict[str, list[tuple[int, float]]]:
    by_task: dict[str, list[tuple[int, float]]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise MtlshareError(f"{path}: not UTF-8 text (byte {e.start})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            raise MtlshareError(f"{path}:{number}: not a JSON line ({e.msg})") from None
        if not isinstance(record, dict):
            raise MtlshareError(f"{path}:{number}: not a JSON object")
        dev, epoch = record.get("dev"), record.get("epoch")
        if not isinstance(dev, dict) or not isinstance(epoch, int) or isinstance(epoch, bool):
            continue  # not an epoch's evaluation
        for task, value in dev.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                by_task.setdefault(task, []).append((epoch, float(value)))
    return by_task


def plot_dev_curves(
    curves: Curves, path: str | Path, title: str = "", *, beside_others: bool = False
) -> Path:
    """One panel per task, a line per run (the same colour for a row's seeds); save a PNG at
    ``path`` (atomically; ``beside_others``: a folder of the user's, as ``save_figure``) and
    return it. The first panel has a legend of its rows; a later
    panel has one of its own when it draws a row that legend lacks (runs with other tasks), so
    that every line is labelled."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    tasks = sorted({task for curve in curves.values() for task in curve})
    if not tasks:
        raise MtlshareError(f"no dev scores to draw for {path}")
    rows = sorted({label.split("/")[0] for label in curves})
    colours = {row: f"C{i % 10}" for i, row in enumerate(rows)}
    fig = Figure(figsize=(4.5 * len(tasks), 3.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(tasks), squeeze=False)[0]
    labelled: set[str] = set()  # the rows of the first panel's legend
    for n, (ax, task) in enumerate(zip(axes, tasks, strict=True)):
        drawn: set[str] = set()
        for label, curve in curves.items():
            points = curve.get(task)
            if not points:
                continue
            row = label.split("/")[0]
            ax.plot(
                [e for e, _ in points],
                [v for _, v in points],
                color=colours[row],
                marker=".",
                linewidth=1,
                label=row if row not in drawn else None,
            )
            drawn.add(row)
        ax.set_title(task)
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # no epoch 1.5
        ax.set_ylabel("dev score")
        ax.grid(alpha=0.3)
        if n == 0 or drawn - labelled:
            ax.legend(fontsize="small")
        if n == 0:
            labelled = drawn
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
        if out.is_dir():
            raise MtlshareError(f"--out {out}: is a folder; give the path of the PNG to write")
        if not out.parent.is_dir():
            raise MtlshareError(f"--out {out}: no folder {out.parent} to write it in")
    curves = read_curves(folder)
    if out is None:
        return plot_dev_curves(curves, folder / "dev_curves.png", title)
    return plot_dev_curves(curves, out, title, beside_others=True)
