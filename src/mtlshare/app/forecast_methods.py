"""How each method of the forecasting study forecasts the target series at one origin.

The neural methods train in memory (no run folder, no checkpoints: the study trains a few hundred
small networks and keeps only their forecasts) with the project's training loop, so model
selection on the dev days, seeds and threads work as in ``mtlshare run``. The baselines read
only the target's allowed history before the origin.
"""

from __future__ import annotations

import time

import numpy as np
import torch

from mtlshare.app.build import build_model
from mtlshare.config import Config
from mtlshare.data.daily import ForecastView
from mtlshare.data.datasets import Problem
from mtlshare.forecasting.baselines import naive, prophet_forecast, seasonal_mean, seasonal_naive
from mtlshare.forecasting.config import STATISTICAL, ForecastConfig
from mtlshare.forecasting.statistical import statistical_forecast
from mtlshare.training.distributed import torch_threads
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting


def fit_and_forecast(cfg: Config, problem: Problem, target: str) -> tuple[np.ndarray, dict]:
    """Train ``cfg``'s model on every task of ``problem``; the target's forecast and a summary
    of the run (selected epoch, epochs run, seconds). ``train.threads`` holds for this run only."""
    with torch_threads(cfg.train.threads):
        return _fit_and_forecast(cfg, problem, target)


def _fit_and_forecast(cfg: Config, problem: Problem, target: str) -> tuple[np.ndarray, dict]:
    started = time.perf_counter()
    model = build_model(cfg, problem)
    weighting = LossWeighting([td.task.name for td in problem.tasks], cfg.weighting, cfg.seed)
    trainer = Trainer(model, problem, cfg.train, weighting, seed=cfg.seed, progress=False)
    fit = trainer.fit()
    model.eval()
    test = next(td.test for td in problem.tasks if td.task.name == target)
    with torch.no_grad():
        out = model(test.x.to(trainer.device), target).cpu().numpy()
    view: ForecastView = problem.meta["forecast"]
    summary = {
        "seed": cfg.seed,
        "tasks": [td.task.name for td in problem.tasks],
        "best_epoch": fit.best_epoch,
        "dev": fit.dev[target],  # the target's dev score at the kept epoch (forecast.select)
        "epochs_run": fit.epochs_run,
        "seconds": round(time.perf_counter() - started, 3),
    }
    return view.decoders[target](out), summary


def baseline_forecast(
    method: str, view: ForecastView, target: str, fc: ForecastConfig, holiday_column: str
) -> np.ndarray:
    """A baseline's forecast of the horizon from the target's allowed history. Raises
    ``ProphetUnavailable`` / ``StatsforecastUnavailable`` when the optional extra is absent."""
    dates, history = view.seen(target)
    horizon = view.horizon
    if method == "seasonal_naive":
        return seasonal_naive(history, horizon, fc.season)
    if method == "seasonal_mean":
        return seasonal_mean(history, horizon, fc.season, fc.mean_seasons)
    if method == "naive":
        return naive(history, horizon)
    if method in STATISTICAL:
        return statistical_forecast(method, history, horizon, fc.season)
    if method == "prophet":
        holidays = view.holidays(holiday_column)
        return prophet_forecast(dates, history, view.future_dates, holidays=holidays, seed=0)
    raise ValueError(f"not a baseline: {method!r}")  # pragma: no cover - config checks names
