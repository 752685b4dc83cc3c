"""Metrics as pure functions over predictions and targets, with missing labels excluded.

A missing label is NaN for regression targets and ``IGNORE_INDEX`` (-100) for class targets;
both are left out of every metric, as they are left out of the loss.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from mtlshare.tasks.tags import span_scores

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


def accuracy(pred: Tensor, target: Tensor) -> float:
    """Share of observed targets whose class is right. ``pred``: class ids shaped like
    ``target``, or logits (..., classes) whose arg-max is taken."""
    keep = observed(target)
    if not bool(keep.any()):
        return float("nan")
    ids = pred.argmax(-1) if pred.dim() == target.dim() + 1 else pred
    # counted in integers: a float32 mean is off in the eighth digit on 46,435 tokens
    return int((ids[keep] == target[keep]).sum()) / int(keep.sum())


def span_f1(pred: Tensor, target: Tensor, labels: Sequence[str]) -> float:
    """Micro span F1 as the CoNLL evaluation script (conlleval) computes it, over sequences of
    class ids (N, T) named by ``labels`` (IOB1, IOB2 or BIOES tags); missing positions (target
    -100) end each sequence. NaN when nothing is observed."""
    keep = observed(target)
    if not bool(keep.any()):
        return float("nan")
    gold, guess = [], []
    for p_row, t_row, k_row in zip(pred.tolist(), target.tolist(), keep.tolist(), strict=True):
        gold.append([labels[t] for t, k in zip(t_row, k_row, strict=True) if k])
        guess.append([labels[p] for p, k in zip(p_row, k_row, strict=True) if k])
    return span_scores(gold, guess).f1


METRICS: dict[str, tuple[Callable[[Tensor, Tensor], float], bool]] = {
    "mse": (mse, False),
    "mae": (mae, False),
    "accuracy": (accuracy, True),
}
"""name -> (function, higher_is_better)."""

LABELLED_METRICS: dict[str, tuple[Callable[[Tensor, Tensor, Sequence[str]], float], bool]] = {
    "span_f1": (span_f1, True),
}
"""Metrics that also read the class names: name -> (function, higher_is_better)."""
