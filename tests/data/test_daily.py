"""The ``daily_csv`` source on a small generated file: the splits around the origin, the history
cut of a scarce series, and what its scales and covariates are fitted on."""

from __future__ import annotations

import datetime
import math

import numpy as np
import pytest
import torch

from mtlshare.config import from_dict
from mtlshare.data.codecs import codec_from_spec
from mtlshare.data.daily import daily_problem
from mtlshare.errors import ConfigError, DataError

START = datetime.date(2011, 1, 3)
ORIGIN, DEV, HORIZON = 60, 7, 10


def build(tmp_path, **data):
    lines = ["date,temp,a,b"]
    for t in range(80):
        day = START + datetime.timedelta(days=t)
        lines.append(f"{day.isoformat()},{t % 9},{10 + t},{math.exp(1 + t / 40):.4f}")
    path = tmp_path / "daily.csv"
    path.write_text("\n".join(lines) + "\n")
    raw = {
        "source": "daily_csv",
        "path": str(path),
        "layout": "wide",
        "series": ["a", "b"],
        "origin": (START + datetime.timedelta(days=ORIGIN)).isoformat(),
        "horizon": HORIZON,
        "dev_days": DEV,
        "history": {"b": 20},
        **data,
    }
    return daily_problem(from_dict({"data": raw, "trunk": {"hidden": [4]}}).data)


def values(t):
    return 10.0 + np.asarray(t, dtype=np.float64)


def test_splits_around_the_origin(tmp_path):
    a = build(tmp_path).tasks[0]
    assert (len(a.train), len(a.dev), len(a.test)) == (ORIGIN - DEV, DEV, HORIZON)
    scale = build(tmp_path).meta["scales"]["a"]
    decoded = scale.inverse(a.test.y.double().numpy())
    np.testing.assert_allclose(decoded, values(range(ORIGIN, ORIGIN + HORIZON)), rtol=1e-5)
    np.testing.assert_allclose(scale.inverse(a.dev.y.double().numpy())[-1], values(ORIGIN - 1))


def test_a_scarce_series_keeps_exactly_its_last_days(tmp_path):
    problem = build(tmp_path)
    kept = problem.meta["values"]["b"]
    assert np.isnan(kept[: ORIGIN - 20]).all() and not np.isnan(kept[ORIGIN - 20 :]).any()
    dates, seen = problem.meta["forecast"].seen("b")
    assert len(dates) == 20 and dates[0] == START + datetime.timedelta(days=ORIGIN - 20)
    assert not np.isnan(seen).any()
    b = problem.tasks[1]
    assert int((~b.train.y.isnan()).sum()) == 20 - DEV


def test_scales_are_fitted_on_the_days_before_the_origin(tmp_path):
    scale = build(tmp_path).meta["scales"]["a"]
    fit = np.log1p(values(range(ORIGIN)))
    assert scale.mean == pytest.approx(fit.mean()) and scale.std == pytest.approx(fit.std())


def test_exogenous_columns_are_standardised_on_the_training_days(tmp_path):
    problem = build(tmp_path, exogenous=["temp"])
    at = problem.meta["feature_names"].index("temp")
    column = problem.tasks[0].train.x[:, at].double().numpy()
    assert column.mean() == pytest.approx(0.0, abs=1e-6)
    assert column.std() == pytest.approx(1.0, abs=1e-6)


