"""Codecs: how new inputs become a trained model's inputs, and its outputs a file people read.

A data source describes its codec in ``Problem.inference`` (a JSON-able spec that the run folder
saves as ``inference.json``); ``codec_from_spec`` rebuilds the codec from it, without the data
it was trained on. Three codecs:

- ``tagging`` (the ``conll`` source, ``mtlshare.data.tagging_codec``): a CoNLL column file or
  plain text in, CoNLL columns out; a CoNLL-U file in, CoNLL-U out;
- ``tensor`` (``synthetic``, ``daily_csv``, and a ``Problem`` of the user's own rows of
  features, ``plain_features``): a CSV of feature columns in, one column per task out
  (regression targets back on the series' own scale where the source standardised them);
- ``windows`` (``daily_windows``, ``mtlshare.data.windows_codec``): a CSV of the series' recent
  values in, each series' forecast of the horizon out.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import Tensor, nn

from mtlshare.data.conll import decode_utf8, file_bytes
from mtlshare.errors import DataError, MtlshareError
from mtlshare.registry import Registry
from mtlshare.tasks.task import Task

FORMAT = "mtlshare.inference"
VERSION = 1


class Codec(Protocol):
    """What prediction needs of a data source."""

    def spec(self) -> dict[str, Any]: ...

    def build_stem(self) -> Callable[[], nn.Module] | None:
        """The input encoder to build the model with (its weights come from the checkpoint)."""
        ...

    def read(self, path: Path, fmt: str, tasks: Sequence[str] | None = None) -> Any:
        """An input file (``fmt``: "auto" or one the codec names); a ``DataError`` naming the
        file and line for anything it cannot read, or for a file without any input. ``tasks``:
        the tasks to be predicted (None: all), for a codec whose file need not hold the
        others' inputs (``windows``: a series' forecast reads that series only)."""
        ...

    def encode(self, doc: Any) -> tuple[Tensor, Tensor | None]:
        """The model's inputs for ``doc`` and, for sequences, their lengths."""
        ...

    def write(self, doc: Any, tasks: list[Task], predictions: dict[str, Tensor]) -> str:
        """The output file's text: ``doc`` with one prediction column per task."""
        ...

    def size(self, doc: Any, tasks: Sequence[str]) -> tuple[int, str]:
        """How much was predicted for ``tasks`` from ``doc``, for a speed report: (count,
        unit)."""
        ...


# Codec spec keys that runs trained before them lack (the ``windows`` codec's origin, the
# ``tensor`` codec's standardised inputs, the ``tagging`` codec's corpus of each task): where a
# run's ``inference.json`` has no such key, data read again are not called encoded otherwise
# for having it.
LATER_KEYS = frozenset({"origin", "standardised", "corpus_of"})

CODECS: Registry[Callable[[dict[str, Any]], Codec]] = Registry("codec")


def inference_spec(
    tasks: list[Task], input_dim: int, input_rank: int, codec: dict[str, Any], **about: Any
) -> dict[str, Any]:
    """``inference.json``: everything a trained model needs beside its weights to be used: its
    tasks, the width and rank of its inputs, the codec's spec, and ``about`` (the data source,
    where its relative paths start)."""
    return {
        "format": FORMAT,
        "version": VERSION,
        **about,
        "input_dim": input_dim,
        "input_rank": input_rank,
        "tasks": [_described(t) for t in tasks],
        "codec": codec,
    }


def _described(task: Task) -> dict[str, Any]:
    """A task as ``inference.json`` lists it; ``target_scale`` only where it is set, so that
    the files of tasks without one read as they did before it existed."""
    described = dataclasses.asdict(task)
    if described["target_scale"] is None:
        del described["target_scale"]
    return described


def tasks_from_spec(spec: dict[str, Any]) -> list[Task]:
    """The ``Task``s an ``inference_spec`` lists; a ``DataError`` naming the entry that is
    not a task's."""
    tasks = []
    for i, t in enumerate(spec.get("tasks", [])):
        for key, least in (("out_dim", 1), ("tie_embedding", 0)):
            value = t.get(key, least) if isinstance(t, dict) else least
            if isinstance(value, bool) or not isinstance(value, int) or not least <= value < 2**31:
                raise DataError(
                    f"inference spec: task {i}: {key} is {str(value)[:40]}, not a whole number "
                    f">= {least} (the file is not as the run wrote it)"
                )
        try:
            tasks.append(
                Task(
                    **{
                        **t,
                        "labels": tuple(t.get("labels", ())),
                        "gold_only": tuple(t.get("gold_only", ())),
                        **_scale_of(t),
                    }
                )
            )
        except (TypeError, AttributeError) as e:
            raise DataError(f"inference spec: task {i} is not a task's description ({e})") from None
    return tasks


