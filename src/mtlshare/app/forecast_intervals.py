"""Prediction intervals of the forecasting study, calibrated on its validation origins.

At a test origin, a method's interval comes from its errors at the validation origins that
origin selects its settings on (``forecast.eligible``: the latest ``select_last`` whose whole
horizon ends before it), so it is calibrated on days before the origin only
(``mtlshare.evaluation.intervals``: conformal widths per block of ``forecast.season`` steps,
each error divided by the MASE scale of the history its forecast was made from, the width
multiplied by the test origin's; unscaled where a history has no such scale). A neural
method's calibration forecasts are those of the candidate chosen at that test origin, trained
with the config's seed (the trainings of the selection, reused); every seed's test forecast
gets the widths of that one calibration. A baseline is forecast at the validation origins as
at a test origin.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import numpy as np

from mtlshare.app.forecast_methods import baseline_forecast
from mtlshare.app.forecast_pool import Trainings, neural_forecasts
from mtlshare.app.forecast_select import Problems
from mtlshare.config import Config
from mtlshare.data.daily import ForecastView
from mtlshare.evaluation.forecast import mase_scale
from mtlshare.evaluation.intervals import conformal_widths
from mtlshare.forecasting.config import NEURAL, ForecastConfig


class Calibration:
    """Each method's calibration forecasts at the validation origins, made once, and the
    interval widths they give at a test origin."""

    def __init__(
        self,
        cfg: Config,
        problems: Problems,
        candidates: dict[str, dict[str, Any]],
        trainings: Trainings,
    ) -> None:
        self.cfg = cfg
        self.fc: ForecastConfig = cfg.experiments["forecast"]
        self.problems = problems
        self.candidates = candidates
        self.trainings = trainings
        self._made: dict[tuple[str, str, str], tuple[np.ndarray, np.ndarray, float]] = {}

    @property
    def enabled(self) -> bool:
        return self.fc.interval > 0 and bool(self.fc.validation_origins)

    def origins(self, test_origin: str) -> list[str]:
        return self.fc.eligible(datetime.date.fromisoformat(test_origin), self.cfg.data.horizon)

    def neural_trainings(self, chosen: dict[str, dict[str, str]]) -> list[tuple[str, Config, str]]:
        """The trainings the neural methods' calibration needs (the selection's own when it
        trained the chosen candidates), for ``Trainings.prefetch``."""
        wanted = []
        for test_origin, methods in chosen.items():
            for method, name in methods.items():
                for origin in self.origins(test_origin):
                    at = self.problems.config(origin, self.candidates[name])
                    wanted.append((method, at.replace(seed=self.cfg.seed), self.fc.target))
        return wanted

    def scale(self, view: ForecastView) -> float:
        """The MASE scale of the target's history in ``view`` (``NaN`` when it has none)."""
        return mase_scale(view.seen(self.fc.target)[1], self.fc.season)

    def pair(
        self, method: str, candidate: str, origin: str
    ) -> tuple[np.ndarray, np.ndarray, float]:
        """(actual, forecast, scale) of ``method`` at validation ``origin``."""
        key = (method, candidate, origin)
        if key not in self._made:
            target = self.fc.target
            at = self.problems.config(origin, self.candidates.get(candidate, {}))
            problem = self.problems.get(at)
            view: ForecastView = problem.meta["forecast"]
            if method in NEURAL:
                seed = [self.cfg.seed]
                forecast = neural_forecasts(method, at, problem, target, seed, self.trainings)
                made = forecast.forecasts[0]
            else:
                made = baseline_forecast(
                    method, view, target, self.fc, self.cfg.data.holiday_column
                )
            self._made[key] = (view.actual(target), made, self.scale(view))
        return self._made[key]

    def widths(
        self, method: str, candidate: str, test_origin: str, view: ForecastView
    ) -> np.ndarray:
        """Half-widths per forecast step for ``method`` (with ``candidate``) at ``test_origin``,
        whose data is ``view``."""
        made = [self.pair(method, candidate, o) for o in self.origins(test_origin)]
        scales = [scale for _, _, scale in made] + [self.scale(view)]
        pairs = [(actual, forecast) for actual, forecast, _ in made]
        if all(math.isfinite(s) and s > 0 for s in scales):
            q = conformal_widths(pairs, self.fc.interval, self.fc.season, scales[:-1])
            return q * scales[-1]
        return conformal_widths(pairs, self.fc.interval, self.fc.season)
