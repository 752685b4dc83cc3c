"""The forecasting experiment (``experiment = "forecast"``): forecast a scarce series at rolling
origins with a multi-task model, the same network trained on the scarce series alone, and the
baselines practitioners use (seasonal naive, the seasonal mean, naive, AutoETS, AutoARIMA,
Prophet), and compare their errors.

At each origin the data source (``daily_windows`` or ``daily_csv``) is rebuilt around it, so no
method ever sees a day on or after it. The neural methods' settings are chosen on validation
origins whose horizon ends before each test origin (``mtlshare.app.forecast_select``); they are
then trained once per seed. The baselines see the target's ``data.history`` days before the
origin. Errors (MAE, RMSE, sMAPE, MASE) are measured on the series' own scale over the
``data.horizon`` days from the origin, skipping days without an observation, per origin and
averaged over the origins. ``forecast.histories`` adds the scarcity sweep: the same comparison
with the target cut to each history length.

Outputs in the run directory: ``results.json``, ``forecast.md`` (tables), ``forecasts.csv``
(``date, series, method, seed, origin, forecast, actual, lower, upper``: every day each method
forecast at a test origin, with its interval), ``forecast_ORIGIN.png`` per test origin, and with
a sweep ``scarcity.csv`` (the same with a ``history`` column) and ``scarcity.png``.
"""

from __future__ import annotations

import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from mtlshare.app.build import build_model, require_data_source
from mtlshare.app.figures import draw
from mtlshare.app.forecast_intervals import Calibration
from mtlshare.app.forecast_methods import baseline_forecast
from mtlshare.app.forecast_pool import Trainings, neural_forecasts
from mtlshare.app.forecast_report import (
    COLUMNS,
    SCARCITY_COLUMNS,
    forecast_markdown,
    rows_csv,
    targets,
)
from mtlshare.app.forecast_select import (
    Problems,
    candidate_configs,
    candidate_named,
    candidate_scores,
    choose,
    needed_origins,
)
from mtlshare.app.jobs import available_cores
from mtlshare.config import Config
from mtlshare.data.daily import ForecastView
from mtlshare.errors import ConfigError, DataError, MtlshareError
from mtlshare.evaluation.forecast import forecast_metrics, mase_scale, summarize
from mtlshare.evaluation.forecast_plots import plot_forecast, plot_scarcity
from mtlshare.evaluation.intervals import coverage, interval
from mtlshare.forecasting.baselines import ProphetUnavailable
from mtlshare.forecasting.config import METRICS, NEURAL, STATISTICAL, ForecastConfig
from mtlshare.forecasting.statistical import StatsforecastUnavailable, fitted_stretch
from mtlshare.training.folder import RESULTS, RunFolder

FORECASTS = "forecasts.csv"
SCORES = (*METRICS, "coverage", "width")  # the per-origin scores averaged over the origins
LABELS = {"prophet": "Prophet", "autoets": "AutoETS", "autoarima": "AutoARIMA"}
SCARCITY = "scarcity.csv"
Bounds = dict[str, list[tuple[np.ndarray, np.ndarray]]]  # per method, (lower, upper) per seed


