"""Bar charts of relative change vs single-task training, one panel per experimental setting.

matplotlib is imported inside the function: it is heavy and only reports need it.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path
from typing import Any

from mtlshare.errors import MtlshareError


def save_figure(fig: Any, path: str | Path, dpi: int = 120, *, beside_others: bool = False) -> Path:
    """Save a matplotlib figure as PNG atomically: a temporary file beside ``path``, then a
    rename, so a reader never sees half an image. Returns ``path``. The temporary file is
    ``NAME.tmp`` (as ``atomic_write_text``'s) in a folder of the library's, so a write cut by a
    kill leaves one file that the next write of the plot replaces; ``beside_others``: a folder
    of the user's, where that name may be a file of theirs, so it gets a name no file has."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if beside_others:
        fd, name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".png", dir=path.parent)
        tmp = Path(name)
    else:
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=dpi, format="png")
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600; a report image should be readable
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _mechanisms(comparisons: dict[str, dict[str, Any]]) -> list[str]:
    """Every non-baseline mechanism in order of first appearance, so colours match across panels."""
    seen: list[str] = []
    for comparison in comparisons.values():
        for row in comparison["rows"]:
            name = row["mechanism"]
            if name != comparison["baseline"] and name not in seen:
                seen.append(name)
    return seen


def plot_comparisons(
    comparisons: dict[str, dict[str, Any]], path: str | Path, title: str = ""
) -> Path:
    """Draw relative change (%) vs single-task per task and mechanism; save a PNG at ``path``.

    ``comparisons`` maps a setting label (e.g. ``"relatedness 0.9"``) to a
    :func:`mtlshare.evaluation.report.compare` result; each setting gets one panel of bars grouped
    by task, one bar per mechanism (the baseline is left out: it is the zero line). Bars below
    zero are negative transfer. Infinite or NaN changes (zero baseline) are not drawn.

    The figure is built with ``matplotlib.figure.Figure`` and the Agg canvas rather than pyplot,
    so it works headless without switching the caller's global backend. The file is written
    by ``save_figure``: a temporary file in the same directory, moved into place with
    ``os.replace``, so readers never see a half-written image. Returns the path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    if not comparisons:
        raise MtlshareError("plot_comparisons needs at least one comparison")
    path = Path(path)
    mechanisms = _mechanisms(comparisons)
    width = 0.8 / max(len(mechanisms), 1)

    fig = Figure(figsize=(max(4.5 * len(comparisons), 5.0), 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(comparisons), squeeze=False, sharey=True)[0]
    for ax, (label, comparison) in zip(axes, comparisons.items(), strict=True):
        tasks = comparison["tasks"]
        rows = {r["mechanism"]: r for r in comparison["rows"]}
        for i, mechanism in enumerate(mechanisms):
            row = rows.get(mechanism)
            if row is None:
                continue
            values = [100 * row["tasks"][t]["relative_change"] for t in tasks]
            heights = [v if math.isfinite(v) else math.nan for v in values]
            offset = (i - (len(mechanisms) - 1) / 2) * width
            ax.bar(
                [x + offset for x in range(len(tasks))],
                heights,
                width,
                label=mechanism,
                color=f"C{i % 10}",
            )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xticks(range(len(tasks)), tasks)
        ax.set_title(label)
        ax.set_xlabel("task")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("relative change vs single-task (%)\npositive = better")
    if mechanisms:
        axes[-1].legend(title="mechanism", fontsize="small")
    if title:
        fig.suptitle(title)

    return save_figure(fig, path, dpi=120)
