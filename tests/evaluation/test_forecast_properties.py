"""Properties of the forecast errors and intervals on drawn inputs: agreement with slow
references written here, a missing day (NaN actual) that no forecast value there can change,
the scale and permutation invariances each metric promises, and the conformal rank read
exactly."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlshare.evaluation.forecast import mae, mase, mase_scale, paired_difference, rmse, smape
from mtlshare.evaluation.intervals import conformal_widths

quick = settings(max_examples=100, deadline=None)
# multiples of 1/64: a change of units by c is then exact enough to compare (no subnormals)
value = st.integers(-(10**8), 10**8).map(lambda i: i / 64)
actual_value = st.one_of(st.just(math.nan), value, st.just(0.0))
# what a forecast may hold on a day without an actual: never read
anything = st.one_of(value, st.just(math.nan), st.just(math.inf), st.just(-math.inf))


@st.composite
def days(draw, min_size=1, max_size=30):
    """(actual, forecast, forecast with other values on the missing days)."""
    n = draw(st.integers(min_size, max_size))
    actual = draw(st.lists(actual_value, min_size=n, max_size=n))
    forecast = draw(st.lists(st.one_of(value, st.just(0.0)), min_size=n, max_size=n))
    other = [draw(anything) if math.isnan(a) else f for a, f in zip(actual, forecast, strict=True)]
    return np.array(actual), np.array(forecast), np.array(other)


def reference(actual, forecast):
    """mae, rmse, smape over the observed days, one day at a time."""
    seen = [(a, f) for a, f in zip(actual.tolist(), forecast.tolist(), strict=True) if a == a]
    if not seen:
        return math.nan, math.nan, math.nan
    n = len(seen)
    terms = [0.0 if a == f == 0 else 200 * abs(a - f) / (abs(a) + abs(f)) for a, f in seen]
    return (
        math.fsum(abs(a - f) for a, f in seen) / n,
        math.sqrt(math.fsum((a - f) ** 2 for a, f in seen) / n),
        math.fsum(terms) / n,
    )


def same(a: float, b: float, rel: float = 1e-9) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=1e-9)


@quick
@given(days())
def test_metrics_are_the_references_and_never_read_the_forecast_on_a_missing_day(drawn):
    actual, forecast, other = drawn
    got = (mae(actual, forecast), rmse(actual, forecast), smape(actual, forecast))
    assert all(same(g, r) for g, r in zip(got, reference(actual, forecast), strict=True)), got
    # any value on the missing days, NaN and infinities included: bit for bit the same
    again = (mae(actual, other), rmse(actual, other), smape(actual, other))
    assert all(same(g, a, rel=0.0) for g, a in zip(got, again, strict=True))
    if not np.isnan(actual).all():
        assert 0.0 <= got[0] <= got[1] * (1 + 1e-12) + 1e-12  # MAE <= RMSE
        assert 0.0 <= got[2] <= 200.0


@quick
@given(days(), st.floats(1e-3, 1e3), st.randoms(use_true_random=False))
def test_metrics_follow_a_change_of_units_and_ignore_the_order_of_days(drawn, c, rng):
    actual, forecast, _ = drawn
    order = list(range(len(actual)))
    rng.shuffle(order)
    for metric, power in ((mae, 1), (rmse, 1), (smape, 0)):
        base = metric(actual, forecast)
        assert same(metric(c * actual, c * forecast), c**power * base, rel=1e-9)
        assert same(metric(actual[order], forecast[order]), base, rel=1e-12)
    scale = mase_scale(actual, season=2)
    assert same(mase_scale(c * actual, season=2), c * scale)
    assert same(mase(c * actual, c * forecast, c * scale), mase(actual, forecast, scale))


@quick
@given(st.lists(actual_value, max_size=30), st.integers(1, 8))
def test_mase_scale_is_the_mean_seasonal_difference_over_observed_pairs(history, season):
    pairs = [
        abs(history[t] - history[t - season])
        for t in range(season, len(history))
        if history[t] == history[t] and history[t - season] == history[t - season]
    ]
    expected = math.fsum(pairs) / len(pairs) if pairs else math.nan
    expected = expected if expected > 0 else math.nan  # a flat history has no scale
    assert same(mase_scale(history, season), expected)


def slow_widths(calibration, level, block, scales):
    """The ceil((n + 1) level)-th smallest scaled error of each block, the rank in exact
    arithmetic (``level`` read as the decimal it prints as)."""
    horizon = len(calibration[0][0])
    out = []
    for step in range(horizon):
        start = step - step % block
        errors = sorted(
            abs(a[i] - f[i]) / s
            for (a, f), s in zip(calibration, scales, strict=True)
            for i in range(start, min(start + block, horizon))
            if a[i] == a[i]
        )
        rank = math.ceil((len(errors) + 1) * Fraction(repr(level)))
        out.append(errors[rank - 1] if rank <= len(errors) else math.inf)
    return out


@st.composite
def calibrations(draw):
    horizon = draw(st.integers(1, 10))
    n = draw(st.integers(1, 8))
    pairs = []
    for _ in range(n):
        actual = draw(st.lists(actual_value, min_size=horizon, max_size=horizon))
        forecast = draw(st.lists(value, min_size=horizon, max_size=horizon))
        pairs.append((np.array(actual), np.array(forecast)))
    scales = draw(st.lists(st.floats(1e-3, 1e3), min_size=n, max_size=n))
    return pairs, scales


@quick
@given(
    calibrations(),
    st.sampled_from([0.5, 0.6, 0.7, 0.8, 0.9, 0.95]),
    st.integers(1, 7),
    st.randoms(use_true_random=False),
)
def test_conformal_widths_are_the_exact_rank_whatever_the_order_of_origins(
    drawn, level, block, rng
):
    pairs, scales = drawn
    got = conformal_widths(pairs, level, block, scales)
    assert got.tolist() == slow_widths(pairs, level, block, scales)
    order = list(range(len(pairs)))
    rng.shuffle(order)
    shuffled = conformal_widths([pairs[i] for i in order], level, block, [scales[i] for i in order])
    assert shuffled.tolist() == got.tolist()


@quick
@given(
    st.lists(st.tuples(actual_value, actual_value), min_size=1, max_size=20),
    st.integers(0, 2**32 - 1),
)
def test_a_paired_difference_swapped_is_its_mirror_image(pairs, seed):
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    both = ~(np.isnan(a) | np.isnan(b))
    if not both.any():
        with pytest.raises(ValueError, match="no origin"):
            paired_difference(a, b, draws=50, seed=seed)
        return
    ab = paired_difference(a, b, draws=200, seed=seed)
    ba = paired_difference(b, a, draws=200, seed=seed)
    assert ab == paired_difference(a, b, draws=200, seed=seed)  # repeatable from its seed
    assert ab["of"] == ba["of"] == int(both.sum())
    assert ab["lower_at"] + ba["lower_at"] == int((a[both] != b[both]).sum())
    tol = 1e-9 * (1 + np.abs(a[both] - b[both]).max())
    assert ab["difference"] == pytest.approx(-ba["difference"], abs=tol)
    assert ab["low"] == pytest.approx(-ba["high"], abs=tol)
    assert ab["high"] == pytest.approx(-ba["low"], abs=tol)
    assert ab["low"] <= ab["high"]
