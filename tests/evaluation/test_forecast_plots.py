"""The forecast plot is written as a real PNG, atomically, without a display."""

from __future__ import annotations

import datetime
import stat

import numpy as np
import pytest

from mtlshare.evaluation.forecast_plots import plot_forecast

START = datetime.date(2012, 1, 1)


def _days(first, n):
    return [START + datetime.timedelta(days=first + i) for i in range(n)]


def test_plot_forecast_writes_png_atomically(tmp_path):
    history = np.sin(np.arange(30) / 3.0)
    history[[4, 5]] = np.nan  # missing days show as a gap
    actual = np.sin(np.arange(30, 44) / 3.0)
    actual[2] = np.nan
    forecasts = {"multi-task": actual + 0.1, "seasonal naive": np.zeros(14)}
    out = plot_forecast(
        tmp_path / "plots" / "origin_0.png",
        _days(0, 30),
        history,
        _days(30, 14),
        actual,
        forecasts,
        title="casual, origin 2012-01-31",
    )
    assert out == tmp_path / "plots" / "origin_0.png"
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o644
    assert [p.name for p in out.parent.iterdir()] == ["origin_0.png"]


def test_plot_forecast_length_mismatch_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="forecast 'bad'"):
        plot_forecast(
            tmp_path / "x.png",
            _days(0, 5),
            np.ones(5),
            _days(5, 3),
            np.ones(3),
            {"bad": np.ones(4)},
            title="",
        )
    assert list(tmp_path.iterdir()) == []


def test_plot_forecast_shades_one_methods_interval(tmp_path):
    actual = np.sin(np.arange(30, 44) / 3.0)
    args = (_days(0, 30), np.ones(30), _days(30, 14), actual, {"mt": actual, "sn": actual * 0})
    plain = plot_forecast(tmp_path / "a.png", *args, title="t")
    band = ("mt", actual - 1.0, actual + 1.0)
    shaded = plot_forecast(tmp_path / "b.png", *args, title="t", band=band)
    assert plain.read_bytes() != shaded.read_bytes()
    with pytest.raises(ValueError, match="'other' is not one of the forecasts"):
        plot_forecast(tmp_path / "c.png", *args, title="t", band=("other", actual, actual))
    with pytest.raises(ValueError, match="band upper"):
        plot_forecast(tmp_path / "c.png", *args, title="t", band=("mt", actual, actual[:3]))
