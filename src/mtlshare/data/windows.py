"""Forecast windows of one daily series: the maths, as pure functions on numpy arrays.

A window at day ``t`` reads the ``context`` days before ``t`` and is trained to forecast the
``horizon`` days from ``t`` on. Values live in a transformed space: ``log1p`` of the value when
``log`` is set (counts, sales), else the value divided by the window's mean absolute level. In
that space

- the **inputs** are the context minus its mean (the window's level), so series of different
  sizes look alike and share weights, plus a 0/1 channel saying which context days are observed
  (a missing day is 0 in both channels: masked, never filled with a guess);
- the **base** of step ``h`` is the mean of the last ``profile_weeks`` observed values on the same
  weekday as ``t + h`` (a smoothed seasonal-naive forecast), or the level when ``profile_weeks``
  is 0;
- the **target** of step ``h`` is the transformed value minus its base, NaN where the day is
  missing or outside what the window may see.

A network that outputs zeros therefore forecasts the base; training teaches it how the coming
weeks differ from the last ones (the seasonal drift, holidays, the covariates). This is the
"naive skip" of N-BEATS-style forecasters (Oreshkin et al., ICLR 2020) with the level scaling of
DeepAR (Salinas et al., 2020).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
WEEK = 7


@dataclass(frozen=True)
class WindowScale:
    """How one window's values map to the network's space and back."""

    log: bool
    divisor: float  # 1.0 in log space; the mean absolute level of the context otherwise
    level: float  # mean of the transformed context
    base: FloatArray  # (horizon,) the base forecast in the transformed space

    def transform(self, values: np.ndarray) -> FloatArray:
        v = np.asarray(values, dtype=np.float64)
        return np.log1p(np.clip(v, 0.0, None)) if self.log else v / self.divisor

    def decode(self, output: np.ndarray) -> FloatArray:
        """Values on the series' own scale from the network's (horizon,) output."""
        u = np.asarray(output, dtype=np.float64) + self.base
        return np.clip(np.expm1(u), 0.0, None) if self.log else u * self.divisor


def window_scale(context: np.ndarray, horizon: int, log: bool, profile_weeks: int) -> WindowScale:
    """The scale of a window whose context (oldest first, NaN = missing) is ``context``.

    Raises ``ValueError`` when no context day is observed (the caller drops such windows or
    reports the forecast window as a ``DataError``)."""
    raw = np.asarray(context, dtype=np.float64)
    seen = ~np.isnan(raw)
    if not seen.any():
        raise ValueError("no observed day in the context")
    divisor = 1.0
    if not log:
        mean_abs = float(np.abs(raw[seen]).mean())
        divisor = mean_abs if mean_abs > 0 else 1.0
    u = np.log1p(np.clip(raw, 0.0, None)) if log else raw / divisor
    level = float(u[seen].mean())
    base = np.full(horizon, level)
    if profile_weeks > 0:
        n = len(u)
        profile = np.full(WEEK, level)
        for phase in range(WEEK):
            # context positions on the weekday of t + phase: n - 7 + phase, n - 14 + phase, ...
            at = [n - WEEK * (k + 1) + phase for k in range(profile_weeks)]
            picked = np.array([u[i] for i in at if i >= 0 and seen[i]])
            if picked.size:
                profile[phase] = picked.mean()
        base = profile[np.arange(horizon) % WEEK]
    return WindowScale(log, divisor, level, base)


def standardise(column: np.ndarray, mean: float, std: float) -> np.ndarray:
    """An exogenous column on the scale the network reads it: centred and divided by its
    standard deviation on the training days (by 1 where that is 0)."""
    return np.asarray((column - mean) / (std if std > 0 else 1.0))


def window_row(calendar: np.ndarray, span: np.ndarray) -> np.ndarray:
    """The non-value inputs of one window: the calendar of its first forecast day, then each
    covariate over the context and the horizon (``span``: (context + horizon, k)), covariate
    by covariate."""
    return np.concatenate([calendar, span.T.reshape(-1)])


def encode_context(context: np.ndarray, scale: WindowScale) -> FloatArray:
    """(2 * context,) inputs: the transformed context minus its level, then the observed mask;
    0 in both at a missing day."""
    raw = np.asarray(context, dtype=np.float64)
    seen = ~np.isnan(raw)
    centred = np.where(seen, scale.transform(np.where(seen, raw, 0.0)) - scale.level, 0.0)
    return np.concatenate([centred, seen.astype(np.float64)])


def encode_target(values: np.ndarray, scale: WindowScale) -> FloatArray:
    """(horizon,) targets: transformed values minus the base; NaN stays NaN (masked)."""
    raw = np.asarray(values, dtype=np.float64)
    out = np.full(raw.shape, np.nan)
    seen = ~np.isnan(raw)
    out[seen] = scale.transform(raw[seen]) - scale.base[seen]
    return out


@dataclass
class Windows:
    """The windows of one series: inputs (n, 2 * context) of the values, targets (n, horizon),
    the day index ``t`` of each and their scales."""

    x: FloatArray
    y: FloatArray
    starts: list[int]
    scales: list[WindowScale]


def series_windows(
    values: np.ndarray,
    starts: range,
    context: int,
    horizon: int,
    cut: int,
    *,
    log: bool,
    profile_weeks: int,
    unscored: bool = False,
) -> Windows:
    """One window per day ``t`` in ``starts`` whose context holds an observed value and whose
    targets (days before ``cut`` only) hold one too, or need not with ``unscored`` (a forecast
    to make whatever there is to score it against). ``values`` is the whole series (NaN =
    missing or outside the allowed history); targets past its end are NaN."""
    xs, ys, kept, scales = [], [], [], []
    for t in starts:
        ctx = values[t - context : t]
        target = np.array(values[t : t + horizon], dtype=np.float64)
        target = np.concatenate([target, np.full(horizon - len(target), np.nan)])
        target[max(0, cut - t) :] = np.nan
        if np.isnan(ctx).all() or (np.isnan(target).all() and not unscored):
            continue
        scale = window_scale(ctx, horizon, log, profile_weeks)
        xs.append(encode_context(ctx, scale))
        ys.append(encode_target(target, scale))
        kept.append(t)
        scales.append(scale)
    width = 2 * context
    x = np.array(xs, dtype=np.float64).reshape(-1, width)
    y = np.array(ys, dtype=np.float64).reshape(-1, horizon)
    return Windows(x, y, kept, scales)
