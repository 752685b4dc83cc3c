"""Forecast windows: the maths against hand-computed values, and the ``daily_windows`` source
(what a window reads, what it may not, masking, and one-line errors for bad input)."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest
import torch

from mtlshare.config import from_dict
from mtlshare.data.daily_windows import windows_problem
from mtlshare.data.windows import (
    encode_context,
    encode_target,
    series_windows,
    window_scale,
)
from mtlshare.errors import ConfigError, DataError

START = datetime.date(2011, 1, 3)  # a Monday


# -- the maths ------------------------------------------------------------------------------------


def assert_same_windows(a, b) -> None:
    """Every task's inputs and targets of every split equal, a masked (NaN) target equal to one."""
    for ta, tb in zip(a.tasks, b.tasks, strict=True):
        for split in ("train", "dev", "test"):
            sa, sb = getattr(ta, split), getattr(tb, split)
            assert torch.equal(sa.x, sb.x)
            assert torch.equal(torch.nan_to_num(sa.y, nan=-7.0), torch.nan_to_num(sb.y, nan=-7.0))


def test_base_is_the_weekday_mean_of_the_last_weeks_in_log_space():
    context = np.arange(1.0, 15.0)  # 14 days: 1..14
    scale = window_scale(context, horizon=9, log=True, profile_weeks=2)
    u = np.log1p(context)
    assert scale.level == pytest.approx(u.mean())
    # step h has the weekday of context positions 7 + h % 7 and h % 7
    for h in range(9):
        assert scale.base[h] == pytest.approx((u[7 + h % 7] + u[h % 7]) / 2)
    # an all-zero output forecasts the base: the geometric mean of the two weeks' values
    assert scale.decode(np.zeros(9))[0] == pytest.approx(math.sqrt(2 * 9) - 1)


def test_level_only_base_and_division_by_the_mean_level():
    context = np.array([2.0, 4.0, np.nan, 6.0])
    scale = window_scale(context, horizon=3, log=False, profile_weeks=0)
    assert scale.divisor == pytest.approx(4.0)
    assert scale.level == pytest.approx(1.0)
    np.testing.assert_allclose(scale.base, [1.0, 1.0, 1.0])
    np.testing.assert_allclose(scale.decode(np.array([0.0, 0.5, -1.0])), [4.0, 6.0, 0.0])


def test_a_missing_weekday_in_the_profile_falls_back_to_the_level():
    context = np.ones(14)
    context[13] = np.nan  # weekday 6 of the last week
    context[6] = np.nan  # and of the week before
    scale = window_scale(context, horizon=7, log=False, profile_weeks=2)
    assert scale.base[6] == scale.level == pytest.approx(1.0)


def test_missing_context_days_are_zero_with_a_zero_mask():
    context = np.array([1.0, np.nan, 3.0])
    scale = window_scale(context, horizon=2, log=False, profile_weeks=0)
    x = encode_context(context, scale)
    np.testing.assert_allclose(x, [0.5 - 1.0, 0.0, 1.5 - 1.0, 1.0, 0.0, 1.0])


def test_targets_keep_nan_and_round_trip_through_decode():
    context = np.array([10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0])
    scale = window_scale(context, horizon=4, log=True, profile_weeks=1)
    future = np.array([15.0, np.nan, 35.0, 0.0])
    z = encode_target(future, scale)
    assert np.isnan(z[1]) and np.isnan(z).sum() == 1
    decoded = scale.decode(np.nan_to_num(z))
    np.testing.assert_allclose(decoded[[0, 2, 3]], future[[0, 2, 3]], rtol=1e-12, atol=1e-9)


def test_series_windows_never_read_a_target_at_or_after_the_cut():
    values = np.arange(40, dtype=np.float64)
    w = series_windows(values, range(5, 30), 5, 10, 25, log=False, profile_weeks=0)
    assert w.starts == list(range(5, 25))  # a window starting at the cut has nothing to learn
    for t, y, scale in zip(w.starts, w.y, w.scales, strict=True):
        seen = ~np.isnan(y)
        assert seen.sum() == min(10, 25 - t)
        np.testing.assert_allclose(scale.decode(np.nan_to_num(y))[seen], values[t : t + 10][seen])


def test_all_missing_context_is_an_error_of_the_scale():
    with pytest.raises(ValueError, match="no observed day"):
        window_scale(np.full(5, np.nan), 3, True, 0)


