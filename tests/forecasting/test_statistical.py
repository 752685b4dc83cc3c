"""AutoETS and AutoARIMA through statsforecast: they learn a weekly pattern, are fitted to the
days after the last gap (nothing filled), and their absence is one clear error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from mtlshare.errors import DataError
from mtlshare.evaluation.forecast import mae
from mtlshare.forecasting.baselines import seasonal_naive
from mtlshare.forecasting.statistical import (
    StatsforecastUnavailable,
    last_unbroken,
    statistical_forecast,
)

WEEK = np.array([10.0, 12.0, 11.0, 13.0, 15.0, 30.0, 28.0])


def weekly(n: int, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, 0.5, n)
    return WEEK[np.arange(n) % 7] + noise


def test_last_unbroken_keeps_the_days_after_the_last_gap():
    np.testing.assert_array_equal(last_unbroken(np.array([1.0, np.nan, 2.0, 3.0])), [2.0, 3.0])
    np.testing.assert_array_equal(last_unbroken(np.array([1.0, 2.0])), [1.0, 2.0])


@pytest.mark.parametrize("method", ["autoets", "autoarima"])
def test_learns_a_weekly_pattern(method):
    pytest.importorskip("statsforecast")
    history = weekly(84)
    future = WEEK[np.arange(84, 84 + 21) % 7]
    got = statistical_forecast(method, history, 21, season=7)
    assert got.shape == (21,) and got.dtype == np.float64
    # far better than the mean, about as good as the seasonal-naive forecast on a clean pattern
    assert mae(future, got) < 0.2 * mae(future, np.full(21, history.mean()))
    assert mae(future, got) < 1.5 * mae(future, seasonal_naive(history, 21, 7)) + 0.5


def test_fits_only_the_days_after_the_last_gap():
    pytest.importorskip("statsforecast")
    history = weekly(84)
    with_gap = history.copy()
    with_gap[:40] = 1000.0  # a different regime, then a gap: only what follows is fitted
    with_gap[40] = np.nan
    np.testing.assert_allclose(
        statistical_forecast("autoets", with_gap, 14),
        statistical_forecast("autoets", history[41:], 14),
    )


def test_too_short_after_a_gap_is_a_data_error():
    history = weekly(40)
    history[30] = np.nan
    with pytest.raises(DataError, match="9 observed days after the last missing one"):
        statistical_forecast("autoets", history, 7)


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown statistical method"):
        statistical_forecast("theta", weekly(30), 7)
    with pytest.raises(ValueError, match="horizon"):
        statistical_forecast("autoets", weekly(30), 0)


def test_without_statsforecast_the_error_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "statsforecast", None)
    monkeypatch.setitem(sys.modules, "statsforecast.models", None)
    with pytest.raises(StatsforecastUnavailable, match=r"mtlshare\[forecast\]"):
        statistical_forecast("autoarima", weekly(30), 7)
