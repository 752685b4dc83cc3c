"""Tests a mutation review of the forecasting study found missing: each fails with a small
change to the code that a real bug could make."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np

from mtlshare.cli import main

START = datetime.date(2010, 1, 4)


def series_csv(path: Path, drop: datetime.date) -> Path:
    """Two daily series with a weekly pattern over 600 days, the row of ``drop`` missing."""
    rng = np.random.default_rng(1)
    rows = ["date,long,short"]
    for t in range(600):
        day = START + datetime.timedelta(days=t)
        if day == drop:
            continue
        season = math.sin(2 * math.pi * (t - 80) / 365.25)
        weekend = day.weekday() >= 5
        long = math.exp(7.0 + 0.6 * season - 0.2 * weekend + rng.normal(0, 0.08))
        short = math.exp(5.0 + 1.0 * season + 0.4 * weekend + rng.normal(0, 0.1))
        rows.append(f"{day},{long:.2f},{short:.2f}")
    path.write_text("\n".join(rows) + "\n")
    return path


STUDY = """
experiment = "forecast"
[data]
source = "daily_windows"
path = "{csv}"
layout = "wide"
series = ["long", "short"]
origin = "2011-06-01"
horizon = 28
dev_days = 7
history = {{ short = 60 }}
context = 14
[trunk]
hidden = [8]
[train]
epochs = 1
threads = 1
[forecast]
target = "short"
origins = ["2011-06-01"]
validation_origins = ["2011-05-01"]
interval = 0.5
methods = ["seasonal_naive", "autoets"]
seeds = [0]
"""


def test_a_gap_autoets_cannot_fit_at_a_calibration_origin_is_found_before_out(tmp_path, capsys):
    """The intervals are calibrated on the methods' forecasts at the validation origins: a gap
    leaving AutoETS fewer than two seasons there (5 days after 2011-04-25, before 2011-05-01)
    is one line before --out is made, though the test origin's history has enough."""
    csv = series_csv(tmp_path / "s.csv", drop=datetime.date(2011, 4, 25))
    (tmp_path / "f.toml").write_text(STUDY.format(csv=csv))
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "f.toml"), "--out", str(out), "--quiet"]) == 2
    assert not out.exists()  # the study did not start, to stop at its calibration
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtlshare: error:"), lines
    assert "validation origin 2011-05-01 (forecast.validation_origins)" in lines[0]
    assert "autoets: 'short' has 5 observed days after its last missing one" in lines[0]


def test_the_wins_over_the_single_series_network_count_its_origins_only():
    """At how many origins the multi-task model beats single-series training: not seasonal
    naive's count (which the mean-MAE comparisons beside it carry)."""
    from mtlshare.app.forecast_report import targets

    def method(*maes: float) -> dict:
        return {"mae": sum(maes) / len(maes), "per_origin": [{"mae": m} for m in maes]}

    results = {
        "methods": {
            "multitask": method(1.0, 1.0, 1.0),
            "single": method(2.0, 2.0, 0.5),
            "seasonal_naive": method(0.5, 0.5, 0.5),
        }
    }
    beats = targets(results)["multitask_beats_single"]
    assert (beats["origins"], beats["of"], beats["met"]) == (2, 3, True)
    assert beats["paired"]["lower_at"] == 2
    assert targets(results)["multitask_vs_seasonal_naive"]["paired"]["lower_at"] == 0


def test_a_figure_that_cannot_be_drawn_costs_the_study_only_that_figure(
    tmp_path, capsys, monkeypatch
):
    """A plotting error at a test origin or in the scarcity plot is a warning naming the
    figure; the study's results, forecasts and tables are written as usual."""
    import mtlshare.app.forecast as forecast_module

    def fails(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(forecast_module, "plot_forecast", fails)
    monkeypatch.setattr(forecast_module, "plot_scarcity", fails)
    csv = series_csv(tmp_path / "s.csv", drop=datetime.date(2009, 1, 1))  # a day not in it
    (tmp_path / "f.toml").write_text(STUDY.format(csv=csv))
    out = tmp_path / "out"
    config = str(tmp_path / "f.toml")
    assert main(["run", config, "--out", str(out), "--quiet", "forecast.histories=[30]"]) == 0
    assert {"results.json", "forecasts.csv", "forecast.md"} <= {p.name for p in out.iterdir()}
    assert not list(out.glob("*.png"))
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "not drawn" in ln]
    assert warned == [
        f"mtlshare: warning: {out / name}: not drawn (RuntimeError: no canvas)"
        for name in ("forecast_2011-06-01.png", "scarcity.png")
    ]


def test_a_forecast_plot_says_the_networks_seed_its_target_and_its_intervals_level(
    tmp_path, monkeypatch
):
    """The plot shows the networks' first seed (the tables average them): its title says so."""
    import mtlshare.app.forecast as forecast_module

    seen: list[dict] = []
    monkeypatch.setattr(forecast_module, "plot_forecast", lambda *a, **kw: seen.append(kw))
    csv = series_csv(tmp_path / "s.csv", drop=datetime.date(2009, 1, 1))
    (tmp_path / "f.toml").write_text(STUDY.format(csv=csv))
    config = str(tmp_path / "f.toml")
    methods = 'forecast.methods=["multitask", "seasonal_naive"]'
    seeds = "forecast.seeds=[2]"
    assert main(["run", config, "--out", str(tmp_path / "a"), "--quiet", methods, seeds]) == 0
    assert main(["run", config, "--out", str(tmp_path / "b"), "--quiet"]) == 0
    networks, baselines = seen[0], seen[1]
    assert networks["seed"] == 2 and baselines["seed"] is None  # seasonal naive, AutoETS: none
    assert networks["target"] == "short" and networks["interval"] == 0.5
