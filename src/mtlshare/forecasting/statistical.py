"""The statistical baselines practitioners reach for first: AutoETS and AutoARIMA.

Both come from statsforecast (Garza et al., Nixtla), an optional extra (``pip install
'mtlshare[forecast]'``) imported inside :func:`statistical_forecast`, so the rest of mtlshare
works without it. AutoETS picks the exponential-smoothing model (error, trend, season: additive,
multiplicative or none) with the lowest AICc (Hyndman et al., 2008); AutoARIMA is the
Hyndman-Khandakar stepwise search (2008). Both read a weekly season (``season = 7``).

statsforecast's models need a history without gaps. Nothing is filled in: they are fitted to the
observed days after the last missing day, and a stretch shorter than two seasons is a
``DataError``.
"""

from __future__ import annotations

import importlib
import warnings

import numpy as np
import numpy.typing as npt

from mtlshare.errors import DataError, MtlshareError

FloatArray = npt.NDArray[np.float64]
MODELS = {"autoets": "AutoETS", "autoarima": "AutoARIMA"}


class StatsforecastUnavailable(MtlshareError):
    """statsforecast is not installed: ``pip install 'mtlshare[forecast]'``."""


def last_unbroken(history: np.ndarray) -> FloatArray:
    """The observed values after the last missing (``NaN``) day of ``history``."""
    values = np.asarray(history, dtype=np.float64)
    gaps = np.flatnonzero(np.isnan(values))
    return values[gaps[-1] + 1 :] if gaps.size else values


def fitted_stretch(
    method: str, history: np.ndarray, season: int, series: str | None = None
) -> FloatArray:
    """What ``method`` is fitted to: ``history``'s observed days after its last missing one; a
    ``DataError`` when they are fewer than two seasons (naming ``series``, when given, as a
    history before a forecast origin)."""
    y = last_unbroken(history)
    if len(y) < 2 * season:
        if series is None:
            found = f"{len(y)} observed days after the last missing one"
        else:
            found = f"{series!r} has {len(y)} observed days after its last missing one before "
            found += "the origin"
        raise DataError(
            f"{method}: {found}; it needs at least {2 * season} (two seasons) without a gap"
        )
    return y


def statistical_forecast(
    method: str, history: np.ndarray, horizon: int, season: int = 7
) -> FloatArray:
    """``method`` ("autoets" or "autoarima") fitted to ``history`` (1-D, oldest first, NaN =
    missing), forecasting ``horizon`` steps; returns the point forecast (float64, ``horizon``).

    Raises ``ValueError`` for an unknown method or ``horizon < 1``,
    :class:`StatsforecastUnavailable` when statsforecast cannot be imported, and ``DataError``
    when fewer than ``2 * season`` days follow the last missing day.
    """
    if method not in MODELS:
        raise ValueError(f"unknown statistical method {method!r}; choose from {list(MODELS)}")
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    y = fitted_stretch(method, history, season)
    try:
        models = importlib.import_module("statsforecast.models")
    except ImportError as err:
        raise StatsforecastUnavailable(
            "statsforecast is not installed; install the optional extra with "
            "pip install 'mtlshare[forecast]'"
        ) from err
    model = getattr(models, MODELS[method])(season_length=season)
    with warnings.catch_warnings():
        # a flat stretch makes some candidate models degenerate; the search skips them
        warnings.simplefilter("ignore", RuntimeWarning)
        out = model.forecast(y=y, h=horizon)
    return np.asarray(out["mean"], dtype=np.float64)
