"""The forecasting experiment: shared seasonality helps a series with 90 days of history,
masking is exact, three or more series work, Prophet is optional, the real recipe runs."""

from __future__ import annotations

import csv as csv_module
import datetime
import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from mtlshare.app.build import build_problem
from mtlshare.app.experiments import runner
from mtlshare.config import load_config

ROOT = Path(__file__).resolve().parents[2]
BIKE = ROOT.parent / "shared" / "data" / "bike_sharing" / "day.csv"
START = datetime.date(2010, 1, 1)


def generated_csv(path: Path, n_series: int = 2, days: int = 730, seed: int = 0) -> Path:
    """Long-form daily series sharing one yearly seasonality (and a weekly pattern each)."""
    rng = np.random.default_rng(seed)
    rows = ["date,series,value"]
    for s in range(n_series):
        amp = 1.0 + 0.5 * s
        dow = rng.normal(0, 0.3, 7)
        level = 5.0 + s
        for t in range(days):
            day = START + datetime.timedelta(days=t)
            season = math.sin(2 * math.pi * (day.timetuple().tm_yday - 80) / 365.25)
            v = math.exp(level + amp * season + dow[day.weekday()] + rng.normal(0, 0.1))
            rows.append(f"{day.isoformat()},s{s},{v:.3f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def config_text(
    csv: Path,
    series: list[str],
    target: str,
    origins: list[str],
    methods: list[str],
    epochs: int = 120,
) -> str:
    names = ", ".join(f'"{s}"' for s in series)
    return f"""
experiment = "forecast"
mechanism = "hard"
seed = 0
[data]
source = "daily_csv"
path = "{csv}"
layout = "long"
series = [{names}]
fourier_terms = 2
origin = "{origins[0]}"
horizon = 90
dev_days = 14
history = {{ {target} = 90 }}
[trunk]
kind = "mlp"
hidden = [32, 4]
passthrough = 7
[train]
epochs = {epochs}
batch_size = 64
lr = 0.003
patience = 0
select_on = "{target}"
[forecast]
target = "{target}"
origins = [{", ".join(f'"{o}"' for o in origins)}]
methods = [{", ".join(f'"{m}"' for m in methods)}]
"""


def run_study(tmp_path: Path, text: str, *overrides: str) -> dict:
    cfg_path = tmp_path / "forecast.toml"
    cfg_path.write_text(text)
    cfg = load_config(cfg_path, list(overrides))
    return runner("forecast")(cfg, tmp_path / "out", progress=False)


def seasonal_study(tmp_path: Path, epochs: int) -> dict:
    csv = generated_csv(tmp_path / "series.csv")
    text = config_text(
        csv,
        ["s0", "s1"],
        "s1",
        ["2011-05-01", "2011-08-01"],
        ["multitask", "single", "seasonal_naive"],
        epochs=epochs,
    )
    return run_study(tmp_path, text)


@pytest.mark.slow  # 2.5 minutes; the outputs are checked by the test below in seconds
def test_shared_seasonality_beats_the_scarce_series_alone(tmp_path):
    res = seasonal_study(tmp_path, epochs=300)
    mt, single = res["methods"]["multitask"]["mae"], res["methods"]["single"]["mae"]
    # measured 0.62-0.73 over data seeds 1-3; a single-task model cannot see the season
    assert mt < 0.8 * single, (mt, single)


def test_study_writes_plots_and_forecasts_each_mae_recomputes_from(tmp_path):
    res = seasonal_study(tmp_path, epochs=5)
    assert len(res["methods"]["multitask"]["per_origin"]) == 2
    assert (tmp_path / "out" / "forecast_2011-05-01.png").read_bytes()[:4] == b"\x89PNG"
    saved = json.loads((tmp_path / "out" / "results.json").read_text())
    assert set(saved["methods"]["seasonal_naive"]) >= {"mae", "rmse", "smape", "per_origin"}
    # forecasts.csv: every forecast day, from which each method's MAE can be recomputed
    with (tmp_path / "out" / "forecasts.csv").open() as f:
        table = list(csv_module.DictReader(f))
    head = ["date", "series", "method", "seed", "origin", "forecast", "actual", "lower", "upper"]
    assert list(table[0]) == head
    for method in ("multitask", "seasonal_naive"):
        for row in saved["methods"][method]["per_origin"]:
            days = [r for r in table if r["method"] == method and r["origin"] == row["origin"]]
            errors = [abs(float(r["forecast"]) - float(r["actual"])) for r in days if r["actual"]]
            assert sum(errors) / len(errors) == pytest.approx(row["mae"], rel=1e-9)