def test_predict_reads_a_covariate_as_the_data_give_it_and_standardises_it_as_training_did(
    tmp_path,
):
    """A run's codec reads a file of the features by name with the covariate as the data file
    holds it (``temp``, 0 to 8 here), and standardises it with the training days' mean and std
    kept in ``inference.json``: every day's row read back is the run's own input row to the
    bit. (The mean and std were kept nowhere: the raw value went into the network.)"""
    problem = build(tmp_path, exogenous=["temp"], trend=True)
    names = problem.meta["feature_names"]
    a = problem.tasks[0]
    x = torch.cat([a.train.x, a.dev.x, a.test.x])
    days = range(len(x))
    lines = [",".join(["date", *names])]
    for t in days:
        cells = [repr(float(v)) for v in x[t]]
        cells[names.index("temp")] = str(t % 9)  # as the data file has it
        lines.append(",".join([str(START + datetime.timedelta(days=t)), *cells]))
    path = tmp_path / "features.csv"
    path.write_text("\n".join(lines) + "\n")
    codec = codec_from_spec(problem.inference)
    assert problem.inference["standardised"]["temp"][1] > 0
    assert torch.equal(codec.read(path, "auto").x, x)
    older = {k: v for k, v in problem.inference.items() if k != "standardised"}
    raw = codec_from_spec(older).read(path, "auto").x  # a run older than the key: as given
    assert raw[:, names.index("temp")].tolist() == [float(t % 9) for t in days]
    for bad in ({"temp": [1.0, 0.0]}, {"nope": [1.0, 2.0]}, {"temp": "x"}):
        with pytest.raises(DataError, match="description is damaged"):
            codec_from_spec({**problem.inference, "standardised": bad})


def test_evaluate_refuses_a_covariate_changed_since_training(tmp_path):
    """The covariate's training mean and std are in ``inference.json``, so data read again
    with the covariate changed are refused, as changed vocabularies are (they were scored
    without a word)."""
    from mtlshare.app.predict import evaluate
    from mtlshare.app.run import run

    problem = build(tmp_path, exogenous=["temp"])
    path = tmp_path / "daily.csv"
    raw = {
        "source": "daily_csv",
        "path": str(path),
        "layout": "wide",
        "series": ["a", "b"],
        "exogenous": ["temp"],
        "origin": (START + datetime.timedelta(days=ORIGIN)).isoformat(),
        "horizon": HORIZON,
        "dev_days": DEV,
    }
    cfg = from_dict({"data": raw, "trunk": {"hidden": [4]}, "train": {"epochs": 1}})
    run(cfg, tmp_path / "run", progress=False)
    assert evaluate(tmp_path / "run")
    lines = path.read_text().splitlines()
    lines[6] = lines[6].replace(",5,", ",6,", 1)  # day 5's temp, a training day
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError, match="differs in the codec's standardised"):
        evaluate(tmp_path / "run")
    assert problem.inference["standardised"]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"path": ""}, r"^data\.path: the CSV file to read is required$"),
        ({"history": {"b": 0}}, r"^data\.history: days must be >= 1, got \{'b': 0\}$"),
        ({"origin": ""}, r"^data\.origin: the first forecast day \(YYYY-MM-DD\) is required$"),
        ({"series": ["a", "a"]}, r"^data\.series: names a series twice, got \['a', 'a'\]$"),
        (
            {"history": {"c": 5}},
            r"^data\.history: unknown series \['c'\]; series are \['a', 'b'\]$",
        ),
    ],
)
def test_bad_settings_are_refused_naming_the_key(tmp_path, data, message):
    with pytest.raises(ConfigError, match=message):
        build(tmp_path, **data)


def test_a_series_with_one_observed_day_before_the_origin_is_a_data_error(tmp_path):
    """A scale needs two values to fit; two are enough."""
    with pytest.raises(DataError) as err:
        build(tmp_path, history={"b": 1})
    assert str(err.value) == (
        f"{tmp_path / 'daily.csv'}: series 'b' has fewer than 2 observed days before the "
        "origin 2011-03-04"
    )
    with pytest.warns(UserWarning, match="task 'b', train split: no observed target"):
        assert "b" in build(tmp_path, history={"b": 2}).meta["scales"]  # its 2 days are dev's


def test_the_trend_is_zero_at_the_origin_in_years(tmp_path):
    problem = build(tmp_path, trend=True)
    at = problem.meta["feature_names"].index("trend")
    a = problem.tasks[0]
    assert a.test.x[0, at] == 0
    assert a.train.x[0, at].item() == pytest.approx(-ORIGIN / 365.25, abs=1e-7)


def test_holidays_are_the_days_whose_flag_is_set(tmp_path):
    """What the prophet baseline is given: the days of ``holiday_column`` > 0, every day of
    the file (none without a column)."""
    view = build(tmp_path, holiday_column="temp").meta["forecast"]
    assert view.holidays("") == []
    assert view.holidays("temp") == [
        START + datetime.timedelta(days=t) for t in range(80) if t % 9 > 0
    ]
