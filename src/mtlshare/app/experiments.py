"""What runs each experiment kind a config can name (``experiment = "..."``, registered with
its config section in ``mtlshare.registry.EXPERIMENTS``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mtlshare.app.forecast import run_forecast
from mtlshare.app.run import run
from mtlshare.registry import EXPERIMENTS

RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {"train": run, "forecast": run_forecast}


def runner(name: str) -> Callable[..., dict[str, Any]]:
    """The function that runs experiment ``name`` (an unknown name is a one-line error)."""
    EXPERIMENTS[name]  # the registry's error lists the known kinds
    return RUNNERS[name]
