"""The forecasting experiment (``experiment = "forecast"``): forecast a scarce series at several
origins with a multi-task model, the same network trained on the scarce series alone, Prophet
(optional) and a seasonal-naive forecast, and compare their errors.

At each origin the data source (``daily_csv``) is rebuilt around that origin, so no method ever
sees a day on or after it. The multi-task model is the configured mechanism over every series;
the single-task model is the same network on the target series alone (``hard`` sharing with one
task); Prophet and the seasonal-naive forecast see the target's ``data.history`` days before the
origin. Errors are measured on the original scale of the series over the ``data.horizon`` days
from the origin, skipping days without an observation.

Outputs in the run directory: ``forecasts.csv`` (``date, series, method, seed, origin,
forecast, actual``: every day each method forecast), ``results.json`` (``{"methods": {name:
{"mae", "rmse", "smape", "per_origin": [...]}}, ...}``), ``forecast.md`` (a table),
``forecast_ORIGIN.png`` (history, actuals and every method's forecast) and one training run per
origin and neural method.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mtlshare.app.build import build_problem
from mtlshare.app.run import train
from mtlshare.config import Config
from mtlshare.data.daily import DailyConfig, Scale, Window
from mtlshare.data.datasets import Problem
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.evaluation.forecast import forecast_metrics, summarize
from mtlshare.evaluation.forecast_plots import plot_forecast
from mtlshare.forecasting.baselines import ProphetUnavailable, prophet_forecast, seasonal_naive
from mtlshare.forecasting.config import METRICS, NEURAL, ForecastConfig
from mtlshare.training.folder import RESULTS, RunFolder


def neural_forecast(
    cfg: Config, problem: Problem, target: str, out: Path, progress: bool
) -> np.ndarray:
    """Train on ``problem`` (every task in it) and forecast ``target`` over the horizon."""
    run = train(cfg, out, problem=problem, progress=progress)
    run.model.eval()
    td = next(t for t in problem.tasks if t.task.name == target)
    with torch.no_grad():
        z = run.model(td.test.x, target).squeeze(-1).numpy().astype(np.float64)
    scale: Scale = problem.meta["scales"][target]
    return scale.inverse(z)


def neural_runs(
    at: Config, fc: ForecastConfig, problem: Problem, method: str, out: Path, progress: bool
) -> list[np.ndarray]:
    """The forecasts of ``method`` ("multitask" or "single"), one per seed."""
    runs = []
    for seed in fc.seeds:
        where = out / f"seed-{seed}" if len(fc.seeds) > 1 else out
        if method == "multitask":
            runs.append(neural_forecast(at.replace(seed=seed), problem, fc.target, where, progress))
        else:
            alone = at.replace(mechanism="hard", tasks=[fc.target], seed=seed)
            runs.append(
                neural_forecast(alone, problem.select([fc.target]), fc.target, where, progress)
            )
    return runs


def forecast_origin(
    cfg: Config,
    fc: ForecastConfig,
    origin: str,
    out: Path,
    base_dir: str | Path | None,
    progress: bool,
    skipped: dict[str, str],
    table: list[dict[str, str]],
) -> dict[str, Any]:
    """Every method's forecast and errors at one origin; writes its plot and adds its
    forecasts to ``table`` (the rows of ``forecasts.csv``)."""
    at = cfg.replace(**{"data.origin": origin})
    problem = build_problem(at, base_dir)
    data: DailyConfig = at.data
    if fc.target not in problem.meta["values"]:
        raise ConfigError(
            f"forecast.target: {fc.target!r} is not a series of the data; series "
            f"are {list(problem.meta['values'])}"
        )
    win: Window = problem.meta["window"]
    frame = problem.meta["frame"]
    history = problem.meta["values"][fc.target][: win.origin]
    actual = frame.values[fc.target][win.test].astype(np.float64)
    days = data.history.get(fc.target, win.origin)
    recent = history[win.origin - days :]
    recent_dates = frame.dates[win.origin - days : win.origin]
    future_dates = frame.dates[win.test]
    tag = f"origin-{origin}"
    forecasts: dict[str, np.ndarray] = {}
    per_seed = {
        m: neural_runs(at, fc, problem, m, out / tag / m, progress)
        for m in fc.methods
        if m in NEURAL
    }
    for method in fc.methods:
        if method in per_seed:
            forecasts[method] = per_seed[method][0]
        if method == "seasonal_naive":
            forecasts[method] = seasonal_naive(recent, len(actual), fc.season)
        elif method == "prophet" and "prophet" not in skipped:
            holidays = []
            if data.holiday_column:
                flags = frame.columns[data.holiday_column]
                holidays = [d for d, f in zip(frame.dates, flags, strict=True) if f > 0]
            try:
                forecasts[method] = prophet_forecast(
                    recent_dates, recent, future_dates, holidays=holidays, seed=cfg.seed
                )
            except ProphetUnavailable as e:
                skipped["prophet"] = str(e)
                print(f"mtlshare: Prophet skipped: {e}", flush=True)
    shown = slice(max(0, win.origin - fc.plot_days), win.origin)
    plot_forecast(
        out / f"forecast_{origin}.png",
        frame.dates[shown],
        frame.values[fc.target][shown],
        future_dates,
        actual,
        forecasts,
        f"{fc.target}: {len(actual)}-day forecast from {origin} ({days} days of its history)",
    )
    rows = {}
    for name, f in forecasts.items():
        runs = per_seed.get(name, [f])
        for k, r in enumerate(runs):  # forecasts.csv: every day of every run
            seed = str(fc.seeds[k]) if name in per_seed else ""
            table += [
                {
                    "date": day.isoformat(),
                    "series": fc.target,
                    "method": name,
                    "seed": seed,
                    "origin": origin,
                    "forecast": repr(float(v)),
                    "actual": "" if np.isnan(a) else repr(float(a)),
                }
                for day, v, a in zip(future_dates, r, actual, strict=True)
            ]
        scores = [forecast_metrics(actual, r) for r in runs]
        rows[name] = {
            "origin": origin,
            **{k: float(np.mean([sc[k] for sc in scores])) for k in METRICS},
        }
        if len(runs) > 1:
            rows[name]["seeds"] = scores
    return rows


FORECASTS = "forecasts.csv"
COLUMNS = ("date", "series", "method", "seed", "origin", "forecast", "actual")


def forecasts_csv(table: list[dict[str, str]]) -> str:
    """``forecasts.csv``: one row per forecast day, method (and seed) and origin; ``actual`` is
    empty on days without an observation."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return out.getvalue()


