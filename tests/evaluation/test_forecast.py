"""Forecast metrics against hand-computed values, with missing actuals left out."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtlshare.evaluation.forecast import (
    forecast_metrics,
    mae,
    paired_difference,
    rmse,
    smape,
    summarize,
)

# Observed pairs (y, f): (1, 2), (3, 1), (0, 0), (-2, 2); position 1 is missing (its forecast
# of 100 must not count). Absolute errors 1, 2, 0, 4.
ACTUAL = np.array([1.0, np.nan, 3.0, 0.0, -2.0])
FORECAST = np.array([2.0, 100.0, 1.0, 0.0, 2.0])


def test_mae_rmse_smape_hand_computed_with_missing_actual():
    assert mae(ACTUAL, FORECAST) == pytest.approx(7 / 4)
    assert rmse(ACTUAL, FORECAST) == pytest.approx(math.sqrt((1 + 4 + 0 + 16) / 4))
    # 200*|y-f|/(|y|+|f|): 200/3, 100, 0 (both zero), 200.
    assert smape(ACTUAL, FORECAST) == pytest.approx((200 / 3 + 100 + 0 + 200) / 4)


def test_forecast_metrics_keys_and_values():
    metrics = forecast_metrics(ACTUAL, FORECAST)
    assert list(metrics) == ["mae", "rmse", "smape"]
    assert metrics["mae"] == pytest.approx(1.75)


def test_smape_zero_zero_counts_as_perfect():
    assert smape(np.zeros(3), np.zeros(3)) == 0.0
    # One zero-zero position and one total miss (200): mean 100.
    assert smape(np.array([0.0, 5.0]), np.array([0.0, -5.0])) == pytest.approx(100.0)


def test_perfect_forecast_is_zero_everywhere():
    y = np.array([1.0, 2.0, np.nan, 4.0])
    assert forecast_metrics(y, np.nan_to_num(y)) == {"mae": 0.0, "rmse": 0.0, "smape": 0.0}


def test_nan_forecast_at_observed_position_is_an_error():
    with pytest.raises(ValueError, match="observed position"):
        mae(np.array([1.0, 2.0]), np.array([1.0, np.nan]))
    # NaN forecast where the actual is missing too is fine.
    assert mae(np.array([1.0, np.nan]), np.array([1.0, np.nan])) == 0.0


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        rmse(np.zeros(3), np.zeros(4))


def test_all_missing_actual_gives_nan():
    metrics = forecast_metrics(np.full(4, np.nan), np.ones(4))
    assert all(math.isnan(v) for v in metrics.values())


def test_summarize_means_over_origins_ignoring_nan():
    per_origin = [
        {"mae": 1.0, "rmse": 2.0, "smape": 10.0},
        {"mae": 3.0, "rmse": 4.0, "smape": math.nan},
        {"mae": math.nan, "rmse": math.nan, "smape": math.nan},
    ]
    summary = summarize(per_origin)
    assert summary == {"mae": 2.0, "rmse": 3.0, "smape": 10.0}


def test_summarize_all_nan_stays_nan_and_empty_is_an_error():
    assert math.isnan(summarize([{"mae": math.nan}])["mae"])
    with pytest.raises(ValueError):
        summarize([])


def test_mase_scale_is_the_in_sample_seasonal_naive_mae_over_observed_pairs():
    from mtlshare.evaluation.forecast import mase, mase_scale

    history = np.array([1.0, 2.0, 4.0, np.nan, 8.0])
    # season 2 pairs: (1, 4) -> 3, (2, nan) dropped, (4, 8) -> 4: scale 3.5
    assert mase_scale(history, 2) == pytest.approx(3.5)
    assert mase(ACTUAL, FORECAST, 3.5) == pytest.approx(1.75 / 3.5)
    assert math.isnan(mase_scale(np.ones(10), 7))  # no variation: no scale
    assert math.isnan(mase_scale(np.arange(5.0), 7))  # shorter than a season
    assert forecast_metrics(ACTUAL, FORECAST, 3.5)["mase"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match="season"):
        mase_scale(history, 0)


def test_paired_difference_means_wins_and_a_bootstrap_interval_over_origins():
    a = np.array([10.0, 12.0, 9.0, np.nan, 20.0])
    b = np.array([11.0, 10.0, 12.0, 5.0, 20.0])
    got = paired_difference(a, b, draws=20_000, seed=3)
    # origin 4 (NaN) is left out; differences -1, +2, -3, 0
    assert got["difference"] == pytest.approx(-0.5) and (got["lower_at"], got["of"]) == (2, 4)
    assert got["low"] < got["difference"] < got["high"] and got["level"] == 0.95
    assert got["low"] >= -3.0 and got["high"] <= 2.0  # a mean of draws from the differences
    # the interval is the percentiles of the resampled means, drawn from the seed
    rng = np.random.default_rng(3)
    diff = np.array([-1.0, 2.0, -3.0, 0.0])
    means = diff[rng.integers(0, 4, size=(20_000, 4))].mean(axis=1)
    assert (got["low"], got["high"]) == tuple(np.percentile(means, [2.5, 97.5]))
    assert paired_difference(a, b, seed=3) == paired_difference(a, b, seed=3)
    narrow = paired_difference(a, b, level=0.5, seed=3)
    assert got["low"] < narrow["low"] <= narrow["high"] < got["high"]
    # a constant difference: every resampled mean is that difference
    same = paired_difference([3.0, 4.0, 5.0], [1.0, 2.0, 3.0])
    assert (same["low"], same["difference"], same["high"], same["lower_at"]) == (2.0, 2.0, 2.0, 0)


def test_an_infinite_actual_is_refused_not_scored():
    with pytest.raises(ValueError, match=r"^actual holds an infinite value; use NaN for a"):
        forecast_metrics([1.0, np.inf], [1.0, 2.0])
    with pytest.raises(ValueError, match=r"^actual holds an infinite value"):
        mae([-np.inf], [0.0])


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ([1.0, 2.0], [1.0], {}, "one length"),
        ([np.nan, 2.0], [1.0, np.nan], {}, "no origin"),
        ([1.0], [2.0], {"level": 1.0}, "level"),
    ],
)
def test_paired_difference_bad_input(a, b, kwargs, message):
    with pytest.raises(ValueError, match=message):
        paired_difference(a, b, **kwargs)
