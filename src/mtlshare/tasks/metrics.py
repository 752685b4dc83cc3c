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


def register_metric(
    name: str,
    fn: Callable[..., float],
    *,
    higher_is_better: bool,
    labelled: bool = False,
) -> None:
    """Make ``name`` a metric a task can name (``Task(metric=name)``, a config task's
    ``metric``): ``fn(pred, target)`` -> float, or ``fn(pred, target, labels)`` with
    ``labelled`` (the class names, as ``span_f1`` reads them). ``pred`` holds class ids for a
    classification task, values for a regression one; ``fn`` should leave out the missing
    labels (``observed(target)``) and give NaN where nothing is observed, as the library's own
    do. It selects the model on dev like any metric, so ``higher_is_better`` must be right.

    A metric lives in the process that registered it: register it again before a run is
    loaded in another process (``load_run``). ``compare``'s worker processes (``jobs`` > 1)
    import the calling script as Python's multiprocessing does, so a registration at the
    script's top level reaches them (keep the rest under ``if __name__ == "__main__":``).
    """
    if not isinstance(name, str) or not name.isidentifier():
        raise ValueError(f"a metric's name must be an identifier, got {name!r}")
    if name in METRICS or name in LABELLED_METRICS:
        raise ValueError(f"metric {name!r} is registered already")
    if not callable(fn):
        raise ValueError(f"metric {name!r}: {fn!r} is not a function")
    if not isinstance(higher_is_better, bool):
        raise ValueError(f"metric {name!r}: higher_is_better must be True or False")
    if labelled:
        LABELLED_METRICS[name] = (fn, higher_is_better)
    else:
        METRICS[name] = (fn, higher_is_better)