# -- the data source ------------------------------------------------------------------------------
def csv_text(days: int = 400, gaps: dict[str, list[int]] | None = None, temp_gap: int = -1) -> str:
    """Two series with a yearly and a weekly pattern; ``gaps[name]`` lists missing days."""
    rng = np.random.default_rng(0)
    lines = ["date,holiday,temp,big,small"]
    for t in range(days):
        day = START + datetime.timedelta(days=t)
        season = math.sin(2 * math.pi * t / 365.25)
        cells = []
        for name, level in (("big", 8.0), ("small", 5.0)):
            v = math.exp(level + 0.5 * season + 0.2 * (day.weekday() >= 5) + rng.normal(0, 0.05))
            cells.append("" if t in (gaps or {}).get(name, []) else f"{v:.3f}")
        temp = "" if t == temp_gap else f"{20 + 10 * season:.2f}"
        lines.append(f"{day.isoformat()},{int(t % 50 == 0)},{temp},{','.join(cells)}")
    return "\n".join(lines) + "\n"


def make_cfg(path, **data):
    raw = {
        "data": {
            "source": "daily_windows",
            "path": str(path),
            "layout": "wide",
            "series": ["big", "small"],
            "holiday_column": "holiday",
            "origin": (START + datetime.timedelta(days=300)).isoformat(),
            "horizon": 30,
            "dev_days": 7,
            "context": 14,
            "history": {"small": 60},
            **data,
        },
        "trunk": {"hidden": [8]},
    }
    return from_dict(raw)


def build(tmp_path, text=None, **data):
    path = tmp_path / "series.csv"
    path.write_text(text if text is not None else csv_text())
    return windows_problem(make_cfg(path, **data).data)


def test_shapes_history_and_the_test_window(tmp_path):
    problem = build(tmp_path)
    big, small = problem.tasks
    width = 2 * 14 + 7 + 6 + (14 + 30)  # values + mask, calendar, holiday flags around the window
    assert problem.input_dim == width
    assert small.task.out_dim == 30 and small.task.zero_init
    # small keeps 60 days: windows start from day 300 - 60 + 14 up to the 7 dev days
    assert len(small.train) == 60 - 14 - 7 and len(small.dev) == 7 and len(small.test) == 1
    assert len(big.train) == 300 - 14 - 7
    view = problem.meta["forecast"]
    dates, seen = view.seen("small")
    assert len(dates) == 60 and not np.isnan(seen).any()
    assert dates[-1] == START + datetime.timedelta(days=299)
    # decoding a zero output gives the base: positive values on the series' scale
    forecast = view.decoders["small"](np.zeros((1, 30)))
    assert forecast.shape == (30,) and (forecast > 0).all()


def test_values_outside_the_history_never_reach_inputs_or_targets(tmp_path):
    """small's values before its 60 days can be anything: the problem is the same."""
    text = csv_text()
    lines = text.splitlines()
    changed = list(lines)
    for i in range(1, 200):  # days 0..198, long before day 300 - 60
        cells = changed[i].split(",")
        cells[-1] = "123456789" if i % 2 else ""
        changed[i] = ",".join(cells)
    a = build(tmp_path, text)
    (tmp_path / "b").mkdir()
    b = build(tmp_path / "b", "\n".join(changed) + "\n")
    assert_same_windows(a, b)


def test_a_missing_day_is_masked_in_inputs_and_targets(tmp_path):
    gap = 280  # inside small's history, 20 days before the origin
    problem = build(tmp_path, csv_text(gaps={"small": [gap]}))
    small = problem.tasks[1]
    first = 300 - 60 + 14  # the day the first training window starts
    # the window starting the day after the gap reads it last in its context: value and mask 0
    row = gap + 1 - first
    assert small.train.x[row, 13] == 0 and small.train.x[row, 14 + 13] == 0
    assert small.train.x[row, 14 + 12] == 1
    # the window starting at the gap has its first target missing
    assert torch.isnan(small.train.y[gap - first, 0])
    assert not torch.isnan(small.train.y[gap - first - 1, 0])


def test_covariate_columns_span_context_and_horizon(tmp_path):
    problem = build(tmp_path, exogenous=["temp"])
    assert problem.input_dim == 2 * 14 + 13 + 2 * (14 + 30)
    names = problem.meta["feature_names"]
    assert names[-1] == "temp_+29" and "holiday_-14" in names


