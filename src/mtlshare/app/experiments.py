"""What runs each experiment kind a config can name (``experiment = "..."``, registered with
its config section in ``mtlshare.registry.EXPERIMENTS``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from mtlshare.app.forecast import run_forecast
from mtlshare.app.run import run
from mtlshare.config import CUSTOM, Config, check_config
from mtlshare.errors import ConfigError
from mtlshare.registry import EXPERIMENTS

RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"train": run, "forecast": run_forecast}


def runner(name: str) -> Callable[..., dict[str, Any]]:
    """The function that runs experiment ``name`` (an unknown name is a one-line error)."""
    EXPERIMENTS[name]  # the registry's error lists the known kinds
    if name not in RUNNERS:  # registered from outside the library, which runs only its own
        raise ConfigError(
            f"experiment {name!r} is registered but nothing runs it: mtlshare runs only its "
            f"own kinds ({', '.join(RUNNERS)})"
        )
    return RUNNERS[name]


def run_experiment(cfg: Config, out_dir: str | Path, **options: Any) -> dict[str, Any]:
    """What ``mtlshare run`` does with ``cfg``, from Python (``mtlshare.run``): the experiment
    ``cfg.experiment`` names (``"train"``: ``mtlshare.app.run.run``; ``"forecast"``: the
    study), its outputs written to ``out_dir``; returns its results. ``options`` are that
    runner's (``resume``, ``progress``, ``base_dir``: by default the config file's folder;
    for training, ``problem``: data of one's own, for a config whose ``data.source`` is
    ``"custom"``)."""
    check_config(cfg, "mtlshare.run")
    if options.get("problem") is not None and cfg.data_source != CUSTOM:
        raise ConfigError(
            f"mtlshare.run: a problem of one's own is given, but the config reads data source "
            f"{cfg.data_source!r}; set data.source = {CUSTOM!r} (the run's files would name "
            "that source, and evaluate would read it)"
        )
    return runner(cfg.experiment)(cfg, out_dir, **options)
