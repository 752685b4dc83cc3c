"""The forecasting study over context windows: settings chosen on validation origins only,
errors recomputable from forecasts.csv, MASE, the headline comparisons, the scarcity sweep,
and one-line errors (exit 2, nothing written) for bad input."""

from __future__ import annotations

import csv as csv_module
import datetime
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest

from mtlshare.app.experiments import runner
from mtlshare.app.forecast_select import choose
from mtlshare.cli import main
from mtlshare.config import load_config
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.evaluation.forecast import mase_scale
from mtlshare.evaluation.intervals import conformal_widths
from mtlshare.forecasting.config import ForecastConfig

START = datetime.date(2010, 1, 4)


def series_csv(path: Path, days: int = 600, drop: int = -1) -> Path:
    """Wide file: a long series and a short one sharing a yearly season, a weekly pattern each,
    a holiday flag and a temperature; ``drop`` removes one day's row."""
    rng = np.random.default_rng(1)
    rows = ["date,holiday,temp,long,short"]
    for t in range(days):
        if t == drop:
            continue
        day = START + datetime.timedelta(days=t)
        season = math.sin(2 * math.pi * (t - 80) / 365.25)
        weekend = day.weekday() >= 5
        long = math.exp(7.0 + 0.6 * season - 0.2 * weekend + rng.normal(0, 0.08))
        short = math.exp(5.0 + 1.0 * season + 0.4 * weekend + rng.normal(0, 0.1))
        rows.append(f"{day},{int(t % 60 == 0)},{15 + 10 * season:.2f},{long:.2f},{short:.2f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def study_text(csv: Path, **forecast: str) -> str:
    extra = "\n".join(f"{k} = {v}" for k, v in forecast.items())
    return f"""
experiment = "forecast"
mechanism = "hard"
seed = 0
[data]
source = "daily_windows"
path = "{csv}"
layout = "wide"
series = ["long", "short"]
holiday_column = "holiday"
origin = "2011-06-01"
horizon = 28
dev_days = 7
history = {{ short = 60 }}
context = 14
[trunk]
hidden = [16]
[train]
epochs = 3
batch_size = 64
lr = 0.003
keep = "last"
select_on = "short"
threads = 1
[forecast]
target = "short"
origins = ["2011-06-01", "2011-07-01"]
methods = ["multitask", "single", "seasonal_naive", "naive"]
seeds = [0, 1]
{extra}
"""


def run_study(tmp_path: Path, text: str, *overrides: str) -> dict:
    (tmp_path / "f.toml").write_text(text)
    cfg = load_config(tmp_path / "f.toml", list(overrides))
    return runner("forecast")(cfg, tmp_path / "out", progress=False)


def test_eligible_validation_origins_end_before_the_test_origin():
    fc = ForecastConfig(
        target="s",
        origins=["2012-04-01"],
        validation_origins=["2011-12-01", "2012-01-01", "2012-01-03", "2012-02-01", "2011-11-01"],
        select_last=2,
    )
    # 2012-01-03 + 90 days = 2012-04-02: its horizon reaches the test origin, so it is out
    assert fc.eligible(datetime.date(2012, 4, 1), 90) == ["2011-12-01", "2012-01-01"]
    fc.select_last = 0
    assert fc.eligible(datetime.date(2012, 4, 1), 90) == ["2011-11-01", "2011-12-01", "2012-01-01"]


def test_a_validation_horizon_ending_the_day_before_the_test_origin_is_eligible():
    fc = ForecastConfig(
        target="s",
        origins=["2012-04-01"],
        validation_origins=["2012-01-03", "2012-01-02"],
        select_last=0,
    )
    # 2012-01-02 + 90 days = 2012-04-01: its horizon's last day is 2012-03-31
    assert fc.eligible(datetime.date(2012, 4, 1), 90) == ["2012-01-02"]


def test_choose_never_reads_a_validation_origin_after_the_test_origin():
    fc = ForecastConfig(target="s", origins=["2012-03-01"], validation_origins=[], select_last=0)
    fc.validation_origins = ["2012-01-01", "2012-02-01", "2012-02-20"]
    candidates = {"a": {}, "b": {}}
    scores = {
        "multitask": {
            "a": {"2012-01-01": 10.0, "2012-02-01": 10.0, "2012-02-20": 100.0},
            "b": {"2012-01-01": 11.0, "2012-02-01": 11.0, "2012-02-20": 1.0},
        }
    }
    # with a 20-day horizon, 2012-02-20's ends on 2012-03-10: after the test origin, unread
    assert choose(fc, 20, candidates, scores, "multitask", "2012-03-01") == "a"
    assert choose(fc, 20, candidates, scores, "multitask", "2012-03-20") == "b"
    # a tie goes to the candidate listed first
    scores["multitask"]["b"] = dict(scores["multitask"]["a"])
    assert choose(fc, 20, candidates, scores, "multitask", "2012-03-01") == "a"


def test_choose_skips_unscored_origins_and_refuses_when_nothing_is_scored():
    nan = float("nan")
    fc = ForecastConfig(target="s", origins=["2012-03-01"], validation_origins=[], select_last=0)
    fc.validation_origins = ["2012-01-01", "2012-02-01"]
    candidates = {"a": {}, "b": {}}
    scores = {"single": {"a": {"2012-01-01": nan, "2012-02-01": 5.0},
                         "b": {"2012-01-01": 1.0, "2012-02-01": 6.0}}}  # fmt: skip
    # a's NaN origin is left out (5.0), b's mean is 3.5
    assert choose(fc, 20, candidates, scores, "single", "2012-03-01") == "b"
    scores["single"]["b"] = {"2012-01-01": nan, "2012-02-01": nan}
    assert choose(fc, 20, candidates, scores, "single", "2012-03-01") == "a"
    scores["single"]["a"] = {"2012-01-01": nan, "2012-02-01": nan}
    with pytest.raises(MtlshareError, match="no candidate could be scored for 'single' at test"):
        choose(fc, 20, candidates, scores, "single", "2012-03-01")
    fc.select = "dev"
    dev = {"single": {"a": {"2012-03-01": nan}, "b": {"2012-03-01": 0.2}}}
    assert choose(fc, 20, candidates, dev, "single", "2012-03-01") == "b"
    dev["single"]["b"]["2012-03-01"] = nan
    with pytest.raises(MtlshareError, match="has no observed day on its dev days"):
        choose(fc, 20, candidates, dev, "single", "2012-03-01")


def test_study_with_candidates_chooses_on_validation_origins(tmp_path):
    csv = series_csv(tmp_path / "s.csv")
    text = study_text(
        csv,
        validation_origins='["2011-03-01", "2011-04-01", "2011-05-01"]',
        select_last="2",
        candidates='[{name = "short", "train.epochs" = 1}, {name = "long"}]',
    )
    res = run_study(tmp_path, text)
    sel = res["selection"]
    # 2011-05-01 + 28 days ends before 2011-06-01: the first test origin reads 04-01 and 05-01
    for method, by_candidate in sel["validation_mae"].items():
        assert set(by_candidate) == {"short", "long"}
        assert set(by_candidate["long"]) == {"2011-04-01", "2011-05-01"}
        for origin in res["origins"]:
            means = {c: np.mean(list(v.values())) for c, v in by_candidate.items()}
            assert sel["chosen"][origin][method] == min(means, key=means.get)
            row = next(r for r in res["methods"][method]["per_origin"] if r["origin"] == origin)
            assert row["candidate"] == sel["chosen"][origin][method]
            assert len(row["seeds"]) == 2 and len(row["runs"]) == 2
    table = (tmp_path / "out" / "forecast.md").read_text()
    assert "Settings chosen on the validation origins" in table


def blank_before(csv: Path, column: str, day: datetime.date) -> Path:
    """A copy of ``csv`` with ``column`` empty before ``day``: a series that starts there."""
    lines = csv.read_text().splitlines()
    at = lines[0].split(",").index(column)
    out = [lines[0]]
    for line in lines[1:]:
        fields = line.split(",")
        if datetime.date.fromisoformat(fields[0]) < day:
            fields[at] = ""
        out.append(",".join(fields))
    path = csv.with_name("blank_" + csv.name)
    path.write_text("\n".join(out) + "\n")
    return path


def test_select_dev_chooses_on_the_target_s_dev_days_and_reads_nothing_older(tmp_path):
    """forecast.select = "dev": each candidate is trained at the test origin and scored by the
    target's dev MAE; no validation origin is needed, the chosen seed-0 training is the test
    forecast, and the target's values older than its history never reach any forecast."""
    csv = series_csv(tmp_path / "s.csv")
    text = study_text(
        csv,
        select='"dev"',
        candidates='[{name = "short", "train.epochs" = 1}, {name = "long"}]',
    )
    res = run_study(tmp_path, text)
    sel = res["selection"]
    assert sel["select"] == "dev" and "validation_mae" not in sel
    assert res["interval"] is None  # no validation origins: nothing to calibrate on
    for method, by_candidate in sel["dev_mae"].items():
        assert set(by_candidate) == {"short", "long"}
        for origin in res["origins"]:
            scores = {c: v[origin] for c, v in by_candidate.items()}
            assert len(set(scores.values())) == 2  # two trainings, two scores
            chosen = sel["chosen"][origin][method]
            assert chosen == min(scores, key=scores.get)
            row = next(r for r in res["methods"][method]["per_origin"] if r["origin"] == origin)
            assert row["candidate"] == chosen
            assert row["runs"][0]["dev"] == scores[chosen]  # seed 0 is the selection's run
    # 2 candidates x 2 methods x 2 test origins (seed 0), then seed 1 of the chosen ones
    assert res["trainings"]["here"] == 8 + 4 and res["trainings"]["reused"] == 4
    assert (
        "Settings chosen on the target's dev days" in (tmp_path / "out" / "forecast.md").read_text()
    )
    # the same study on a file where "short" starts 60 days before the first origin
    first = datetime.date.fromisoformat(res["origins"][0])
    short = blank_before(csv, "short", first - datetime.timedelta(days=60))
    (tmp_path / "b").mkdir()
    again = run_study(
        tmp_path / "b",
        study_text(
            short,
            select='"dev"',
            candidates=('[{name = "short", "train.epochs" = 1}, {name = "long"}]'),
        ),
        'forecast.origins=["2011-06-01"]',
    )
    rows = [
        r
        for r in (tmp_path / "out" / "forecasts.csv").read_text().splitlines()
        if ",2011-06-01," in r
    ]
    assert rows == (tmp_path / "b" / "out" / "forecasts.csv").read_text().splitlines()[1:]
    assert again["selection"]["chosen"]["2011-06-01"] == sel["chosen"]["2011-06-01"]


def test_a_target_without_data_at_a_validation_origin_names_it(tmp_path, capsys):
    csv = series_csv(tmp_path / "s.csv")
    short = blank_before(csv, "short", datetime.date(2011, 4, 2))  # 60 days before 06-01
    text = study_text(
        short,
        validation_origins='["2011-03-01", "2011-04-01"]',
        candidates='[{name = "a", "train.epochs" = 1}, {name = "b"}]',
    )
    (tmp_path / "f.toml").write_text(text)
    argv = ["run", str(tmp_path / "f.toml"), "--out", str(tmp_path / "o"), "--quiet"]
    assert main([*argv, 'forecast.origins=["2011-06-01"]']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "validation origin 2011-03-01 (forecast.validation_origins)" in err[0]
    assert 'forecast.select = "dev"' in err[0]


def test_errors_recompute_from_forecasts_csv_and_mase_from_the_history(tmp_path):
    csv = series_csv(tmp_path / "s.csv")
    res = run_study(tmp_path, study_text(csv))
    with (tmp_path / "out" / "forecasts.csv").open() as f:
        table = list(csv_module.DictReader(f))
    head = ["date", "series", "method", "seed", "origin", "forecast", "actual", "lower", "upper"]
    assert list(table[0]) == head
    # without validation origins there is nothing to calibrate intervals on
    assert res["interval"] is None and {r["lower"] for r in table} == {""}
    values = {r[0]: float(r[4]) for r in csv_module.reader(csv.read_text().splitlines()[1:])}
    for method in ("multitask", "single", "seasonal_naive", "naive"):
        for row in res["methods"][method]["per_origin"]:
            days = [r for r in table if r["method"] == method and r["origin"] == row["origin"]]
            seeds = sorted({r["seed"] for r in days})
            assert seeds == (["0", "1"] if method in ("multitask", "single") else [""])
            maes = []
            for seed in seeds:
                errors = [
                    abs(float(r["forecast"]) - float(r["actual"]))
                    for r in days
                    if r["seed"] == seed
                ]
                assert len(errors) == 28
                maes.append(sum(errors) / len(errors))
            assert np.mean(maes) == pytest.approx(row["mae"], rel=1e-9)
            origin = datetime.date.fromisoformat(row["origin"])
            history = [values[str(origin - datetime.timedelta(days=d))] for d in range(60, 0, -1)]
            assert row["mase"] == pytest.approx(row["mae"] / mase_scale(np.array(history), 7))
    found = res["targets"]
    assert found["multitask_beats_single"]["of"] == 2
    assert found["multitask_vs_seasonal_naive"]["met"] == (
        res["methods"]["multitask"]["mae"] < res["methods"]["seasonal_naive"]["mae"]
    )
    paired = found["multitask_vs_seasonal_naive"]["paired"]
    mt, sn = (res["methods"][m] for m in ("multitask", "seasonal_naive"))
    assert paired["difference"] == pytest.approx(mt["mae"] - sn["mae"])
    lower = sum(
        a["mae"] < b["mae"] for a, b in zip(mt["per_origin"], sn["per_origin"], strict=True)
    )
    assert (paired["lower_at"], paired["of"]) == (lower, 2)
    assert paired["low"] <= paired["difference"] <= paired["high"]
    report = (tmp_path / "out" / "forecast.md").read_text()
    # two origins: no interval printed (results.json keeps the numbers)
    assert f"MAE difference {paired['difference']:+.1f}, 2 origins are too few for a " in report
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert saved["seconds"]["total"] > 0 and saved["methods"]["naive"]["per_origin"]


def test_scarcity_sweep_writes_its_table_plot_and_forecasts(tmp_path):
    csv = series_csv(tmp_path / "s.csv")
    text = study_text(
        csv, histories="[30, 90]", scarcity_methods='["multitask", "single", "seasonal_naive"]'
    )
    res = run_study(tmp_path, text, "forecast.seeds=[0]", 'forecast.methods=["seasonal_naive"]')
    sweep = res["scarcity"]
    assert sweep["histories"] == [30, 90]
    assert set(sweep["methods"]) == {"multitask", "single", "seasonal_naive"}
    for by_days in sweep["methods"].values():
        assert set(by_days) == {"30", "90"} and len(by_days["30"]["per_origin"]) == 2
    # seasonal naive reads the last week only: the same at every history length
    snaive = sweep["methods"]["seasonal_naive"]
    assert snaive["30"]["mae"] == pytest.approx(snaive["90"]["mae"])
    assert snaive["90"]["mae"] == pytest.approx(res["methods"]["seasonal_naive"]["mae"])
    out = tmp_path / "out"
    assert (out / "scarcity.png").read_bytes()[:4] == b"\x89PNG"
    with (out / "scarcity.csv").open() as f:
        rows = list(csv_module.DictReader(f))
    assert {r["history"] for r in rows} == {"30", "90"}
    assert "against its history length" in (out / "forecast.md").read_text()


def test_intervals_are_calibrated_on_the_validation_origins_before_each_test_origin(tmp_path):
    csv = series_csv(tmp_path / "s.csv")
    text = study_text(
        csv, validation_origins='["2011-03-01", "2011-04-01", "2011-05-01"]', select_last="2"
    )
    res = run_study(tmp_path, text, "forecast.interval=0.5", "forecast.seeds=[0]")
    assert res["interval"] == 0.5
    with (tmp_path / "out" / "forecasts.csv").open() as f:
        table = list(csv_module.DictReader(f))
    # seasonal naive at each test origin: its widths are the conformal rank of its errors at
    # the 2 latest validation origins whose horizon ends before it (04-01 and 05-01 for both)
    values = {r[0]: float(r[4]) for r in csv_module.reader(csv.read_text().splitlines()[1:])}

    def history(origin: str) -> list[float]:  # the 60 days of "short" before the origin
        day = datetime.date.fromisoformat(origin)
        return [values[str(day - datetime.timedelta(days=d))] for d in range(60, 0, -1)]

    calibration, scales = [], []
    for origin in ("2011-04-01", "2011-05-01"):
        day = datetime.date.fromisoformat(origin)
        future = [values[str(day + datetime.timedelta(days=d))] for d in range(28)]
        calibration.append((np.array(future), np.array(history(origin)[-7:] * 4)))
        scales.append(mase_scale(np.array(history(origin)), 7))
    widths = conformal_widths(calibration, 0.5, block=7, scales=scales)
    for method in ("multitask", "single", "seasonal_naive", "naive"):
        for row in res["methods"][method]["per_origin"]:
            days = [r for r in table if r["method"] == method and r["origin"] == row["origin"]]
            f, lo, hi, y = (
                np.array([float(r[k]) for r in days])
                for k in ("forecast", "lower", "upper", "actual")
            )
            assert np.all(lo <= f) and np.all(f <= hi)
            assert row["coverage"] == pytest.approx(np.mean((lo <= y) & (y <= hi)))
            assert row["width"] == pytest.approx(np.mean(hi - lo))
            if method == "seasonal_naive":
                scale = mase_scale(np.array(history(row["origin"])), 7)
                assert hi == pytest.approx(f + widths * scale)
                assert lo == pytest.approx(np.maximum(f - widths * scale, 0.0))
        assert 0.0 <= res["methods"][method]["coverage"] <= 1.0
    assert "50% prediction intervals" in (tmp_path / "out" / "forecast.md").read_text()


def test_intervals_are_not_scaled_where_a_validation_origins_history_has_no_mase_scale(tmp_path):
    """The target was flat until mid-May (a new series' zeros, a sensor stuck): the validation
    origins' histories have no MASE scale (every seasonal difference 0), so the errors there
    calibrate the widths in the data's units, added to the forecast as they are, not a
    ValueError of scales that are not positive."""
    csv = series_csv(tmp_path / "s.csv")
    lines = csv.read_text().splitlines()
    flat = [lines[0]]
    for line in lines[1:]:
        *rest, short = line.split(",")
        flat.append(",".join([*rest, "50.00" if rest[0] < "2011-05-15" else short]))
    csv.write_text("\n".join(flat) + "\n")
    text = study_text(csv, validation_origins='["2011-04-01", "2011-05-01"]', select_last="2")
    overrides = ['forecast.origins=["2011-06-01"]', 'forecast.methods=["seasonal_naive"]']
    res = run_study(tmp_path, text, *overrides, "forecast.interval=0.5", "forecast.seeds=[0]")
    values = {r[0]: float(r[4]) for r in csv_module.reader(flat[1:])}

    def days(origin: str, offsets: range) -> np.ndarray:
        day = datetime.date.fromisoformat(origin)
        return np.array([values[str(day + datetime.timedelta(days=d))] for d in offsets])

    calibration = [
        (days(o, range(28)), np.tile(days(o, range(-7, 0)), 4))
        for o in ("2011-04-01", "2011-05-01")
    ]
    widths = conformal_widths(calibration, 0.5, block=7)
    assert widths.max() > 0  # the flat days ended inside 05-01's horizon
    with (tmp_path / "out" / "forecasts.csv").open() as f:
        table = [r for r in csv_module.DictReader(f) if r["method"] == "seasonal_naive"]
    f, lo, hi = (np.array([float(r[k]) for r in table]) for k in ("forecast", "lower", "upper"))
    assert f == pytest.approx(np.tile(days("2011-06-01", range(-7, 0)), 4))
    assert hi == pytest.approx(f + widths)
    assert lo == pytest.approx(np.maximum(f - widths, 0.0))
    assert res["methods"]["seasonal_naive"]["per_origin"][0]["width"] == pytest.approx(
        np.mean(hi - lo)
    )


def cli_error(tmp_path, capsys, text: str, *overrides: str) -> str:
    (tmp_path / "f.toml").write_text(text)
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "f.toml"), *overrides, "--out", str(out), "--quiet"]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtlshare: error:"), lines
    assert not out.exists()  # checked before --out is made
    return lines[0]


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        (["data.context=90"], "data.context: 90 days is longer than the 60 days of history"),
        (["data.horizon=0"], "data.horizon: must be >= 1 day, got 0"),
        (["data.dev_days=0"], "data.dev_days: must be >= 1 day, got 0"),
        # 21 = context + dev_days: no training window; it named the CSV file, not the key
        (["data.history={short=21}"], "data.history: 'short' keeps 21 days, which must hold"),
        (
            ['forecast.origins=["2011-06-31"]'],
            "forecast.origins: '2011-06-31' is not a date like 2012-10-01",
        ),
        (
            ['forecast.validation_origins=["soon"]', "forecast.interval=0.8"],
            "forecast.validation_origins: 'soon' is not a date like 2012-10-01",
        ),
        (['data.exogenous=["temp"]'], "covariate 'temp' has no value for 2011-06-10, in the"),
        (
            ['forecast.candidates=[{"data.origin" = "2011-01-01"}]'],
            "'data.origin' would change what is forecast",
        ),
        (
            ['forecast.candidates=[{name = "a"}, {name = "b"}]'],
            'needs forecast.validation_origins (or forecast.select = "dev"',
        ),
        (['forecast.candidates=[{"trunk.hidden" = [0]}]'], "trunk.hidden"),
        (["forecast.interval=1.0"], "forecast.interval: a level in [0, 1)"),
        (["forecast.select=test"], "forecast.select: 'test' is not one of origins, dev"),
        (["forecast.mean_seasons=0"], "forecast.mean_seasons: must be >= 1, got 0"),
        (["forecast.season=-7"], "forecast.season: must be >= 1, got -7"),
        (['forecast.target=""'], "forecast.target: name the series to forecast"),
        (
            ["forecast.target=tall"],
            "forecast.target: 'tall' is not a series of the data; series are ['long', 'short']",
        ),
        (["forecast.origins=[]"], "forecast.origins: give one or more forecast origins"),
        (
            ['forecast.methods=["multitask", "naive", "multitask"]'],
            "forecast.methods: ['multitask', 'naive', 'multitask'] must list distinct methods "
            "from ('multitask', 'single', 'prophet', 'seasonal_naive', 'naive', 'autoets', "
            "'autoarima', 'seasonal_mean')",
        ),
        (
            ['forecast.scarcity_methods=["naive", "oracle"]'],
            "forecast.scarcity_methods: ['naive', 'oracle'] must list distinct methods from (",
        ),
        (["forecast.scarcity_methods=[]"], "forecast.scarcity_methods: [] must list distinct"),
        (["forecast.seeds=[]"], "forecast.seeds: give one or more distinct seeds, got []"),
        (["forecast.seeds=[1, 1]"], "forecast.seeds: give one or more distinct seeds, got [1, 1]"),
        (["forecast.select_last=-1"], "forecast.select_last: must be >= 0, got -1"),
        (["forecast.histories=[30, 0]"], "forecast.histories: days must be >= 1, got [30, 0]"),
        (
            ['forecast.origins=["2011-06-01", "2011-07-01", "2011-06-01"]'],
            "forecast.origins: ['2011-06-01', '2011-07-01', '2011-06-01'] lists an origin twice",
        ),
        (
            ['forecast.validation_origins=["2011-05-01", "2011-05-01"]'],
            "forecast.validation_origins: ['2011-05-01', '2011-05-01'] lists an origin twice",
        ),
        (
            # 2011-05-20's 28-day horizon ends on 2011-06-16: none is eligible for 2011-06-01
            ['forecast.validation_origins=["2011-05-20"]'],
            "forecast.origins: 2011-06-01 has no validation origin whose 28-day horizon ends "
            "before it; add an earlier forecast.validation_origins entry (where the data start "
            "too late for one, choose a later test origin)",
        ),
        (['forecast.candidates=[{name = ""}]'], "forecast.candidates[0].name: a non-empty string"),
        (["forecast.candidates=[{name = 3}]"], "forecast.candidates[0].name: a non-empty string"),
        (
            ['forecast.candidates=[{name = "a"}, {name = "a"}]', "forecast.select=dev"],
            "forecast.candidates: names must differ, got ['a', 'a']",
        ),
        (
            # an unnamed candidate is c<its position>: the second here is c2 as well
            ['forecast.candidates=[{name = "c2"}, {}]', "forecast.select=dev"],
            "forecast.candidates: names must differ, got ['c2', 'c2']",
        ),
        (['data.series=["short"]'], "'multitask' shares between series, but the data has one"),
        (
            ["mechanism=hierarchical", "hierarchical.depths={nope=1}"],
            "hierarchical.depths: unknown task(s) ['nope']",
        ),  # the mechanism's settings too: the study wrote config.toml before this one
        (["mechanism=ple", "ple.levels=9"], "ple.levels: 9 levels need at least 9 trunk layers"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, overrides, expected):
    # day 522 (2011-06-10) is missing from the file: inside the first origin's horizon
    csv = series_csv(tmp_path / "s.csv", drop=522)
    assert expected in cli_error(tmp_path, capsys, study_text(csv), *overrides)