def test_seasonal_mean_is_a_baseline_of_the_study_and_one_season_is_seasonal_naive(tmp_path):
    from mtlshare.errors import ConfigError
    from mtlshare.forecasting.baselines import seasonal_mean

    csv = generated_csv(tmp_path / "series.csv")
    origin = "2011-05-01"
    text = config_text(csv, ["s0", "s1"], "s1", [origin], ["seasonal_naive", "seasonal_mean"])
    for name in ("two", "one", "bad"):
        (tmp_path / name).mkdir()
    two = run_study(tmp_path / "two", text)["methods"]
    one = run_study(tmp_path / "one", text, "forecast.mean_seasons=1")["methods"]
    assert one["seasonal_mean"]["mae"] == one["seasonal_naive"]["mae"]
    # recomputed from the file: the mean of the last two weeks of s1, weekday by weekday
    with csv.open() as f:
        rows = [r for r in csv_module.DictReader(f) if r["series"] == "s1"]
    dates = [r["date"] for r in rows]
    values = np.array([float(r["value"]) for r in rows])
    t = dates.index(origin)
    expected = seasonal_mean(values[t - 90 : t], 90, 7, seasons=2)
    mae = float(np.mean(np.abs(expected - values[t : t + 90])))
    assert two["seasonal_mean"]["mae"] == pytest.approx(mae, rel=1e-12)
    assert two["seasonal_mean"]["mae"] != two["seasonal_naive"]["mae"]
    with pytest.raises(ConfigError, match="mean_seasons"):
        run_study(tmp_path / "bad", text, "forecast.mean_seasons=0")


def test_masked_values_never_reach_the_loss_or_the_gradients(tmp_path):
    """Values outside s1's 90-day history (or missing days) can be anything, NaN included."""
    base = generated_csv(tmp_path / "a.csv")
    lines = base.read_text().splitlines()
    # change s1's values long before the origin: to a huge number in one file, to empty in another
    early = [i for i, line in enumerate(lines) if line.startswith("2010-03") and ",s1," in line]
    big, empty = list(lines), list(lines)
    for i in early:
        d, s, _ = lines[i].split(",")
        big[i], empty[i] = f"{d},{s},123456789", f"{d},{s},"
    paths = []
    for name, content in (("big.csv", big), ("empty.csv", empty)):
        (tmp_path / name).write_text("\n".join(content) + "\n")
        paths.append(tmp_path / name)
    grads = []
    for path in [base, *paths]:
        text = config_text(path, ["s0", "s1"], "s1", ["2011-05-01"], ["multitask"])
        (tmp_path / "c.toml").write_text(text)
        cfg = load_config(tmp_path / "c.toml")
        problem = build_problem(cfg)
        td = problem.tasks[1]
        assert torch.isnan(td.train.y[:100]).all()  # outside the history: masked
        torch.manual_seed(0)
        head = torch.nn.Linear(problem.input_dim, 1)
        loss = td.task.loss(head(td.train.x), td.train.y)
        loss.backward()
        grads.append((float(loss.detach()), head.weight.grad.clone()))
    assert grads[0][0] == grads[1][0] == grads[2][0]
    assert torch.equal(grads[0][1], grads[1][1]) and torch.equal(grads[0][1], grads[2][1])


def test_missing_days_are_masked_not_filled(tmp_path):
    csv = generated_csv(tmp_path / "series.csv")
    lines = [ln for ln in csv.read_text().splitlines() if not ln.startswith("2011-04-20,s1,")]
    (tmp_path / "gap.csv").write_text("\n".join(lines) + "\n")
    text = config_text(tmp_path / "gap.csv", ["s0", "s1"], "s1", ["2011-05-01"], ["multitask"])
    (tmp_path / "c.toml").write_text(text)
    problem = build_problem(load_config(tmp_path / "c.toml"))
    index = (datetime.date(2011, 4, 20) - START).days
    win = problem.meta["window"]
    dev_y = problem.tasks[1].dev.y
    assert torch.isnan(dev_y[index - win.dev_start])
    assert not torch.isnan(problem.tasks[0].dev.y[index - win.dev_start])


def test_three_series_work(tmp_path):
    csv = generated_csv(tmp_path / "series.csv", n_series=3)
    text = config_text(
        csv, ["s0", "s1", "s2"], "s2", ["2011-06-01"], ["multitask", "single"], epochs=30
    )
    res = run_study(tmp_path, text)
    assert set(res["methods"]) == {"multitask", "single"}
    runs = {m: res["methods"][m]["per_origin"][0]["runs"][0] for m in ("multitask", "single")}
    assert runs["multitask"]["tasks"] == ["s0", "s1", "s2"] and runs["single"]["tasks"] == ["s2"]


def test_without_prophet_the_others_run_and_it_says_so(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "prophet", None)  # import prophet now fails
    csv = generated_csv(tmp_path / "series.csv")
    text = config_text(csv, ["s0", "s1"], "s1", ["2011-06-01"], ["prophet", "seasonal_naive"])
    res = run_study(tmp_path, text)
    assert "prophet" in res["skipped"] and "mtlshare[prophet]" in res["skipped"]["prophet"]
    assert set(res["methods"]) == {"seasonal_naive"}
    assert "Prophet skipped" in capsys.readouterr().err
    assert "prophet skipped" in (tmp_path / "out" / "forecast.md").read_text()


