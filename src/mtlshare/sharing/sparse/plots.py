"""Plots of a sparse-sharing mask search, after the Sparse Sharing paper (Sun, Shao et al. 2020):
Figure 3, each task's dev score against the density of its mask across pruning rounds; Figure 4,
the overlap ratio of the tasks' masks and their mean dev score against density."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mtlshare.evaluation.looks import looks
from mtlshare.evaluation.plots import save_figure

TICKS = 10  # at most this many density ticks: more run together


def plot_search(sparse: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``sparse_figure3.png`` and ``sparse_figure4.png`` from a run's ``"sparse"`` results.
    Dev scores are signed so that higher is better (negated for lower-is-better metrics). The
    density axis is logarithmic, from dense to sparse, with ticks in percent at the rounds'
    densities; each task keeps its colour (``looks.looks``) and the legend sits beside the axes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    fig3 = Figure(figsize=(6.5, 4), layout="constrained")
    FigureCanvasAgg(fig3)
    ax = fig3.add_subplot()
    tasks = sorted({r["task"] for r in sparse["rounds"]})
    drawn = looks(tasks, known=())
    for task in tasks:
        rows = [r for r in sparse["rounds"] if r["task"] == task]
        ax.plot(
            [r["density"] for r in rows],
            [r["dev_score"] for r in rows],
            marker="o",
            color=drawn[task].colour,
            linestyle=drawn[task].linestyle,
            label=task,
        )
    _density_axis(ax, [r["density"] for r in sparse["rounds"]])
    ax.set_xlabel("density of the task's mask (log scale)")
    ax.set_ylabel("dev score (higher is better)")
    fig3.suptitle("Dev score across pruning rounds (cf. paper Fig. 3)")  # above the legend too
    ax.grid(alpha=0.3)
    fig3.legend(loc="outside right center", title="task", fontsize="small")
    paths = [save_figure(fig3, out / "sparse_figure3.png")]

    rows = sparse.get("rounds_overlap", [])
    if rows:
        fig4 = Figure(figsize=(6.5, 4), layout="constrained")
        FigureCanvasAgg(fig4)
        ax1 = fig4.add_subplot()
        dens = [r["density"] for r in rows]
        ax1.plot(
            dens,
            [r["overlap_ratio"] for r in rows],
            marker="o",
            color="tab:blue",
            label="overlap ratio",
        )
        ax1.set_xlabel("mean density (log scale)")
        ax1.set_ylabel("overlap ratio of all masks", color="tab:blue")
        ax2 = ax1.twinx()
        ax2.plot(
            dens,
            [r["mean_dev_score"] for r in rows],
            marker="s",
            color="tab:red",
            label="mean dev score",
        )
        _density_axis(ax1, dens)  # after twinx: the twin shares the x axis, ticks and all
        ax2.set_ylabel("mean dev score (higher is better)", color="tab:red")
        ax1.set_title("Overlap ratio and mean score against density (cf. paper Fig. 4)")
        ax1.grid(alpha=0.3)
        paths.append(save_figure(fig4, out / "sparse_figure4.png"))
    return paths


def _density_axis(ax: Any, densities: list[float]) -> None:
    """A log density axis from dense (left) to sparse: ticks in percent at up to ``TICKS`` of
    the rounds' densities, no minor ticks, and room around a single density."""
    from matplotlib.ticker import FixedLocator, NullLocator, PercentFormatter

    ax.set_xscale("log")
    marks: list[float] = []
    for d in sorted({float(d) for d in densities if d > 0}, reverse=True):
        if not marks or d < marks[-1] / 1.03:  # tasks' densities of one round: one tick
            marks.append(d)
    if marks:
        step = max(1, math.ceil(len(marks) / TICKS))
        shown = marks[::step]
        if marks[-1] not in shown:  # the sparsest round always has its tick
            shown[-1] = marks[-1]
        ax.xaxis.set_major_locator(FixedLocator(shown))
        ax.xaxis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=_decimals(shown)))
        ax.set_xlim(marks[0] * 1.15, marks[-1] / 1.15)  # dense on the left
    else:
        ax.invert_xaxis()
    ax.xaxis.set_minor_locator(NullLocator())


def _decimals(ticks: list[float]) -> int:
    """The fewest decimals of percent (up to 3) that give every tick its own label."""
    for decimals in range(3):
        if len({f"{100 * t:.{decimals}f}" for t in ticks}) == len(ticks):
            return decimals
    return 3