def test_an_origin_listed_twice_names_the_line_or_the_override_that_lists_it(tmp_path, capsys):
    """Both lists' duplicates were one message naming neither key, so the error named the
    config file alone, even for the override that listed the origin twice."""
    text = study_text(series_csv(tmp_path / "s.csv")).replace(
        'origins = ["2011-06-01", "2011-07-01"]', 'origins = ["2011-06-01", "2011-06-01"]'
    )
    line = text.splitlines().index('origins = ["2011-06-01", "2011-06-01"]') + 1
    assert cli_error(tmp_path, capsys, text) == (
        f"mtlshare: error: {tmp_path / 'f.toml'}:{line}: forecast.origins: "
        "['2011-06-01', '2011-06-01'] lists an origin twice"
    )
    item = 'forecast.validation_origins=["2011-04-01", "2011-04-01"]'
    assert cli_error(tmp_path, capsys, study_text(tmp_path / "s.csv"), item) == (
        f"mtlshare: error: override {item!r} (on {tmp_path / 'f.toml'}): "
        "forecast.validation_origins: ['2011-04-01', '2011-04-01'] lists an origin twice"
    )


@pytest.mark.parametrize("key", ["origins", "validation_origins"])
def test_one_day_written_two_ways_is_an_origin_listed_twice(key):
    """``2011-06-01`` and ``20110601`` are one day (``date.fromisoformat`` reads both): the
    days are compared, not their text, so that no day is forecast twice."""
    days = ["2011-06-01", "20110601"]
    fc = ForecastConfig(target="s", **{"origins": ["2011-08-01"], key: days})
    with pytest.raises(ConfigError) as e:
        fc.validate()
    assert str(e.value) == f"forecast.{key}: {days} lists an origin twice"