def forecast_markdown(results: dict[str, Any]) -> str:
    """One row per method: mean MAE, RMSE and sMAPE over origins, then each origin's MAE."""
    origins = results["origins"]
    head = ["method", "MAE", "RMSE", "sMAPE %", *(f"MAE {o}" for o in origins)]
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join(["---"] + ["---:"] * (len(head) - 1)) + "|",
    ]
    for name, r in results["methods"].items():
        cells = [name, f"{r['mae']:.1f}", f"{r['rmse']:.1f}", f"{r['smape']:.1f}"]
        cells += [f"{p['mae']:.1f}" for p in r["per_origin"]]
        lines.append("| " + " | ".join(cells) + " |")
    for name, why in results["skipped"].items():
        lines.append(f"\n{name} skipped: {why}")
    return "\n".join(lines) + "\n"


def run_forecast(
    cfg: Config,
    out_dir: str | Path,
    *,
    base_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole study; returns (and writes) ``results.json``."""
    fc: ForecastConfig = cfg.experiments["forecast"]
    fc.validate(cfg.data_source)
    if resume:
        raise MtlshareError(
            "--resume is not supported by the forecast experiment; its runs are "
            "short: start it again with a new --out"
        )
    folder = RunFolder(out_dir)
    if folder.finished:
        raise MtlshareError(f"{folder.path}: holds an earlier run; choose another --out")
    # the data and the target are checked before --out is made
    first = build_problem(cfg.replace(**{"data.origin": fc.origins[0]}), base_dir)
    if fc.target not in first.meta["values"]:
        raise ConfigError(
            f"forecast.target: {fc.target!r} is not a series of the data; series "
            f"are {list(first.meta['values'])}"
        )
    folder.start(cfg.to_toml(), resume=False)
    try:
        skipped: dict[str, str] = {}
        per: dict[str, list[dict[str, Any]]] = {}
        table: list[dict[str, str]] = []
        for origin in fc.origins:
            rows = forecast_origin(cfg, fc, origin, folder.path, base_dir, progress, skipped, table)
            for name, row in rows.items():
                per.setdefault(name, []).append(row)
        data: DailyConfig = cfg.data
        results: dict[str, Any] = {
            "experiment": "forecast",
            "target": fc.target,
            "origins": list(fc.origins),
            "horizon": data.horizon,
            "history_days": data.history.get(fc.target),
            "methods": {
                name: {**summarize([{k: r[k] for k in METRICS} for r in rows]), "per_origin": rows}
                for name, rows in per.items()
            },
            "skipped": skipped,
        }
        folder.write_json(RESULTS, results)
        folder.write_text("forecast.md", forecast_markdown(results))
        folder.write_text(FORECASTS, forecasts_csv(table))
    finally:
        folder.close()
    return results
