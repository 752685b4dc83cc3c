"""Gate weights as heat maps: one panel per level (and per seed in a comparison), a row per
gate (each task's, and the shared gate between PLE levels), a column per expert, the colour
and the number the gate's mean weight on dev; blank where a gate does not mix that expert, and
a whole row blank, its name saying so, for a gate that saw no dev position.
Tasks whose gates are bright in the same column share that expert."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mtlshare.evaluation.plots import save_figure

Panel = tuple[str, dict[str, Any]]  # (title, one level of a run's "gates" results)


def level_panels(gates: dict[str, Any], prefix: str = "") -> list[Panel]:
    """One panel per level of a run's ``"gates"`` results, titled ``prefix`` and the level."""
    levels = gates["levels"]
    if len(levels) == 1:
        return [(prefix or "gates", levels[0])]
    return [
        (f"{prefix}, level {i}" if prefix else f"level {i}", lv) for i, lv in enumerate(levels, 1)
    ]


def plot_gates(grid: list[list[Panel | None]], path: str | Path, title: str = "") -> Path:
    """Draw a grid of panels (None: an empty cell) and save a PNG at ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rows, columns = len(grid), max(len(row) for row in grid)
    panels = [p for row in grid for p in row if p is not None]
    widest = max(len(level["experts"]) for _, level in panels)
    tallest = max(len(level["tasks"]) + ("shared" in level) for _, level in panels)
    fig = Figure(
        figsize=(1.5 + columns * (1.2 + 0.6 * widest), 0.6 + rows * (1.1 + 0.4 * tallest)),
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, columns, squeeze=False)
    image = None
    for r, row in enumerate(grid):
        for c in range(columns):
            panel = row[c] if c < len(row) else None
            if panel is None:
                axes[r][c].set_axis_off()
                continue
            image = _draw(axes[r][c], *panel)
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.8, label="mean gate weight on dev")
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def _draw(ax: Any, label: str, level: dict[str, Any]) -> Any:
    names, matrix = _matrix(level)
    image = ax.imshow(matrix, vmin=0.0, vmax=1.0, cmap="viridis", aspect="auto")
    for r, row in enumerate(matrix):
        for c, w in enumerate(row):
            if not math.isnan(w):
                colour = "black" if w > 0.6 else "white"
                ax.text(c, r, f"{w:.2f}", ha="center", va="center", fontsize=7, color=colour)
    ax.set_xticks(range(len(level["experts"])), level["experts"], rotation=45, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=8)
    ax.set_title(label, fontsize=9)
    return image


def _matrix(level: dict[str, Any]) -> tuple[list[str], list[list[float]]]:
    rows = dict(level["tasks"])
    if "shared" in level:
        rows["(shared gate)"] = level["shared"]
    n = len(level["experts"])
    matrix = [
        [math.nan if w is None else float(w) for w in (row or [None] * n)] for row in rows.values()
    ]
    # a gate that saw no dev position has no weights: its blank row says why
    names = [
        name if row is not None else f"{name} (no dev positions)" for name, row in rows.items()
    ]
    return names, matrix


def plot_run_gates(gates: dict[str, Any], path: str | Path) -> Path:
    """A run's ``gates.png``: one panel per level."""
    return plot_gates([list(level_panels(gates))], path, "Mean gate weight per expert on dev")


def plot_comparison_gates(summaries: dict[str, dict[str, Any]], path: str | Path) -> Path:
    """A comparison's ``gates.png``: a row of panels per gated mechanism and level, a column
    per seed (``summaries``: ``report.summarize`` per mechanism)."""
    grid: list[list[Panel | None]] = []
    for name, summary in summaries.items():
        runs = list(zip(summary["seeds"], summary["runs"], strict=True))
        for i in range(len(runs[0][1]["levels"])):
            row: list[Panel | None] = []
            for seed, run in runs:
                where = f"{name}, seed {seed}" if seed is not None else name
                label = f"{where}, level {i + 1}" if len(run["levels"]) > 1 else where
                row.append((label, run["levels"][i]))
            grid.append(row)
    return plot_gates(grid, path, "Mean gate weight per expert on dev")
