"""Rows of features with several target columns, from a CSV: the classic multi-task table
(MMoE's census data, a shop's customers with a spend and a churn flag, a day's weather with
two kinds of rentals).

The data source ``table`` reads a CSV with a header. ``data.features`` are numeric columns,
standardised with the training rows' mean and standard deviation; ``data.categorical`` columns
are one-hot encoded over the categories the training rows have (sorted; a category only dev,
test or a file to predict has is all zeros, with one warning naming its first line), or, for a
column of ``data.embed`` (``{user = 16}``), read as one id that the network turns into a learned
vector of that size (``mtlshare.models.table_stem``): a column of thousands of categories is
then one input, not thousands of dense one-hot inputs. Every
task is a target column (``[data.tasks.NAME]``: ``column``, ``kind``, ``metric``): a
regression task's values are learned standardised (``Task.target_scale``, fitted on the
training rows), so tasks of different sizes pull alike on what they share, and predicted and
scored in their own units; a classification task's classes are the training rows' values,
sorted. An empty target cell, or one of ``missing_labels`` (``NA``, ``NaN``: any case), is a
missing label, left out of the loss and the metric, never filled; a feature cell cannot be
missing. A class or regression cell that reads like another marker of a missing value
(``NULL``, ``N/A``, ``?``, ...) is named, with ``missing_labels`` as the way to say so.
``train_labels`` below 1 keeps a task's label on that share of its training rows only
(``kept_labels``): how much does sharing give a task with few labels?

Every task reads every row (MMoE's setting: a joint step reads one batch for all tasks). The
rows are split by ``split_column`` (values ``train``, ``dev``, ``test``) or by a shuffle of
their own seed, ``split_seed``, apart from the training seed: ``test_fraction`` of the rows,
then ``dev_fraction``, rounded, the rest training; each split keeps the file's order.
"""

from __future__ import annotations

import math
import warnings
import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.data.table_codec import TableCodec, read_cells
from mtlshare.data.timeseries import (
    LOOKS_MISSING,
    MISSING,
    column_positions,
    csv_header,
    csv_rows,
    parse_number,
)
from mtlshare.errors import ConfigError, DataError, check_seed, data_file, one_of
from mtlshare.models.table_stem import MOST_CATEGORIES, MOST_EMBED
from mtlshare.registry import DATA_SOURCES
from mtlshare.tasks.metrics import IGNORE_INDEX, LABELLED_METRICS
from mtlshare.tasks.task import KINDS, Task, task_table

SPLITS = ("train", "dev", "test")
TASK_KEYS = ("column", "kind", "metric", "train_labels")


@dataclass(frozen=True)
class TargetSpec:
    """A checked ``data.tasks`` table."""

    name: str
    column: str
    kind: str
    metric: str
    train_labels: float = 1.0


def target_spec(name: str, raw: object) -> TargetSpec:
    """The table of task ``name``: ``kind`` (required), ``column`` (default: the task's name),
    ``metric`` (default ``mse`` for regression, ``accuracy`` for classification),
    ``train_labels`` (default 1: the share of training rows whose label the task keeps)."""
    where = f"data.tasks.{name}"
    raw = task_table(name, raw, TASK_KEYS)
    kind = raw.get("kind")
    if kind is None:
        raise ConfigError(
            f'{where}.kind: required: kind = "regression" for a column of numbers, '
            'kind = "classification" for one of class labels'
        )
    if kind not in KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {one_of(KINDS)}")
    column, metric = raw.get("column", name), raw.get("metric", _default_metric(kind))
    for key, value in (("column", column), ("metric", metric)):
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}.{key}: expected a non-empty string, got {value!r}")
    if metric in LABELLED_METRICS:
        raise ConfigError(
            f"{where}.metric: {metric!r} reads tags' names (span_f1 scores the spans of tag "
            "sequences, CoNLL's chunks and entities), which a table's classes are not; use "
            "accuracy or a metric of your own"
        )
    try:  # the metric's name and its fit to the kind, as Task checks them
        Task(name, kind, 2, metric)
    except ConfigError as e:
        raise ConfigError(f"{where}.metric: {e}") from None
    share = raw.get("train_labels", 1.0)
    if (
        isinstance(share, bool)
        or not isinstance(share, int | float)
        or not (0 < share <= 1 and math.isfinite(share))
    ):
        raise ConfigError(f"{where}.train_labels: must be above 0 and at most 1, got {share!r}")
    return TargetSpec(name, column.strip(), kind, metric, float(share))