def test_a_name_no_candidate_has_overrides_nothing():
    fc = ForecastConfig(target="s", origins=["2012-01-01"], candidates=[{"name": "a", "seed": 1}])
    assert fc.overrides("a") == {"seed": 1}
    assert fc.overrides("b") == {}
    assert ForecastConfig().overrides("c1") == {}


TWO = '[{name = "plain"}, {name = "decayed", "train.weight_decay" = 0.1}]'


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.horizon=0", "data.horizon: must be >= 1 day"),
        ("data.context=90", "data.context: 90 days is longer"),
        ("data.context=0", "data.context: must be >= 1 day"),
        ("data.profile_weeks=3", "data.profile_weeks: 3 weeks do not fit"),
        ("data.layout=tall", "data.layout: 'tall' is not one of"),
        ("data.head=crf", "data.head: 'crf' is not one of"),
        ("data.head=affine", "an affine head reads one input per output"),  # the model's
    ],
)
def test_an_error_of_the_config_itself_names_no_candidate(tmp_path, capsys, override, named):
    """The config's own [data] and model are checked first: these were reported as
    "forecast.candidates 'plain': ..." though 'plain' overrides nothing."""
    text = study_text(series_csv(tmp_path / "s.csv"), candidates=TWO, select='"dev"')
    err = cli_error(tmp_path, capsys, text, override)
    assert named in err and "forecast.candidates" not in err, err


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("data.horizon=0", "data.horizon: must be >= 1 day"),
        ("data.head=affine", "an affine head reads one input per output"),  # the model's
    ],
)
def test_an_error_of_the_config_itself_is_not_blamed_on_a_first_candidate_that_changes_some(
    tmp_path, capsys, override, named
):
    """With the candidate that overrides something first, the config's own error is still its
    own: the config is checked before any candidate, its model too."""
    first_changes = '[{name = "decayed", "train.weight_decay" = 0.1}, {name = "plain"}]'
    text = study_text(series_csv(tmp_path / "s.csv"), candidates=first_changes, select='"dev"')
    err = cli_error(tmp_path, capsys, text, override)
    assert named in err and "forecast.candidates" not in err, err


