"""Choosing the neural methods' settings on validation origins, never on the test origins.

Every candidate (a table of config overrides in ``forecast.candidates``) is trained once, with
the config's seed, at every validation origin, and scored by the MAE of the target over the
horizon. At a test origin a method takes the candidate with the lowest mean MAE over the latest
``select_last`` validation origins whose whole horizon ends before that test origin: what a
forecaster retuning on the data it has at each origin would pick. Ties go to the candidate
listed first.

Scoring the target at validation origins reads its values there, which may be older than the
history the models are fitted on. ``forecast.select = "dev"`` keeps to that history: each
candidate is trained at the test origin itself (the config's seed) and scored by the target's
dev MAE (``candidate_scores``); the seed's test forecast is that same training, reused.
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mtlshare.app.build import build_problem
from mtlshare.app.forecast_pool import NeuralRun, Trainings, neural_forecasts
from mtlshare.config import Config
from mtlshare.data.daily import ForecastView
from mtlshare.data.datasets import Problem
from mtlshare.errors import ConfigError, DataError, MtlshareError
from mtlshare.evaluation.forecast import mae
from mtlshare.forecasting.config import ForecastConfig

DEFAULT = "config"  # the name of the only candidate when none is listed


class Problems:
    """Problems built around an origin for a candidate (and a history of the target), each
    built once: the multi-task and single-series runs of one candidate share theirs."""

    def __init__(self, cfg: Config, base_dir: str | Path | None) -> None:
        self.cfg = cfg
        self.base_dir = base_dir
        self._built: dict[str, Problem] = {}

    def config(self, origin: str, overrides: dict[str, Any], history: int | None = None) -> Config:
        fc: ForecastConfig = self.cfg.experiments["forecast"]
        changes: dict[str, Any] = {**overrides, "data.origin": origin}
        if history is not None:
            changes["data.history"] = {**self.cfg.data.history, fc.target: history}
        return self.cfg.replace(**changes)

    def get(self, cfg: Config) -> Problem:
        key = repr(cfg.data)
        if key not in self._built:
            self._built[key] = build_problem(cfg, self.base_dir)
        return self._built[key]


def candidate_configs(cfg: Config) -> dict[str, dict[str, Any]]:
    """Each candidate's overrides by name, each checked against the config now (a bad key or
    value is a ``ConfigError`` naming the candidate); ``{"config": {}}`` without candidates."""
    fc: ForecastConfig = cfg.experiments["forecast"]
    names = fc.candidate_names()
    if not names:
        return {DEFAULT: {}}
    out = {}
    for index, name in enumerate(names):
        changes = fc.overrides(name)
        try:
            cfg.replace(**changes)
        except ConfigError as e:
            raise ConfigError(f"{candidate_named(index, name)}{e}") from None
        out[name] = changes
    return out


def candidate_named(index: int, name: str) -> str:
    """What an error candidate ``name`` (element ``index`` of ``forecast.candidates``) causes
    starts with: ``forecast.candidates[1] ('wide'): ``, an element's form, by which the line it
    is on or the override that set it is found."""
    return f"forecast.candidates[{index}] ({name!r}): "


def candidate_scores(
    cfg: Config,
    candidates: dict[str, dict[str, Any]],
    methods: list[str],
    problems: Problems,
    report: Callable[[str], None],
    trainings: Trainings,
) -> dict[str, dict[str, dict[str, float]]]:
    """``scores[method][candidate][origin]``, every candidate trained with seed ``cfg.seed``:
    by validation origin, the target's MAE over the horizon; with ``forecast.select = "dev"``,
    by test origin, the target's dev MAE at the kept epoch (in the network's space) of the
    candidate trained there. Empty when there is one candidate (nothing to choose). A data
    error names the origin."""
    fc: ForecastConfig = cfg.experiments["forecast"]
    if len(candidates) < 2:
        return {}

    def dev_mae(view: ForecastView, run: NeuralRun) -> float:
        return float(run.runs[0]["dev"])

    def horizon_mae(view: ForecastView, run: NeuralRun) -> float:
        return mae(view.actual(fc.target), run.forecasts[0])

    if fc.select == "dev":
        origins, score, kind, key, hint = fc.origins, dev_mae, "test origin", "", ""
    else:
        origins, score = needed_origins(fc, cfg.data.horizon), horizon_mae
        kind, key = "validation origin", " (forecast.validation_origins)"
        hint = (
            '; a target with no history there can choose on its dev days: forecast.select = "dev"'
        )
    scores: dict[str, dict[str, dict[str, float]]] = {
        m: {c: {} for c in candidates} for m in methods
    }
    trainings.prefetch(
        [
            (method, problems.config(origin, changes).replace(seed=cfg.seed), fc.target)
            for origin in origins
            for changes in candidates.values()
            for method in methods
        ]
    )
    for origin in origins:
        try:
            for name, changes in candidates.items():
                at = problems.config(origin, changes)
                problem = problems.get(at)
                view: ForecastView = problem.meta["forecast"]
                for method in methods:
                    run = neural_forecasts(method, at, problem, fc.target, [cfg.seed], trainings)
                    scores[method][name][origin] = score(view, run)
        except DataError as e:  # e.g. a target without data that far back
            raise MtlshareError(f"{kind} {origin}{key}: {e}{hint}") from None
        report(f"{kind} {origin}: {len(candidates)} candidates scored")
    return scores


def needed_origins(fc: ForecastConfig, horizon: int) -> list[str]:
    """The validation origins some test origin selects on, oldest first."""
    needed: set[str] = set()
    for origin in fc.origins:
        needed.update(fc.eligible(datetime.date.fromisoformat(origin), horizon))
    return sorted(needed)


def choose(
    fc: ForecastConfig,
    horizon: int,
    candidates: dict[str, dict[str, Any]],
    scores: dict[str, dict[str, dict[str, float]]],
    method: str,
    test_origin: str,
) -> str:
    """The candidate ``method`` uses at ``test_origin`` (see the module docstring). A score
    that is NaN (no observed day to score) is left out; when no candidate has a score, that is
    an error rather than a silent choice of the first."""
    names = list(candidates)
    if len(names) == 1:
        return names[0]
    if fc.select == "dev":
        where = "on its dev days"

        def score(name: str) -> float:
            return _finite(scores[method][name][test_origin])
    else:
        eligible = fc.eligible(datetime.date.fromisoformat(test_origin), horizon)
        where = f"at the validation origins {eligible}"

        def score(name: str) -> float:
            values = [scores[method][name][v] for v in eligible]
            values = [v for v in values if not math.isnan(v)]
            return float(np.mean(values)) if values else math.inf

    chosen = min(names, key=lambda n: (score(n), names.index(n)))
    if math.isinf(score(chosen)):
        raise MtlshareError(
            f"forecast: no candidate could be scored for {method!r} at test origin {test_origin}: "
            f"the target {fc.target!r} has no observed day {where}"
        )
    return chosen


def _finite(value: float) -> float:
    return math.inf if math.isnan(value) else value