def _default_metric(kind: object) -> str:
    return "accuracy" if kind == "classification" else "mse"


@dataclass
class TableConfig:
    """``[data]`` with ``source = "table"``. A relative ``path`` is read from the folder of the
    config file."""

    path: str = ""
    features: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    split_column: str = ""
    dev_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0
    missing_labels: list[str] = field(default_factory=lambda: ["NA", "NaN"])
    embed: dict[str, int] = field(default_factory=dict)

    @property
    def missing(self) -> frozenset[str]:
        """The target cells, stripped and lower-cased, that are a missing label: the empty
        cell and each of ``missing_labels``."""
        return frozenset({"", *(m.strip().lower() for m in self.missing_labels)})

    def validate(self) -> list[TargetSpec]:
        """The checked task tables; a ``ConfigError`` naming the key of anything wrong."""
        if not self.path:
            raise ConfigError("data.path: the CSV file to read is required")
        if not self.features and not self.categorical:
            raise ConfigError("data.features, data.categorical: name at least one input column")
        if not self.tasks:
            raise ConfigError(
                'data.tasks: name at least one task, e.g. [data.tasks.price] kind = "regression"'
            )
        targets = [target_spec(name, raw) for name, raw in self.tasks.items()]
        inputs = [*self.features, *self.categorical]
        twice = [c for c in inputs if inputs.count(c) > 1]
        if twice:
            raise ConfigError(
                f"data.features, data.categorical: column {twice[0]!r} is named twice"
            )
        for t in targets:
            if t.column in inputs:
                raise ConfigError(
                    f"data.tasks.{t.name}.column: {t.column!r} is an input column "
                    "(data.features or data.categorical); a target cannot be one"
                )
        if self.split_column in [*inputs, *(t.column for t in targets)]:
            raise ConfigError(
                f"data.split_column: {self.split_column!r} is an input or target column"
            )
        for key in ("dev_fraction", "test_fraction"):
            value = getattr(self, key)
            if not (0 < value < 1 and math.isfinite(value)):
                raise ConfigError(f"data.{key}: must be between 0 and 1, got {value}")
        if not self.split_column and self.dev_fraction + self.test_fraction >= 1:
            raise ConfigError(
                f"data.dev_fraction + data.test_fraction = "
                f"{self.dev_fraction + self.test_fraction:g} leaves no training rows; "
                "their sum must be below 1"
            )
        check_seed(self.split_seed, "data.split_seed")
        for column, size in self.embed.items():
            if column not in self.categorical:
                raise ConfigError(
                    f"data.embed.{column}: {column!r} is not a column of data.categorical; "
                    "only a categorical column is read as a learned vector"
                )
            if isinstance(size, bool) or not isinstance(size, int) or not 1 <= size <= MOST_EMBED:
                raise ConfigError(
                    f"data.embed.{column}: the vector's size must be a whole number from 1 to "
                    f"{MOST_EMBED}, got {size!r}"
                )
        bad = [m for m in self.missing_labels if not isinstance(m, str)]
        if bad or isinstance(self.missing_labels, str):
            raise ConfigError(
                'data.missing_labels: expected a list of strings, e.g. ["NA", "NULL"], '
                f"got {self.missing_labels!r}"
            )
        return targets


