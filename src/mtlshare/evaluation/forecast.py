"""Point-forecast errors (MAE, RMSE, sMAPE, MASE) on numpy arrays, with missing observations left
out.

A missing observation is ``NaN`` in ``actual``: that position is dropped from every metric, never
filled. A forecast must exist wherever there is an observation, so ``NaN`` (or an infinity) in
``forecast`` at an observed position is a ``ValueError``: it means the method failed, and
averaging over the positions it did produce would flatter it. When every actual is missing there
is nothing to score and each metric is ``NaN``.

Typical use over several forecast origins::

    per_origin = [forecast_metrics(actual, f) for actual, f in origins]
    summary = summarize(per_origin)  # {"mae": ..., "rmse": ..., "smape": ...}
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


def _observed(actual: npt.ArrayLike, forecast: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """The pairs (actual, forecast) at observed positions, as flat float64 arrays.

    Raises ``ValueError`` if the shapes differ, ``actual`` holds an infinity, or ``forecast`` is
    not finite where ``actual`` is observed.
    """
    y = np.asarray(actual, dtype=np.float64)
    f = np.asarray(forecast, dtype=np.float64)
    if y.shape != f.shape:
        raise ValueError(f"actual and forecast differ in shape: {y.shape} vs {f.shape}")
    y, f = y.ravel(), f.ravel()
    if np.isinf(y).any():
        raise ValueError("actual holds an infinite value; use NaN for a missing observation")
    seen = ~np.isnan(y)
    bad = seen & ~np.isfinite(f)
    if bad.any():
        where = np.flatnonzero(bad)[:5].tolist()
        raise ValueError(
            f"forecast is NaN or infinite at {int(bad.sum())} observed position(s), e.g. {where}"
        )
    return y[seen], f[seen]


def mae(actual: npt.ArrayLike, forecast: npt.ArrayLike) -> float:
    """Mean absolute error over the observed positions; ``NaN`` if none is observed."""
    y, f = _observed(actual, forecast)
    return float(np.abs(y - f).mean()) if y.size else math.nan


def rmse(actual: npt.ArrayLike, forecast: npt.ArrayLike) -> float:
    """Root mean squared error over the observed positions; ``NaN`` if none is observed."""
    y, f = _observed(actual, forecast)
    return float(np.sqrt(np.square(y - f).mean())) if y.size else math.nan


def smape(actual: npt.ArrayLike, forecast: npt.ArrayLike) -> float:
    """Symmetric mean absolute percentage error, in percent (0 to 200).

    The mean over observed positions of ``200 * |y - f| / (|y| + |f|)``, where a position with
    ``y == f == 0`` counts as 0 (a perfect forecast of zero, not a division by zero). Unlike MAPE
    it stays finite when the actual is 0. ``NaN`` if no position is observed.
    """
    y, f = _observed(actual, forecast)
    if not y.size:
        return math.nan
    denominator = np.abs(y) + np.abs(f)
    both_zero = denominator == 0
    terms = np.where(both_zero, 0.0, 200.0 * np.abs(y - f) / np.where(both_zero, 1.0, denominator))
    return float(terms.mean())


def mase_scale(history: npt.ArrayLike, season: int = 7) -> float:
    """The denominator of MASE: the in-sample MAE of the seasonal-naive forecast on ``history``,
    ``mean |y[t] - y[t - season]|`` over the pairs where both days are observed (Hyndman and
    Koehler, 2006). ``NaN`` when no pair is observed or every pair is equal (a scale of 0 would
    make any error infinite)."""
    if season < 1:
        raise ValueError(f"season must be at least 1, got {season}")
    y = np.asarray(history, dtype=np.float64).ravel()
    if y.size <= season:
        return math.nan
    diffs = np.abs(y[season:] - y[:-season])
    diffs = diffs[~np.isnan(diffs)]
    scale = float(diffs.mean()) if diffs.size else math.nan
    return scale if scale > 0 else math.nan


def mase(actual: npt.ArrayLike, forecast: npt.ArrayLike, scale: float) -> float:
    """Mean absolute scaled error: :func:`mae` divided by ``scale`` (from :func:`mase_scale` on
    the history the forecast was made from). Below 1: better than the seasonal-naive forecast was
    inside the history. ``NaN`` when ``scale`` is ``NaN`` or nothing is observed."""
    return mae(actual, forecast) / scale if scale > 0 else math.nan


def forecast_metrics(
    actual: npt.ArrayLike, forecast: npt.ArrayLike, scale: float | None = None
) -> dict[str, float]:
    """``{"mae", "rmse", "smape"}`` of one forecast against its actuals (see the functions),
    and ``"mase"`` when the MASE ``scale`` is given."""
    metrics = {
        "mae": mae(actual, forecast),
        "rmse": rmse(actual, forecast),
        "smape": smape(actual, forecast),
    }
    if scale is not None:
        metrics["mase"] = mase(actual, forecast, scale)
    return metrics


def summarize(per_origin: list[dict[str, float]]) -> dict[str, float]:
    """Mean of each metric over forecast origins, skipping origins where it is ``NaN``.

    ``per_origin`` is a list of :func:`forecast_metrics` results, one per origin. Keys keep their
    order of first appearance; an origin that lacks a key is skipped for that key. A metric that
    is ``NaN`` at every origin (nothing observed anywhere) stays ``NaN``. Raises ``ValueError``
    for an empty list: a summary of no origins is a caller bug, not a result.
    """
    if not per_origin:
        raise ValueError("summarize needs the metrics of at least one forecast origin")
    keys: list[str] = []
    for metrics in per_origin:
        keys.extend(k for k in metrics if k not in keys)
    summary: dict[str, float] = {}
    for key in keys:
        values = [m[key] for m in per_origin if key in m and not math.isnan(m[key])]
        summary[key] = math.fsum(values) / len(values) if values else math.nan
    return summary


def paired_difference(
    errors: npt.ArrayLike,
    other: npt.ArrayLike,
    *,
    level: float = 0.95,
    draws: int = 10_000,
    seed: int = 0,
) -> dict[str, float | int]:
    """How two methods' errors at the same forecast origins differ: the mean of ``errors -
    other`` (negative: the first method's errors are lower), at how many origins the first is
    lower, and a percentile bootstrap interval at ``level`` for the mean difference, drawn by
    resampling the origins with replacement (``draws`` times, from ``seed``).

    Origins where either error is ``NaN`` are left out. With few origins the interval is a rough
    guide (the percentile bootstrap is too narrow then), but one that crosses 0 says that the
    origins do not settle which method has the lower mean error. Raises ``ValueError`` for
    arrays of different lengths, no origin scored by both, or a level outside (0, 1).
    """
    a = np.asarray(errors, dtype=np.float64)
    b = np.asarray(other, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(
            f"paired errors need two 1-d arrays of one length, got {a.shape} {b.shape}"
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    both = ~(np.isnan(a) | np.isnan(b))
    diff = a[both] - b[both]
    if diff.size == 0:
        raise ValueError("no origin has an error for both methods")
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, diff.size, size=(draws, diff.size))].mean(axis=1)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(means, [tail, 100.0 - tail])
    return {
        "difference": float(diff.mean()),
        "lower_at": int((diff < 0).sum()),
        "of": int(diff.size),
        "low": float(low),
        "high": float(high),
        "level": level,
    }