def test_horizon_zero_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="horizon"):
        build(tmp_path, horizon=0)


def test_a_context_longer_than_the_history_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match=r"data.context: 90 days is longer than the 60 days"):
        build(tmp_path, context=90)


def without_day(t: int) -> str:
    """The file without the row of day ``t``: every column is missing that day."""
    lines = csv_text().splitlines()
    return "\n".join(lines[: t + 1] + lines[t + 2 :]) + "\n"


def test_a_covariate_missing_in_the_forecast_period_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match=r"covariate 'temp' has no value for 2011-11-13, in the"):
        build(tmp_path, without_day(314), exogenous=["temp"])
    # without the covariate the missing day is only a masked target
    problem = build(tmp_path, without_day(314))
    assert torch.isnan(problem.tasks[0].test.y[0, 14])


def test_an_empty_covariate_cell_is_a_data_error_naming_the_line(tmp_path):
    with pytest.raises(DataError, match=r"series.csv:316: column 'temp' is empty"):
        build(tmp_path, csv_text(temp_gap=314), exogenous=["temp"])


def test_an_empty_covariate_cell_on_the_origin_is_in_the_forecast_period(tmp_path):
    """Day 300, the origin, is the forecast period's first day, not only a day a window reads."""
    with pytest.raises(
        DataError,
        match=r"series.csv:302: column 'temp' is empty on 2011-10-30, in the forecast period "
        r"2011-10-30 to 2011-11-28",
    ):
        build(tmp_path, csv_text(temp_gap=300), exogenous=["temp"])


def test_an_empty_covariate_cell_on_a_day_no_window_reads_is_as_a_missing_day(tmp_path):
    """Day 350 lies after the horizon (days 300-329): no window reads it. Its row deleted was
    accepted while its 'temp' cell left empty was refused; both now give the same problem,
    that of the whole file to the bit."""
    whole = build(tmp_path, exogenous=["temp"])
    (tmp_path / "b").mkdir()
    blank = build(tmp_path / "b", csv_text(temp_gap=350), exogenous=["temp"])
    (tmp_path / "c").mkdir()
    gone = build(tmp_path / "c", without_day(350), exogenous=["temp"])
    for other in (blank, gone):
        assert other.inference == whole.inference
        assert_same_windows(whole, other)


def test_an_empty_covariate_cell_a_window_reads_names_the_line(tmp_path):
    with pytest.raises(DataError) as e:
        build(tmp_path, csv_text(temp_gap=249), exogenous=["temp"])
    assert str(e.value).startswith(
        f"{tmp_path / 'series.csv'}:251: column 'temp' is empty on 2011-09-09, which a window reads"
    ), e.value


def test_a_covariate_missing_in_the_history_is_a_data_error_that_says_the_remedy(tmp_path):
    with pytest.raises(DataError, match=r"has no value for 2011-09-09 \(the day is missing") as e:
        build(tmp_path, without_day(249), exogenous=["temp"])
    # the fix in the same line: a covariate is an input, so the day needs a row for it
    assert str(e.value).endswith(
        "which a window reads: give 2011-09-09 a row with its 'temp' value (the series' value "
        "cells may stay empty)"
    )


def test_a_negative_value_in_log_space_is_a_data_error_not_a_clipped_zero(tmp_path):
    lines = csv_text().splitlines()
    cells = lines[11].split(",")
    cells[-1] = "-4"  # day 10 of small, long before its 60 days: a bad file all the same
    lines[11] = ",".join(cells)
    text = "\n".join(lines) + "\n"
    with pytest.raises(DataError, match=r"series.csv:12: column 'small': '-4' is negative"):
        build(tmp_path, text)
    assert build(tmp_path, text, log_target=False).tasks[1].task.name == "small"


def test_a_history_without_room_for_a_training_window_names_data_history(tmp_path):
    """21 days = context 14 + dev_days 7: no window fits (docs/config.md: days > context +
    dev_days); the error named the CSV file, as if the data were at fault."""
    with pytest.raises(ConfigError, match=r"^data.history: 'small' keeps 21 days, which must"):
        build(tmp_path, history={"small": 21})
    assert len(build(tmp_path, history={"small": 22}).tasks[1].train) == 1