class Study:
    """One forecasting study's state while it runs: the chosen settings, every method's
    forecasts and errors, what was skipped and how long each part took."""

    def __init__(self, cfg: Config, folder: RunFolder, problems: Problems, progress: bool) -> None:
        self.cfg = cfg
        self.fc: ForecastConfig = cfg.experiments["forecast"]
        self.folder = folder
        self.problems = problems
        self.progress = progress
        self.candidates = candidate_configs(cfg)
        self.scores: dict[str, dict[str, dict[str, float]]] = {}
        self.chosen: dict[str, dict[str, str]] = {}
        self.skipped: dict[str, str] = {}
        self.seconds: dict[str, float] = {}
        self.trainings = Trainings(self.fc.jobs or available_cores(), problems.base_dir)
        self.calibration = Calibration(cfg, problems, self.candidates, self.trainings)

    def say(self, text: str) -> None:
        """A progress line, on stderr as the training loop's are (stdout is the caller's)."""
        if self.progress:
            print(f"mtlshare: {text}", file=sys.stderr, flush=True)

    def select(self) -> None:
        swept = self.fc.scarcity_methods if self.fc.histories else []
        neural = [m for m in NEURAL if m in self.fc.methods or m in swept]
        started = time.perf_counter()
        self.scores = candidate_scores(
            self.cfg, self.candidates, neural, self.problems, self.say, self.trainings
        )
        horizon = self.cfg.data.horizon
        for origin in self.fc.origins:
            self.chosen[origin] = {
                m: choose(self.fc, horizon, self.candidates, self.scores, m, origin) for m in neural
            }
        self.seconds["validation"] = round(time.perf_counter() - started, 3)
        if self.calibration.enabled:
            self.trainings.prefetch(self.calibration.neural_trainings(self.chosen))
        self.trainings.prefetch(self.neural_trainings())

    def neural_trainings(self) -> list[tuple[str, Config, str]]:
        """Every training of the test origins and then of the scarcity sweep, in the order the
        study asks for them (handed to the workers ahead of need)."""
        fc = self.fc
        out = []
        parts = [(fc.methods, None), *((fc.scarcity_methods, d) for d in fc.histories)]
        for methods, days in parts:
            for origin in fc.origins:
                for method in (m for m in methods if m in NEURAL):
                    changes = self.candidates[self.chosen[origin][method]]
                    at = self.problems.config(origin, changes, days)
                    out += [(method, at.replace(seed=seed), fc.target) for seed in fc.seeds]
        return out

    def forecasts(
        self, origin: str, methods: list[str], history: int | None = None
    ) -> tuple[ForecastView, dict[str, list[np.ndarray]], dict[str, Any]]:
        """Every method's forecasts at ``origin`` (one per seed for the neural methods), the view
        of the data they forecast, and per neural method its candidate and training runs."""
        fc = self.fc
        base = self.problems.config(origin, {}, history)
        view: ForecastView = self.problems.get(base).meta["forecast"]
        out: dict[str, list[np.ndarray]] = {}
        about: dict[str, Any] = {}
        for method in methods:
            if method in NEURAL:
                name = self.chosen[origin][method]
                at = self.problems.config(origin, self.candidates[name], history)
                problem = self.problems.get(at)
                run = neural_forecasts(method, at, problem, fc.target, fc.seeds, self.trainings)
                out[method] = run.forecasts
                about[method] = {"candidate": name, "runs": run.runs}
            elif method not in self.skipped:
                try:
                    started = time.perf_counter()
                    holiday = self.cfg.data.holiday_column
                    out[method] = [baseline_forecast(method, view, fc.target, fc, holiday)]
                    about[method] = {"seconds": round(time.perf_counter() - started, 3)}
                except (ProphetUnavailable, StatsforecastUnavailable) as e:
                    self.skipped[method] = str(e)
                    label = LABELS.get(method, method)
                    print(f"mtlshare: {label} skipped: {e}", file=sys.stderr, flush=True)
        return view, out, about

    def score(
        self,
        view: ForecastView,
        forecasts: dict[str, list[np.ndarray]],
        about: dict[str, Any],
        bounds: Bounds | None = None,
    ) -> dict[str, dict[str, Any]]:
        """Per method: the metrics at this origin (means over seeds), with each seed's, and with
        ``bounds`` the intervals' coverage and mean width."""
        actual = view.actual(self.fc.target)
        scale = mase_scale(view.seen(self.fc.target)[1], self.fc.season)
        rows = {}
        for name, runs in forecasts.items():
            each = [forecast_metrics(actual, r, scale) for r in runs]
            if bounds and name in bounds:
                for metrics, (lower, upper) in zip(each, bounds[name], strict=True):
                    metrics.update(coverage(actual, lower, upper))
            row: dict[str, Any] = {k: float(np.mean([s[k] for s in each])) for k in each[0]}
            if name in NEURAL:
                row["seeds"] = each
            rows[name] = {**row, **about.get(name, {})}
        return rows

    def day_rows(
        self,
        view: ForecastView,
        origin: str,
        forecasts: dict[str, list[np.ndarray]],
        bounds: Bounds | None = None,
    ) -> list[dict[str, str]]:
        actual = view.actual(self.fc.target)
        table = []
        for name, runs in forecasts.items():
            for k, values in enumerate(runs):
                seed = str(self.fc.seeds[k]) if name in NEURAL else ""
                rows = [
                    {
                        "date": day.isoformat(),
                        "series": self.fc.target,
                        "method": name,
                        "seed": seed,
                        "origin": origin,
                        "forecast": repr(float(v)),
                        "actual": "" if np.isnan(a) else repr(float(a)),
                    }
                    for day, v, a in zip(view.future_dates, values, actual, strict=True)
                ]
                if bounds and name in bounds:
                    lower, upper = bounds[name][k]
                    for row, lo, hi in zip(rows, lower, upper, strict=True):
                        row["lower"], row["upper"] = repr(float(lo)), repr(float(hi))
                table += rows
        return table

    def bounds(
        self, view: ForecastView, origin: str, forecasts: dict[str, list[np.ndarray]]
    ) -> Bounds | None:
        """Each method's (lower, upper) per forecast, calibrated for ``origin``, never below 0
        for a target without negative values; ``None`` without intervals."""
        if not self.calibration.enabled:
            return None
        seen = np.asarray(view.seen(self.fc.target)[1], dtype=np.float64)
        floor = 0.0 if np.all(seen[~np.isnan(seen)] >= 0) else None
        out: Bounds = {}
        for name, runs in forecasts.items():
            candidate = self.chosen[origin][name] if name in NEURAL else ""
            widths = self.calibration.widths(name, candidate, origin, view)
            out[name] = [interval(r, widths, floor) for r in runs]
        return out

    def test(self) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, str]]]:
        """Every method at every test origin: per method its rows, and ``forecasts.csv``."""
        started = time.perf_counter()
        per: dict[str, list[dict[str, Any]]] = {}
        table: list[dict[str, str]] = []
        for origin in self.fc.origins:
            view, forecasts, about = self.forecasts(origin, self.fc.methods)
            bounds = self.bounds(view, origin, forecasts)
            for name, row in self.score(view, forecasts, about, bounds).items():
                per.setdefault(name, []).append({"origin": origin, **row})
            table += self.day_rows(view, origin, forecasts, bounds)
            first_seed = {n: f[0] for n, f in forecasts.items()}
            draw(self.plot_path(origin), self.plot, view, origin, first_seed, bounds)
            self.say(f"test origin {origin}: {len(forecasts)} methods")
        self.seconds["test"] = round(time.perf_counter() - started, 3)
        return per, table

    def plot_path(self, origin: str) -> Path:
        """Where the forecasts from ``origin`` are drawn."""
        return self.folder.path / f"forecast_{origin}.png"

    def plot(
        self,
        view: ForecastView,
        origin: str,
        forecasts: dict[str, np.ndarray],
        bounds: Bounds | None = None,
    ) -> None:
        """The forecasts from ``origin`` (the networks' first seed, said in the title), with the
        first method's interval."""
        target = self.fc.target
        first = next(iter(forecasts), None)
        band = (first, *bounds[first][0]) if bounds and first in bounds else None
        shown = slice(max(0, view.origin - self.fc.plot_days), view.origin)
        days = view.history_days[target]
        plot_forecast(
            self.plot_path(origin),
            view.frame.dates[shown],
            view.frame.values[target][shown],
            view.future_dates,
            view.actual(target),
            forecasts,
            f"{target}: {view.horizon}-day forecast from {origin} ({days} days of its history)",
            band=band,
            seed=self.fc.seeds[0] if set(NEURAL) & set(forecasts) else None,  # the networks' first
            target=target,
            interval=self.fc.interval or None,
        )

    def scarcity(self) -> tuple[dict[str, Any], list[dict[str, str]]]:
        """The scarcity sweep: mean MAE over the test origins per method and history length."""
        started = time.perf_counter()
        fc = self.fc
        methods = [m for m in fc.scarcity_methods if m not in self.skipped]
        table: dict[str, dict[str, Any]] = {m: {} for m in methods}
        rows: list[dict[str, str]] = []
        for days in fc.histories:
            per: dict[str, list[dict[str, Any]]] = {}
            for origin in fc.origins:
                view, forecasts, about = self.forecasts(origin, methods, days)
                for name, row in self.score(view, forecasts, about).items():
                    per.setdefault(name, []).append({"origin": origin, **row})
                days_rows = self.day_rows(view, origin, forecasts)
                rows += [{**r, "history": str(days)} for r in days_rows]
            for name, got in per.items():
                mean = summarize([{"mae": r["mae"]} for r in got])["mae"]
                table[name][str(days)] = {"mae": mean, "per_origin": got}
            self.say(f"scarcity: {days} days of history done")
        table = {m: t for m, t in table.items() if t}
        self.seconds["scarcity"] = round(time.perf_counter() - started, 3)
        return {"histories": list(fc.histories), "methods": table}, rows


