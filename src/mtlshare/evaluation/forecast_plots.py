"""One PNG per forecast origin: the history, the actuals of the horizon and every method's forecast.

matplotlib is imported inside the function: it is heavy and only reports need it.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mtlshare.evaluation.looks import FORECASTERS, looks
from mtlshare.evaluation.plots import save_figure


def plot_forecast(
    path: str | Path,
    history_dates: Sequence[datetime.date],
    history: np.ndarray,
    future_dates: Sequence[datetime.date],
    actual: np.ndarray,
    forecasts: Mapping[str, np.ndarray],
    title: str,
    band: tuple[str, np.ndarray, np.ndarray] | None = None,
    *,
    seed: int | None = None,
    target: str | None = None,
    interval: float | None = None,
) -> Path:
    """Draw one forecast origin and save it as a PNG at ``path``; returns the path written.

    ``history`` (grey) is aligned with ``history_dates``, ``actual`` (black) and every array in
    ``forecasts`` (one coloured line per method, labelled with its key in the legend) with
    ``future_dates``. ``NaN`` values (missing observations) show as gaps, not as filled points,
    and a value between gaps (or a one-day horizon) as a marker. A dashed vertical line, half
    way between the last history day and the first forecast day, marks the forecast origin;
    the x axis shows dates. ``band`` = (method, lower, upper) shades that method's prediction
    interval in its colour, in the legend as that method's interval (``interval``: its level,
    0.8 for 80%). Each method has its colour of ``looks.looks``, the same in every figure.
    ``seed``: the seed of the forecasts shown, added to the title; ``target``: the series'
    name, the y axis' label (default: the title's words before its first ``": "``).

    The figure is built with ``matplotlib.figure.Figure`` and the Agg canvas rather than pyplot,
    so it works headless without switching the caller's global backend. The file is written
    by ``save_figure``: a temporary file in the same directory, made world-readable (0644) and
    moved into place with ``os.replace``, so readers never see a half-written image. Raises
    ``ValueError`` when an array and its dates differ in length or ``history_dates`` is empty.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
    from matplotlib.figure import Figure

    if not history_dates:
        raise ValueError("history_dates is empty: a forecast is drawn after its history")
    _check_length("history", history, history_dates)
    _check_length("actual", actual, future_dates)
    for name, forecast in forecasts.items():
        _check_length(f"forecast {name!r}", forecast, future_dates)
    if band is not None:
        if band[0] not in forecasts:
            raise ValueError(f"band: {band[0]!r} is not one of the forecasts {list(forecasts)}")
        _check_length("band lower", band[1], future_dates)
        _check_length("band upper", band[2], future_dates)
    path = Path(path)

    fig = Figure(figsize=(9.0, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    # Dates as matplotlib's day numbers: the date locator and formatter below label them.
    past = date2num(list(history_dates))
    future = date2num(list(future_dates))
    _line(ax, past, history, color="grey", linewidth=1.2, label="history")
    _line(ax, future, actual, color="black", linewidth=1.5, label="actual")
    drawn = looks(forecasts, FORECASTERS)
    for name, forecast in forecasts.items():
        look = drawn[name]
        _line(ax, future, forecast, color=look.colour, linestyle=look.linestyle, label=name)
        if band is not None and band[0] == name:
            ax.fill_between(
                future,
                band[1],
                band[2],
                color=look.colour,
                alpha=0.15,
                linewidth=0,
                label=f"{name}: {interval:.0%} interval" if interval else f"{name}: interval",
            )
    # the origin is the first forecast day: the line parts the last observed day from it
    gap = float(future[0] - past[-1]) if len(future) else 1.0
    ax.axvline(
        float(past[-1]) + gap / 2,
        color="black",
        linestyle="--",
        linewidth=0.8,
        label="forecast origin",
    )
    locator = AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    ax.set_xlabel("date")
    if target is None:
        target = title.split(": ", 1)[0] if ": " in title else "value"
    ax.set_ylabel(target)
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small")
    ax.set_title(f"{title} (seed {seed})" if seed is not None else title)

    return save_figure(fig, path, dpi=110)


def _line(ax: Any, x: np.ndarray, y: np.ndarray, **style: Any) -> None:
    """Plot ``y`` against ``x`` with NaN as gaps, and a marker on each value that has no
    neighbour to draw a segment to (a line of one point draws nothing)."""
    y = np.asarray(y, dtype=float)
    known = np.isfinite(y)
    before = np.concatenate([[False], known[:-1]])
    after = np.concatenate([known[1:], [False]])
    alone = known & ~before & ~after
    ax.plot(x, y, marker="o", markersize=3, markevery=list(alone), **style)


def _check_length(name: str, values: np.ndarray, dates: Sequence[datetime.date]) -> None:
    """Raise ``ValueError`` unless ``values`` is 1-D with one value per date."""
    shape = np.shape(values)
    if shape != (len(dates),):
        raise ValueError(f"{name} has shape {shape} but there are {len(dates)} dates")


def plot_scarcity(path: str | Path, scarcity: Mapping[str, Any], target: str) -> Path:
    """The scarcity sweep as a PNG: each method's mean MAE (y) against the target's history
    length in days (x, logarithmic), one line per method. ``scarcity`` is the study's
    ``results["scarcity"]``: ``{"histories": [...], "methods": {name: {"DAYS": {"mae"}}}}``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    days = list(scarcity["histories"])
    if not days:
        raise ValueError("the scarcity sweep has no history lengths")
    fig = Figure(figsize=(6.5, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    drawn = looks(scarcity["methods"], FORECASTERS)
    for name, by_days in scarcity["methods"].items():
        maes = [by_days.get(str(d), {}).get("mae") for d in days]
        look = drawn[name]
        ax.plot(
            days,
            [math.nan if v is None else v for v in maes],  # a length not swept: a gap
            marker="o",
            color=look.colour,
            linestyle=look.linestyle,
            linewidth=1.4,
            label=name,
        )
    ax.set_xscale("log")
    ax.set_xticks(days, [str(d) for d in days])
    ax.minorticks_off()
    ax.set_xlabel(f"days of {target}'s history before each origin")
    ax.set_ylabel("mean MAE over the test origins")
    ax.grid(alpha=0.3)
    fig.legend(loc="outside right upper", fontsize="small")
    ax.set_title(f"{target}: forecast error against history length")
    return save_figure(fig, Path(path), dpi=110)
