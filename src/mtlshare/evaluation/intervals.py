"""Split-conformal prediction intervals for multi-step forecasts, and how well they cover.

A method's errors at calibration origins (forecasts whose actuals are known before the forecast
being calibrated is made) give the width of its interval: for a level of 0.8, the half-width at
a forecast step is the conformal quantile of the absolute errors, the ``ceil((n + 1) * 0.8)``-th
smallest of ``n``, so that with exchangeable errors at least 80% of new actuals fall inside.
Errors grow with the step, so they are pooled in blocks of ``block`` consecutive steps (a week
for daily data) over every calibration origin: each block gets its own width.

A series' errors grow with its level and noise, which change between origins (a winter origin
against a summer one), so each calibration error is divided by a scale of its own origin, and the
width at the new origin is the quantile times that origin's scale. The forecasting study uses
the MASE scale, the in-sample error of the seasonal-naive forecast on the history each forecast
was made from: the intervals then hold scaled errors, as MASE does. Missing actuals are skipped,
never filled. Time-series errors are not exchangeable (a forecast from a spring origin errs more
than one from winter), so the coverage is a claim to be checked: :func:`coverage` measures it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def conformal_widths(
    calibration: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]],
    level: float,
    block: int,
    scales: Sequence[float] | None = None,
) -> FloatArray:
    """Per forecast step, the quantile of the scaled absolute errors of ``calibration`` pairs
    (actual, forecast), each of the horizon's length, divided by ``scales`` (one per pair; 1
    without). Multiply by the new origin's scale for the half-width. A missing actual (NaN) is
    skipped; a forecast that is not finite where the actual is observed is a ``ValueError``, as
    in ``forecast_metrics``. A block with too few observed errors for the level (fewer than
    ``level / (1 - level)``) gets an infinite width: no finite interval can claim that coverage
    from so few errors."""
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
    # as in ``forecast_metrics``: a forecast missing where there is an actual is a failed
    # method, not a day to skip (skipping it would narrow the interval on the days it made)
    if any(np.isinf(a).any() or (~np.isnan(a) & ~np.isfinite(f)).any() for a, f in pairs):
        raise ValueError(
            "a calibration actual is infinite (NaN marks a missing one), or its forecast is NaN "
            "or infinite where the actual is observed"
        )
    scale = np.ones(len(pairs)) if scales is None else np.asarray(scales, dtype=np.float64)
    if scale.shape != (len(pairs),) or not np.all(np.isfinite(scale) & (scale > 0)):
        raise ValueError(f"scales: one positive finite number per calibration pair, got {scales}")
    errors = np.stack([np.abs(a - f) / s for (a, f), s in zip(pairs, scale, strict=True)])
    widths = np.empty(horizon)
    for start in range(0, horizon, block):
        seen = errors[:, start : start + block].ravel()
        seen = np.sort(seen[~np.isnan(seen)])
        rank = math.ceil((seen.size + 1) * level)
        widths[start : start + block] = seen[rank - 1] if rank <= seen.size else math.inf
    return widths


def interval(
    forecast: npt.ArrayLike, widths: npt.ArrayLike, floor: float | None = None
) -> tuple[FloatArray, FloatArray]:
    """The (lower, upper) bounds ``forecast`` -/+ ``widths``, the lower never below ``floor``
    (0 for a series that cannot go negative) when given."""
    f = np.asarray(forecast, dtype=np.float64).ravel()
    w = np.asarray(widths, dtype=np.float64).ravel()
    if f.shape != w.shape:
        raise ValueError(f"forecast and widths differ in shape: {f.shape} vs {w.shape}")
    lower = f - w if floor is None else np.maximum(f - w, floor)
    return lower, f + w


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
