"""Daily series as multi-task regression: one task per series, inputs are calendar features.

The data source ``daily_csv`` reads a CSV of daily series (long or wide form, see
``mtlshare.data.timeseries``) and makes one regression task per series. Every day is one example
whose inputs are its calendar features (day of week, Fourier terms of the day of the year, a
holiday flag when the file has one, optional exogenous columns) and whose target is that day's
value of the series. Days a series has no observation for (missing in the file, empty, or cut off
by ``history``) have a NaN target: they are masked out of the loss and the metrics, never filled.

Around a forecast ``origin``: training days run up to ``origin - dev_days``, the ``dev_days`` before
the origin are the dev split (model selection), and the ``horizon`` days from the origin are the
test split. ``history = {casual = 90}`` keeps only a series' last 90 days before the origin, so a
scarce series trains on its own days while the shared trunk learns the calendar from all series.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mtlshare.data.codecs import TensorCodec
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.data.timeseries import (
    LAYOUTS,
    DailyFrame,
    calendar_features,
    read_described_csv,
)
from mtlshare.errors import ConfigError, DataError, data_file, one_of, parse_day
from mtlshare.registry import DATA_SOURCES
from mtlshare.tasks.task import Task


@dataclass
class DailyConfig:
    """``[data]`` with ``source = "daily_csv"``. A relative ``path`` is read from the folder of the
    config file."""

    path: str = ""
    layout: str = "long"
    date_column: str = "date"
    series: list[str] = field(default_factory=list)
    series_column: str = "series"
    value_column: str = "value"
    date_format: str = "%Y-%m-%d"
    holiday_column: str = ""
    exogenous: list[str] = field(default_factory=list)
    fourier_terms: int = 3
    trend: bool = False
    log_target: bool = True
    origin: str = ""
    horizon: int = 90
    dev_days: int = 14
    history: dict[str, int] = field(default_factory=dict)

    def validate(self) -> None:
        if not self.path:
            raise ConfigError("data.path: the CSV file to read is required")
        for key in ("horizon", "dev_days"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1 day, got {getattr(self, key)}")
        if any(days < 1 for days in self.history.values()):
            raise ConfigError(f"data.history: days must be >= 1, got {self.history}")
        if not self.origin:
            raise ConfigError("data.origin: the first forecast day (YYYY-MM-DD) is required")
        # the reader's own checks, named by the config's keys
        if self.layout not in LAYOUTS:
            raise ConfigError(f"data.layout: {self.layout!r} is not one of {one_of(LAYOUTS)}")
        if len(set(self.series)) != len(self.series):
            raise ConfigError(f"data.series: names a series twice, got {self.series}")
        if self.fourier_terms < 0:
            raise ConfigError(f"data.fourier_terms: must be >= 0, got {self.fourier_terms}")


@dataclass
class Window:
    """Indices into the frame's days around one forecast origin."""

    origin: int
    dev_start: int
    end: int  # exclusive end of the horizon

    @property
    def train(self) -> slice:
        return slice(0, self.dev_start)

    @property
    def dev(self) -> slice:
        return slice(self.dev_start, self.origin)

    @property
    def test(self) -> slice:
        return slice(self.origin, self.end)


def window(frame: DailyFrame, cfg: DailyConfig) -> Window:
    origin = frame.index_of(parse_day(cfg.origin, "data.origin"))
    if origin + cfg.horizon > len(frame.dates):
        raise DataError(
            f"origin {cfg.origin} + horizon {cfg.horizon} days runs past the last "
            f"day in the file ({frame.dates[-1]})",
            path=frame.path,
        )
    if origin - cfg.dev_days < 1:
        raise DataError(
            f"origin {cfg.origin} leaves no training days before its {cfg.dev_days} dev days",
            path=frame.path,
        )
    return Window(origin, origin - cfg.dev_days, origin + cfg.horizon)


@dataclass
class Scale:
    """How a series' values became targets: optional log1p, then standardisation."""

    log: bool
    mean: float
    std: float

    def forward(self, values: np.ndarray) -> np.ndarray:
        v = np.log1p(np.clip(values, 0.0, None)) if self.log else values
        return (v - self.mean) / self.std

    def inverse(self, targets: np.ndarray) -> np.ndarray:
        v = targets * self.std + self.mean
        return np.clip(np.expm1(v), 0.0, None) if self.log else v


@dataclass
class ForecastView:
    """What a forecasting study reads of a daily problem built around one origin.

    ``history[name]`` is the series as the model may see it (NaN outside its allowed
    ``data.history`` and on missing days; the horizon keeps its actual values, the test targets),
    ``origin`` the row of the first forecast day in ``frame``, and ``decoders[name]`` turns the
    network's output on the task's test split into the ``horizon`` forecast values on the
    series' own scale.
    """

    frame: DailyFrame
    origin: int
    horizon: int
    history: dict[str, np.ndarray]
    history_days: dict[str, int]
    decoders: dict[str, Callable[[np.ndarray], np.ndarray]]

    def seen(self, name: str) -> tuple[list[datetime.date], np.ndarray]:
        """The days series ``name`` may use before the origin and its values (NaN = missing)."""
        start = self.origin - self.history_days[name]
        return self.frame.dates[start : self.origin], self.history[name][start : self.origin]

    def actual(self, name: str) -> np.ndarray:
        """The observed values of the horizon (NaN = missing), float64."""
        return self.frame.values[name][self.origin : self.origin + self.horizon].astype(np.float64)

    @property
    def future_dates(self) -> list[datetime.date]:
        return self.frame.dates[self.origin : self.origin + self.horizon]

    def holidays(self, column: str) -> list[datetime.date]:
        """Days whose ``column`` flag is set (empty when ``column`` is empty)."""
        if not column:
            return []
        flags = self.frame.columns[column]
        return [d for d, f in zip(self.frame.dates, flags, strict=True) if f > 0]