def split_rows(
    cfg: TableConfig, rows: list[tuple[int, list[str]]], at: dict[str, int], path: str
) -> dict[str, np.ndarray]:
    """Each split's row indices, in the file's order: by ``split_column``, or by a shuffle
    seeded with ``split_seed``. A split without a row is a ``DataError``."""
    n = len(rows)
    if cfg.split_column:
        column = cfg.split_column
        chosen = []
        for line, row in rows:
            cell = row[at[column]].strip()
            if cell not in SPLITS:
                raise DataError(
                    f"column {column!r}: {row[at[column]]!r} is not one of {one_of(SPLITS)}",
                    path,
                    line,
                )
            chosen.append(cell)
        out = {
            s: np.array([i for i, c in enumerate(chosen) if c == s], dtype=np.int64) for s in SPLITS
        }
        for split, idx in out.items():
            if idx.size == 0:
                raise DataError(
                    f"no rows in the {split} split: no row has {split!r} in column {column!r}", path
                )
        return out
    sizes = {"test": _rounded(n * cfg.test_fraction), "dev": _rounded(n * cfg.dev_fraction)}
    for split, size in sizes.items():
        if size == 0:
            fraction = getattr(cfg, f"{split}_fraction")
            raise DataError(
                f"no rows in the {split} split: data.{split}_fraction = {fraction:g} of {n} "
                "rows rounds to 0",
                path,
            )
    if sizes["test"] + sizes["dev"] >= n:
        raise DataError(
            f"no rows in the train split: {sizes['test']} test and {sizes['dev']} dev rows "
            f"of {n} (data.test_fraction, data.dev_fraction) leave none",
            path,
        )
    order = torch.randperm(n, generator=torch.Generator().manual_seed(cfg.split_seed)).numpy()
    test, dev = order[: sizes["test"]], order[sizes["test"] : sizes["test"] + sizes["dev"]]
    train = order[sizes["test"] + sizes["dev"] :]
    return {s: np.sort(idx) for s, idx in (("train", train), ("dev", dev), ("test", test))}


def _rounded(x: float) -> int:
    """``x`` rounded half up (Python's ``round`` rounds 2.5 to 2)."""
    return math.floor(x + 0.5)


def fit_codec(cfg: TableConfig, cells: Any, train: np.ndarray, path: str) -> TableCodec:
    """Each feature's encoding from the training rows: a numeric column's mean and standard
    deviation, a categorical column's categories; a column with one value on every training
    row is a ``DataError`` (it carries nothing to learn from, and a numeric one cannot be
    standardised)."""
    numeric = {}
    for j, column in enumerate(cfg.features):
        values = cells.numbers[train, j]
        std = float(np.std(values))
        if std == 0:
            raise DataError(
                f"feature {column!r} is {values[0]:g} on every training row: it carries nothing "
                "to learn from (its standard deviation is 0); leave it out of data.features",
                path,
            )
        numeric[column] = [float(np.mean(values)), std]
    categorical = {}
    for j, column in enumerate(cfg.categorical):
        values = sorted({cells.categories[r][j] for r in train})
        if len(values) < 2:
            raise DataError(
                f"feature {column!r} is {values[0]!r} on every training row: it carries "
                "nothing to learn from; leave it out of data.categorical",
                path,
            )
        if column in cfg.embed and len(values) > MOST_CATEGORIES:
            raise DataError(
                f"feature {column!r} has {len(values):,} categories on the training rows; "
                f"data.embed reads at most {MOST_CATEGORIES:,}",
                path,
            )
        categorical[column] = values
    embed = {c: cfg.embed[c] for c in cfg.categorical if c in cfg.embed}
    return TableCodec(numeric, categorical, embed)