def check_inputs(cfg: Config, problems: Problems) -> None:
    """What can be checked before ``--out`` is made: every candidate (and history length of the
    sweep) is a valid config, the data around the first test origin builds for each, and so
    does the multi-task model (a mechanism's settings name these series and fit this trunk)."""
    fc: ForecastConfig = cfg.experiments["forecast"]
    candidates = candidate_configs(cfg)
    first = fc.origins[0]
    # the config's own [data] first: what is wrong there is no candidate's doing, and a
    # candidate is named only for what its own overrides break
    for name, changes in [("", {}), *candidates.items()]:
        where = _blamed(name, changes, candidates)
        for days in [None, *fc.histories]:
            at = problems.config(first, changes, days)
            try:
                at.data.validate()
            except ConfigError as e:
                extra = f" (forecast.histories: {days} days)" if days is not None else ""
                raise ConfigError(f"{where}{e}{extra}") from None
    for name, changes in candidates.items():
        where = _blamed(name, changes, candidates)
        at = problems.config(first, changes)
        problem = problems.get(at)
        view: ForecastView = problem.meta["forecast"]
        if fc.target not in view.history:
            raise ConfigError(
                f"forecast.target: {fc.target!r} is not a series of the data; series "
                f"are {list(view.history)}"
            )
        sweep = fc.scarcity_methods if fc.histories else []
        if "multitask" in (*fc.methods, *sweep) and len(view.history) < 2:
            raise ConfigError(
                f"forecast.methods: 'multitask' shares between series, but the data has one "
                f"({fc.target!r}): add a related series to data.series, or leave 'multitask' out"
            )
        if "multitask" in (*fc.methods, *sweep):  # the mechanism's settings fit these series
            try:
                build_model(at, problem)
            except ConfigError as e:
                if where:  # the config's own error (raised here unnamed), or the candidate's
                    base = problems.config(first, {})
                    build_model(base, problems.get(base))
                raise ConfigError(f"{where}{e}") from None
        _check_every_origin(cfg, problems, changes)