def observed_history(frame: DailyFrame, cfg: DailyConfig, win: Window) -> dict[str, np.ndarray]:
    """Each series' values with everything outside its allowed history set to NaN (the horizon
    keeps its actual values: they are the test targets)."""
    unknown = sorted(set(cfg.history) - set(frame.values))
    if unknown:
        raise ConfigError(
            f"data.history: unknown series {unknown}; series are {list(frame.values)}"
        )
    out = {}
    for name, values in frame.values.items():
        v = values.astype(np.float64).copy()
        days = cfg.history.get(name)
        if days is not None:
            v[: max(0, win.origin - days)] = np.nan
        out[name] = v
    return out


def features(
    frame: DailyFrame, cfg: DailyConfig, win: Window
) -> tuple[np.ndarray, list[str], dict[str, list[float]]]:
    """Calendar features for every day; exogenous columns standardised on the training days,
    with each one's ``[mean, std]`` (what ``predict`` needs to read it as training did)."""
    holiday = None
    if cfg.holiday_column:
        # a day missing from the file is not a holiday: the flag is a calendar fact, not an
        # observation (observations of missing days stay NaN and masked)
        holiday = np.nan_to_num(frame.columns[cfg.holiday_column], nan=0.0)
    exo, standardised = {}, {}
    for name in cfg.exogenous:
        col = frame.columns[name].astype(np.float64)
        gaps = np.flatnonzero(np.isnan(col))
        if gaps.size:
            raise DataError(
                f"exogenous column {name!r} has no value for {frame.dates[gaps[0]]} "
                "(the day is missing from the file)",
                path=frame.path,
            )
        mean, std = float(np.mean(col[win.train])), float(np.std(col[win.train]))
        std = std if std > 0 else 1.0
        exo[name], standardised[name] = (col - mean) / std, [mean, std]
    if cfg.trend:  # years from the origin: 0 at the origin, negative before
        exo["trend"] = (np.arange(len(frame.dates), dtype=np.float64) - win.origin) / 365.25
    x, names = calendar_features(
        frame.dates, fourier_terms=cfg.fourier_terms, holiday=holiday, exogenous=exo
    )
    # day of week and holiday first, so that trunk.passthrough = 8 sends them to the heads
    first = [i for i, n in enumerate(names) if n.startswith("dow_") or n == "holiday"]
    order = first + [i for i in range(len(names)) if i not in first]
    return x[:, order], [names[i] for i in order], standardised


def _per_day_decoder(scale: Scale) -> Callable[[np.ndarray], np.ndarray]:
    """The test split holds one row per horizon day: its (days, 1) output, unscaled."""

    def decode(output: np.ndarray) -> np.ndarray:
        return scale.inverse(np.asarray(output, dtype=np.float64).reshape(-1))

    return decode


def read_configured_csv(
    cfg: DailyConfig, base_dir: str | None, blank_ok: Sequence[str] = ()
) -> DailyFrame:
    """The CSV ``cfg`` names (a relative path from ``base_dir``), its series and the holiday
    and covariate columns it uses; empty cells of the columns in ``blank_ok`` are NaN (see
    ``read_daily_csv``)."""
    path = data_file(cfg.path, base_dir, "data.path")
    return read_described_csv(
        path, dataclasses.asdict(cfg), series=cfg.series or None, blank_ok=blank_ok
    )


@DATA_SOURCES.register(
    "daily_csv",
    config=DailyConfig,
    summary="daily series from a CSV, one regression task per series",
)
def daily_problem(cfg: DailyConfig, base_dir: str | None = None) -> Problem:
    """One task per series around ``cfg.origin``; ``meta`` carries what forecasting needs
    (dates, the window, the scales, the original values)."""
    cfg.validate()
    frame = read_configured_csv(cfg, base_dir)
    win = window(frame, cfg)
    x_all, names, standardised = features(frame, cfg, win)
    x = torch.from_numpy(np.ascontiguousarray(x_all, dtype=np.float32))
    values = observed_history(frame, cfg, win)
    tasks, scales = [], {}
    for name, v in values.items():
        fit = v[: win.origin]
        fit = fit[~np.isnan(fit)]
        if fit.size < 2:
            raise DataError(
                f"series {name!r} has fewer than 2 observed days before the origin {cfg.origin}",
                path=frame.path,
            )
        base = np.log1p(np.clip(fit, 0.0, None)) if cfg.log_target else fit
        std = float(np.std(base))
        scale = Scale(cfg.log_target, float(np.mean(base)), std if std > 0 else 1.0)
        scales[name] = scale
        y = torch.from_numpy(scale.forward(v).astype(np.float32))

        def split(sl: slice, y: torch.Tensor = y) -> Split:
            return Split(x[sl], y[sl])

        tasks.append(
            TaskData(
                Task(name, "regression", 1, "mse"),
                split(win.train),
                split(win.dev),
                split(win.test),
            )
        )
    meta: dict[str, Any] = {
        "frame": frame,
        "window": win,
        "scales": scales,
        "values": values,
        "feature_names": names,
        "forecast": ForecastView(
            frame,
            win.origin,
            cfg.horizon,
            values,
            {n: min(cfg.history.get(n, win.origin), win.origin) for n in values},
            {n: _per_day_decoder(sc) for n, sc in scales.items()},
        ),
    }
    scaled = {n: dataclasses.asdict(sc) for n, sc in scales.items()}
    codec = TensorCodec(list(names), scaled, standardised)
    return Problem(tasks, int(x.shape[1]), meta=meta, inference=codec.spec())