def _scale_of(task: dict[str, Any]) -> dict[str, Any]:
    """``target_scale`` of a task's entry in an ``inference_spec``, as a tuple (JSON has lists),
    or nothing where the entry has none."""
    scale = task.get("target_scale")
    return {"target_scale": tuple(scale)} if isinstance(scale, list) else {}


def codec_from_spec(spec: dict[str, Any]) -> Codec:
    """The codec a run's ``inference.json`` describes."""
    name = spec.get("codec") if isinstance(spec, dict) else None
    if not isinstance(name, str):
        raise DataError("inference spec names no codec")
    try:
        return CODECS[name].build(spec)
    except (KeyError, TypeError) as e:
        raise DataError(
            f"inference spec: the {name!r} codec's description is damaged ({e!r})"
        ) from None


# -- tensor inputs ------------------------------------------------------------------------------
@dataclass
class Table:
    """A CSV of inputs: its header, its rows as text, and the features read from them."""

    path: Path
    header: list[str]
    rows: list[list[str]]
    x: Tensor  # (rows, features)


@dataclass
class TensorCodec:
    """Rows of numbers in, one column per task out. ``features`` names the input columns in the
    order the model reads them; ``scales`` maps a task to how its targets were standardised
    (``log``, ``mean``, ``std``), inverted on output. Each task's column is its bare name (what
    users read), so a file that has a column of that name already is refused, as ``table``
    refuses one of its ``predicted_TASK`` columns (``refuse_written_columns``).
    ``standardised`` maps an input column the data source standardised (a ``daily_csv`` run's
    covariates) to its training ``[mean, std]``: the file gives the column as the data did, and
    it is read as ``(value - mean) / std``, as in training."""

    features: list[str]
    scales: dict[str, dict[str, Any]] = field(default_factory=dict)
    standardised: dict[str, list[float]] = field(default_factory=dict)

    def spec(self) -> dict[str, Any]:
        spec = {"codec": "tensor", "features": self.features, "scales": self.scales}
        return spec | ({"standardised": self.standardised} if self.standardised else {})

    def build_stem(self) -> Callable[[], nn.Module] | None:
        return None

    def read(self, path: Path, fmt: str, tasks: Sequence[str] | None = None) -> Table:
        if fmt not in ("auto", "csv"):
            raise DataError(f"this run reads a CSV of {len(self.features)} features, not {fmt}")
        text = decode_utf8(path, file_bytes(path))
        lines = list(csv.reader(io.StringIO(text)))
        if not lines or not any(cell.strip() for cell in lines[0]):
            raise DataError("empty: expected a header naming the features, then rows", path)
        header = [h.strip() for h in lines[0]]
        missing = [f for f in self.features if f not in header]
        if missing:
            raise DataError(
                f"no column {missing[0]!r}; the model reads {len(self.features)} features: "
                f"{', '.join(self.features[:6])}{', ...' if len(self.features) > 6 else ''}",
                path,
                1,
            )
        twice = [f for f in self.features if header.count(f) > 1]
        if twice:
            raise DataError(
                f"column {twice[0]!r} appears {header.count(twice[0])} times in the header: "
                "which one the model should read is not known",
                path,
                1,
            )
        refuse_written_columns(header, list(tasks or ()), path, 1)
        at = [header.index(f) for f in self.features]
        rows, values = [], []
        for number, row in enumerate(lines[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataError(f"{len(row)} fields but the header has {len(header)}", path, number)
            values.append([self._input(row[i], header[i], path, number) for i in at])
            rows.append(row)
        if not rows:
            raise DataError("no rows after the header", path)
        return Table(path, header, rows, torch.tensor(values, dtype=torch.float32))

    def _input(self, cell: str, column: str, path: Path, line: int) -> float:
        value = _number(cell, column, path, line)
        if column in self.standardised:  # in float64, as the data source did
            mean, std = self.standardised[column]
            value = (value - mean) / std
        return value

    def encode(self, doc: Table) -> tuple[Tensor, Tensor | None]:
        return doc.x, None

    def write(self, doc: Table, tasks: list[Task], predictions: dict[str, Tensor]) -> str:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow([*doc.header, *(t.name for t in tasks)])
        cells = [self._column(t, predictions[t.name]) for t in tasks]
        for i, row in enumerate(doc.rows):
            writer.writerow([*row, *(column[i] for column in cells)])
        return out.getvalue()

    def _column(self, task: Task, pred: Tensor) -> list[str]:
        if task.kind == "classification":
            return [task.labels[int(i)] if task.labels else str(int(i)) for i in pred.tolist()]
        scale = self.scales.get(task.name)
        if not scale:
            return float_cells(pred)
        # as daily.Scale.inverse, in float64 as the run's own scores were
        values = [float(v) * scale["std"] + scale["mean"] for v in pred.double().tolist()]
        if scale["log"]:
            values = [max(0.0, math.expm1(v)) for v in values]
        return [repr(v) for v in values]

    def size(self, doc: Table, tasks: Sequence[str]) -> tuple[int, str]:
        return len(doc.rows), "rows"


def is_mean_scale(pair: object) -> bool:
    """Whether ``pair`` is a ``[mean, scale]`` of two numbers as a codec's spec keeps one."""
    return (
        isinstance(pair, list)
        and len(pair) == 2
        and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)
    )


def float_cells(pred: Tensor) -> list[str]:
    """A model's values as CSV cells: the shortest decimal that reads back as the model's own
    float (``5.3033514`` of a float32, not ``5.303351402282715``, digits it never had)."""
    if pred.dtype not in (torch.float32, torch.float64):
        pred = pred.float()  # half precision: the shortest form of its float32 value
    return [str(v) for v in pred.detach().cpu().numpy()]


def refuse_written_columns(
    header: Sequence[str], written: Sequence[str], path: str | Path, line: int
) -> None:
    """A ``DataError`` (at the header's ``line``) when the input file has a column of a name
    the predictions are written under: the output would hold two columns of that name, and a
    reader by name (``csv.DictReader``, pandas) would take one of them without a word."""
    taken = [c for c in written if c in header]
    if taken:
        names = ", ".join(map(repr, taken))
        what, it = (
            (f"column {names} is", "it") if len(taken) == 1 else (f"columns {names} are", "them")
        )
        raise DataError(
            f"{what} in the file already: the predictions would write {it} a second time",
            path,
            line,
        )


def _number(cell: str, column: str, path: Path, line: int) -> float:
    try:
        value = float(cell)
    except ValueError:
        raise DataError(f"column {column!r}: {cell!r} is not a number", path, line) from None
    if not math.isfinite(value):
        raise DataError(f"column {column!r}: {cell!r} is not a finite number", path, line)
    return value


@CODECS.register("tensor", summary="a CSV of feature columns in, one column per task out")
def tensor_codec(spec: dict[str, Any]) -> Codec:
    features, scales = spec["features"], spec.get("scales", {})
    if not isinstance(features, list) or not all(isinstance(f, str) for f in features):
        raise TypeError(f"features: {str(features)[:40]} is not a list of column names")
    keys: dict[str, type | tuple[type, ...]] = {
        "log": bool,
        "mean": (int, float),
        "std": (int, float),
    }
    if not isinstance(scales, dict) or not all(
        isinstance(s, dict) and all(isinstance(s.get(k), kind) for k, kind in keys.items())
        for s in scales.values()
    ):
        raise TypeError(f"scales: {str(scales)[:40]} is not a task's log, mean and std each")
    standardised = spec.get("standardised", {})
    if not isinstance(standardised, dict) or not all(
        name in features and is_mean_scale(pair) and pair[1] > 0
        for name, pair in standardised.items()
    ):
        raise TypeError(
            f"standardised: {str(standardised)[:40]} is not a feature's mean and positive std each"
        )
    return TensorCodec(features, scales, standardised)


def check_codec_spec(spec: Any, input_dim: int) -> None:
    """A ``Problem``'s codec spec as the run will write it to ``inference.json`` and
    ``load_run`` read it back: JSON, naming a known codec, a description that codec builds
    from, and for the ``tensor`` codec one feature name per input column. Else a
    ``DataError`` naming ``Problem.inference``, before the run trains: a run of a spec that
    fails here trained in full and then could not be loaded or used."""
    what = "Problem.inference"
    try:
        spec = json.loads(json.dumps(spec))  # as inference.json will hold it
    except (TypeError, ValueError) as e:
        raise DataError(
            f"{what}: not JSON ({e}); give a codec's spec, e.g. TensorCodec(names).spec()"
        ) from None
    try:
        codec = codec_from_spec(spec)
    except MtlshareError as e:  # an unknown codec is the registry's ConfigError
        raise DataError(f"{what}: {e}") from None
    if isinstance(codec, TensorCodec) and len(codec.features) != input_dim:
        raise DataError(
            f"{what}: the tensor codec names {len(codec.features)} features, but the inputs "
            f"have {input_dim} (Problem.input_dim)"
        )


def plain_features(input_dim: int, input_rank: int, encoded: bool) -> dict[str, Any]:
    """The codec spec of a ``Problem`` that names none (one built from the user's own tensors):
    the ``tensor`` codec over rows of ``input_dim`` plain features named ``x0``, ``x1``, ...
    Inputs it cannot describe (not rank 2, or read by an input encoder: ``encoded``) are a
    ``DataError``: a run of them could be trained but never read back."""
    if input_rank != 2 or encoded:
        given = f"{input_rank}-d inputs" if not encoded else "inputs an encoder (build_stem) reads"
        raise DataError(
            f"the problem names no codec (Problem.inference is empty), and the plain one reads "
            f"rows of features (N, {input_dim}), not {given}: give the Problem a codec's spec "
            "(mtlshare.data.codecs) so that load_run can read the run back"
        )
    return TensorCodec([f"x{i}" for i in range(input_dim)]).spec()
