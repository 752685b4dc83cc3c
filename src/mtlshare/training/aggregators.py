"""Gradient aggregators for joint steps, from torchjd (Jacobian descent for multi-objective
optimisation; Quinton and Rey, 2024): each combines the tasks' gradients of the shared
parameters, a matrix of one row per task, into one update.

- ``upgrad``: UPGrad, the mean of each gradient projected onto the dual cone (Quinton and Rey,
  2024);
- ``mgda``: the minimum-norm point of the gradients' convex hull (Desideri 2012; Sener and
  Koltun, NeurIPS 2018);
- ``pcgrad``: each gradient projected off the others it conflicts with, then summed (Yu et al.,
  NeurIPS 2020);
- ``cagrad``: the mean moved towards the worst task within a ball of radius ``cagrad_c`` times
  its norm (Liu et al., NeurIPS 2021);
- ``imtl_g``: equal projections onto every task's unit gradient (Liu et al., ICLR 2021);
- ``aligned_mtl``: the gradients' principal components aligned (Senushkin et al., CVPR 2023);
- ``dualproj``: the mean projected onto the dual cone (Quinton and Rey, 2024);
- ``graddrop``: signs kept at random by their purity (Chen et al., NeurIPS 2020);
- ``nash_mtl``: the Nash bargaining solution (Navon et al., ICML 2022).

``cagrad`` and ``nash_mtl`` solve with cvxpy: the extra ``pip install -e ".[joint-solvers]"``;
the others need ``pip install -e ".[joint]"`` (torchjd with its quadprog projector).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError

JOINT = 'pip install -e ".[joint]"'
SOLVERS = 'pip install -e ".[joint-solvers]"'
# name -> (torchjd class, the extra it needs, its keyword arguments from (tasks, cagrad_c))
AGGREGATORS: dict[str, tuple[str, str, Callable[[int, float], dict[str, Any]]]] = {
    "upgrad": ("UPGrad", JOINT, lambda n, c: {}),
    "mgda": ("MGDA", JOINT, lambda n, c: {}),
    "pcgrad": ("PCGrad", JOINT, lambda n, c: {}),
    "cagrad": ("CAGrad", SOLVERS, lambda n, c: {"c": c}),
    "imtl_g": ("IMTLG", JOINT, lambda n, c: {}),
    "aligned_mtl": ("AlignedMTL", JOINT, lambda n, c: {}),
    "dualproj": ("DualProj", JOINT, lambda n, c: {}),
    "graddrop": ("GradDrop", JOINT, lambda n, c: {}),
    "nash_mtl": ("NashMTL", SOLVERS, lambda n, c: {"n_tasks": n}),
}


# aggregators whose weights depend on the matrices seen before: Nash-MTL starts each solve from
# its last weights (its warm start), which a resumed run must start from too
STATEFUL = ("nash_mtl",)


def check_aggregator(name: str) -> None:
    """A known aggregator name, else a one-line ``ConfigError`` listing them."""
    if name not in AGGREGATORS:
        raise ConfigError(
            f"weighting.aggregator: {name!r} is not a known aggregator; choose one of "
            f"{', '.join(AGGREGATORS)}"
        )


def make_aggregator(name: str, n_tasks: int, cagrad_c: float = 0.5) -> Callable[[Tensor], Tensor]:
    """The aggregator ``name`` for ``n_tasks`` tasks: a callable from a (tasks, parameters)
    matrix to a vector; a one-line ``ConfigError`` naming the install command when torchjd or
    the solver it needs is missing."""
    check_aggregator(name)
    cls_name, extra, options = AGGREGATORS[name]
    try:
        module = importlib.import_module("torchjd.aggregation")
        aggregator = getattr(module, cls_name)(**options(n_tasks, cagrad_c))
    except ImportError as e:
        raise ConfigError(
            f"weighting.aggregator = {name!r} needs torchjd and its solvers "
            f"({e.name or e} is missing): {extra}"
        ) from None
    return aggregator


def watch_weights(aggregator: Callable[[Tensor], Tensor], sink: Callable[[Tensor], None]) -> None:
    """Hand ``sink`` the weights ``aggregator`` gives the rows of each matrix it aggregates (its
    result is their weighted sum), where it has such weights (every torchjd aggregator here but
    GradDrop: then nothing). Only watches: the aggregation is unchanged."""
    weighting = getattr(aggregator, "weighting", None)
    if isinstance(weighting, nn.Module):
        weighting.register_forward_hook(lambda module, args, out: sink(out))


def _warm_started(aggregator: Callable[[Tensor], Tensor]) -> Any:
    """The part of ``aggregator`` that keeps a warm start (Nash-MTL's weighting), or None."""
    weighting = getattr(aggregator, "weighting", None)
    return weighting if hasattr(weighting, "prvs_alpha") else None


def warm_start(aggregator: Callable[[Tensor], Tensor]) -> Tensor | None:
    """Nash-MTL's warm start, its last weights, in float64: NaN while it is still its initial
    one (float32 ones, which no solve gives), None for an aggregator without one."""
    weighting = _warm_started(aggregator)
    if weighting is None:
        return None
    alpha = weighting.prvs_alpha
    if alpha.dtype != np.float64:  # the initial ones: every solve's weights are float64
        return torch.full((len(alpha),), float("nan"), dtype=torch.float64)
    return torch.from_numpy(np.array(alpha, dtype=np.float64))


def set_warm_start(aggregator: Callable[[Tensor], Tensor], state: Tensor) -> None:
    """Start ``aggregator``'s next solve from ``state`` (from ``warm_start``); NaN leaves its
    initial one. Restored to the bit: the next weights are those of the uncut run."""
    weighting = _warm_started(aggregator)
    if weighting is not None and not bool(state.isnan().any()):
        weighting.prvs_alpha = state.detach().cpu().numpy().astype(np.float64)