@pytest.mark.parametrize(
    ("candidate", "expected"),
    [
        ('"data.context" = 90', "forecast.candidates[1] ('wide'): data.context: 90 days"),
        ('"data.head" = "affine"', "forecast.candidates[1] ('wide'): task 'long': an affine"),
        ('"train.lr" = "fast"', "forecast.candidates[1] ('wide'): train.lr: "),  # not a config
        # a key no config can have: named as the candidate's, not as an override
        ('"train..epochs" = 3', "forecast.candidates[1] ('wide'): train..epochs: empty part"),
    ],
)
def test_an_error_a_candidate_causes_names_it_and_its_line(tmp_path, capsys, candidate, expected):
    """The candidate at fault is named, and the line it is on where the list spans lines (it
    named the file alone); given by an override, the override is named."""
    candidates = f'[\n  {{name = "plain"}},\n  {{name = "wide", {candidate}}},\n]'
    text = study_text(series_csv(tmp_path / "s.csv"), candidates=candidates, select='"dev"')
    line = text.splitlines().index(f'  {{name = "wide", {candidate}}},') + 1
    assert cli_error(tmp_path, capsys, text).startswith(
        f"mtlshare: error: {tmp_path / 'f.toml'}:{line}: {expected}"
    )
    item = f"forecast.candidates=[{{name = 'wide', {candidate}}}, {{name = 'plain'}}]"
    assert cli_error(tmp_path, capsys, text, item).startswith(
        f"mtlshare: error: override {item!r} (on {tmp_path / 'f.toml'}): "
        + expected.replace("[1]", "[0]")
    )


