"""Split-conformal intervals: the conformal rank, widths per block of steps, errors scaled per
origin, coverage with missing actuals, and the coverage promise on exchangeable errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from mtlshare.evaluation.intervals import conformal_widths, coverage, interval


def test_the_width_is_the_conformal_rank_of_the_errors_in_each_block():
    # 3 origins x 4 steps, blocks of 2 steps: 6 errors per block
    actual = np.zeros(4)
    calibration = [
        (actual, np.array([1.0, 2.0, 10.0, 20.0])),
        (actual, np.array([3.0, 4.0, 30.0, 40.0])),
        (actual, np.array([5.0, 6.0, 50.0, 60.0])),
    ]
    # level 0.5: rank ceil(7 * 0.5) = 4 of 6 sorted errors
    widths = conformal_widths(calibration, 0.5, block=2)
    assert widths.tolist() == [4.0, 4.0, 40.0, 40.0]
    # level 0.8: rank ceil(7 * 0.8) = 6, the largest error
    assert conformal_widths(calibration, 0.8, block=2).tolist() == [6, 6, 60, 60]
    # a last block shorter than the others keeps its own errors
    assert conformal_widths(calibration, 0.5, block=3).tolist() == [5, 5, 5, 40]


def test_missing_actuals_are_skipped_and_too_few_errors_give_no_finite_width():
    calibration = [(np.array([1.0, np.nan]), np.array([0.0, 0.0])) for _ in range(3)]
    widths = conformal_widths(calibration, 0.5, block=1)
    assert widths[0] == 1.0 and math.isinf(widths[1])  # no error observed at step 2
    # level 0.8 needs at least 4 errors: ceil(4 * 0.8) = 4 > 3
    assert math.isinf(conformal_widths(calibration, 0.8, block=1)[0])


def test_a_forecast_missing_where_the_actual_is_observed_is_an_error_not_a_skipped_day():
    """A NaN forecast on an observed day was dropped as if the actual were missing: a method
    that failed on its largest errors got a narrower interval (here 1 instead of 50). As
    ``forecast_metrics`` does, it is a ``ValueError``; an infinite actual is one too."""
    calibration = [(np.array([0.0, 0.0]), np.array([1.0, 50.0])) for _ in range(3)]
    assert conformal_widths(calibration, 0.5, block=2).tolist() == [50.0, 50.0]
    failed = [*calibration, (np.array([0.0, 0.0]), np.array([1.0, np.nan]))]
    with pytest.raises(ValueError, match="forecast is NaN or infinite where the actual"):
        conformal_widths(failed, 0.5, block=2)
    infinite = [*calibration, (np.array([0.0, 0.0]), np.array([1.0, -np.inf]))]
    with pytest.raises(ValueError, match="forecast is NaN or infinite where the actual"):
        conformal_widths(infinite, 0.5, block=2)  # an infinite forecast is no forecast either
    with pytest.raises(ValueError, match="actual is infinite"):
        conformal_widths([(np.array([np.inf]), np.zeros(1))], 0.5, block=1)
    # a forecast on a day without an actual is not read: NaN there is fine
    skipped = [*calibration, (np.array([0.0, np.nan]), np.array([1.0, np.nan]))]
    assert conformal_widths(skipped, 0.5, block=1).tolist() == [1.0, 50.0]


def test_errors_are_divided_by_their_origins_scale_and_the_lower_bound_floored():
    # errors 2, 4, 6, 8 at origins of scale 1, 2, 3, 4: every scaled error is 2
    calibration = [(np.array([float(2 * k)]), np.zeros(1)) for k in range(1, 5)]
    widths = conformal_widths(calibration, 0.5, block=1, scales=[1.0, 2.0, 3.0, 4.0])
    assert widths.tolist() == [2.0]
    assert conformal_widths(calibration, 0.5, block=1).tolist() == [6.0]  # unscaled: rank 3
    lower, upper = interval(np.array([3.0, 1.0]), np.array([2.0, 2.0]))
    assert lower.tolist() == [1.0, -1.0] and upper.tolist() == [5.0, 3.0]
    lower, _ = interval(np.array([3.0, 1.0]), np.array([2.0, 2.0]), floor=0.0)
    assert lower.tolist() == [1.0, 0.0]


def test_coverage_counts_observed_days_inside_and_their_mean_width():
    got = coverage([1.0, 5.0, np.nan, 3.0], [0.0, 0.0, 0.0, 3.0], [2.0, 4.0, 9.0, 5.0])
    assert got == {"coverage": pytest.approx(2 / 3), "width": pytest.approx(8 / 3)}
    assert all(math.isnan(v) for v in coverage([np.nan], [0.0], [1.0]).values())


def test_exchangeable_errors_are_covered_at_the_level():
    """With errors drawn alike at calibration and test, the conformal interval covers a new
    actual with probability between the level and level + 1 / (n + 1)."""
    rng = np.random.default_rng(0)
    n, trials, level = 9, 4000, 0.8
    hits = 0
    for _ in range(trials):
        errors = rng.standard_t(3, size=n + 1)
        calibration = [(np.array([e]), np.zeros(1)) for e in errors[:n]]
        lower, upper = interval(np.zeros(1), conformal_widths(calibration, level, 1))
        hits += bool(lower[0] <= errors[n] <= upper[0])
    assert level - 0.02 <= hits / trials <= level + 1 / (n + 1) + 0.02


def test_bad_arguments_are_refused():
    pair = [(np.zeros(2), np.zeros(2))]
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        conformal_widths(pair, 1.0, 1)
    with pytest.raises(ValueError, match="block"):
        conformal_widths(pair, 0.8, 0)
    with pytest.raises(ValueError, match="at least one"):
        conformal_widths([], 0.8, 1)
    with pytest.raises(ValueError, match="same length"):
        conformal_widths([*pair, (np.zeros(3), np.zeros(3))], 0.8, 1)
    for scales in ([0.0], [math.nan], [1.0, 1.0]):
        with pytest.raises(ValueError, match="scales"):
            conformal_widths(pair, 0.8, 1, scales=scales)
    with pytest.raises(ValueError, match="differ in shape"):
        interval(np.zeros(2), np.zeros(3))
    with pytest.raises(
        ValueError, match=r"^actual, lower and upper differ in shape: \(2,\), \(2,\), \(1,\)$"
    ):
        coverage([1.0, 2.0], [0.0, 0.0], [3.0])