def target_task(
    spec: TargetSpec,
    rows: list[tuple[int, list[str]]],
    at: dict[str, int],
    splits: dict[str, np.ndarray],
    path: str,
    split_seed: int = 0,
    missing_cells: frozenset[str] = MISSING,
) -> tuple[Task, torch.Tensor]:
    """Task ``spec`` and its targets, one per row (NaN or -100 where the cell is empty or NA):
    a regression task standardised on its training values, a classification task's classes
    the training values, sorted; a class only dev or test rows have is a ``gold_only`` class
    no prediction matches (one warning). A target the training rows cannot teach (no value,
    one value, one class) is a ``DataError``. With ``spec.train_labels`` below 1 only that
    share of the training rows with a label keep it (``kept_labels``); the others read as
    missing, in the training loss and in the scale or classes the training rows give.
    ``missing_cells``: the cells, stripped and lower-cased, that are a missing label."""
    column, where = spec.column, f"task {spec.name!r}"
    cells = [(line, row[at[column]]) for line, row in rows]
    blank = np.array([cell.strip().lower() in missing_cells for _, cell in cells])
    missing = blank.copy()  # and, below, the training labels train_labels leaves out
    train = splits["train"][~missing[splits["train"]]]
    if train.size == 0:
        raise DataError(f"{where}: no training row has a value in column {column!r}", path)
    if spec.train_labels < 1:
        kept = kept_labels(train, spec.train_labels, spec.name, split_seed)
        if kept.size == 0:
            raise DataError(
                f"{where}: data.tasks.{spec.name}.train_labels = {spec.train_labels:g} of "
                f"{train.size} training labels rounds to none",
                path,
            )
        missing[np.setdiff1d(train, kept)] = True
        train = kept
    if spec.kind == "regression":
        values = np.array(
            [
                math.nan if gone else _target_number(cell, where, column, path, line)
                for (line, cell), gone in zip(cells, blank, strict=True)
            ]
        )
        values[missing] = np.nan
        std = float(np.std(values[train]))
        if std == 0:
            raise DataError(
                f"{where}: column {column!r} is {values[train[0]]:g} on every training row "
                "that has a value: nothing to learn",
                path,
            )
        scale = (float(np.mean(values[train])), std)
        return Task(spec.name, "regression", 1, spec.metric, target_scale=scale), torch.tensor(
            values, dtype=torch.float32
        )
    labels = [cell.strip() for _, cell in cells]
    _warn_missing_like(labels, blank, rows, where, path)
    classes = sorted({labels[i] for i in train})
    if len(classes) < 2:
        raise DataError(
            f"{where}: column {column!r} has one class ({classes[0]!r}) on the training rows; "
            "a classifier needs two or more",
            path,
        )
    unseen = sorted({labels[i] for i in range(len(rows)) if not missing[i]} - set(classes))
    ids = {c: k for k, c in enumerate([*classes, *unseen])}
    if unseen:
        first = next(i for i in range(len(rows)) if labels[i] in unseen and not missing[i])
        count = sum(1 for i in range(len(rows)) if labels[i] in unseen and not missing[i])
        warnings.warn(
            f"{path}:{rows[first][0]}: {where}: class {labels[first]!r} is in no training row; "
            f"no prediction can match it, so its {count} dev/test row(s) count as errors",
            stacklevel=3,
        )
    y = torch.tensor(
        [IGNORE_INDEX if missing[i] else ids[labels[i]] for i in range(len(rows))],
        dtype=torch.long,
    )
    task = Task(
        spec.name,
        "classification",
        len(classes),
        spec.metric,
        labels=tuple(classes),
        gold_only=tuple(unseen),
    )
    return task, y


def _target_number(cell: str, where: str, column: str, path: str, line: int) -> float:
    """A regression target cell's number; a marker of a missing value that
    ``data.missing_labels`` does not list is a ``DataError`` that says how to list it."""
    if cell.strip().lower() in LOOKS_MISSING:
        raise DataError(
            f"{where}: column {column!r} is {cell.strip()!r}, not a number; if it marks a "
            "missing label, add it to data.missing_labels",
            path,
            line,
        )
    try:
        return parse_number(cell, column, path, line, missing_ok=False)
    except DataError:
        raise DataError(
            f"{where}: column {column!r}: {cell!r} is not a finite number; a regression task "
            'reads numbers (a column of class labels is kind = "classification")',
            path,
            line,
        ) from None