def test_an_error_a_sole_candidate_causes_names_it_not_the_config_s_own_line(tmp_path, capsys):
    """One candidate listed, with an override: its error named the line of the config's own
    ``data.context = 14`` (the value it did not use), not the candidate that set 90."""
    candidates = '[\n  {name = "wide", "data.context" = 90},\n]'
    text = study_text(series_csv(tmp_path / "s.csv"), candidates=candidates, select='"dev"')
    line = text.splitlines().index('  {name = "wide", "data.context" = 90},') + 1
    assert cli_error(tmp_path, capsys, text).startswith(
        f"mtlshare: error: {tmp_path / 'f.toml'}:{line}: forecast.candidates[0] ('wide'): "
        "data.context: 90 days"
    )


def test_worker_processes_give_the_forecasts_of_one_process(tmp_path):
    """Validation, test origins and the scarcity sweep trained in two workers (forecast.jobs)
    forecast exactly what one process does at one torch thread."""
    csv = series_csv(tmp_path / "s.csv")
    text = study_text(
        csv,
        validation_origins='["2011-04-01", "2011-05-01"]',
        candidates='[{name = "short", "train.epochs" = 1}, {name = "long"}]',
        histories="[30, 60]",  # 60: the study's own history, whose trainings are reused
        scarcity_methods='["multitask", "single", "seasonal_naive"]',
    )
    out = {}
    for jobs in (1, 2):
        (tmp_path / str(jobs)).mkdir()
        res = run_study(tmp_path / str(jobs), text, f"forecast.jobs={jobs}")
        out[jobs] = (tmp_path / str(jobs) / "out" / "forecasts.csv").read_text()
        assert res["selection"]["validation_mae"]
        assert {"multitask", "single"} <= set(res["scarcity"]["methods"])
        # 2 candidates x 2 methods x 2 validation origins (1 seed), then 2 methods x 2 seeds x
        # 2 test origins twice (the test and the 30-day sweep): all in the workers with 2 jobs;
        # the 60-day sweep is the test again
        where = {"in_workers": 24, "here": 0} if jobs > 1 else {"in_workers": 0, "here": 24}
        # the intervals' calibration reuses the validation trainings of the chosen candidates
        chosen = res["selection"]["chosen"]
        calibrated = {(m, c[m], v) for c in chosen.values() for m in c for v in ("04", "05")}
        assert res["trainings"] == {"jobs": jobs, **where, "reused": 8 + len(calibrated)}
        for method in ("multitask", "single"):
            swept = res["scarcity"]["methods"][method]["60"]["mae"]
            assert swept == res["methods"][method]["mae"]
    assert out[1] == out[2]
    assert (tmp_path / "2" / "out" / "scarcity.csv").read_text() == (
        tmp_path / "1" / "out" / "scarcity.csv"
    ).read_text()


