"""A task: its name, its kind of output, its loss and its metric.

Mechanisms never look inside a task beyond ``out_dim`` and ``build_head``; the training loop
calls ``loss`` and the evaluation ``predict`` then ``evaluate``. Missing labels (NaN regression
targets, class targets equal to -100) are excluded from both. A classification task's head is
a linear layer (softmax over its logits) or a linear-chain CRF over a sequence (``head = "crf"``,
pytorch-crf); the CRF's loss and decoding need the head itself, which the caller passes in.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from mtlshare.errors import ConfigError, DataError, MtlshareError, one_of, short_repr
from mtlshare.models.crf import CRFHead
from mtlshare.models.tying import TiedHead
from mtlshare.tasks.metrics import IGNORE_INDEX, LABELLED_METRICS, METRICS, observed

KINDS = ("regression", "classification")
CLASS_METRICS = ("accuracy", "span_f1")  # the library's metrics of class ids
VALUE_METRICS = ("mse", "mae")  # and of values
HEADS = ("linear", "crf", "affine")
# a task or series name is a folder name in a comparison and a key of the model's modules:
# letters, digits, "_", "-" and inner spaces; no dots, slashes or leading hyphen
NAME = re.compile(r"\w(?:[\w -]{0,62}[\w])?")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a task (None when it can)."""
    if not isinstance(name, str):
        return f"expected a string, got {name!r}"
    if NAME.fullmatch(name) is None:
        return (
            f"{name!r} cannot name a task: use 1-64 letters, digits, '_', '-' or inner spaces "
            "(it becomes a folder name and a key of the model; no '.', '/' or '..')"
        )
    return None


def check_name(name: object, where: str = "task") -> str:
    """``name`` when it can name a task, else a one-line ``ConfigError``."""
    problem = name_problem(name)
    if problem is not None:
        raise ConfigError(f"{where}: {problem}")
    assert isinstance(name, str)
    return name


def task_table(name: str, raw: object, keys: Sequence[str]) -> dict[str, Any]:
    """``raw``, the table ``data.tasks.NAME`` of a config, when ``name`` can name a task and
    the table holds only ``keys``; else a one-line ``ConfigError`` naming the key."""
    where = f"data.tasks.{name}"
    check_name(name, "data.tasks")
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a table, got {raw!r}")
    unknown = [k for k in raw if k not in keys]
    if unknown:
        raise ConfigError(f"unknown key {where}.{unknown[0]}; allowed: {', '.join(keys)}")
    return raw


