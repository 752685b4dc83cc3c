"""Metrics as pure functions over predictions and targets, with missing labels excluded.

A missing label is NaN for regression targets and ``IGNORE_INDEX`` (-100) for class targets;
both are left out of every metric, as they are left out of the loss.
"""

from __future__ import annotations

import torch
from torch import Tensor

IGNORE_INDEX = -100


def observed(target: Tensor) -> Tensor:
    """Boolean mask of the observed (non-missing) entries of ``target``."""
    if target.is_floating_point():
        return ~torch.isnan(target)
    return target != IGNORE_INDEX


def mse(pred: Tensor, target: Tensor) -> float:
    """Mean squared error over observed entries; NaN when nothing is observed."""
    keep = observed(target)
    if not bool(keep.any()):
        return float("nan")
    return float(((pred[keep] - target[keep]) ** 2).mean())


def mae(pred: Tensor, target: Tensor) -> float:
    """Mean absolute error over observed entries; NaN when nothing is observed."""
    keep = observed(target)
    if not bool(keep.any()):
        return float("nan")
    return float((pred[keep] - target[keep]).abs().mean())


def accuracy(logits: Tensor, target: Tensor) -> float:
    """Share of observed targets whose arg-max class is right. ``logits``: (..., classes)."""
    keep = observed(target)
    if not bool(keep.any()):
        return float("nan")
    return float((logits.argmax(-1)[keep] == target[keep]).float().mean())


METRICS = {"mse": (mse, False), "mae": (mae, False), "accuracy": (accuracy, True)}
"""name -> (function, higher_is_better)."""