def _blamed(name: str, changes: dict[str, Any], candidates: dict[str, Any]) -> str:
    """The prefix of an error that candidate ``name``'s overrides cause: none where it
    overrides nothing (its errors are the config's, as are those of the config as it is when
    no candidate is listed). A sole candidate is named too: its override's error named the
    config's own line of that key, which holds another value."""
    if not name or not changes:
        return ""
    return candidate_named(list(candidates).index(name), name)


def _check_every_origin(cfg: Config, problems: Problems, changes: dict[str, Any]) -> None:
    """The data builds around every origin the study reads (each test origin, with each history
    of the sweep, and the validation origins selection or the intervals read), and AutoETS and
    AutoARIMA have their two seasons without a gap there: a problem at the last origin is found
    before --out is made, not after the study has trained for the ones before it. The problems
    are built once: the study reuses them."""
    fc: ForecastConfig = cfg.experiments["forecast"]
    horizon = cfg.data.horizon
    reads: list[tuple[str, str, int | None, list[str]]] = []  # kind, origin, history, methods
    for days in [None, *fc.histories]:
        methods = fc.methods if days is None else fc.scarcity_methods
        reads += [("test origin", o, days, methods) for o in fc.origins]
    by_origins = fc.select == "origins" and len(fc.candidates) >= 2
    calibrated = fc.interval > 0 and bool(fc.validation_origins)
    if by_origins or calibrated:
        checked = needed_origins(fc, horizon)
        methods = fc.methods if calibrated else []
        reads += [("validation origin", o, None, methods) for o in checked]
    keys = {"validation origin": " (forecast.validation_origins)", "test origin": ""}
    for kind, origin, days, methods in reads:
        extra = f" (forecast.histories: {days} days)" if days is not None else keys[kind]
        try:
            view: ForecastView = problems.get(problems.config(origin, changes, days)).meta[
                "forecast"
            ]
        except DataError as e:  # as candidate_scores says it, hint included
            hint = ""
            if kind == "validation origin" and by_origins:
                hint = "; a target with no history there can choose on its dev days: "
                hint += 'forecast.select = "dev"'
            raise MtlshareError(f"{kind} {origin}{extra}: {e}{hint}") from None
        history = view.seen(fc.target)[1]
        for method in (m for m in methods if m in STATISTICAL):
            try:
                fitted_stretch(method, history, fc.season, fc.target)
            except DataError as e:
                raise DataError(
                    f"{kind} {origin}{extra}: {view.frame.path}: {e}: fill the gap or leave "
                    f"{method!r} out of the methods"
                ) from None


