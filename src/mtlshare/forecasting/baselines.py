"""Reference forecasts for one daily series: naive, seasonal naive, seasonal mean, and Prophet
as an optional extra (AutoETS and AutoARIMA are in ``mtlshare.forecasting.statistical``).

Both take the history as a float array in which ``NaN`` marks a missing observation; neither
fills a missing day. Prophet (Taylor & Letham, "Forecasting at scale", 2018) is imported lazily
inside :func:`prophet_forecast`, so the rest of mtlshare works without it; install it with
``pip install 'mtlshare[prophet]'``.
"""

from __future__ import annotations

import contextlib
import datetime
import importlib
import logging
import warnings
from collections.abc import Iterator, Sequence

import numpy as np
import numpy.typing as npt

from mtlshare.errors import DataError, MtlshareError

FloatArray = npt.NDArray[np.float64]

# Prophet's own rule for yearly seasonality ("auto"): a history of at least two years.
_YEARLY_MIN_DAYS = 730


def naive(history: np.ndarray, horizon: int) -> FloatArray:
    """Repeat the last observed value of ``history`` (1-D, NaN = missing) ``horizon`` times.

    Raises ``ValueError`` if ``horizon < 1`` or ``history`` is not 1-D, and
    :class:`mtlshare.errors.DataError` if no value is observed."""
    return seasonal_naive(history, horizon, season=1)


def seasonal_naive(history: np.ndarray, horizon: int, season: int = 7) -> FloatArray:
    """Repeat the last observed season: ``forecast[h]`` is the latest observed value at h's phase.

    The phase of step ``h`` (0-based) is index ``len(history) - season + (h % season)``, i.e. the
    same weekday one week back for ``season=7``. When that value is ``NaN`` (missing) the value a
    whole season earlier is used, and so on back through the history. ``history`` is 1-D and
    ends just before the first forecast day. Returns a float64 array of length ``horizon``.

    Raises ``ValueError`` if ``horizon < 1``, ``season < 1`` or ``history`` is not 1-D, and
    :class:`mtlshare.errors.DataError` if some phase has no observed value anywhere in the history
    (including a history shorter than one season).
    """
    return seasonal_mean(history, horizon, season, seasons=1)


def seasonal_mean(
    history: np.ndarray, horizon: int, season: int = 7, seasons: int = 2
) -> FloatArray:
    """The mean of the last ``seasons`` seasons: ``forecast[h]`` averages the latest ``seasons``
    observed values at h's phase (statsforecast's ``SeasonalWindowAverage``; with ``seasons=1``
    it is :func:`seasonal_naive`). A missing value is skipped, and an earlier season's value at
    that phase taken instead; a phase with fewer observed values than ``seasons`` averages what
    it has.

    Raises ``ValueError`` if ``horizon``, ``season`` or ``seasons`` is below 1 or ``history`` is
    not 1-D, and :class:`mtlshare.errors.DataError` if some phase has no observed value anywhere
    in the history (including a history shorter than one season).
    """
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    if season < 1:
        raise ValueError(f"season must be at least 1, got {season}")
    if seasons < 1:
        raise ValueError(f"seasons must be at least 1, got {seasons}")
    values = np.asarray(history, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"history must be 1-D, got shape {values.shape}")

    name = "seasonal naive" if seasons == 1 else "seasonal mean"
    profile = np.full(season, np.nan)
    for phase in range(season):
        # Positions of this phase from the newest back: start, start - season, ..., >= 0.
        start = len(values) - season + phase
        observed = values[start::-season] if start >= 0 else values[:0]
        observed = observed[~np.isnan(observed)]
        if not observed.size:
            raise DataError(
                f"{name}: phase {phase} of {season} has no observed value in a history "
                f"of {len(values)} steps; give a longer history or a shorter season"
            )
        profile[phase] = observed[:seasons].mean()
    return profile[np.arange(horizon) % season]


class ProphetUnavailable(MtlshareError):
    """Prophet is not installed; it is an optional extra: ``pip install 'mtlshare[prophet]'``."""


