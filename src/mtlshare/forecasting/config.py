"""``[forecast]``: the settings of the forecasting study (``experiment = "forecast"``, run by
``mtlshare.app.forecast``), registered as an experiment kind so that configs can name it."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any

from mtlshare.errors import ConfigError, one_of, parse_day
from mtlshare.registry import EXPERIMENTS

NEURAL = ("multitask", "single")
STATISTICAL = ("autoets", "autoarima")
METHODS = (
    "multitask", "single", "prophet", "seasonal_naive", "naive", *STATISTICAL, "seasonal_mean"
)  # fmt: skip
METRICS = ("mae", "rmse", "smape", "mase")
SELECTS = ("origins", "dev")  # forecast.select: how the candidates are scored
SOURCES = ("daily_csv", "daily_windows")
# what a candidate may not change: every candidate forecasts the same days of the same series
FIXED = ("data.source", "data.path", "data.series", "data.origin", "data.horizon", "data.history")
FIXED_TOP = ("experiment", "forecast", "tasks", "seed", "compare")


@dataclass
class ForecastConfig:
    """``[forecast]``: the series to forecast, the origins, the methods to compare.

    ``target`` must be a series of the data; ``origins`` are the test origins, first forecast
    days (YYYY-MM-DD); ``season`` is the seasonal period in days (seasonal naive, MASE, AutoETS,
    AutoARIMA); ``plot_days`` how much history the plots show; the neural methods are trained
    once per seed in ``seeds`` and their errors averaged (the plots show the first seed's).

    Settings are chosen on validation origins, never on the test origins: ``candidates`` lists
    tables of config overrides (``{name = "wide", "trunk.hidden" = [128]}``); at each test
    origin each neural method uses the candidate with the lowest mean MAE of the target (seed
    ``seed``) over the ``select_last`` latest ``validation_origins`` whose whole horizon ends
    before that test origin (0: all of them). Without candidates the config is used as it is.
    The validation origins score the target's actual values over their horizons, so when
    ``data.history`` cuts the target, selection (and the intervals below) read days of the
    target older than the history each model is fitted on: the models' inputs are scarce, the
    tuning is not.

    ``select = "dev"`` scores the candidates on the target's own history instead, for a series
    that really has no more: at each test origin each candidate is trained there (seed
    ``seed``) and scored by the target's dev MAE at the kept epoch, in the network's space (the
    last ``data.dev_days`` before the origin, which no network trains on). Nothing older than
    the target's history is read for it, and ``validation_origins`` are needed only for the
    intervals.

    ``histories``: the target's history lengths in days for the scarcity sweep (empty: none),
    which runs ``scarcity_methods`` at every test origin with each length, the neural methods
    with the candidate chosen at that origin.

    ``jobs``: worker processes that train the neural methods' networks, one torch thread each
    (1: one after another in this process; 0: one per available core); the forecasts are
    those of one process at ``train.threads = 1``.

    ``mean_seasons``: how many of the latest seasons ``seasonal_mean`` averages (2: the last two
    weeks, weekday by weekday, with ``season = 7``).

    ``interval``: the level of the prediction intervals (0.8: 80%; 0: none), calibrated for
    each method at each test origin on its errors at the validation origins that origin selects
    on (``mtlshare.app.forecast_intervals``); without ``validation_origins`` there are none.
    """

    target: str = ""
    origins: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: list(METHODS[:4]))
    season: int = 7
    plot_days: int = 120
    seeds: list[int] = field(default_factory=lambda: [0])
    validation_origins: list[str] = field(default_factory=list)
    candidates: list[dict[str, Any]] = field(default_factory=list)
    select_last: int = 3
    histories: list[int] = field(default_factory=list)
    scarcity_methods: list[str] = field(
        default_factory=lambda: ["multitask", "single", "seasonal_naive", "autoets"]
    )
    jobs: int = 1
    interval: float = 0.8
    mean_seasons: int = 2
    select: str = "origins"

    def validate(self, data_source: str = "daily_csv", horizon: int = 1) -> None:
        if data_source not in SOURCES:
            raise ConfigError(
                f"experiment = 'forecast' needs data.source in {SOURCES}, got {data_source!r}"
            )
        if not self.target:
            raise ConfigError("forecast.target: name the series to forecast")
        if not self.origins:
            raise ConfigError("forecast.origins: give one or more forecast origins")
        for key, names in (("methods", self.methods), ("scarcity_methods", self.scarcity_methods)):
            unknown = [m for m in names if m not in METHODS]
            if unknown or not names or len(set(names)) != len(names):
                raise ConfigError(
                    f"forecast.{key}: {names} must list distinct methods from {METHODS}"
                )
        if not self.seeds or len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"forecast.seeds: give one or more distinct seeds, got {self.seeds}")
        for key in ("season", "plot_days", "mean_seasons"):
            if getattr(self, key) < 1:
                raise ConfigError(f"forecast.{key}: must be >= 1, got {getattr(self, key)}")
        if self.select not in SELECTS:
            raise ConfigError(f"forecast.select: {self.select!r} is not one of {one_of(SELECTS)}")
        if self.select_last < 0:
            raise ConfigError(f"forecast.select_last: must be >= 0, got {self.select_last}")
        if self.jobs < 0:
            raise ConfigError(f"forecast.jobs: must be >= 0 (0: one per core), got {self.jobs}")
        if not 0.0 <= self.interval < 1.0:
            raise ConfigError(
                f"forecast.interval: a level in [0, 1) (0.8: 80%; 0: none), got {self.interval}"
            )
        if any(days < 1 for days in self.histories):
            raise ConfigError(f"forecast.histories: days must be >= 1, got {self.histories}")
        self._check_origins(horizon)
        self.candidate_names()

    def _check_origins(self, horizon: int) -> None:
        tests = [parse_day(o, "forecast.origins") for o in self.origins]
        checks = [parse_day(o, "forecast.validation_origins") for o in self.validation_origins]
        for key, given, days in (
            ("origins", self.origins, tests),
            ("validation_origins", self.validation_origins, checks),
        ):
            if len(set(days)) != len(days):
                raise ConfigError(f"forecast.{key}: {given} lists an origin twice")
        by_origins = self.select == "origins" and len(self.candidates) >= 2
        if not by_origins and not (checks and self.interval > 0):
            return  # no validation origin is read: choosing on dev days, or nothing to choose
        if not checks:
            raise ConfigError(
                "forecast.candidates: choosing among them needs forecast.validation_origins "
                '(or forecast.select = "dev", which scores them on the target\'s dev days)'
            )
        for origin, day in zip(self.origins, tests, strict=True):
            if not self.eligible(day, horizon):
                raise ConfigError(
                    f"forecast.origins: {origin} has no validation origin whose {horizon}-day "
                    "horizon ends before it; add an earlier forecast.validation_origins entry "
                    "(where the data start too late for one, choose a later test origin)"
                )

    def eligible(self, test: datetime.date, horizon: int) -> list[str]:
        """The validation origins whose horizon ends before ``test``, the latest
        ``select_last`` of them (all when 0), oldest first."""
        span = datetime.timedelta(days=horizon)
        key = "forecast.validation_origins"
        days = sorted(parse_day(v, key) for v in self.validation_origins)
        ok = [d.isoformat() for d in days if d + span <= test]
        return ok[-self.select_last :] if self.select_last else ok

    def candidate_names(self) -> list[str]:
        """The candidates' names (``name``, else ``c1``, ``c2``, ...); checks their keys."""
        names = []
        for i, table in enumerate(self.candidates, start=1):
            name = table.get("name", f"c{i}")
            if not isinstance(name, str) or not name:
                raise ConfigError(f"forecast.candidates[{i - 1}].name: a non-empty string")
            for key in table:
                if key == "name":
                    continue
                top = key.split(".")[0]
                if top in FIXED_TOP or any(key == f or key.startswith(f + ".") for f in FIXED):
                    raise ConfigError(
                        f"forecast.candidates[{i - 1}]: {key!r} would change what is forecast; "
                        "a candidate may change the model, its inputs and its training"
                    )
            names.append(name)
        if len(set(names)) != len(names):
            raise ConfigError(f"forecast.candidates: names must differ, got {names}")
        return names

    def overrides(self, name: str) -> dict[str, Any]:
        """Candidate ``name``'s config overrides (empty without candidates)."""
        for i, table in enumerate(self.candidates, start=1):
            if table.get("name", f"c{i}") == name:
                return {k: v for k, v in table.items() if k != "name"}
        return {}


EXPERIMENTS.register(
    "forecast",
    config=ForecastConfig,
    summary="forecast a scarce series at rolling origins against statistical baselines",
)(ForecastConfig)