@dataclass(frozen=True)
class Task:
    """One task of a multi-task problem.

    ``kind`` is ``"regression"`` (targets (N,) or (N, T), float, NaN = missing, head outputs one
    value per position) or ``"classification"`` (targets long, -100 = missing, head outputs
    ``out_dim`` logits per position). ``metric`` names a function in ``tasks.metrics``;
    ``labels`` names the classes (needed by span F1, which reads them as IOB1/IOB2/BIOES tags).
    ``gold_only`` names classes that occur only in dev or test targets (tags never seen in
    training): ids ``out_dim``, ``out_dim + 1``, ...; no prediction can match them, so they
    count as errors, as they would in the file's own gold.
    ``head`` is "linear", "affine" (each output is ``(1 + s) * x + b`` of the matching input,
    ``s`` and ``b`` starting at zero: a per-task calibration of a shared output that stays the
    shared output where the task has nothing to learn from; needs ``in_dim == out_dim``) or, for
    class sequences (N, T), "crf".
    ``target_scale`` = ``(mean, std)`` (regression only): targets stay in their own units in the
    data, the head learns them standardised, ``(y - mean) / std`` (so that tasks of different
    sizes pull alike on what they share), and ``predict`` hands back ``out * std + mean``: the
    loss is in standard units, predictions and metrics in the targets' own (the ``table``
    source sets it from the training rows).
    """

    name: str
    kind: str
    out_dim: int = 1
    metric: str = "mse"
    head: str = "linear"
    labels: tuple[str, ...] = ()
    tie_embedding: int = 0  # > 0: classes are the input words; output tied, this wide
    # a linear head that starts at zero: for targets that are corrections to a base forecast
    # (``daily_windows``), the untrained model forecasts the base, and a step the task never
    # observes stays there instead of at a random offset
    zero_init: bool = False
    gold_only: tuple[str, ...] = ()
    target_scale: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        check_name(self.name)
        if self.kind not in KINDS:
            raise ConfigError(
                f"task {self.name!r}: kind {self.kind!r} is not one of {one_of(KINDS)}"
            )
        if self.metric not in METRICS and self.metric not in LABELLED_METRICS:
            known = sorted([*METRICS, *LABELLED_METRICS])
            raise ConfigError(
                f"task {self.name!r}: unknown metric {self.metric!r}; known: {known} (a metric "
                "of your own: mtlshare.register_metric, in this process)"
            )
        if self.out_dim < 1:
            raise ConfigError(f"task {self.name!r}: out_dim must be >= 1, got {self.out_dim}")
        scores = CLASS_METRICS if self.kind == "regression" else VALUE_METRICS
        if self.metric in scores:
            named = {*METRICS, *(LABELLED_METRICS if self.labels else ())}  # labels: the tags'
            fitting = sorted(named - set(scores))
            raise ConfigError(
                f"task {self.name!r}: metric {self.metric!r} scores "
                f"{'class ids' if self.kind == 'regression' else 'values'}, not a {self.kind} "
                f"task's predictions; use one of {fitting}"
            )
        if self.head not in HEADS:
            raise ConfigError(
                f"task {self.name!r}: head {self.head!r} is not one of {one_of(HEADS)}"
            )
        if self.head == "crf" and self.kind != "classification":
            raise ConfigError(f"task {self.name!r}: a crf head needs a classification task")
        if self.head == "affine" and self.kind != "regression":
            raise ConfigError(f"task {self.name!r}: an affine head needs a regression task")
        if self.target_scale is not None:
            check_scale(self.name, self.kind, self.target_scale)
        if self.metric in LABELLED_METRICS and len(self.labels) != self.out_dim:
            raise ConfigError(
                f"task {self.name!r}: metric {self.metric!r} needs one label per class "
                f"({self.out_dim}), got {len(self.labels)}"
            )

    @property
    def higher_is_better(self) -> bool:
        if self.metric in LABELLED_METRICS:
            return LABELLED_METRICS[self.metric][1]
        return METRICS[self.metric][1]

    def build_head(self, in_dim: int, reads: str = "the last width of trunk.hidden") -> nn.Module:
        """The task's output layer: a linear map from the representation it reads, followed
        by a CRF's transition scores when ``head = "crf"``. ``reads`` names the setting that
        gives that representation its width, for the affine head's error."""
        if self.head == "crf":
            return CRFHead(in_dim, self.out_dim)
        if self.head == "affine":
            if in_dim != self.out_dim:
                raise ConfigError(
                    f"task {self.name!r}: an affine head reads one input per output, but the "
                    f"trunk gives {in_dim} features for {self.out_dim} outputs (set {reads} "
                    f"to {self.out_dim})"
                )
            return AffineHead(in_dim)
        if self.tie_embedding:  # tied to the input embedding once the model is built
            return TiedHead(in_dim, self.out_dim, self.tie_embedding)
        head = nn.Linear(in_dim, self.out_dim)
        if self.zero_init:
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        return head

    def predictions(self, head_out: Tensor) -> Tensor:
        """What the metric compares with the target: values for regression, logits otherwise."""
        return self._unscaled(head_out.squeeze(-1)) if self.kind == "regression" else head_out

    def predict(self, head_out: Tensor, target: Tensor, head: nn.Module | None = None) -> Tensor:
        """Predictions shaped like ``target``: values for regression, class ids otherwise (the
        CRF's best path over the observed positions; -100 elsewhere)."""
        if self.kind == "regression":
            return self._unscaled(head_out.squeeze(-1))
        if self.head == "crf":
            return _crf(head, self.name).decode(head_out, observed(target))
        return head_out.argmax(-1)

    def evaluate(self, pred: Tensor, target: Tensor) -> float:
        """The metric of ``predict``'s output against ``target``, missing labels excluded: a
        float (a registered metric's 0-d tensor or numpy number made one, as results.json
        holds only numbers; anything else is a one-line error naming the metric)."""
        if self.metric in LABELLED_METRICS:
            value = LABELLED_METRICS[self.metric][0](pred, target, self.labels + self.gold_only)
        else:
            value = METRICS[self.metric][0](pred, target)
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError, RuntimeError):
            raise MtlshareError(
                f"task {self.name!r}: metric {self.metric!r} gave {type(value).__name__} "
                f"{short_repr(value)}, not a number"
            ) from None

    def loss(self, head_out: Tensor, target: Tensor, head: nn.Module | None = None) -> Tensor:
        """Mean loss over observed targets; an all-missing batch gives a zero with a graph.
        A CRF head gives the negative log-likelihood of the gold paths per observed token."""
        if self.head == "crf":
            return _crf(head, self.name).nll(head_out, target)
        if self.kind == "regression":
            pred = head_out.squeeze(-1)
            if pred.shape != target.shape:  # else ``pred - target`` broadcasts, silently wrong
                per = "row (N,) or per position (N, T)"
                if self.out_dim > 1:
                    per = f"row and output (N, {self.out_dim}) or per position and output"
                raise DataError(
                    f"task {self.name!r}: regression targets of shape {tuple(target.shape)} do "
                    f"not match the predictions' {tuple(pred.shape)}; give one value per {per}"
                )
            if self.target_scale is not None:  # the head learns standard units
                mean, std = self.target_scale
                target = (target - mean) / std
            keep = observed(target)
            if not bool(keep.any()):  # all missing, or an empty batch
                return pred.sum() * 0.0
            if bool(keep.all()):  # nothing missing: the same sum without the masking ops
                diff = pred - target
                return (diff**2).sum() / keep.sum()
            # where() rather than indexing keeps NaN targets out of the backward pass entirely
            safe_target = torch.where(keep, target, torch.zeros_like(target))
            diff = torch.where(keep, pred - safe_target, torch.zeros_like(pred))
            return (diff**2).sum() / keep.sum()
        logits = head_out.reshape(-1, head_out.shape[-1])
        flat = target.reshape(-1)
        if not bool((flat != IGNORE_INDEX).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, flat, ignore_index=IGNORE_INDEX)

    def _unscaled(self, values: Tensor) -> Tensor:
        """A regression head's outputs in the targets' own units (``target_scale``)."""
        if self.target_scale is None:
            return values
        mean, std = self.target_scale
        return values * std + mean

    def score(self, head_out: Tensor, target: Tensor, head: nn.Module | None = None) -> float:
        """``evaluate(predict(...))`` in one call."""
        return self.evaluate(self.predict(head_out, target, head), target)


def check_scale(name: str, kind: str, scale: object) -> None:
    """A task's ``target_scale``: a regression task's ``(mean, std)``, finite, ``std > 0``;
    else a one-line ``ConfigError``."""
    if kind != "regression":
        raise ConfigError(f"task {name!r}: target_scale standardises regression targets only")
    fits = (
        isinstance(scale, tuple)
        and len(scale) == 2
        and all(isinstance(v, int | float) and math.isfinite(v) for v in scale)
        and scale[1] > 0
    )
    if not fits:
        raise ConfigError(
            f"task {name!r}: target_scale must be (mean, std), finite with std > 0, got {scale!r}"
        )


class AffineHead(nn.Module):
    """``(1 + scale) * x + shift`` per feature, both starting at zero: (..., d) -> (..., d).

    Written around 1 rather than as a plain scale so that weight decay pulls it towards the
    shared output, not towards zero, on outputs the task never observes."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(dim))
        self.shift = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.scale * x + self.shift


def _crf(head: nn.Module | None, task: str) -> CRFHead:
    if not isinstance(head, CRFHead):
        raise TypeError(f"task {task!r} has a crf head: pass the head module to loss and predict")
    return head
