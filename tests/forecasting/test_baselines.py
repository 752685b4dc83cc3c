"""Naive and seasonal naive on hand examples; Prophet for real when installed, and its absence
reported."""

from __future__ import annotations

import datetime
import sys
import types
from typing import ClassVar

import numpy as np
import pytest

from mtlshare.errors import DataError, MtlshareError
from mtlshare.evaluation.forecast import mae
from mtlshare.forecasting.baselines import (
    ProphetUnavailable,
    naive,
    prophet_forecast,
    seasonal_mean,
    seasonal_naive,
)

NAN = np.nan
START = datetime.date(2011, 1, 3)


def _days(first, n):
    return [START + datetime.timedelta(days=first + i) for i in range(n)]


def test_naive_repeats_the_last_observed_value():
    np.testing.assert_array_equal(naive(np.array([3.0, 5.0, NAN]), 3), [5.0, 5.0, 5.0])
    with pytest.raises(DataError):
        naive(np.array([NAN, NAN]), 2)


def test_seasonal_naive_repeats_last_season():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])
    got = seasonal_naive(history, horizon=5, season=3)  # last season: 5, 6, 7
    np.testing.assert_array_equal(got, [5.0, 6.0, 7.0, 5.0, 6.0])
    assert got.dtype == np.float64


def test_seasonal_naive_steps_back_whole_seasons_over_missing_days():
    # season 3; positions by phase of the last season (indices 6, 7, 8):
    # phase 0: 6 -> NaN, 3 -> 40 ; phase 1: 7 -> 70 ; phase 2: 8 -> NaN, 5 -> NaN, 2 -> 30
    history = np.array([10.0, 20.0, 30.0, 40.0, 50.0, NAN, NAN, 70.0, NAN])
    np.testing.assert_array_equal(
        seasonal_naive(history, horizon=7, season=3), [40, 70, 30, 40, 70, 30, 40]
    )


def test_seasonal_naive_default_season_is_a_week():
    history = np.arange(14, dtype=float)
    np.testing.assert_array_equal(seasonal_naive(history, horizon=7), np.arange(7, 14))


def test_seasonal_naive_phase_without_observation_is_a_data_error():
    history = np.array([1.0, NAN, 3.0, 4.0, NAN, 6.0])  # phase 1 of 3: NaN, NaN
    with pytest.raises(DataError, match="phase 1 of 3"):
        seasonal_naive(history, horizon=3, season=3)
    with pytest.raises(DataError, match="phase 0 of 7"):
        seasonal_naive(np.ones(5), horizon=1, season=7)  # shorter than one season


def test_seasonal_mean_averages_the_last_seasons_at_each_phase():
    history = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0])
    # season 3: phase 0 from 7 and 4, phase 1 from 8 and 5, phase 2 from 9 and 6
    np.testing.assert_array_equal(
        seasonal_mean(history, horizon=4, season=3, seasons=2), [5.5, 6.5, 7.5, 5.5]
    )
    # three seasons: (7 + 4 + 1) / 3 ...
    np.testing.assert_array_equal(seasonal_mean(history, 3, 3, seasons=3), [4.0, 5.0, 6.0])
    # more seasons than the history holds: what there is
    np.testing.assert_array_equal(seasonal_mean(history, 3, 3, seasons=9), [4.0, 5.0, 6.0])


def test_seasonal_mean_skips_missing_days_and_one_season_is_seasonal_naive():
    history = np.array([10.0, 20.0, 30.0, 40.0, 50.0, NAN, NAN, 70.0, NAN])
    # phase 0: NaN skipped -> 40, 10; phase 1: 70, 50; phase 2: NaN, NaN skipped -> 30 only
    np.testing.assert_array_equal(seasonal_mean(history, 3, 3, seasons=2), [25.0, 60.0, 30.0])
    rng = np.random.default_rng(0)
    noisy = rng.gamma(2.0, 100.0, size=60)
    noisy[rng.choice(60, 10, replace=False)] = NAN
    np.testing.assert_array_equal(
        seasonal_mean(noisy, 20, 7, seasons=1), seasonal_naive(noisy, 20, 7)
    )


def test_seasonal_mean_errors_name_the_method():
    with pytest.raises(DataError, match="seasonal mean: phase 1 of 3"):
        seasonal_mean(np.array([1.0, NAN, 3.0, 4.0, NAN, 6.0]), horizon=3, season=3)
    with pytest.raises(ValueError, match="seasons"):
        seasonal_mean(np.ones(14), horizon=3, season=7, seasons=0)


def test_a_history_that_is_not_one_series_is_refused_by_seasonal_mean():
    with pytest.raises(ValueError, match=r"^history must be 1-D, got shape \(7, 2\)$"):
        seasonal_mean(np.ones((7, 2)), horizon=3, season=7)


