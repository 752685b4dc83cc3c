"""The forecast plot is written as a real PNG, atomically, without a display."""

from __future__ import annotations

import datetime
import stat

import numpy as np
import pytest

from mtlshare.evaluation.forecast_plots import plot_forecast, plot_scarcity
from mtlshare.evaluation.looks import FORECASTERS, looks

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


def test_a_forecast_without_history_or_a_sweep_without_lengths_draws_nothing(tmp_path):
    with pytest.raises(ValueError, match=r"^history_dates is empty: a forecast is drawn after"):
        plot_forecast(tmp_path / "f.png", [], np.ones(0), _days(0, 2), np.ones(2), {}, "t")
    with pytest.raises(ValueError, match=r"^the scarcity sweep has no history lengths$"):
        plot_scarcity(tmp_path / "s.png", {"histories": [], "methods": {}}, "s1")
    assert list(tmp_path.iterdir()) == []


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


def _keep_figure(monkeypatch):
    from mtlshare.evaluation import forecast_plots

    figures = []
    monkeypatch.setattr(forecast_plots, "save_figure", lambda fig, path, **kw: figures.append(fig))
    return figures


def _legend(fig):
    (legend,) = fig.legends
    return {t.get_text(): h for t, h in zip(legend.texts, legend.legend_handles, strict=True)}


def test_a_method_has_its_colour_in_the_forecast_and_the_scarcity_plot(tmp_path, monkeypatch):
    from matplotlib.colors import to_hex

    figures = _keep_figure(monkeypatch)
    actual = np.ones(3)
    plot_forecast(
        tmp_path / "f.png",
        _days(0, 5),
        np.ones(5),
        _days(5, 3),
        actual,
        {"multitask": actual, "autoets": actual},
        title="t",
    )
    sweep = {"histories": [30], "methods": {"autoets": {"30": {"mae": 1.0}}}}
    plot_scarcity(tmp_path / "s.png", sweep, "casual")
    forecast, scarcity = (_legend(f) for f in figures)
    assert to_hex(forecast["autoets"].get_color()) == to_hex(scarcity["autoets"].get_color())
    assert (
        to_hex(forecast["autoets"].get_color()) == looks(["autoets"], FORECASTERS)["autoets"].colour
    )


def test_the_forecast_says_its_seed_target_interval_and_origin(tmp_path, monkeypatch):
    """The seed in the title, the series on the y axis, the shaded interval and the origin in
    the legend, and the origin line between the last history day and the first forecast day."""
    from matplotlib.dates import date2num

    figures = _keep_figure(monkeypatch)
    actual = np.ones(3)
    band = ("mt", actual - 1, actual + 1)
    args = (_days(0, 5), np.ones(5), _days(5, 3), actual, {"mt": actual})
    plot_forecast(tmp_path / "a.png", *args, title="casual: 3-day forecast", band=band, seed=0)
    plot_forecast(tmp_path / "b.png", *args, title="x", band=band, target="cnt", interval=0.8)
    first, second = figures
    ax = first.axes[0]
    assert ax.get_title() == "casual: 3-day forecast (seed 0)"
    assert ax.get_ylabel() == "casual"
    assert set(_legend(first)) == {"history", "actual", "mt", "mt: interval", "forecast origin"}
    (origin,) = [line for line in ax.lines if line.get_label() == "forecast origin"]
    assert origin.get_xdata()[0] == date2num(_days(4, 1)[0]) + 0.5
    assert second.axes[0].get_ylabel() == "cnt"
    assert "mt: 80% interval" in _legend(second)
    assert second.axes[0].get_title() == "x"


def test_a_value_with_no_neighbour_has_a_marker(tmp_path, monkeypatch):
    """A one-day horizon, or an observed day between missing ones, would draw no segment."""
    figures = _keep_figure(monkeypatch)
    history = np.array([1.0, np.nan, 2.0, np.nan, 3.0, 4.0])
    plot_forecast(
        tmp_path / "a.png", _days(0, 6), history, _days(6, 1), np.ones(1), {"mt": np.ones(1)}, "t"
    )
    (fig,) = figures
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    assert list(lines["history"].get_markevery()) == [True, False, True, False, False, False]
    assert list(lines["actual"].get_markevery()) == [True]
    assert list(lines["mt"].get_markevery()) == [True]


def test_scarcity_with_a_missing_history_length_draws_a_gap(tmp_path, monkeypatch):
    figures = _keep_figure(monkeypatch)
    sweep = {
        "histories": [30, 60, 90],
        "methods": {
            "multitask": {"30": {"mae": 1.0}, "60": {"mae": 1.5}, "90": {"mae": 2.0}},
            "single": {"30": {"mae": 1.5}, "90": {"mae": 1.2}},
        },
    }
    plot_scarcity(tmp_path / "s.png", sweep, "casual")
    (fig,) = figures
    lines = {line.get_label(): line for line in fig.axes[0].lines}
    single = list(lines["single"].get_ydata())
    assert single[0] == 1.5 and np.isnan(single[1]) and single[2] == 1.2


def test_a_title_without_a_series_name_leaves_the_y_axis_value(tmp_path, monkeypatch):
    """No ``target`` and a title without ``NAME: ``: the y axis says ``value``, not the title."""
    figures = _keep_figure(monkeypatch)
    args = (_days(0, 5), np.ones(5), _days(5, 3), np.ones(3), {"mt": np.ones(3)})
    plot_forecast(tmp_path / "a.png", *args, title="three days ahead")
    (fig,) = figures
    assert fig.axes[0].get_ylabel() == "value"


def test_the_origin_line_is_half_way_across_a_gap_before_the_first_forecast_day(
    tmp_path, monkeypatch
):
    """Forecasts that start three days after the last history day: the origin line stands
    between the two, not half a day after the history."""
    from matplotlib.dates import date2num

    figures = _keep_figure(monkeypatch)
    args = (_days(0, 5), np.ones(5), _days(7, 3), np.ones(3), {"mt": np.ones(3)})
    plot_forecast(tmp_path / "a.png", *args, title="t")
    (fig,) = figures
    (origin,) = [ln for ln in fig.axes[0].lines if ln.get_label() == "forecast origin"]
    assert origin.get_xdata()[0] == date2num(_days(4, 1)[0]) + 1.5


def test_scarcity_lines_past_the_palette_are_dashed(tmp_path, monkeypatch):
    """``plot_scarcity`` called with more methods than colours: a method's line has its look's
    style, so two methods of one colour can be told apart."""
    figures = _keep_figure(monkeypatch)
    names = [f"method{i:02d}" for i in range(20)]
    sweep = {"histories": [30, 60], "methods": {n: {"30": {"mae": 1.0}} for n in names}}
    plot_scarcity(tmp_path / "s.png", sweep, "casual")
    (fig,) = figures
    drawn = looks(names, FORECASTERS)
    styles = {line.get_label(): line.get_linestyle() for line in fig.axes[0].lines}
    assert styles == {n: drawn[n].linestyle for n in names}
    assert "--" in styles.values()
