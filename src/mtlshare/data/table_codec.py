"""The ``table`` codec: rows of a CSV, read by column name, encoded as the run's training rows
were; out, the same rows with one prediction column per task.

A ``table`` run (``mtlshare.data.table``) records in ``inference.json`` how its inputs were
encoded: each numeric feature's training mean and standard deviation, each categorical
feature's training categories (its one-hot columns, in that order, or its vectors' ids under
``data.embed``, with the vectors' sizes). Reading new rows goes
through the same functions as the training rows (``read_cells``, then ``TableCodec.encode``),
so the run's own test rows read back give its test inputs to the bit. The input file may hold
other columns (the targets, an id, ...): they are not read, and are written back unchanged,
before the predictions: ``predicted_TASK`` per task, a regression task's value in the target's
own units (``Task.target_scale``), a class as its label appeared in the training file.
"""

from __future__ import annotations

import csv
import io
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtlshare.data.codecs import (
    CODECS,
    Codec,
    Table,
    float_cells,
    is_mean_scale,
    refuse_written_columns,
)
from mtlshare.data.timeseries import (
    MISSING,
    column_positions,
    csv_header,
    csv_rows,
    missing_feature,
    parse_number,
)
from mtlshare.errors import DataError
from mtlshare.models.table_stem import MOST_CATEGORIES, MOST_EMBED, CategoryEmbeddings
from mtlshare.tasks.task import Task

PREFIX = "predicted_"  # an output column: PREFIX + the task's name


@dataclass
class Cells:
    """The feature cells of a file's rows: numbers (rows, numeric) and category strings."""

    path: str
    lines: list[int]  # the file's line of each row
    numbers: np.ndarray  # (rows, numeric features) float64
    categories: list[list[str]]  # per row, one string per categorical feature


def read_cells(
    path: str,
    rows: Sequence[tuple[int, list[str]]],
    at: dict[str, int],
    numeric: Sequence[str],
    categorical: Sequence[str],
) -> Cells:
    """The feature cells of ``rows`` (``(line, fields)``; ``at``: each column's field). An
    empty or NA cell, or a numeric cell that is not a finite number, is a ``DataError`` naming
    the file, line and column: a feature is never filled in."""
    numbers = np.empty((len(rows), len(numeric)), dtype=np.float64)
    categories = []
    for i, (line, row) in enumerate(rows):
        for j, column in enumerate(numeric):
            numbers[i, j] = parse_number(row[at[column]], column, path, line, missing_ok=False)
        cells = [row[at[column]].strip() for column in categorical]
        for column, cell in zip(categorical, cells, strict=True):
            if cell.lower() in MISSING:
                raise DataError(missing_feature(column, row[at[column]], True), path, line)
        categories.append(cells)
    return Cells(path, [line for line, _ in rows], numbers, categories)


