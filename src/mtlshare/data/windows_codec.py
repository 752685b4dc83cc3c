"""The ``windows`` codec: the forecast a trained ``daily_windows`` run makes from recent values.

The input is a CSV of the series in the training file's layout and columns (wide or long, the
same date column, holiday flag and ``exogenous`` columns). The forecast starts the day after the
last day on which any of the run's series in the file has a value; rows after it may give the
known covariates of the forecast days (the holiday flag: a day without a row is no holiday, as in
training; each ``exogenous`` column needs a value on every day a window reads, the forecast days
included). Each series forecasts from the ``context`` days before that first forecast day (its
days missing from the file, or before its first row, are masked as in training), through the
network, back on the series' own scale: one row per series and forecast day, ``date, series,
forecast``. The inputs are built by the same functions as the training windows, so the run's
test window read from its own data file gives the same inputs, to the bit.

A forecast whose first day comes before the run's own origin (``data.origin``) warns: the run was
fitted to, or chose its epoch by, the values of the days before its origin, so a forecast of
them is in sample, and its errors there say little of how it forecasts days it has not seen.

A series forecast with values on fewer than half of its context days warns (its missing days
are masked all the same): the base forecast's level and weekly profile (``profile_weeks``) then
rest on under half the days they are meant to average, and of a 14-day context on fewer than
7, so that some weekday of the profile has no value of its own.

A series' input row holds its own values, the calendar and the covariates, never another
series' values, and every mechanism maps each row on its own: to forecast some series
(``tasks``) the file needs only those. The others, where the file has them, are read as
before: they still count towards the first forecast day, and one without a value in its
context is left out rather than an error.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlshare.data.codecs import CODECS, Codec
from mtlshare.data.timeseries import (
    DailyFrame,
    calendar_features,
    daily_keys,
    read_described_csv,
)
from mtlshare.data.windows import (
    WindowScale,
    encode_context,
    standardise,
    window_row,
    window_scale,
)
from mtlshare.errors import DataError
from mtlshare.tasks.task import Task


@dataclass
class SeriesInputs:
    """A file of recent values, read: the forecast days, and per series its window's inputs
    and scale."""

    path: Path
    series: list[str]
    dates: list[datetime.date]  # the forecast days
    x: Tensor  # (series, features), a row per series in ``series`` order
    scales: list[WindowScale]


@dataclass
class WindowsCodec:
    """Recent values of the run's series in, their forecasts out (see the module docstring)."""

    series: list[str]
    data: dict[str, Any]
    exogenous_scales: dict[str, list[float]]
    features: list[str]
    origin: str = ""  # the run's first forecast day (ISO); "" in runs older than the key

    def spec(self) -> dict[str, Any]:
        spec = {
            "codec": "windows",
            "series": self.series,
            "data": self.data,
            "exogenous_scales": self.exogenous_scales,
            "features": self.features,
        }
        return spec | ({"origin": self.origin} if self.origin else {})

    def build_stem(self) -> Callable[[], nn.Module] | None:
        return None

    def read(self, path: Path, fmt: str, tasks: Sequence[str] | None = None) -> SeriesInputs:
        if fmt not in ("auto", "csv"):
            raise DataError(f"this run forecasts from a CSV of its series' values, not {fmt}")
        d = self.data
        needed = [s for s in self.series if tasks is None or s in tasks]
        keys = daily_keys(d)  # the codec's data holds no series: a wide file's columns are ours
        if d["layout"] == "wide":
            keys |= dict.fromkeys(self.series, "a series of the run; predict --tasks leaves it out")
        frame = read_described_csv(
            path,
            d,
            series=self.series,
            optional=[s for s in self.series if s not in needed],
            blank_ok=list(d["exogenous"]),  # needed on the days read only, as in training
            named_by=keys,
            series_hint="predict --tasks names the series to forecast, the others may be left out",
        )
        present = [s for s in self.series if s in frame.values]
        seen = [np.flatnonzero(~np.isnan(frame.values[name])) for name in present]
        if not any(s.size for s in seen):
            raise DataError(
                f"no value of {', '.join(map(repr, present))} in the file: nothing to "
                "forecast from",
                path,
            )
        origin = max(int(s[-1]) for s in seen if s.size) + 1
        context, horizon = int(d["context"]), int(d["horizon"])
        first_day = frame.dates[0] + datetime.timedelta(days=origin)
        if self.origin and first_day < datetime.date.fromisoformat(self.origin):
            warnings.warn(
                f"{path}: the forecast starts on {first_day}, before {self.origin}, the run's "
                "origin: the run was fitted to the days before its origin, so this forecast "
                "is in sample and its errors say little of how it forecasts unseen days",
                stacklevel=2,
            )
        calendar, names = calendar_features([first_day], fourier_terms=int(d["fourier_terms"]))
        row = calendar[0].astype(np.float64)
        if d["trend"]:  # years from the run's origin, as in training (0 at its test window)
            row, names = np.concatenate([row, [self._trend(first_day, path)]]), [*names, "trend"]
        span, covariate_names = self._covariates(frame, origin - context, origin + horizon)
        steps = [f"{s:+d}" for s in range(-context, horizon)]
        names = [*names, *(f"{c}_{s}" for c in covariate_names for s in steps)]
        if names != self.features:
            raise DataError(
                f"the run's inputs were {len(self.features)} features, these {len(names)}: "
                "was the run trained with another version of mtlshare?",
                path,
            )
        rows, scales, kept = [], [], []
        for name in present:
            values = _days(frame.values[name].astype(np.float64), origin - context, origin)
            if np.isnan(values).all() and name not in needed:
                continue  # not asked for: nothing to forecast it from is no error
            if np.isnan(values).all():
                raise DataError(
                    f"series {name!r} has no value in the {context} days before {first_day}, "
                    "the first forecast day: nothing to forecast it from",
                    path,
                )
            observed = int(np.count_nonzero(~np.isnan(values)))
            if name in needed and 2 * observed < context:
                warnings.warn(
                    f"{path}: series {name!r} has values on {observed} of the {context} context "
                    f"days before {first_day}, the first forecast day: the {context - observed} "
                    "missing days are masked, and a forecast from under half its context rests "
                    "on little history",
                    stacklevel=2,
                )
            scale = window_scale(values, horizon, bool(d["log_target"]), int(d["profile_weeks"]))
            rows.append(np.concatenate([encode_context(values, scale), window_row(row, span)]))
            scales.append(scale)
            kept.append(name)
        x = torch.from_numpy(np.ascontiguousarray(np.array(rows), dtype=np.float32))
        dates = [first_day + datetime.timedelta(days=h) for h in range(horizon)]
        return SeriesInputs(path, kept, dates, x, scales)

    def _trend(self, first_day: datetime.date, path: Path) -> float:
        """The trend input of a forecast from ``first_day``: years from the run's origin."""
        if not self.origin:
            warnings.warn(
                f"{path}: the run's inference.json does not hold its origin (a run older than "
                "the key): its trend input is read as at the origin, 0 years, whatever the "
                "forecast's first day",
                stacklevel=3,
            )
            return 0.0
        return (first_day - datetime.date.fromisoformat(self.origin)).days / 365.25

    def _covariates(self, frame: DailyFrame, start: int, end: int) -> tuple[np.ndarray, list[str]]:
        """(end - start, k) covariates over days ``start`` .. ``end`` (indices into the file's
        days; outside it where the forecast runs past its last row)."""
        columns, names = [], []
        holiday = self.data["holiday_column"]
        if holiday:
            columns.append(np.nan_to_num(_days(frame.columns[holiday], start, end), nan=0.0))
            names.append("holiday")
        for name in self.data["exogenous"]:
            col = _days(frame.columns[name].astype(np.float64), start, end)
            gaps = np.flatnonzero(np.isnan(col))
            if gaps.size:
                day = frame.dates[0] + datetime.timedelta(days=start + int(gaps[0]))
                last = frame.dates[0] + datetime.timedelta(days=end - 1)
                line = frame.where(name, start + int(gaps[0]))
                if line is not None:  # an empty cell: as a missing day, an error where read
                    raise DataError(
                        f"column {name!r} is empty on {day}; a forecast reads it on every day "
                        f"of its context and horizon, through {last}",
                        frame.path,
                        line,
                    )
                raise DataError(
                    f"covariate {name!r} has no value for {day}; a forecast reads it on every "
                    f"day of its context and horizon, through {last}: give those days rows",
                    frame.path,
                )
            mean, std = self.exogenous_scales[name]
            columns.append(standardise(col, mean, std))
            names.append(name)
        out = np.stack(columns, axis=1) if columns else np.zeros((end - start, 0))
        return out, names

    def encode(self, doc: SeriesInputs) -> tuple[Tensor, Tensor | None]:
        return doc.x, None

    def write(self, doc: SeriesInputs, tasks: list[Task], predictions: dict[str, Tensor]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(["date", "series", "forecast"])
        for task in tasks:
            at = doc.series.index(task.name)
            output = predictions[task.name][at].cpu().double().numpy()
            for day, value in zip(doc.dates, doc.scales[at].decode(output), strict=True):
                writer.writerow([day.isoformat(), task.name, repr(float(value))])
        return out.getvalue()

    def size(self, doc: SeriesInputs, tasks: Sequence[str]) -> tuple[int, str]:
        # a value per day of each series forecast, not of every series read from the file
        return len(tasks) * len(doc.dates), "values"


def _days(column: np.ndarray, start: int, end: int) -> np.ndarray:
    """``column`` over days ``start`` .. ``end``, NaN where the file has no such day."""
    out = np.full(end - start, np.nan)
    lo, hi = max(start, 0), min(end, len(column))
    if lo < hi:
        out[lo - start : hi - start] = column[lo:hi]
    return out


@CODECS.register("windows", summary="recent values of the series in, their forecasts out")
def windows_codec(spec: dict[str, Any]) -> Codec:
    return WindowsCodec(
        list(spec["series"]),
        dict(spec["data"]),
        {k: list(v) for k, v in spec.get("exogenous_scales", {}).items()},
        list(spec["features"]),
        _iso_day(spec.get("origin", "")),
    )


def _iso_day(origin: object) -> str:
    """The spec's origin, checked: a damaged one is refused when the run is loaded (the
    registry's ``TypeError``, one line), not where a forecast first reads it."""
    if origin == "":
        return ""
    if isinstance(origin, str):
        with contextlib.suppress(ValueError):
            return datetime.date.fromisoformat(origin).isoformat()
    raise TypeError(f"origin {origin!r} is not a YYYY-MM-DD day")
