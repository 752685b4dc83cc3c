"""A trained ``daily_windows`` run forecasts from a file of recent values (``mtlshare predict``).

The check that matters: the file of the training data cut at the run's origin (the forecast
days keep their holiday flags and covariates, not their values) gives the inputs of the run's
own test window to the bit, and the forecast the run's model makes there, on the series'
scale (up to float32 rounding: the run's window is a batch of one row, the file's of two).
Then the file's layouts, a series with a gap, and bad input.
"""

from __future__ import annotations

import csv
import datetime
import json
import math
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.app.build import build_problem
from mtlshare.app.predict import evaluate, load_run
from mtlshare.app.run import run
from mtlshare.cli import main
from mtlshare.config import from_dict
from mtlshare.errors import DataError
from mtlshare.evaluation.forecast import forecast_metrics, mase_scale
from mtlshare.registry import MECHANISMS

START = datetime.date(2011, 1, 3)
DAYS = 200
ORIGIN = 150
HORIZON = 21


def series_rows(days: int = DAYS) -> list[dict[str, str]]:
    """Two series with a weekly and a yearly pattern, a holiday flag and a temperature."""
    rng = np.random.default_rng(0)
    rows = []
    for t in range(days):
        day = START + datetime.timedelta(days=t)
        season = math.sin(2 * math.pi * t / 365.25)
        holiday = int(t % 37 == 5)
        temp = 10 + 8 * season + rng.normal(0, 1)
        a = math.exp(6 + season + 0.3 * (day.weekday() >= 5) - 0.4 * holiday + rng.normal(0, 0.1))
        b = math.exp(4 + 2 * season + 0.02 * temp + rng.normal(0, 0.1))
        row = {"date": str(day), "a": f"{a:.3f}", "b": f"{b:.3f}"}
        rows.append({**row, "holiday": str(holiday), "temp": f"{temp:.3f}"})
    return rows


