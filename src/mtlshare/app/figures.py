"""Figures as extras: a figure that cannot be drawn is a warning, never lost results.

A run writes its mechanism's figures just before ``results.json``, a comparison draws its dev
curves after its tables, the demo its plot after both comparisons, the forecasting study a plot
per test origin and the scarcity plot before its results. Each goes through ``draw``, so a
plotting error (a matplotlib fault, a run folder read back without ``metrics.jsonl``) costs
that figure, with a one-line warning naming it, and the results are written as usual. The
``mtlshare curves`` command, whose only output is a figure, does not use it: there the error
is the answer.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any, TypeVar

T = TypeVar("T")


def draw(what: object, figure: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
    """``figure(*args, **kwargs)``, or ``None`` and a warning naming ``what`` (a path, or the
    figures of a folder) and the error when it raises."""
    try:
        return figure(*args, **kwargs)
    except Exception as err:  # a figure must never cost the results beside it
        warnings.warn(f"{what}: not drawn ({type(err).__name__}: {err})", stacklevel=2)
        return None
