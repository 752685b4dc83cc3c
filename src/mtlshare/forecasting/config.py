"""``[forecast]``: the settings of the forecasting study (``experiment = "forecast"``, run by
``mtlshare.app.forecast``), registered as an experiment kind so that configs can name it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mtlshare.errors import ConfigError
from mtlshare.registry import EXPERIMENTS

METHODS = ("multitask", "single", "prophet", "seasonal_naive")
METRICS = ("mae", "rmse", "smape")
NEURAL = ("multitask", "single")


@dataclass
class ForecastConfig:
    """``[forecast]``: the series to forecast, the origins, the methods to compare.

    ``target`` must be a series of the data; ``origins`` are first forecast days (YYYY-MM-DD);
    ``season`` is the seasonal-naive period in days; ``plot_days`` how much history the plots
    show; the neural methods are trained once per seed in ``seeds`` and their errors averaged
    (the plots show the first seed's forecast).
    """

    target: str = ""
    origins: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=lambda: list(METHODS))
    season: int = 7
    plot_days: int = 120
    seeds: list[int] = field(default_factory=lambda: [0])

    def validate(self, data_source: str = "daily_csv") -> None:
        if data_source != "daily_csv":
            raise ConfigError(
                f"experiment = 'forecast' needs data.source = 'daily_csv', got {data_source!r}"
            )
        if not self.target:
            raise ConfigError("forecast.target: name the series to forecast")
        if not self.origins:
            raise ConfigError("forecast.origins: give one or more forecast origins")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown or not self.methods:
            raise ConfigError(f"forecast.methods: unknown {unknown}; choose from {METHODS}")
        if not self.seeds:
            raise ConfigError("forecast.seeds: give one or more seeds")
        if self.season < 1 or self.plot_days < 1:
            raise ConfigError("forecast.season and forecast.plot_days must be >= 1")


EXPERIMENTS.register(
    "forecast",
    config=ForecastConfig,
    summary="forecast a scarce series at several origins, four methods",
)(ForecastConfig)