def _clear_outputs(folder: RunFolder) -> None:
    """Remove what an interrupted study left in its folder (its plots), so that a study run
    again there shows only its own files."""
    for pattern in ("forecast_*.png", "scarcity.png", SCARCITY, FORECASTS, "forecast.md"):
        for path in folder.path.glob(pattern):
            path.unlink()


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
    require_data_source(cfg)  # "custom" has no [data] to read the horizon from
    # a source without a horizon (synthetic, conll) is refused by validate, naming the key
    fc.validate(cfg.data_source, getattr(cfg.data, "horizon", 1))
    if resume:
        raise MtlshareError(
            "--resume is not supported by the forecast experiment (it keeps no checkpoint): "
            "run it again without --resume"
        )
    folder = RunFolder(out_dir)
    if folder.finished:
        raise MtlshareError(f"{folder.path}: holds an earlier run; choose another --out")
    problems = Problems(cfg, base_dir if base_dir is not None else cfg.base_dir)
    check_inputs(cfg, problems)  # the data, the target and every candidate, before --out
    if fc.interval > 0 and not fc.validation_origins:
        warnings.warn(
            f"no prediction intervals: forecast.interval = {fc.interval} is calibrated on "
            "forecast.validation_origins, and there are none",
            stacklevel=2,
        )
    started, cpu = time.perf_counter(), time.process_time()
    folder.start(cfg.to_toml(), resume=False)
    _clear_outputs(folder)
    study: Study | None = None
    try:
        study = Study(cfg, folder, problems, progress)
        study.select()
        per, table = study.test()
        results: dict[str, Any] = {
            "experiment": "forecast",
            "target": fc.target,
            "origins": list(fc.origins),
            "validation_origins": list(fc.validation_origins),
            "horizon": cfg.data.horizon,
            "history_days": cfg.data.history.get(fc.target),
            "seeds": list(fc.seeds),
            "methods": {
                name: {
                    **summarize([{k: r[k] for k in SCORES if k in r} for r in rows]),
                    "per_origin": rows,
                }
                for name, rows in per.items()
            },
            "interval": fc.interval if study.calibration.enabled else None,
            "selection": {
                "candidates": study.candidates,
                "select": fc.select,
                "select_last": fc.select_last,
                # per method and candidate: by validation origin, the target's MAE there; with
                # select = "dev", by test origin, its dev MAE in the network's space
                "validation_mae" if fc.select == "origins" else "dev_mae": study.scores,
                "chosen": study.chosen,
            },
            "skipped": study.skipped,
        }
        results["targets"] = targets(results)
        if fc.histories:
            results["scarcity"], rows = study.scarcity()
            folder.write_text(SCARCITY, rows_csv(rows, SCARCITY_COLUMNS))
            scarce = results["scarcity"]
            drawing = folder.path / "scarcity.png"
            draw(drawing, plot_scarcity, drawing, scarce, fc.target)
        results["trainings"] = dict(study.trainings.counts)  # networks trained, and where
        results["seconds"] = {
            **study.seconds,
            "total": round(time.perf_counter() - started, 3),
            "cpu": round(time.process_time() - cpu, 3),
        }
        folder.write_text(FORECASTS, rows_csv(table, COLUMNS))
        folder.write_text("forecast.md", forecast_markdown(results))
        folder.write_json(RESULTS, results)
    finally:
        if study is not None:
            study.trainings.close()
        folder.close()
    return results