def test_a_study_into_the_folder_of_a_finished_one_is_refused_and_leaves_it_as_it_was(tmp_path):
    text = study_text(series_csv(tmp_path / "s.csv"))
    plain = ['forecast.methods=["seasonal_naive"]', "forecast.interval=0"]
    run_study(tmp_path, text, *plain)
    out = tmp_path / "out"
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    # not "or pass --resume", which the study refuses
    message = rf"^{re.escape(str(out))}: holds an earlier run; choose another --out$"
    with pytest.raises(MtlshareError, match=message):
        run_study(tmp_path, text, *plain, 'forecast.methods=["naive"]')
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_jobs_below_zero_is_a_config_error():
    with pytest.raises(ConfigError, match=r"forecast\.jobs"):
        ForecastConfig(target="s", origins=["2012-01-01"], jobs=-1).validate()


@pytest.mark.parametrize(
    ("drop", "overrides", "expected"),
    [
        # day 552 (2011-07-10) is missing: inside the second test origin's horizon only
        (
            552,
            ['data.exogenous=["temp"]'],
            "test origin 2011-07-01: ",
        ),
        # the second test origin's horizon runs past the file's last day (2011-08-26)
        (-1, ['forecast.origins=["2011-06-01", "2011-08-20"]'], "runs past the last day"),
        # day 537 (2011-06-25) is missing: AutoETS has 5 days without a gap before 2011-07-01
        (
            537,
            ['forecast.methods=["multitask", "autoets"]'],
            "autoets: 'short' has 5 observed days after its last missing one",
        ),
        # a validation origin with no training days before it
        (
            -1,
            [
                'forecast.validation_origins=["2010-01-10", "2011-04-01"]',
                'forecast.candidates=[{name = "a"}, {name = "b", "train.lr" = 0.01}]',
            ],
            "validation origin 2010-01-10 (forecast.validation_origins): ",
        ),
    ],
)
def test_a_problem_at_a_later_origin_is_found_before_out_is_made(
    tmp_path, capsys, drop, overrides, expected
):
    """Not only the first test origin: every origin the study reads is checked before --out
    is made, so the study does not train for the origins before it, then stop and leave a
    half-written --out (config.toml and plots) behind."""
    csv = series_csv(tmp_path / "s.csv", drop=drop)
    assert expected in cli_error(tmp_path, capsys, study_text(csv), *overrides)