def _warn_missing_like(
    labels: list[str], missing: np.ndarray, rows: list[tuple[int, list[str]]], where: str, path: str
) -> None:
    """One warning for a classification task's classes that read like a marker of a missing
    value (``NULL``, ``N/A``, ``?``): each is kept as a class, as ``data.missing_labels`` says."""
    suspects = sorted(
        {
            c
            for c, gone in zip(labels, missing, strict=True)
            if not gone and c.lower() in LOOKS_MISSING
        }
    )
    if not suspects:
        return
    first = next(i for i, c in enumerate(labels) if c in suspects and not missing[i])
    count = sum(1 for c, gone in zip(labels, missing, strict=True) if c in suspects and not gone)
    shown = ", ".join(repr(c) for c in suspects)
    warnings.warn(
        f"{path}:{rows[first][0]}: {where}: {shown} on {count} row(s) is read as a class; if it "
        "marks a missing label, add it to data.missing_labels",
        stacklevel=3,
    )


def kept_labels(train: np.ndarray, share: float, task: str, split_seed: int) -> np.ndarray:
    """The rows of ``train`` (rows with a training label), sorted, whose label a task keeps:
    ``share`` of them, rounded half up, drawn by a shuffle seeded with ``split_seed`` and the
    task's name (so two tasks keep different rows). A smaller share keeps a subset of a larger
    one's rows, so a sweep over shares adds labels and never swaps them."""
    seed = (split_seed + zlib.crc32(task.encode("utf-8"))) % 2**63
    order = torch.randperm(train.size, generator=torch.Generator().manual_seed(seed)).numpy()
    return np.sort(train[order[: _rounded(train.size * share)]])


@DATA_SOURCES.register(
    "table",
    config=TableConfig,
    summary="rows of numeric and categorical features from a CSV, a target column per task",
    paper="Ma et al., KDD 2018 (census-income, two tasks per row)",
)
def table_problem(cfg: TableConfig, base_dir: str | None = None) -> Problem:
    """A task per ``data.tasks`` table over every row of the CSV ``cfg.path`` (relative to
    ``base_dir``); ``meta["lines"]`` holds each split's file lines."""
    targets = cfg.validate()
    path = data_file(cfg.path, base_dir, "data.path")
    shown = str(path)
    header_line, header, records = csv_header(path, shown)
    needed = [*cfg.features, *cfg.categorical, *dict.fromkeys(t.column for t in targets)]
    named_by = {
        **{t.column: f"data.tasks.{t.name}.column, by default the task's name" for t in targets},
        **dict.fromkeys(cfg.features, "data.features"),
        **dict.fromkeys(cfg.categorical, "data.categorical"),
        cfg.split_column: "data.split_column",
    }
    at = column_positions(
        header, [*needed, *filter(None, [cfg.split_column])], shown, header_line, named_by
    )
    rows = csv_rows(records, header, header_line, shown)
    cells = read_cells(shown, rows, at, cfg.features, cfg.categorical)
    splits = split_rows(cfg, rows, at, shown)
    codec = fit_codec(cfg, cells, splits["train"], shown)
    # one call: one warning per column of unseen categories; each split's rows encoded in
    # place, not encoded whole then copied out
    x = dict(zip(SPLITS, codec.encode_parts(cells, [splits[s] for s in SPLITS]), strict=True))
    tasks = []
    for spec in targets:
        task, y = target_task(spec, rows, at, splits, shown, cfg.split_seed, cfg.missing)
        parts = [Split(x[s], y[torch.from_numpy(splits[s])]) for s in SPLITS]
        tasks.append(TaskData(task, *parts))
    lines = {s: [rows[i][0] for i in idx] for s, idx in splits.items()}
    return Problem(
        tasks, codec.input_dim, codec.build_stem(), meta={"lines": lines}, inference=codec.spec()
    )
