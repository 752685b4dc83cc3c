"""Bar charts of relative change vs single-task training, one panel per experimental setting.

matplotlib is imported inside the function: it is heavy and only reports need it.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from mtlshare.errors import MtlshareError
from mtlshare.evaluation.looks import looks
from mtlshare.files import write_atomically


def save_figure(fig: Any, path: str | Path, dpi: int = 120, *, beside_others: bool = False) -> Path:
    """Save a matplotlib figure as PNG atomically (``mtlshare.files.write_atomically``: a
    temporary file beside ``path``, flushed to disk, then a rename), so a reader never sees half
    an image, even after a power cut. Returns ``path``. ``beside_others``: ``path`` is in a
    folder of the user's, so the temporary file gets a name no file has.

    Raises:
        ValueError: ``path`` does not end in ``.png`` (the bytes written are a PNG image).
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: a figure is saved as a PNG image; give a path ending in .png")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(
        path, lambda tmp: fig.savefig(tmp, dpi=dpi, format="png"), beside_others=beside_others
    )
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
    zero are negative transfer. A change that is no number (a zero baseline) has no bar but a
    label at the zero line, ``n/a``, ``+inf`` or ``-inf``, so it is not read as no change. Every
    mechanism keeps its colour (``looks.looks``) in every panel and figure, and one legend
    beside the panels names the mechanisms of all of them. The figure widens with its tasks and
    mechanisms, and long task names are slanted so that they do not overprint.

    The figure is built with ``matplotlib.figure.Figure`` and the Agg canvas rather than pyplot,
    so it works headless without switching the caller's global backend. The file is written
    by ``save_figure``: a temporary file in the same directory, moved into place with
    ``os.replace``, so readers never see a half-written image. Returns the path written.

    Raises:
        MtlshareError: no comparison, or none has a row besides its baseline (nothing to draw).
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    if not comparisons:
        raise MtlshareError("plot_comparisons needs at least one comparison")
    path = Path(path)
    mechanisms = _mechanisms(comparisons)
    if not mechanisms:
        raise MtlshareError(
            f"plot_comparisons: {path}: the comparisons hold only their baseline rows, so there "
            "is no change against the baseline to draw"
        )
    drawn = looks(mechanisms)
    width = 0.8 / len(mechanisms)
    most = max(len(c["tasks"]) for c in comparisons.values())
    longest = max((len(t) for c in comparisons.values() for t in c["tasks"]), default=1)
    slot = 0.25 + 0.12 * len(mechanisms)  # inches per task
    panel = max(4.5, 1.0 + most * slot)
    slant = 0.08 * longest > panel / most  # a task's name is wider than its slot
    fig = Figure(
        figsize=(panel * len(comparisons) + 1.8, 4.0 + (0.07 * longest if slant else 0.0)),
        layout="constrained",
    )
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, len(comparisons), squeeze=False, sharey=True)[0]
    for ax, (label, comparison) in zip(axes, comparisons.items(), strict=True):
        tasks = comparison["tasks"]
        rows = {r["mechanism"]: r for r in comparison["rows"]}
        for i, mechanism in enumerate(mechanisms):
            row = rows.get(mechanism)
            if row is None or mechanism == comparison["baseline"]:
                continue
            values = [100 * row["tasks"][t]["relative_change"] for t in tasks]
            xs = [x + (i - (len(mechanisms) - 1) / 2) * width for x in range(len(tasks))]
            look = drawn[mechanism]
            ax.bar(
                xs,
                [v if math.isfinite(v) else math.nan for v in values],
                width,
                color=look.colour,
                hatch=look.hatch or None,
                edgecolor="white" if look.hatch else None,
                label=mechanism,
            )
            for x, v in zip(xs, values, strict=True):
                if not math.isfinite(v):
                    ax.annotate(
                        "n/a" if math.isnan(v) else f"{v:+}",
                        (x, 0.0),
                        xytext=(0, 3 if v >= 0 or math.isnan(v) else -3),
                        textcoords="offset points",
                        ha="center",
                        va="bottom" if v >= 0 or math.isnan(v) else "top",
                        rotation=90,
                        fontsize=7,
                        color=look.colour,
                    )
        ax.axhline(0.0, color="black", linewidth=0.8)
        ax.set_xlim(-0.5, len(tasks) - 0.5)  # a bar of NaN height does not widen the axis
        if slant:
            ax.set_xticks(range(len(tasks)), tasks, rotation=30, ha="right")
        else:
            ax.set_xticks(range(len(tasks)), tasks)
        ax.set_title(label)
        ax.set_xlabel("task")
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("relative change vs single-task (%)\npositive = better")
    handles = [
        Patch(
            facecolor=drawn[m].colour,
            hatch=drawn[m].hatch or None,
            edgecolor="white" if drawn[m].hatch else drawn[m].colour,
        )
        for m in mechanisms
    ]
    fig.legend(handles, mechanisms, loc="outside right center", title="mechanism", fontsize="small")
    if title:
        fig.suptitle(title)

    return save_figure(fig, path, dpi=120)
