"""Daily series as multi-series forecasting: one task per series, one example per window.

The data source ``daily_windows`` reads the same CSV files as ``daily_csv`` (long or wide, see
``mtlshare.data.timeseries``) but gives the network what a forecaster needs: each example is a
day ``t`` whose inputs are the ``context`` days of the series before ``t`` (scaled by the
window's level, with a mask of the observed days; ``mtlshare.data.windows``), the calendar of
``t`` (day of week, yearly Fourier terms, optionally a trend), and the known-in-advance
covariates (the holiday flag and ``exogenous`` columns) over the context and the horizon. Its
target is the whole horizon at once, ``horizon`` values: one forward pass forecasts every day, so
errors never compound as in recursive forecasting, and a series with little history still
trains on the steps it has observed (the later steps are masked).

Around a forecast ``origin``: training windows start before ``origin - dev_days`` and never see a
target day from there on; the dev windows start in the ``dev_days`` before the origin (model
selection, targets before the origin only); the test split is the one window at the origin.
``history = {casual = 90}`` keeps only the last 90 days of a series: its windows read and forecast
those days only, so a scarce series trains on little while the shared layers learn from all.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from mtlshare.data.daily import (
    DailyConfig,
    ForecastView,
    Window,
    observed_history,
    read_configured_csv,
    window,
)
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.data.timeseries import DailyFrame, calendar_features
from mtlshare.data.windows import Windows, WindowScale, series_windows, standardise, window_row
from mtlshare.data.windows_codec import WindowsCodec
from mtlshare.errors import ConfigError, DataError, one_of, parse_day
from mtlshare.registry import DATA_SOURCES
from mtlshare.tasks.task import Task

HEADS = ("linear", "affine")


@dataclass
class WindowsConfig(DailyConfig):
    """``[data]`` with ``source = "daily_windows"``: ``daily_csv``'s keys, plus ``context`` (days
    of recent values each window reads), ``profile_weeks`` (weeks averaged into the base
    forecast the network corrects; 0: the context's level) and ``head``: each series' output
    layer, ``"linear"`` (its own map from the trunk's features to the horizon, starting at zero)
    or ``"affine"`` (a per-step scale and shift of a horizon forecast the trunk's last layer
    makes for every series: set that layer's width to ``horizon`` and
    ``trunk.last_activation = "identity"``). ``exogenous`` columns are known in advance: they
    must have a value on every day a window reads, the forecast days included."""

    context: int = 14
    profile_weeks: int = 2
    head: str = "linear"

    def validate(self) -> None:
        super().validate()
        if self.context < 1:
            raise ConfigError(f"data.context: must be >= 1 day, got {self.context}")
        if self.head not in HEADS:
            raise ConfigError(f"data.head: {self.head!r} is not one of {one_of(HEADS)}")
        if self.profile_weeks < 0:
            raise ConfigError(f"data.profile_weeks: must be >= 0, got {self.profile_weeks}")
        if self.profile_weeks * 7 > self.context:
            raise ConfigError(
                f"data.profile_weeks: {self.profile_weeks} weeks do not fit in a context of "
                f"{self.context} days"
            )
        for name, days in self.history.items():
            if self.context > days:
                raise ConfigError(
                    f"data.context: {self.context} days is longer than the {days} days of "
                    f"history of {name!r} (data.history); shorten the context"
                )
            if days <= self.context + self.dev_days:  # no training window would fit
                raise ConfigError(
                    f"data.history: {name!r} keeps {days} days, which must hold a context of "
                    f"{self.context} days, a day to forecast and the {self.dev_days} dev days: "
                    f"give it more than {self.context + self.dev_days}, or shorten data.context "
                    "or data.dev_days"
                )


def covariates(
    frame: DailyFrame, cfg: WindowsConfig, win: Window, first: int
) -> tuple[np.ndarray, list[str], dict[str, tuple[float, float]]]:
    """(days, k) known covariates: the holiday flag (a day missing from the file is no holiday,
    as in ``daily_csv``: a calendar fact, not an observation) and the ``exogenous`` columns,
    standardised on the training days (their names, and each exogenous column's training
    mean and standard deviation). An exogenous column must have a value on every day a window
    reads, from ``first`` to the end of the horizon; a day it has none (the day missing from
    the file, or its cell empty: the error then names the line) is an error there only."""
    columns, names = [], []
    scales: dict[str, tuple[float, float]] = {}
    if cfg.holiday_column:
        columns.append(np.nan_to_num(frame.columns[cfg.holiday_column], nan=0.0))
        names.append("holiday")
    for name in cfg.exogenous:
        col = frame.columns[name].astype(np.float64)
        gaps = np.flatnonzero(np.isnan(col[first : win.end])) + first
        ahead = gaps[gaps >= win.origin]
        if ahead.size:
            day, line = frame.dates[int(ahead[0])], frame.where(name, int(ahead[0]))
            what = f"covariate {name!r} has no value for {day}"
            if line is not None:  # an empty cell, on that line
                what = f"column {name!r} is empty on {day}"
            raise DataError(
                f"{what}, in the forecast period {frame.dates[win.origin]} to "
                f"{frame.dates[win.end - 1]}: a known covariate needs a value on every "
                "forecast day",
                frame.path,
                line,
            )
        if gaps.size:
            day, line = frame.dates[int(gaps[0])], frame.where(name, int(gaps[0]))
            if line is not None:  # an empty cell: as a missing day, an error where it is read
                raise DataError(
                    f"column {name!r} is empty on {day}, which a window reads: a known "
                    "covariate needs a value on every day a window reads",
                    frame.path,
                    line,
                )
            raise DataError(
                f"covariate {name!r} has no value for {day} (the day is missing from the "
                f"file), which a window reads: give {day} a row with its {name!r} value (the "
                "series' value cells may stay empty)",
                frame.path,
            )
        train = col[first : win.dev_start]
        mean, std = float(np.mean(train)), float(np.std(train))
        columns.append(np.nan_to_num(standardise(col, mean, std)))
        names.append(name)
        scales[name] = (mean, std)
    out = np.stack(columns, axis=1) if columns else np.zeros((len(frame.dates), 0))
    return out, names, scales


class WindowFeatures:
    """The non-value inputs of a window starting at day ``t``: the calendar of ``t`` and the
    covariates over its context and horizon."""

    def __init__(self, frame: DailyFrame, cfg: WindowsConfig, win: Window, first: int) -> None:
        calendar, names = calendar_features(frame.dates, fourier_terms=cfg.fourier_terms)
        if cfg.trend:  # years from the origin: 0 at the origin, negative before
            trend = (np.arange(len(frame.dates), dtype=np.float64) - win.origin) / 365.25
            calendar = np.concatenate([calendar, trend[:, None]], axis=1)
            names = [*names, "trend"]
        self.calendar = calendar.astype(np.float64)
        self.covariates, covariate_names, self.scales = covariates(frame, cfg, win, first)
        self.context, self.horizon = cfg.context, cfg.horizon
        steps = [f"{d:+d}" for d in range(-cfg.context, cfg.horizon)]
        self.names = [*names, *(f"{c}_{s}" for c in covariate_names for s in steps)]

    def at(self, starts: list[int]) -> np.ndarray:
        rows = []
        for t in starts:
            span = self.covariates[t - self.context : t + self.horizon]
            rows.append(window_row(self.calendar[t], span))
        return np.array(rows, dtype=np.float64).reshape(len(starts), len(self.names))


def _split(w: Windows, features: WindowFeatures) -> Split:
    x = np.concatenate([w.x, features.at(w.starts)], axis=1)
    return Split(
        torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(w.y, dtype=np.float32)),
    )


def _series_splits(
    name: str, values: np.ndarray, first: int, cfg: WindowsConfig, win: Window, path: str
) -> tuple[Windows, Windows, Windows]:
    """Train, dev and test windows of one series whose allowed history starts at ``first``."""
    c, h = cfg.context, cfg.horizon

    def windows(starts: range, cut: int, unscored: bool = False) -> Windows:
        return series_windows(
            values,
            starts,
            c,
            h,
            cut,
            log=cfg.log_target,
            profile_weeks=cfg.profile_weeks,
            unscored=unscored,
        )

    start = first + c
    train = windows(range(start, win.dev_start), win.dev_start)
    if not train.starts:
        raise DataError(
            f"series {name!r}: no training window with an observed value: {win.origin - first} "
            f"days of history must hold a context of {c} days, a day to forecast and the "
            f"{cfg.dev_days} dev days; shorten data.context or data.dev_days, or choose a later "
            "origin",
            path,
        )
    dev = windows(range(max(start, win.dev_start), win.origin), win.origin)
    if not dev.starts:
        raise DataError(
            f"series {name!r} has no observed value in its {cfg.dev_days} dev days before "
            f"{cfg.origin}; model selection needs one",
            path,
        )
    test = windows(range(win.origin, win.origin + 1), win.end, unscored=True)
    if not test.starts:
        raise DataError(
            f"series {name!r} has no observed value in the {c} days before the origin "
            f"{cfg.origin}: nothing to forecast from",
            path,
        )
    return train, dev, test


@DATA_SOURCES.register(
    "daily_windows",
    config=WindowsConfig,
    summary="daily series from a CSV, one forecasting task per series over context windows",
)
def windows_problem(cfg: WindowsConfig, base_dir: str | None = None) -> Problem:
    """One task per series around ``cfg.origin`` (see the module docstring); ``meta`` carries a
    ``ForecastView`` under ``"forecast"`` and the feature names."""
    cfg.validate()
    frame = read_configured_csv(cfg, base_dir, blank_ok=cfg.exogenous)
    win = window(frame, cfg)
    if win.origin - cfg.context < 0:
        raise DataError(
            f"origin {cfg.origin} has only {win.origin} days before it in the file; "
            f"data.context is {cfg.context}",
            frame.path,
        )
    values = observed_history(frame, cfg, win)
    firsts = {n: max(0, win.origin - cfg.history.get(n, win.origin)) for n in values}
    features = WindowFeatures(frame, cfg, win, min(firsts.values()))
    tasks, decoders = [], {}
    for name, v in values.items():
        train, dev, test = _series_splits(name, v, firsts[name], cfg, win, frame.path)
        task = Task(name, "regression", cfg.horizon, "mae", head=cfg.head, zero_init=True)
        splits = (_split(w, features) for w in (train, dev, test))
        tasks.append(TaskData(task, *splits))
        decoders[name] = _decoder(test.scales[0])
    names = [
        *(f"value_{d:+d}" for d in range(-cfg.context, 0)),
        *(f"seen_{d:+d}" for d in range(-cfg.context, 0)),
        *features.names,
    ]
    history_days = {n: win.origin - f for n, f in firsts.items()}
    view = ForecastView(frame, win.origin, cfg.horizon, values, history_days, decoders)
    meta: dict[str, Any] = {"forecast": view, "feature_names": names, "window": win}
    return Problem(tasks, len(names), meta=meta, inference=usage(cfg, list(values), features))


def usage(cfg: WindowsConfig, series: list[str], features: WindowFeatures) -> dict[str, Any]:
    """The ``windows`` codec's spec (``mtlshare.data.windows_codec``): what forecasting from a
    file of recent values needs besides the weights."""
    keys = (
        "layout", "date_column", "series_column", "value_column", "date_format",
        "holiday_column", "exogenous", "fourier_terms", "trend", "log_target", "horizon",
        "context", "profile_weeks",
    )  # fmt: skip
    scales = {n: list(s) for n, s in features.scales.items()}
    data = {key: getattr(cfg, key) for key in keys}
    origin = parse_day(cfg.origin, "data.origin").isoformat()
    return WindowsCodec(series, data, scales, features.names, origin).spec()


def _decoder(scale: WindowScale) -> Callable[[np.ndarray], np.ndarray]:
    """The test window's (1, horizon) output as forecast values."""

    def decode(output: np.ndarray) -> np.ndarray:
        return scale.decode(np.asarray(output, dtype=np.float64).reshape(-1))

    return decode
