"""Properties of a forecast window's scaling and of the seasonal baselines on drawn series:
a series in other units gives the network the same inputs and targets, decode undoes the
targets, a missing day is 0 in both input channels, and the seasonal mean is a slow reference's
(the latest observed values of each phase)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlshare.data.windows import encode_context, encode_target, window_scale
from mtlshare.errors import DataError
from mtlshare.forecasting.baselines import seasonal_mean

quick = settings(max_examples=80, deadline=None)
count = st.integers(0, 10**5).map(float)


@st.composite
def contexts(draw):
    """A context (NaN = missing, at least one observed day), a horizon and profile weeks."""
    values = draw(st.lists(st.one_of(count, st.just(math.nan)), min_size=1, max_size=30))
    if all(math.isnan(v) for v in values):
        values[draw(st.integers(0, len(values) - 1))] = draw(count)
    weeks = draw(st.integers(0, len(values) // 7))
    return np.array(values), draw(st.integers(1, 10)), weeks


@quick
@given(contexts(), st.integers(-6, 6).map(lambda k: 2.0**k * 3.0), st.booleans())
def test_a_series_in_other_units_gives_the_same_inputs_and_targets(drawn, c, log):
    context, horizon, weeks = drawn
    future = np.linspace(0.0, 500.0, horizon)
    future[::3] = math.nan  # missing days stay missing targets
    scale = window_scale(context, horizon, log, weeks)
    observed = context[~np.isnan(context)]
    mean_abs = float(np.abs(observed).mean())  # the level of the observed days only
    assert scale.divisor == (1.0 if log or mean_abs == 0 else mean_abs)
    level = np.log1p(observed).mean() if log else observed.mean() / scale.divisor
    assert scale.level == pytest.approx(level, rel=1e-12, abs=1e-12)
    x, y = encode_context(context, scale), encode_target(future, scale)
    seen = ~np.isnan(context)
    assert np.isfinite(x).all() and x.shape == (2 * len(context),)
    assert x[len(context) :].tolist() == seen.astype(float).tolist()
    assert not x[: len(context)][~seen].any()  # a missing day is 0 in both channels
    assert np.isnan(y).tolist() == np.isnan(future).tolist()
    back = scale.decode(np.nan_to_num(y))
    assert np.allclose(back[~np.isnan(future)], future[~np.isnan(future)], rtol=1e-9, atol=1e-7)
    # the level scaling divides units out (a context of zeros has no level: divided by 1)
    if not log and np.nansum(np.abs(context)) > 0:
        other = window_scale(c * context, horizon, log, weeks)
        assert np.allclose(encode_context(c * context, other), x, rtol=1e-12, atol=1e-12)
        got = encode_target(c * future, other)
        assert np.allclose(got, y, rtol=1e-12, atol=1e-12, equal_nan=True)


def slow_seasonal_mean(history, horizon, season, seasons):
    """Per phase, the mean of its latest ``seasons`` observed values; None when a phase of
    the season has none."""
    n = len(history)
    profile = []
    for phase in range(season):
        at = [i for i in range(n - 1, -1, -1) if (i - (n - season + phase)) % season == 0]
        observed = [history[i] for i in at if not math.isnan(history[i])][:seasons]
        if not observed:
            return None
        profile.append(math.fsum(observed) / len(observed))
    return [profile[h % season] for h in range(horizon)]


@quick
@given(
    st.lists(st.one_of(count, st.just(math.nan)), max_size=30),
    st.integers(1, 20),
    st.integers(1, 9),
    st.integers(1, 4),
)
def test_the_seasonal_mean_is_the_mean_of_each_phases_latest_observed_values(
    history, horizon, season, seasons
):
    expected = slow_seasonal_mean(history, horizon, season, seasons)
    if expected is None:
        with pytest.raises(DataError, match="has no observed value"):
            seasonal_mean(np.array(history), horizon, season, seasons)
        return
    got = seasonal_mean(np.array(history), horizon, season, seasons)
    assert np.allclose(got, expected, rtol=1e-12, atol=0.0)
    # a day older than every value the forecast reads changes nothing
    older = seasonal_mean(np.array([12345.0, *history]), horizon, season, seasons)
    if season * seasons <= len(history) and not np.isnan(history).any():
        assert older.tolist() == got.tolist()