def test_a_method_skipped_at_one_origin_is_not_tried_again_at_the_next(
    tmp_path, monkeypatch, capsys
):
    """Prophet missing is found at the first test origin: the second neither tries it again
    nor says so again, and the other methods are scored at both."""
    monkeypatch.setitem(sys.modules, "prophet", None)
    csv = generated_csv(tmp_path / "series.csv")
    origins = ["2011-06-01", "2011-09-01"]
    text = config_text(csv, ["s0", "s1"], "s1", origins, ["prophet", "seasonal_naive"])
    res = run_study(tmp_path, text, "forecast.interval=0")
    said = [line for line in capsys.readouterr().err.splitlines() if "skipped" in line]
    assert said == [f"mtlshare: Prophet skipped: {res['skipped']['prophet']}"]
    assert set(res["methods"]) == {"seasonal_naive"}
    assert [r["origin"] for r in res["methods"]["seasonal_naive"]["per_origin"]] == origins


def test_the_study_says_what_it_does_on_stderr_leaving_stdout_to_the_caller(
    tmp_path, monkeypatch, capsys
):
    """Its progress lines and a method skipped are said on stderr, as the training loop's
    lines and compare's are: the caller's stdout (the command's output, a script's own) gets
    none of them (they were printed there)."""
    monkeypatch.setitem(sys.modules, "prophet", None)
    csv = generated_csv(tmp_path / "series.csv")
    text = config_text(csv, ["s0", "s1"], "s1", ["2011-06-01"], ["prophet", "seasonal_naive"])
    (tmp_path / "forecast.toml").write_text(text)
    runner("forecast")(load_config(tmp_path / "forecast.toml"), tmp_path / "out", progress=True)
    out, err = capsys.readouterr()
    assert out == ""
    assert "mtlshare: test origin 2011-06-01: 1 methods" in err and "Prophet skipped" in err


@pytest.mark.skipif(not BIKE.is_file(), reason=f"the shared bike data is absent ({BIKE})")
def test_bike_sharing_recipe_runs_on_the_real_data(tmp_path):
    cfg = load_config(
        ROOT / "recipes" / "forecasting" / "bike_sharing.toml",
        [
            'forecast.origins=["2012-07-15"]',
            "forecast.seeds=[0]",
            "forecast.candidates=[]",
            "train.epochs=3",
            'forecast.methods=["multitask","single","seasonal_naive"]',
        ],
    )
    res = runner("forecast")(
        cfg, tmp_path / "out", base_dir=ROOT / "recipes" / "forecasting", progress=False
    )
    assert res["target"] == "casual" and res["history_days"] == 90
    for m in ("multitask", "single", "seasonal_naive"):
        assert res["methods"][m]["mae"] > 0 and res["methods"][m]["mase"] > 0
    problem = build_problem(
        cfg.replace(**{"data.origin": "2012-07-15"}), ROOT / "recipes" / "forecasting"
    )
    dates, seen = problem.meta["forecast"].seen("casual")
    assert len(dates) == 90 and not np.isnan(seen).any()  # exactly the 90 days before the origin
    casual = problem.tasks[0]
    assert len(casual.train) == 90 - 14 - 14  # windows inside them, before the 14 dev days


def test_a_prediction_at_a_masked_day_can_be_anything_even_nan():
    """The loss of a series is over its observed days only: whatever the network outputs on a
    masked day (here NaN) changes neither the loss nor any gradient."""
    from mtlshare.tasks.task import Task

    task = Task("casual", "regression", 1, "mse")
    target = torch.tensor([1.0, float("nan"), 3.0, float("nan")])
    base = torch.tensor([[0.5], [0.0], [2.0], [0.0]])
    results = []
    for masked in (0.0, 1e9, float("nan")):
        out = base.clone()
        out[1, 0] = out[3, 0] = masked
        out.requires_grad_(True)
        loss = task.loss(out, target)
        loss.backward()
        results.append((float(loss.detach()), out.grad.clone()))
    expected = ((0.5 - 1.0) ** 2 + (2.0 - 3.0) ** 2) / 2
    for loss, grad in results:
        assert loss == expected
        assert torch.isfinite(grad).all() and grad[1, 0] == 0 and grad[3, 0] == 0
        assert torch.equal(grad, results[0][1])


def test_the_forecast_experiment_on_a_source_without_a_horizon_is_one_line(tmp_path, capsys):
    """``experiment=forecast`` over the demo's synthetic data: one line naming what it needs,
    exit 2 and no folder (it was an AttributeError traceback reading ``data.horizon``)."""
    from mtlshare.cli import main

    demo = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"
    out = tmp_path / "out"
    assert main(["run", str(demo), "--out", str(out), "experiment=forecast"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "experiment = 'forecast' needs data.source in" in err
    assert "got 'synthetic'" in err and not out.exists()