@contextlib.contextmanager
def _quiet_logging(levels: dict[str, int]) -> Iterator[None]:
    """Set the named loggers to the given levels for the block, then restore what they were.

    Scoped rather than set once, so a caller's own logging configuration is left as found.
    """
    loggers = {name: logging.getLogger(name) for name in levels}
    before = {name: logger.level for name, logger in loggers.items()}
    for name, logger in loggers.items():
        logger.setLevel(levels[name])
    try:
        yield
    finally:
        for name, logger in loggers.items():
            logger.setLevel(before[name])


def prophet_forecast(
    history_dates: Sequence[datetime.date],
    history: np.ndarray,
    future_dates: Sequence[datetime.date],
    *,
    holidays: Sequence[datetime.date] = (),
    seed: int = 0,
) -> FloatArray:
    """Fit Prophet to the observed days of ``history`` and return its point forecast (``yhat``).

    ``history_dates[i]`` is the day of ``history[i]``; days whose value is ``NaN`` are dropped
    before fitting (Prophet handles gaps; nothing is filled). Seasonality: weekly on, daily off,
    yearly only when the observed history spans at least two years (Prophet's own threshold;
    with ~90 days a yearly term would be pure extrapolation). ``holidays`` are days given to
    Prophet as one holiday named ``"holiday"``; include the holidays of ``future_dates`` too, or
    the forecast cannot use them. Returns a float64 array of ``len(future_dates)`` values.

    Repeatable: ``seed`` goes to Stan's optimizer and uncertainty sampling is switched off
    (only ``yhat`` is used), so no global random state is read or changed. cmdstanpy's and
    Prophet's INFO chatter is silenced for the call, as are the pandas deprecation warnings raised
    inside Prophet's own code and its import-time note that plotly is missing (it only matters
    for interactive plots).

    Raises :class:`ProphetUnavailable` when prophet cannot be imported, ``ValueError`` when the
    lengths of ``history_dates`` and ``history`` differ or ``future_dates`` is empty, and
    :class:`mtlshare.errors.DataError` when fewer than two days are observed.
    """
    values = np.asarray(history, dtype=np.float64)
    if values.ndim != 1 or len(values) != len(history_dates):
        raise ValueError(
            f"history has shape {values.shape} but there are {len(history_dates)} history dates"
        )
    if not future_dates:
        raise ValueError("future_dates is empty: nothing to forecast")
    seen = ~np.isnan(values)
    if int(seen.sum()) < 2:
        raise DataError(f"Prophet needs at least 2 observed days, got {int(seen.sum())}")

    with _quiet_logging({"prophet.plot": logging.CRITICAL}):
        try:
            prophet = importlib.import_module("prophet")
        except ImportError as err:
            raise ProphetUnavailable(
                "Prophet is not installed; install the optional extra with "
                "pip install 'mtlshare[prophet]'"
            ) from err
    # prophet depends on pandas and cmdstanpy, so both import once prophet does.
    pd = importlib.import_module("pandas")
    # cmdstanpy configures its logger on first use, which would undo a level set before it.
    with contextlib.suppress(ImportError):
        importlib.import_module("cmdstanpy.utils").get_logger()

    observed_dates = [d for d, ok in zip(history_dates, seen.tolist(), strict=True) if ok]
    span_days = (max(observed_dates) - min(observed_dates)).days
    frame = pd.DataFrame({"ds": pd.to_datetime(observed_dates), "y": values[seen]})
    holiday_frame = (
        pd.DataFrame({"holiday": "holiday", "ds": pd.to_datetime(list(holidays))})
        if holidays
        else None
    )
    with (
        _quiet_logging({"cmdstanpy": logging.WARNING, "prophet": logging.WARNING}),
        warnings.catch_warnings(),
    ):
        # Prophet 1.5 still calls pandas APIs that pandas 3 deprecates; not the caller's to fix.
        warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"prophet\.")
        model = prophet.Prophet(
            yearly_seasonality=span_days >= _YEARLY_MIN_DAYS,
            weekly_seasonality=True,
            daily_seasonality=False,
            holidays=holiday_frame,
            uncertainty_samples=0,
        )
        model.fit(frame, seed=seed)
        predicted = model.predict(pd.DataFrame({"ds": pd.to_datetime(list(future_dates))}))
    return np.asarray(predicted["yhat"], dtype=np.float64)
