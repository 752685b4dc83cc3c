"""Plots of a sparse-sharing mask search, after the Sparse Sharing paper (Sun, Shao et al. 2020):
Figure 3, each task's dev score against the density of its mask across pruning rounds; Figure 4,
the overlap ratio of the tasks' masks and their mean dev score against density."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mtlshare.evaluation.plots import save_figure

MARGINS = {"left": 0.12, "right": 0.97, "bottom": 0.12, "top": 0.92}


def plot_search(sparse: dict[str, Any], out_dir: str | Path) -> list[Path]:
    """Write ``sparse_figure3.png`` and ``sparse_figure4.png`` from a run's ``"sparse"`` results.
    Dev scores are signed so that higher is better (negated for lower-is-better metrics)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    out = Path(out_dir)
    fig3 = Figure(figsize=(6, 4))
    FigureCanvasAgg(fig3)
    ax = fig3.add_subplot()
    tasks = sorted({r["task"] for r in sparse["rounds"]})
    for task in tasks:
        rows = [r for r in sparse["rounds"] if r["task"] == task]
        ax.plot(
            [r["density"] for r in rows], [r["dev_score"] for r in rows], marker="o", label=task
        )
    ax.set_xscale("log")
    ax.invert_xaxis()
    ax.set_xlabel("density of the task's mask (log scale)")
    ax.set_ylabel("dev score (higher is better)")
    ax.set_title("Dev score across pruning rounds (cf. paper Fig. 3)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig3.subplots_adjust(**MARGINS)  # fixed: tight_layout would draw the figure twice
    paths = [save_figure(fig3, out / "sparse_figure3.png")]

    rows = sparse.get("rounds_overlap", [])
    if rows:
        fig4 = Figure(figsize=(6, 4))
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
        ax1.set_xscale("log")
        ax1.invert_xaxis()
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
        ax2.set_ylabel("mean dev score (higher is better)", color="tab:red")
        ax1.set_title("Overlap ratio and mean score against density (cf. paper Fig. 4)")
        ax1.grid(alpha=0.3)
        fig4.subplots_adjust(**{**MARGINS, "right": 0.87})  # room for the right axis' label
        paths.append(save_figure(fig4, out / "sparse_figure4.png"))
    return paths