def test_a_study_run_again_after_an_interrupt_leaves_only_its_own_files(
    tmp_path, capsys, monkeypatch
):
    """A study keeps no checkpoint: Ctrl-C says it cannot resume, --resume is refused, and the
    study run again in the same folder removes the interrupted one's plots."""
    import mtlshare.app.forecast as study

    csv = series_csv(tmp_path / "s.csv")
    (tmp_path / "f.toml").write_text(study_text(csv))
    out = tmp_path / "out"
    base = [
        "run",
        str(tmp_path / "f.toml"),
        "forecast.methods=['seasonal_naive']",
        "forecast.interval=0",
        "--quiet",
    ]

    def interrupted(self):  # Ctrl-C once the study has drawn a plot
        (out / "forecast_2011-01-01.png").write_bytes(b"an earlier study's plot")
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(study.Study, "select", interrupted)
        assert main([*base, "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mtlshare: interrupted; this command cannot resume: run it again"]
    assert main([*base, "--out", str(out), "--resume"]) == 2
    assert "run it again without --resume" in capsys.readouterr().err
    assert main([*base, "--out", str(out)]) == 0
    assert not (out / "forecast_2011-01-01.png").exists()
    assert (out / "forecast_2011-06-01.png").is_file()


def test_a_study_interrupted_while_it_starts_says_so_in_one_line(tmp_path, capsys, monkeypatch):
    """Ctrl-C before the study has its worker pool (nothing of it to close): the interrupt's
    line, not a traceback of closing what is not there; the folder is released."""
    import mtlshare.app.forecast as study

    csv = series_csv(tmp_path / "s.csv")
    (tmp_path / "f.toml").write_text(study_text(csv))
    out = tmp_path / "out"
    argv = ["run", str(tmp_path / "f.toml"), "forecast.methods=['seasonal_naive']", "--quiet"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patch:
        patch.setattr(study, "Trainings", interrupted)
        assert main([*argv, "forecast.interval=0", "--out", str(out)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mtlshare: interrupted; this command cannot resume: run it again"]
    assert main([*argv, "forecast.interval=0", "--out", str(out)]) == 0


def test_a_study_without_validation_origins_says_it_has_no_intervals(tmp_path, capsys):
    csv = series_csv(tmp_path / "s.csv")
    (tmp_path / "f.toml").write_text(study_text(csv))
    argv = ["run", str(tmp_path / "f.toml"), "forecast.methods=['seasonal_naive']", "--quiet"]
    assert main([*argv, "--out", str(tmp_path / "out")]) == 0
    err = capsys.readouterr().err
    assert "warning: no prediction intervals: forecast.interval = 0.8" in err
    assert main([*argv, "forecast.interval=0", "--out", str(tmp_path / "none")]) == 0
    assert "prediction intervals" not in capsys.readouterr().err  # none asked for, none said


# Found missing by a mutation review, and the study's figures: a smaller study, two statistical
# methods, one validation origin for the intervals.
EDGE = [
    'forecast.origins=["2011-06-01"]',
    'forecast.validation_origins=["2011-05-01"]',
    "forecast.interval=0.5",
    'forecast.methods=["seasonal_naive", "autoets"]',
    "forecast.seeds=[0]",
    "trunk.hidden=[8]",
    "train.epochs=1",
]


def test_a_gap_autoets_cannot_fit_at_a_calibration_origin_is_found_before_out(tmp_path, capsys):
    """The intervals are calibrated on the methods' forecasts at the validation origins: a gap
    leaving AutoETS fewer than two seasons there (5 days after 2011-04-25, before 2011-05-01)
    is one line before --out is made, though the test origin's history has enough."""
    csv = series_csv(tmp_path / "s.csv", drop=(datetime.date(2011, 4, 25) - START).days)
    (tmp_path / "f.toml").write_text(study_text(csv))
    out = tmp_path / "out"
    assert main(["run", str(tmp_path / "f.toml"), "--out", str(out), "--quiet", *EDGE]) == 2
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


def test_each_target_line_of_forecast_md_gives_its_paired_difference_low_to_high():
    """A target's line in ``forecast.md``: the mean MAEs (or the wins over single-series
    training), then the paired difference over the origins, signed, and its bootstrap interval
    from low to high at its level; the origins with the lower MAE are counted beside a
    baseline's mean MAE, not beside the wins over single, which are that count already. Under
    five origins the interval is left out and the line says why."""
    from mtlshare.app.forecast_report import forecast_markdown

    def method(*maes: float) -> dict:
        scores = {"mae": sum(maes) / len(maes), "rmse": 0.0, "smape": 0.0, "mase": 0.0}
        return {**scores, "per_origin": [{"mae": m} for m in maes]}

    def paired(difference: float, lower_at: int, low: float, high: float, level: float) -> dict:
        return dict(difference=difference, lower_at=lower_at, of=5, low=low, high=high, level=level)

    results = {
        "origins": [f"2011-{m:02d}-01" for m in range(6, 11)],
        "methods": {
            "multitask": method(10.0, 10.0, 10.0, 10.0, 10.0),
            "seasonal_naive": method(12.5, 12.5, 12.5, 12.5, 12.5),
        },
        "skipped": {},
        "targets": {
            "multitask_vs_seasonal_naive": {
                "multitask_mae": 10.0,
                "other_mae": 12.5,
                "met": True,
                "paired": paired(-2.5, 2, -4.3, 0.5, 0.95),
            },
            "multitask_beats_single": {
                "origins": 1,
                "of": 5,
                "met": False,
                "paired": paired(1.5, 1, 0.5, 3.0, 0.9),
            },
        },
    }
    lines = [ln for ln in forecast_markdown(results).splitlines() if ln.startswith("- ")]
    assert lines == [
        "- multitask mean MAE 10.0 vs seasonal_naive 12.5: met (lower at 2 of 5 origins; MAE "
        "difference -2.5, 95% bootstrap interval over the origins -4.3 to +0.5)",
        "- multitask beats single at 1 of 5 origins: missed (MAE difference +1.5, 90% "
        "bootstrap interval over the origins +0.5 to +3.0)",
    ]
    # four origins or fewer: a resampled mean takes a handful of values, so no interval
    for fact in results["targets"].values():
        fact["paired"]["of"] = 4
    fact["of"] = 4
    lines = [ln for ln in forecast_markdown(results).splitlines() if ln.startswith("- ")]
    assert lines[0].endswith(
        "(lower at 2 of 4 origins; MAE difference -2.5, 4 origins are too few for a bootstrap "
        "interval)"
    )
    assert lines[1] == (
        "- multitask beats single at 1 of 4 origins: missed (MAE difference +1.5, 4 origins "
        "are too few for a bootstrap interval)"
    )


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
    csv = series_csv(tmp_path / "s.csv")
    (tmp_path / "f.toml").write_text(study_text(csv))
    out = tmp_path / "out"
    config = str(tmp_path / "f.toml")
    sweep = "forecast.histories=[30]"
    assert main(["run", config, "--out", str(out), "--quiet", *EDGE, sweep]) == 0
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
    csv = series_csv(tmp_path / "s.csv")
    (tmp_path / "f.toml").write_text(study_text(csv))
    config = str(tmp_path / "f.toml")
    neural = ['forecast.methods=["multitask", "seasonal_naive"]', "forecast.seeds=[2]"]
    assert main(["run", config, "--out", str(tmp_path / "a"), "--quiet", *EDGE, *neural]) == 0
    assert main(["run", config, "--out", str(tmp_path / "b"), "--quiet", *EDGE]) == 0
    networks, baselines = seen[0], seen[1]
    assert networks["seed"] == 2 and baselines["seed"] is None  # seasonal naive, AutoETS: none
    assert networks["target"] == "short" and networks["interval"] == 0.5


def test_a_forecast_plot_draws_the_networks_first_seed_as_its_title_says(tmp_path, monkeypatch):
    """Seeds 2 and 3: the plotted network forecast is seed 2's, the one the title names (as
    ``forecasts.csv`` has it), not the last seed's."""
    import mtlshare.app.forecast as forecast_module

    seen: list[tuple] = []
    monkeypatch.setattr(forecast_module, "plot_forecast", lambda *a, **kw: seen.append((a, kw)))
    csv = series_csv(tmp_path / "s.csv")
    (tmp_path / "f.toml").write_text(study_text(csv))
    out = tmp_path / "a"
    neural = ['forecast.methods=["multitask", "seasonal_naive"]', "forecast.seeds=[2, 3]"]
    assert (
        main(["run", str(tmp_path / "f.toml"), "--out", str(out), "--quiet", *EDGE, *neural]) == 0
    )
    ((args, kwargs),) = seen
    assert kwargs["seed"] == 2
    with (out / "forecasts.csv").open(newline="") as f:
        rows = [r for r in csv_module.DictReader(f) if r["method"] == "multitask"]
    by_seed = {s: [float(r["forecast"]) for r in rows if r["seed"] == s] for s in ("2", "3")}
    assert by_seed["2"] != by_seed["3"]
    assert list(args[5]["multitask"]) == by_seed["2"]