def test_too_little_observed_history_for_a_training_window_is_a_data_error(tmp_path):
    # small keeps 30 days (from day 270); its training windows (from day 284) read targets
    # up to day 292 only, and none of those is observed
    text = csv_text(gaps={"small": list(range(284, 293))})
    with pytest.raises(DataError, match="no training window") as caught:
        build(tmp_path, text, history={"small": 30})
    assert str(caught.value).endswith(
        "shorten data.context or data.dev_days, or choose a later origin"
    )


def test_no_value_before_the_origin_is_a_data_error(tmp_path):
    with pytest.raises(DataError, match="no observed value"):
        build(tmp_path, csv_text(gaps={"small": list(range(286, 300))}))


def test_profile_weeks_must_fit_the_context(tmp_path):
    with pytest.raises(ConfigError, match="profile_weeks"):
        build(tmp_path, profile_weeks=3)


# -- from a mutation review: what the tests above left open ---------------------------------------
def test_an_unscored_window_is_kept_without_any_target():
    """The test window is a forecast to make even when no day of its horizon is observed."""
    values = np.arange(20.0)
    kept = series_windows(
        values, range(10, 11), 5, 4, 10, log=False, profile_weeks=0, unscored=True
    )
    assert kept.starts == [10] and np.isnan(kept.y).all()
    dropped = series_windows(values, range(10, 11), 5, 4, 10, log=False, profile_weeks=0)
    assert dropped.starts == []


def test_a_series_unobserved_over_the_horizon_still_has_its_test_window(tmp_path):
    problem = build(tmp_path, csv_text(gaps={"small": list(range(300, 330))}))
    small = problem.tasks[1]
    assert len(small.test) == 1 and torch.isnan(small.test.y).all()


def test_training_targets_stop_at_the_dev_days(tmp_path):
    """A training window never reads a target from the dev days on (day 293 = 300 - 7)."""
    big = build(tmp_path).tasks[0]
    y = big.train.y.numpy()
    for row, t in enumerate(range(14, 293)):
        seen = ~np.isnan(y[row])
        assert seen[: min(30, 293 - t)].all() and not seen[293 - t :].any()


def test_the_trend_is_zero_at_the_origin_in_years(tmp_path):
    problem = build(tmp_path, trend=True)
    at = problem.meta["feature_names"].index("trend")
    big = problem.tasks[0]
    assert big.test.x[0, at] == 0
    assert big.train.x[-1, at].item() == pytest.approx((292 - 300) / 365.25, abs=1e-7)


def test_covariates_are_standardised_on_the_training_days_only(tmp_path):
    problem = build(tmp_path, exogenous=["temp"])
    t = np.arange(293)  # big's history starts at day 0; its dev days start at day 293
    temp = np.round(20 + 10 * np.sin(2 * np.pi * t / 365.25), 2)
    mean, std = problem.inference["exogenous_scales"]["temp"]
    assert mean == pytest.approx(temp.mean()) and std == pytest.approx(temp.std())


def test_negative_profile_weeks_are_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^data\.profile_weeks: must be >= 0, got -1$"):
        build(tmp_path, profile_weeks=-1)


def test_nothing_observed_in_the_context_before_the_origin_is_a_data_error(tmp_path):
    """With dev_days longer than the context, dev may hold a value the test window's context
    (its last 14 days) does not: no forecast can be made from it."""
    text = csv_text(gaps={"small": list(range(286, 300))})
    with pytest.raises(DataError) as err:
        build(tmp_path, text, dev_days=21)
    assert str(err.value) == (
        f"{tmp_path / 'series.csv'}: series 'small' has no observed value in the 14 days before "
        "the origin 2011-10-30: nothing to forecast from"
    )
    # one observed day in those 14 is enough
    kept = build(tmp_path, csv_text(gaps={"small": list(range(286, 299))}), dev_days=21)
    assert len(kept.tasks[1].test) == 1


def test_an_origin_with_fewer_days_before_it_than_the_context_is_a_data_error(tmp_path):
    origin = (START + datetime.timedelta(days=10)).isoformat()
    with pytest.raises(DataError) as err:
        build(tmp_path, origin=origin, history={}, dev_days=3)
    assert str(err.value) == (
        f"{tmp_path / 'series.csv'}: origin 2011-01-13 has only 10 days before it in the file; "
        "data.context is 14"
    )