@pytest.mark.parametrize(("horizon", "season"), [(0, 7), (3, 0)])
def test_seasonal_naive_bad_arguments(horizon, season):
    with pytest.raises(ValueError):
        seasonal_naive(np.ones(14), horizon=horizon, season=season)


def _weekly_series(n, seed=0):
    rng = np.random.default_rng(seed)
    weekday = np.array([_days(i, 1)[0].weekday() for i in range(n)])
    return 50.0 + 30.0 * (weekday >= 5) - 10.0 * (weekday == 2) + rng.normal(0.0, 2.0, n)


def test_prophet_beats_constant_mean_on_weekly_series():
    pytest.importorskip("prophet")
    series = _weekly_series(148)
    history, actual = series[:120].copy(), series[120:]
    history[[10, 11, 50]] = NAN  # missing days are dropped, not filled
    first = prophet_forecast(_days(0, 120), history, _days(120, 28), seed=1)
    assert first.shape == (28,) and first.dtype == np.float64
    mean_forecast = np.full(28, np.nanmean(history))
    assert mae(actual, first) < 0.5 * mae(actual, mean_forecast)
    again = prophet_forecast(_days(0, 120), history, _days(120, 28), seed=1)
    np.testing.assert_array_equal(first, again)


def test_prophet_uses_holidays():
    pytest.importorskip("prophet")
    series = _weekly_series(148)
    holidays = _days(5, 1) + _days(40, 1) + _days(75, 1) + _days(110, 1) + _days(130, 1)
    for day in holidays:
        i = (day - START).days
        series[i] += 60.0
    got = prophet_forecast(_days(0, 120), series[:120], _days(120, 28), holidays=holidays)
    assert got[10] - np.median(got) > 30.0  # day 130 is a holiday


def test_prophet_missing_raises_prophet_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "prophet", None)  # makes `import prophet` fail
    with pytest.raises(ProphetUnavailable, match=r"pip install 'mtlshare\[prophet\]'") as info:
        prophet_forecast(_days(0, 10), np.ones(10), _days(10, 3))
    assert isinstance(info.value, MtlshareError)


class _FakeProphet:
    """Stands in for prophet.Prophet: records what it was given, forecasts 1.0."""

    calls: ClassVar[list] = []

    def __init__(self, **kwargs):
        self.kwargs = kwargs

    def fit(self, frame, **kwargs):
        _FakeProphet.calls.append((self.kwargs, frame, kwargs))
        return self

    def predict(self, future):
        return {"yhat": np.ones(len(future))}


@pytest.fixture
def fake_prophet(monkeypatch):
    pytest.importorskip("pandas")
    module = types.ModuleType("prophet")
    module.Prophet = _FakeProphet
    monkeypatch.setitem(sys.modules, "prophet", module)
    _FakeProphet.calls = []
    return _FakeProphet.calls


def test_prophet_settings_nan_rows_dropped_and_yearly_only_after_two_years(fake_prophet):
    history = np.arange(90, dtype=float)
    history[[3, 4]] = NAN
    prophet_forecast(_days(0, 90), history, _days(90, 5), holidays=_days(7, 1), seed=3)
    kwargs, frame, fit_kwargs = fake_prophet[-1]
    assert kwargs["yearly_seasonality"] is False and kwargs["weekly_seasonality"] is True
    assert len(frame) == 88 and not frame["y"].isna().any()
    assert list(kwargs["holidays"]["ds"].dt.date) == _days(7, 1)
    assert fit_kwargs == {"seed": 3}

    prophet_forecast(_days(0, 731), np.ones(731), _days(731, 5))
    kwargs, _, _ = fake_prophet[-1]
    assert kwargs["yearly_seasonality"] is True and kwargs["holidays"] is None


def test_prophet_bad_inputs(fake_prophet):
    with pytest.raises(ValueError, match="history dates"):
        prophet_forecast(_days(0, 3), np.ones(4), _days(4, 2))
    with pytest.raises(ValueError, match=r"^future_dates is empty: nothing to forecast$"):
        prophet_forecast(_days(0, 3), np.ones(3), [])
    assert fake_prophet == []  # refused before prophet is fitted
    with pytest.raises(DataError, match="at least 2 observed"):
        prophet_forecast(_days(0, 3), np.array([1.0, NAN, NAN]), _days(3, 2))


def test_seasonal_naive_reads_a_history_of_exactly_one_season():
    # phase 0 of the forecast is index 0 of the history: the oldest day still counts
    assert seasonal_naive(np.arange(7.0), 9).tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1]
    assert seasonal_mean(np.arange(3.0), 3, season=3, seasons=2).tolist() == [0, 1, 2]