def write_wide(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, ["date", "a", "b", "holiday", "temp"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_long(path: Path, rows: list[dict[str, str]]) -> Path:
    with path.open("w", newline="") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["date", "series", "value", "holiday", "temp"])
        for r in rows:
            for name in ("a", "b"):
                writer.writerow([r["date"], name, r[name], r["holiday"], r["temp"]])
    return path


def config(data: Path, **data_changes: object):
    return from_dict(
        {
            "mechanism": "hard",
            "data": {
                "source": "daily_windows",
                "path": str(data),
                "layout": "wide",
                "series": ["a", "b"],
                "holiday_column": "holiday",
                "exogenous": ["temp"],
                "origin": str(START + datetime.timedelta(days=ORIGIN)),
                "horizon": HORIZON,
                "dev_days": 7,
                "context": 14,
                "history": {"b": 40},
                **data_changes,
            },
            "trunk": {"hidden": [8]},
            "train": {"epochs": 3, "batch_size": 16, "lr": 0.01, "threads": 1},
        }
    )


def cut_at_origin(rows: list[dict[str, str]]) -> list[dict[str, str]]:
    """What a user has at the origin: values up to the day before, then rows that give only
    the known covariates of the forecast days."""
    return [r if t < ORIGIN else {**r, "a": "", "b": ""} for t, r in enumerate(rows)][
        : ORIGIN + HORIZON
    ]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("windows")
    data = write_wide(folder / "train.csv", series_rows())
    cfg = config(data)
    run(cfg, folder / "run", progress=False)
    return cfg, folder / "run"


def expected_forecasts(cfg, loaded) -> tuple[dict[str, torch.Tensor], dict[str, np.ndarray]]:
    """The run's test window of each series (built from its training file), and the forecast
    its best model makes there."""
    problem = build_problem(cfg)
    view = problem.meta["forecast"]
    inputs, forecasts = {}, {}
    for td in problem.tasks:
        name = td.task.name
        inputs[name] = td.test.x[0]
        with torch.no_grad():
            out = loaded.predict(name, td.test.x)
        forecasts[name] = view.decoders[name](out.double().numpy())
    return inputs, forecasts


def read_forecast(path: Path) -> dict[str, list[tuple[str, float]]]:
    table: dict[str, list[tuple[str, float]]] = {}
    for row in csv.DictReader(path.open()):
        table.setdefault(row["series"], []).append((row["date"], float(row["forecast"])))
    return table


def test_the_cut_file_gives_the_run_s_test_inputs_and_forecast_to_the_bit(trained, tmp_path):
    cfg, folder = trained
    loaded = load_run(folder)
    inputs, forecasts = expected_forecasts(cfg, loaded)
    recent = write_wide(tmp_path / "recent.csv", cut_at_origin(series_rows()))
    doc = loaded.codec.read(recent, "auto")
    for i, name in enumerate(["a", "b"]):
        assert torch.equal(doc.x[i], inputs[name]), name
    out = tmp_path / "forecast.csv"
    assert main(["predict", str(folder), str(recent), "--out", str(out)]) == 0
    table = read_forecast(out)
    first = START + datetime.timedelta(days=ORIGIN)
    days = [str(first + datetime.timedelta(days=h)) for h in range(HORIZON)]
    for i, name in enumerate(["a", "b"]):
        assert [d for d, _ in table[name]] == days
        got = [v for _, v in table[name]]
        # the run's test window is one row, the file's two: float32 rounding apart
        np.testing.assert_allclose(got, forecasts[name], rtol=1e-6)
        row = loaded.predict(name, doc.x)[i].double().numpy()
        np.testing.assert_array_equal(got, doc.scales[i].decode(row))
    spec = json.loads((folder / "inference.json").read_text())
    assert spec["codec"]["codec"] == "windows" and spec["codec"]["series"] == ["a", "b"]


def test_a_long_file_and_one_series_give_the_same_forecast(trained, tmp_path):
    _, folder = trained
    rows = cut_at_origin(series_rows())
    wide, long = tmp_path / "wide.csv", tmp_path / "long.csv"
    write_wide(wide, rows)
    loaded = load_run(folder)
    loaded.predict_file(wide, tmp_path / "w.csv")
    # the run was trained on a wide file: a long file is another layout, so it is refused
    write_long(long, rows)
    with pytest.raises(DataError, match="no column 'a' in header"):
        loaded.codec.read(long, "auto")
    loaded.predict_file(wide, tmp_path / "b.csv", tasks=["b"])
    assert read_forecast(tmp_path / "b.csv")["b"] == read_forecast(tmp_path / "w.csv")["b"]
    assert list(read_forecast(tmp_path / "b.csv")) == ["b"]


def test_a_file_needs_only_the_series_it_forecasts(trained, tmp_path, capsys):
    """A series' input row holds its own values, the calendar and the covariates, and the
    network maps each row on its own: with --tasks the file needs only those series. A file
    with every series gives the same forecast as before (the same rows); one without the
    others, the same up to float32 rounding (a batch of one row, not two)."""
    _, folder = trained
    rows = cut_at_origin(series_rows())
    full = write_wide(tmp_path / "full.csv", rows)
    only_b = tmp_path / "only_b.csv"
    with only_b.open("w", newline="") as f:
        writer = csv.DictWriter(
            f, ["date", "b", "holiday", "temp"], extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        writer.writerows(rows)
    out = tmp_path / "f.csv"
    assert main(["predict", str(folder), str(full), "--out", str(tmp_path / "full_f.csv")]) == 0
    want = read_forecast(tmp_path / "full_f.csv")["b"]
    assert main(["predict", str(folder), str(only_b), "--out", str(out), "--tasks", "b"]) == 0
    got = read_forecast(out)
    assert list(got) == ["b"] and [d for d, _ in got["b"]] == [d for d, _ in want]
    np.testing.assert_allclose([v for _, v in got["b"]], [v for _, v in want], rtol=1e-6)
    doc = load_run(folder).codec.read(only_b, "auto", ["b"])
    assert doc.series == ["b"] and doc.x.shape[0] == 1
    # without --tasks every series is needed: one line naming the one the file lacks
    out.unlink()
    capsys.readouterr()
    assert main(["predict", str(folder), str(only_b), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no column 'a' in header" in err[0] and not out.exists()
    assert err[0].endswith("(named by a series of the run; predict --tasks leaves it out)")
    # a series not asked for but in the file is read as before; silent in its context, it is
    # left out instead of stopping the forecast of the others
    silent_a = [{**r, "a": ""} if t >= ORIGIN - 20 else r for t, r in enumerate(rows)]
    write_wide(full, silent_a)
    assert main(["predict", str(folder), str(full), "--out", str(out), "--tasks", "b"]) == 0
    np.testing.assert_allclose(
        [v for _, v in read_forecast(out)["b"]], [v for _, v in want], rtol=1e-6
    )
    assert main(["predict", str(folder), str(full), "--out", str(out)]) == 2
    assert "series 'a' has no value in the 14 days before" in capsys.readouterr().err


def test_the_summary_gives_the_forecast_s_first_and_last_days(trained, tmp_path, capsys):
    """The first forecast day is the day after the last value of any series: blank last days
    move it earlier, so the summary says which days were forecast. It counts the days, each
    forecast for every series (two series of 21 days said "42 forecast days"), and the values
    written beside them; ``predict_file`` returns exactly the keys the README lists."""
    _, folder = trained
    rows = cut_at_origin(series_rows())
    recent, out = write_wide(tmp_path / "recent.csv", rows), tmp_path / "f.csv"
    first = START + datetime.timedelta(days=ORIGIN)
    last = first + datetime.timedelta(days=HORIZON - 1)
    capsys.readouterr()
    assert main(["predict", str(folder), str(recent), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    line = f"{HORIZON} days forecast for a, b ({2 * HORIZON} values) from {first} to {last} in "
    assert line in printed and " values/s): " in printed
    done = load_run(folder).predict_file(recent, out)
    assert (done["first_day"], done["last_day"]) == (str(first), str(last))
    assert set(done) == {
        "tasks",
        "unit",
        "values",
        "seconds",
        "values_per_second",
        "out",
        "forecast days",
        "first_day",
        "last_day",
    }
    assert (done["unit"], done["values"], done["forecast days"]) == ("values", 2 * HORIZON, HORIZON)
    # both series blank on their last two days: the forecast starts two days earlier
    write_wide(
        recent, [{**r, "a": "", "b": ""} if t >= ORIGIN - 2 else r for t, r in enumerate(rows)]
    )
    assert main(["predict", str(folder), str(recent), "--out", str(out), "--tasks", "b"]) == 0
    two = datetime.timedelta(days=2)
    line = f"{HORIZON} days forecast for b from {first - two} to {last - two} in "
    assert line in capsys.readouterr().out
    assert read_forecast(out)["b"][0][0] == str(first - two)
    # the values written, of the series asked for: not of every series read from the file
    done = load_run(folder).predict_file(recent, out, ["b"])
    assert (done["values"], done["forecast days"]) == (HORIZON, HORIZON)
    done = load_run(folder).predict_file(recent, out, ["b", "a"])
    assert (done["values"], done["forecast days"]) == (2 * HORIZON, HORIZON)


def test_a_long_layout_run_reads_long_files(tmp_path):
    rows = series_rows()
    data = write_long(tmp_path / "train.csv", rows)
    cfg = config(data, layout="long", series=[])
    run(cfg, tmp_path / "run", progress=False)
    loaded = load_run(tmp_path / "run")
    inputs, forecasts = expected_forecasts(cfg, loaded)
    recent = write_long(tmp_path / "recent.csv", cut_at_origin(rows))
    doc = loaded.codec.read(recent, "auto")
    assert torch.equal(doc.x[0], inputs["a"]) and torch.equal(doc.x[1], inputs["b"])
    loaded.predict_file(recent, tmp_path / "f.csv")
    table = read_forecast(tmp_path / "f.csv")
    np.testing.assert_allclose([v for _, v in table["a"]], forecasts["a"], rtol=1e-6)


def test_the_forecast_starts_after_the_last_value_and_a_gap_stays_masked(trained, tmp_path):
    _, folder = trained
    loaded = load_run(folder)
    rows = series_rows()[:ORIGIN]  # no rows for the forecast days: no holiday then
    rows[-3] = {**rows[-3], "a": ""}  # a missing day in a's context
    rows[-1] = {**rows[-1], "b": ""}  # b's last day missing: the origin is still a's
    recent = write_wide(tmp_path / "recent.csv", rows)
    with pytest.raises(DataError, match="covariate 'temp' has no value for 2011-06-02"):
        loaded.codec.read(recent, "auto")  # temp is read over the horizon too
    future = [{**r, "a": "", "b": ""} for r in series_rows()[ORIGIN : ORIGIN + HORIZON]]
    write_wide(recent, rows + future)
    doc = loaded.codec.read(recent, "auto")
    assert doc.dates[0] == START + datetime.timedelta(days=ORIGIN)
    context = 14
    seen_a = doc.x[0, context : 2 * context]  # the observed-day channel of a's context
    assert seen_a[-3] == 0 and seen_a.sum() == context - 1
    assert doc.x[0, context - 3] == 0  # the missing day is 0, not filled
    seen_b = doc.x[1, context : 2 * context]
    assert seen_b[-1] == 0 and seen_b.sum() == context - 1


def test_a_context_under_half_observed_warns_in_one_line_and_still_forecasts(
    trained, tmp_path, capsys
):
    """A file with a single day of a series forecast its whole horizon without a word, from
    one value (a near-flat forecast). Fewer than half of the context's days observed (here
    under 7 of 14: some weekday of the base's weekly profile has no value) is one warning line
    naming the file, the series and the count, that the missing days are masked; the forecast
    is made all the same. Half or more observed, or a sparse series not forecast, is silent."""
    _, folder = trained
    rows = cut_at_origin(series_rows())
    out = tmp_path / "f.csv"
    first = START + datetime.timedelta(days=ORIGIN)
    # a keeps 6 of its last 14 days (ORIGIN - 14 .. ORIGIN - 1): the first 8 of them blank
    sparse = write_wide(
        tmp_path / "sparse.csv",
        [{**r, "a": ""} if t < ORIGIN - 6 else r for t, r in enumerate(rows)],
    )
    capsys.readouterr()
    assert main(["predict", str(folder), str(sparse), "--out", str(out)]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [
        f"mtlshare: warning: {sparse}: series 'a' has values on 6 of the 14 context days "
        f"before {first}, the first forecast day: the 8 missing days are masked, and a "
        "forecast from under half its context rests on little history"
    ]
    assert read_forecast(out)["a"][0][0] == str(first)  # forecast all the same
    with pytest.warns(UserWarning, match="series 'a' has values on 6 of the 14"):
        load_run(folder).codec.read(sparse, "auto")
    # b alone is asked for: a's sparse context is not forecast, so not warned about
    assert main(["predict", str(folder), str(sparse), "--out", str(out), "--tasks", "b"]) == 0
    assert capsys.readouterr().err == ""
    # 7 of 14: half the context, every weekday seen once: no warning
    half = write_wide(
        tmp_path / "half.csv",
        [{**r, "a": ""} if t < ORIGIN - 7 else r for t, r in enumerate(rows)],
    )
    assert main(["predict", str(folder), str(half), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""


def test_a_forecast_inside_the_run_s_own_period_warns_and_a_run_older_than_the_key_does_not(
    trained, tmp_path, capsys
):
    """A file that ends before the run's origin forecasts days the run was fitted to: one
    warning line naming the file, the first forecast day and the origin; the forecast is made
    all the same. A file cut at the origin is silent. A run whose ``inference.json`` predates
    the codec's ``origin`` key loads, forecasts without the warning, and is still scored by
    ``evaluate`` (the key is about the run, not how it encodes its data)."""
    _, folder = trained
    origin = START + datetime.timedelta(days=ORIGIN)
    rows = series_rows()[: ORIGIN - 30 + HORIZON]
    early = write_wide(
        tmp_path / "early.csv",
        [r if t < ORIGIN - 30 else {**r, "a": "", "b": ""} for t, r in enumerate(rows)],
    )
    first = origin - datetime.timedelta(days=30)
    out = tmp_path / "f.csv"
    capsys.readouterr()
    assert main(["predict", str(folder), str(early), "--out", str(out)]) == 0
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mtlshare: warning: {early}: the forecast starts on {first}, before {origin}, the "
        "run's origin: the run was fitted to the days before its origin, so this forecast is "
        "in sample and its errors say little of how it forecasts unseen days"
    ]
    assert read_forecast(out)["a"][0][0] == str(first)
    cut = write_wide(tmp_path / "cut.csv", cut_at_origin(series_rows()))
    assert main(["predict", str(folder), str(cut), "--out", str(out)]) == 0
    assert capsys.readouterr().err == ""
    spec = json.loads((folder / "inference.json").read_text())
    assert spec["codec"]["origin"] == str(origin)
    old = tmp_path / "old"
    shutil.copytree(folder, old)
    del spec["codec"]["origin"]
    (old / "inference.json").write_text(json.dumps(spec))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_run(old).codec.read(early, "auto")
    assert evaluate(old) == evaluate(folder)
    for damaged in ("2011-13-01", 20110601):
        (old / "inference.json").write_text(
            json.dumps(spec | {"codec": {**spec["codec"], "origin": damaged}})
        )
        with pytest.raises(DataError, match=r"description is damaged .*is not a YYYY-MM-DD day"):
            load_run(old)
    spec["codec"]["exogenous_scales"]["temp"][0] += 1  # a real difference is still one
    (old / "inference.json").write_text(json.dumps(spec))
    with pytest.raises(DataError, match=r"^the data read again is not what the run was trained"):
        evaluate(old)  # (a run of the Python API: no folder to name, the config's own paths)


def test_an_empty_covariate_cell_matters_only_on_a_day_the_forecast_reads(trained, tmp_path):
    """As in training: an empty 'temp' cell long before the context is no error, and gives
    the inputs of the whole file; one inside the context is an error naming its line."""
    _, folder = trained
    loaded = load_run(folder)
    rows = cut_at_origin(series_rows())
    whole = loaded.codec.read(write_wide(tmp_path / "whole.csv", rows), "auto")
    early = [{**r, "temp": ""} if t == 10 else r for t, r in enumerate(rows)]
    doc = loaded.codec.read(write_wide(tmp_path / "early.csv", early), "auto")
    assert torch.equal(doc.x, whole.x)
    late = [{**r, "temp": ""} if t == ORIGIN - 2 else r for t, r in enumerate(rows)]
    with pytest.raises(DataError, match=rf"late.csv:{ORIGIN}: column 'temp' is empty on "):
        loaded.codec.read(write_wide(tmp_path / "late.csv", late), "auto")


def test_bad_files_are_one_line_errors_and_write_nothing(trained, tmp_path, capsys):
    _, folder = trained
    out = tmp_path / "out.csv"
    rows = cut_at_origin(series_rows())
    no_values = [{**r, "a": "", "b": ""} for r in rows]
    cases = {
        "no values": (no_values, "nothing to forecast from"),
        "b silent in its context": (
            [{**r, "b": ""} if t >= ORIGIN - 20 else r for t, r in enumerate(rows)],
            "series 'b' has no value in the 14 days before",
        ),
        "a negative count": (
            [{**r, "a": "-2"} if t == ORIGIN - 2 else r for t, r in enumerate(rows)],
            "'-2' is negative",
        ),
        "temp missing in the horizon": (
            [{**r, "temp": ""} if t == ORIGIN + 3 else r for t, r in enumerate(rows)],
            "temp",
        ),
    }
    for name, (case, message) in cases.items():
        path = write_wide(tmp_path / f"{name}.csv", case)
        assert main(["predict", str(folder), str(path), "--out", str(out)]) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and message in err[0] and str(path) in err[0], (name, err)
        assert not out.exists(), name
    no_column = tmp_path / "nocol.csv"
    no_column.write_text("date,a\n2011-01-03,5\n")
    assert main(["predict", str(folder), str(no_column), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(no_column) in err[0] and not out.exists()


def test_another_format_or_features_of_another_version_are_one_line(trained, tmp_path, capsys):
    import shutil

    _, folder = trained
    out = tmp_path / "out.csv"
    recent = write_wide(tmp_path / "recent.csv", cut_at_origin(series_rows()))
    assert main(["predict", str(folder), str(recent), "--out", str(out), "--format", "conll"]) == 2
    assert capsys.readouterr().err == (
        "mtlshare: error: this run forecasts from a CSV of its series' values, not conll\n"
    )
    copy = tmp_path / "copy"
    shutil.copytree(folder, copy)
    spec = json.loads((copy / "inference.json").read_text())
    width = len(spec["codec"]["features"])
    spec["codec"]["features"] = spec["codec"]["features"][1:]  # one feature fewer
    (copy / "inference.json").write_text(json.dumps(spec))
    assert main(["predict", str(copy), str(recent), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (
        f"mtlshare: error: {recent}: the run's inputs were {width - 1} features, these {width}: "
        "was the run trained with another version of mtlshare?\n"
    )
    assert not out.exists()


def test_a_run_with_a_trend_and_no_holidays_reads_its_test_inputs_from_the_cut_file(tmp_path):
    """The trend feature is read as at the run's test window (0 years at the origin), and from
    another day as the years from the origin; without a holiday column there is no holiday
    covariate."""
    data = write_wide(tmp_path / "train.csv", series_rows())
    cfg = config(data, trend=True, holiday_column="").replace(**{"train.epochs": 1})
    run(cfg, tmp_path / "run", progress=False)
    loaded = load_run(tmp_path / "run")
    inputs, _ = expected_forecasts(cfg, loaded)
    doc = loaded.codec.read(
        write_wide(tmp_path / "recent.csv", cut_at_origin(series_rows())), "auto"
    )
    features = loaded.codec.features
    assert "trend" in features and not any(f.startswith("holiday") for f in features)
    assert torch.equal(doc.x[0], inputs["a"]) and torch.equal(doc.x[1], inputs["b"])
    # from another day: the years from the run's origin, as a training window there reads them
    # (it read 0, the origin's, from any day)
    column = 2 * 14 + features.index("trend")  # after the context's values and seen flags
    problem = build_problem(cfg)
    trained_trend = problem.tasks[0].train.x[:, column]
    for shift in (-40, 10):
        rows = series_rows()[: ORIGIN + shift + HORIZON]
        cut = [r if t < ORIGIN + shift else {**r, "a": "", "b": ""} for t, r in enumerate(rows)]
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)  # (-40 warns: in sample)
            warnings.filterwarnings("ignore", message=".*in sample")
            doc = loaded.codec.read(write_wide(tmp_path / "shifted.csv", cut), "auto")
        assert doc.x[0, column] == torch.tensor(shift / 365.25, dtype=torch.float32)
        assert doc.x[0, column] != 0
    assert torch.tensor(-40 / 365.25, dtype=torch.float32) in trained_trend
    # a run older than the codec's origin key cannot know: 0, with a warning that says so
    spec = json.loads((tmp_path / "run" / "inference.json").read_text())
    del spec["codec"]["origin"]
    (tmp_path / "run" / "inference.json").write_text(json.dumps(spec))
    with pytest.warns(UserWarning, match="does not hold its origin .* trend input is read as"):
        doc = load_run(tmp_path / "run").codec.read(tmp_path / "shifted.csv", "auto")
    assert doc.x[0, column] == 0


def test_a_file_cut_at_any_training_window_s_day_gives_that_window_s_inputs_to_the_bit(tmp_path):
    """Not only at the origin: the file cut at the first day of any training or dev window of
    a series with its whole history (values blanked from that day on, the covariates' rows
    kept) gives that window's inputs to the bit: the calendar, the trend (years from the
    origin), the holiday flags and the standardised covariates over the context and horizon,
    the context's values and their scale. (The trend read 0 from any day but the origin.)"""
    data = write_wide(tmp_path / "train.csv", series_rows())
    cfg = config(data, trend=True).replace(**{"train.epochs": 1})
    run(cfg, tmp_path / "run", progress=False)
    codec = load_run(tmp_path / "run").codec
    problem = build_problem(cfg)
    a = problem.tasks[0]
    assert a.task.name == "a"
    context, dev_start = 14, ORIGIN - 7
    starts = {"train": list(range(context, dev_start)), "dev": list(range(dev_start, ORIGIN))}
    for split, days in starts.items():
        rows = getattr(a, split).x
        assert len(rows) == len(days)  # a has no gap: a window from every day
        for i in (0, len(days) // 2, len(days) - 1):
            t = days[i]
            cut = [r if d < t else {**r, "a": "", "b": ""} for d, r in enumerate(series_rows())]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # in sample, and b's short context: said
                doc = codec.read(write_wide(tmp_path / "cut.csv", cut[: t + HORIZON]), "auto")
            assert doc.dates[0] == START + datetime.timedelta(days=t)
            assert torch.equal(doc.x[0], rows[i]), (split, t)


def test_a_run_scores_its_test_forecast_on_the_series_scale(trained, tmp_path, capsys):
    """``results.json``'s task scores are in the network's space (log, scaled); its
    ``forecast`` block scores the selected model's test forecast in the data's units, as the
    forecasting study does, and ``mtlshare run`` prints it."""
    cfg, folder = trained
    results = json.loads((folder / "results.json").read_text())
    _, forecasts = expected_forecasts(cfg, load_run(folder))
    view = build_problem(cfg).meta["forecast"]
    first = str(START + datetime.timedelta(days=ORIGIN))
    for name in ("a", "b"):
        got = results["forecast"][name]
        want = forecast_metrics(view.actual(name), forecasts[name])
        assert got["first_day"] == first and got["days"] == HORIZON
        for key in ("mae", "rmse", "smape"):
            assert got[key] == pytest.approx(want[key], rel=1e-6), (name, key)
        assert got["mase"] == pytest.approx(want["mae"] / mase_scale(view.seen(name)[1]), rel=1e-6)
        assert got["mae"] > 10 * results["tasks"][name]["test"]  # units, not the network's
    config_file = tmp_path / "c.toml"
    config_file.write_text(cfg.to_toml())
    capsys.readouterr()
    assert main(["run", str(config_file), "--out", str(tmp_path / "again"), "--quiet"]) == 0
    printed = capsys.readouterr().out
    line = f"a: the {HORIZON} test days from {first} on its own scale: MAE "
    assert line in printed
    scores = evaluate(folder)  # the checkpoint scored again: the same forecast scores
    assert {n: s["forecast"] for n, s in scores.items()} == results["forecast"]
    assert "forecast" not in evaluate(folder, "dev")["a"]
    assert main(["evaluate", str(folder)]) == 0
    assert line in capsys.readouterr().out


@pytest.mark.parametrize("mechanism", MECHANISMS.names())
def test_every_mechanism_forecasts_from_recent_values(mechanism, tmp_path):
    """The codec knows no mechanism: every registered one, trained briefly on the windows,
    forecasts from the cut file what its selected model forecasts at the run's test window
    (sparse sharing through each series' mask)."""
    data = write_wide(tmp_path / "train.csv", series_rows())
    cfg = config(data).replace(mechanism=mechanism, **{"train.epochs": 1})
    run(cfg, tmp_path / "run", progress=False)
    loaded = load_run(tmp_path / "run")
    inputs, forecasts = expected_forecasts(cfg, loaded)
    recent = write_wide(tmp_path / "recent.csv", cut_at_origin(series_rows()))
    doc = loaded.codec.read(recent, "auto")
    assert torch.equal(doc.x[0], inputs["a"]) and torch.equal(doc.x[1], inputs["b"])
    loaded.predict_file(recent, tmp_path / "f.csv")
    table = read_forecast(tmp_path / "f.csv")
    for name in ("a", "b"):
        np.testing.assert_allclose([v for _, v in table[name]], forecasts[name], rtol=1e-5)


def test_a_forecasting_study_folder_says_it_is_a_study_not_missing_checkpoints(tmp_path, capsys):
    """A study keeps no checkpoints by design: predict and evaluate say it is a study and where
    its forecasts are, not that its checkpoints were not kept (the keep_runs.py message)."""
    from mtlshare.app.experiments import runner

    data = write_wide(tmp_path / "train.csv", series_rows())
    cfg = config(data).replace(
        experiment="forecast",
        **{
            "forecast.target": "b",
            "forecast.origins": [str(START + datetime.timedelta(days=ORIGIN))],
            "forecast.methods": ["seasonal_naive"],
        },
    )
    runner("forecast")(cfg, tmp_path / "study", progress=False)
    assert (tmp_path / "study" / "forecasts.csv").is_file()
    rows = write_wide(tmp_path / "recent.csv", cut_at_origin(series_rows()))
    for argv in (
        ["predict", str(tmp_path / "study"), str(rows), "--out", str(tmp_path / "f.csv")],
        ["evaluate", str(tmp_path / "study")],
    ):
        assert main(argv) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "'forecast' study, not a training run" in err[0], err
        assert "forecasts.csv" in err[0] and "keep_runs" not in err[0], err
    assert not (tmp_path / "f.csv").exists()
