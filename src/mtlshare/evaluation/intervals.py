"""Split-conformal prediction intervals for multi-step forecasts, and how well they cover.

A method's errors at calibration origins (forecasts whose actuals are known before the forecast
being calibrated is made) give the width of its interval: for a level of 0.8, the half-width at
a forecast step is the conformal quantile of the absolute errors, the ``ceil((n + 1) * 0.8)``-th
smallest of ``n``, so that with exchangeable errors at least 80% of new actuals fall inside.
Errors grow with the step, so they are pooled in blocks of ``block`` consecutive steps (a week
for daily data) over every calibration origin: each block gets its own width.

Errors are measured on the log1p scale when ``log`` is set (counts: the interval is then
multiplicative and never goes below 0) and on the series' own scale otherwise. Missing actuals
are skipped, never filled. Time-series errors are not exchangeable (a forecast from a spring
origin errs more than one from winter), so the coverage is a claim to be checked:
:func:`coverage` measures it on the test origins.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _to_scale(values: FloatArray, log: bool) -> FloatArray:
    return np.log1p(np.maximum(values, 0.0)) if log else values


def conformal_widths(
    calibration: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    level: float,
    block: int,
    log: bool,
) -> FloatArray:
    """Per forecast step, the interval's half-width from ``calibration`` pairs (actual,
    forecast), each of the horizon's length. A block with too few observed errors for the level
    (fewer than ``level / (1 - level)``) gets an infinite width: no finite interval can claim
    that coverage from so few errors."""
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must lie strictly between 0 and 1, got {level}")
    if block < 1:
        raise ValueError(f"block must be at least 1 step, got {block}")
    if not calibration:
        raise ValueError("conformal_widths needs at least one calibration forecast")
    pairs = [
        (np.asarray(a, dtype=np.float64).ravel(), np.asarray(f, dtype=np.float64).ravel())
        for a, f in calibration
    ]
    horizon = pairs[0][0].size
    if any(a.size != horizon or f.size != horizon for a, f in pairs):
        raise ValueError("every calibration actual and forecast must have the same length")
    errors = np.stack([np.abs(_to_scale(a, log) - _to_scale(f, log)) for a, f in pairs])
    widths = np.empty(horizon)
    for start in range(0, horizon, block):
        seen = errors[:, start : start + block].ravel()
        seen = np.sort(seen[~np.isnan(seen)])
        rank = math.ceil((seen.size + 1) * level)
        widths[start : start + block] = seen[rank - 1] if rank <= seen.size else math.inf
    return widths


def interval(
    forecast: npt.ArrayLike, widths: npt.ArrayLike, log: bool
) -> tuple[FloatArray, FloatArray]:
    """The (lower, upper) bounds around ``forecast`` with the half-``widths`` of
    :func:`conformal_widths`, on the series' own scale (with ``log``, never below 0)."""
    f = np.asarray(forecast, dtype=np.float64).ravel()
    w = np.asarray(widths, dtype=np.float64).ravel()
    if f.shape != w.shape:
        raise ValueError(f"forecast and widths differ in shape: {f.shape} vs {w.shape}")
    if not log:
        return f - w, f + w
    centre = _to_scale(f, log)
    with np.errstate(over="ignore"):
        return np.maximum(np.expm1(centre - w), 0.0), np.expm1(centre + w)


def coverage(actual: npt.ArrayLike, lower: npt.ArrayLike, upper: npt.ArrayLike) -> dict[str, float]:
    """``{"coverage", "width"}``: the share of observed actuals inside [lower, upper] and the
    interval's mean width on those days (``NaN`` for both when nothing is observed)."""
    y = np.asarray(actual, dtype=np.float64).ravel()
    lo = np.asarray(lower, dtype=np.float64).ravel()
    hi = np.asarray(upper, dtype=np.float64).ravel()
    if not y.shape == lo.shape == hi.shape:
        raise ValueError(
            f"actual, lower and upper differ in shape: {y.shape}, {lo.shape}, {hi.shape}"
        )
    seen = ~np.isnan(y)
    if not seen.any():
        return {"coverage": math.nan, "width": math.nan}
    y, lo, hi = y[seen], lo[seen], hi[seen]
    inside = (lo <= y) & (y <= hi)
    return {"coverage": float(inside.mean()), "width": float((hi - lo).mean())}