@dataclass
class TableCodec:
    """How a table run encodes a row: ``numeric[column] = [mean, std]`` of its training rows
    (the input is ``(value - mean) / std``), ``categorical[column]`` = its training categories,
    sorted (the input is their one-hot; a category no training row has is all zeros), or, for
    a column of ``embed`` (``column: size``), one input holding the category's position + 1
    (0: none of them), which the stem (``CategoryEmbeddings``) turns into a learned vector of
    that size. The inputs: the numbers, the one-hots, then the ids."""

    numeric: dict[str, list[float]]
    categorical: dict[str, list[str]]
    embed: dict[str, int] = field(default_factory=dict)

    @property
    def columns(self) -> list[str]:
        """The file's columns the model reads."""
        return [*self.numeric, *self.categorical]

    @property
    def one_hot(self) -> dict[str, list[str]]:
        """The categorical columns read as one-hots, with their categories."""
        return {c: v for c, v in self.categorical.items() if c not in self.embed}

    @property
    def embedded(self) -> list[str]:
        """The columns of ``embed``, in the inputs' order (``categorical``'s)."""
        return [c for c in self.categorical if c in self.embed]

    @property
    def plain(self) -> int:
        """How many inputs the trunk reads as they are: the numbers and the one-hots (the ids
        of the embedded columns follow them)."""
        return len(self.numeric) + sum(len(v) for v in self.one_hot.values())

    @property
    def features(self) -> list[str]:
        """The inputs a file's rows become, in order: each numeric column, then
        ``column=category`` of each one-hot, then each embedded column (its ids)."""
        ones = [f"{c}={v}" for c, values in self.one_hot.items() for v in values]
        return [*self.numeric, *ones, *self.embedded]

    @property
    def input_dim(self) -> int:
        """The width the trunk reads: the plain inputs, then each embedded column's vector."""
        return self.plain + sum(self.embed.values())

    def spec(self) -> dict[str, Any]:
        out = {
            "codec": "table",
            "numeric": self.numeric,
            "categorical": self.categorical,
            "features": self.features,
        }
        if self.embed:  # only then: the runs of before read back as they were written
            out["embed"] = self.embed
        return out

    def build_stem(self) -> Callable[[], nn.Module] | None:
        if not self.embed:
            return None
        plain = self.plain
        sizes = [(len(self.categorical[c]), self.embed[c]) for c in self.embedded]

        def build() -> nn.Module:
            return CategoryEmbeddings(plain, sizes)

        return build

    def input_error(self, x: Tensor) -> str | None:
        """What is wrong with ``x`` as rows of this codec's ``features`` (``Run.predict``
        checks its rank, dtype and values): another width, or an embedded column's cell that
        is not an id it made (a whole number from 0 to its number of categories)."""
        at = self.plain
        if x.shape[-1] != at + len(self.embed):
            return f"shape {tuple(x.shape)}; this run reads {at + len(self.embed)} features"
        for k, column in enumerate(self.embedded):
            ids = x[:, at + k]
            bad = (ids < 0) | (ids > len(self.categorical[column])) | (ids != ids.round())
            if bool(bad.any()):
                row = int(bad.nonzero()[0, 0])
                return (
                    f"row {row}, input {at + k} ({column!r}) is {float(ids[row])!r}, not the id "
                    f"of one of its {len(self.categorical[column])} categories "
                    "(run.codec.encode makes them)"
                )
        return None

    def encode_cells(self, cells: Cells, rows: np.ndarray | None = None) -> Tensor:
        """(rows, features) float32 inputs of ``cells`` (only ``rows``, indices, when given).
        Each categorical column with a category no training row has warns once, naming the
        first such row's line and how many there are; its one-hot is all zeros."""
        idx = np.arange(len(cells.lines)) if rows is None else rows
        return self.encode_parts(cells, [idx])[0]

    def encode_parts(self, cells: Cells, parts: Sequence[np.ndarray]) -> list[Tensor]:
        """The inputs of each part's rows (indices), as ``encode_cells`` gives them, with one
        warning per column over all parts. Each tensor is filled in place: a column of
        thousands of categories (a user id) is a wide one-hot, and float64 blocks joined, cast,
        then indexed by split held it five times over."""
        width = self.plain + len(self.embed)
        out = [torch.zeros((len(idx), width), dtype=torch.float32) for idx in parts]
        arrays = [x.numpy() for x in out]
        for j, (mean, std) in enumerate(self.numeric.values()):
            for idx, x in zip(parts, arrays, strict=True):
                x[:, j] = (cells.numbers[idx, j] - mean) / std
        start = len(self.numeric)
        at = self.plain  # the next id column
        for j, (column, values) in enumerate(self.categorical.items()):
            position = {v: k for k, v in enumerate(values)}
            embedded = column in self.embed
            unseen = []
            for idx, x in zip(parts, arrays, strict=True):
                for i, r in enumerate(idx):
                    k = position.get(cells.categories[r][j])
                    if k is None:
                        unseen.append(int(r))
                    elif embedded:
                        x[i, at] = k + 1
                    else:
                        x[i, start + k] = 1.0
            if embedded:
                at += 1
            else:
                start += len(values)
            if unseen:
                first = min(unseen)  # the file's first, whatever the order of the parts
                warnings.warn(
                    f"{cells.path}:{cells.lines[first]}: column {column!r} has "
                    f"{cells.categories[first][j]!r}, a category no training row has: its "
                    f"{'vector' if embedded else 'one-hot'} is all zeros "
                    f"({len(unseen)} such row(s))",
                    stacklevel=2,
                )
        return out

    def read(self, path: Path, fmt: str, tasks: Sequence[str] | None = None) -> Table:
        if fmt not in ("auto", "csv"):
            raise DataError(f"this run reads a CSV of its feature columns, not {fmt}")
        shown = str(path)
        header_line, header, records = csv_header(Path(path), shown)
        at = column_positions(header, self.columns, shown, header_line)
        names = [h.strip() for h in header]
        refuse_written_columns(names, [PREFIX + t for t in tasks or ()], shown, header_line)
        rows = csv_rows(records, header, header_line, shown)
        cells = read_cells(shown, rows, at, list(self.numeric), list(self.categorical))
        return Table(Path(path), header, [row for _, row in rows], self.encode_cells(cells))

    def encode(self, doc: Table) -> tuple[Tensor, Tensor | None]:
        return doc.x, None

    def write(self, doc: Table, tasks: list[Task], predictions: dict[str, Tensor]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*doc.header, *(PREFIX + t.name for t in tasks)])
        columns = [_column(t, predictions[t.name]) for t in tasks]
        for i, row in enumerate(doc.rows):
            writer.writerow([*row, *(column[i] for column in columns)])
        return out.getvalue()

    def size(self, doc: Table, tasks: Sequence[str]) -> tuple[int, str]:
        return len(doc.rows), "rows"


def _column(task: Task, pred: Tensor) -> list[str]:
    """A task's predictions as cells: a class's label, or a value (already in the target's
    units: ``Task.predict`` undid the standardisation, ``codecs.float_cells``)."""
    if task.kind == "classification":
        return [task.labels[int(i)] for i in pred.tolist()]
    return float_cells(pred)


@CODECS.register("table", summary="a CSV read by column names in, a prediction per task out")
def table_codec(spec: dict[str, Any]) -> Codec:
    numeric, categorical = spec["numeric"], spec["categorical"]
    if not isinstance(numeric, dict) or not all(is_mean_scale(p) for p in numeric.values()):
        raise TypeError(f"numeric: {str(numeric)[:40]} is not a mean and a scale per column")
    if not isinstance(categorical, dict) or not all(
        isinstance(values, list) and all(isinstance(v, str) for v in values)
        for values in categorical.values()
    ):
        raise TypeError(f"categorical: {str(categorical)[:40]} is not categories per column")
    embed = spec.get("embed", {})
    if not isinstance(embed, dict) or not all(
        k in categorical
        and isinstance(v, int)
        and not isinstance(v, bool)
        and 1 <= v <= MOST_EMBED
        and len(categorical[k]) <= MOST_CATEGORIES
        for k, v in embed.items()
    ):
        raise TypeError(f"embed: {str(embed)[:40]} is not a vector size per categorical column")
    return TableCodec(
        {str(k): [float(v) for v in pair] for k, pair in numeric.items()},
        {str(k): list(values) for k, values in categorical.items()},
        {str(k): int(v) for k, v in embed.items()},
    )
