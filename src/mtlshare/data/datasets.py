"""Per-task data: train, dev and test splits of tensors, and the problem they make together."""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

import torch
from torch import Tensor, nn

from mtlshare.errors import DataError
from mtlshare.tasks.metrics import IGNORE_INDEX, observed
from mtlshare.tasks.task import Task

V = TypeVar("V", float, Tensor)  # what by_share scales


@dataclass
class Split:
    """Inputs ``x`` (N, ...) and targets ``y`` (N, ...) of one split; row i is example i.

    Sequences of different lengths are stored padded to the longest, (N, T, ...), with their
    ``lengths`` (N,): every batch is then cut to the longest sequence it holds, so a batch of
    short sentences costs what short sentences cost.
    """

    x: Tensor
    y: Tensor
    lengths: Tensor | None = None

    def __post_init__(self) -> None:
        for name in ("x", "y", "lengths"):
            value = getattr(self, name)
            if not isinstance(value, Tensor) and (name != "lengths" or value is not None):
                raise DataError(
                    f"Split: {name} is a {type(value).__name__}; a Split holds torch tensors "
                    "(torch.as_tensor)"
                )
        if self.x.dim() == 0 or self.y.dim() == 0:
            raise DataError("Split: x and y need one row per example, got a 0-d tensor")
        if self.x.shape[0] != self.y.shape[0]:
            raise DataError(f"inputs have {self.x.shape[0]} rows but targets {self.y.shape[0]}")
        if self.lengths is not None and self.lengths.shape != (self.x.shape[0],):
            raise DataError(
                f"lengths must have one entry per row ({self.x.shape[0]}), "
                f"got shape {tuple(self.lengths.shape)}"
            )

    def __len__(self) -> int:
        return int(self.x.shape[0])

    @property
    def tokens(self) -> int:
        """Positions that hold data: the sum of ``lengths``, else one per row."""
        return int(self.lengths.sum()) if self.lengths is not None else len(self)

    @property
    def rank(self) -> int:
        """The rank of a batch's inputs: 2 for rows of features, 3 for padded sequences."""
        return self.x.dim()

    @property
    def positions(self) -> int:
        """The positions a row of a batch may hold: the padded length of sequences, else 1."""
        return int(self.x.shape[1]) if self.lengths is not None else 1

    def take(self, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        """Rows ``idx``, cut to their longest sequence when ``lengths`` are known."""
        x, y = self.x[idx], self.y[idx]
        if self.lengths is not None and len(x) > 0:
            longest = int(self.lengths[idx].max())
            x, y = x[:, :longest], y[:, :longest]
        return x, y

    def batches(self, size: int) -> Iterator[tuple[Tensor, Tensor]]:
        """In order, for evaluation."""
        for start in range(0, len(self), size):
            yield self.take(slice(start, start + size))

    def observed_in(self, idx: Tensor | slice) -> int:
        """How many targets of rows ``idx`` are observed (not missing)."""
        return int(observed(self.y[idx]).sum())

    def held(self) -> tuple[Tensor, Tensor]:
        """The inputs and targets as this split holds them (``check_split`` reads them)."""
        return self.x, self.y

    def row_of(self, index: int) -> int:
        """The row that index ``index`` along the first dimension of ``held`` belongs to."""
        return index

    def same_inputs(self, other: Split) -> bool:
        """Whether ``other`` holds these very inputs (tasks labelling the same sentences)."""
        return type(other) is type(self) and other.x is self.x and other.lengths is self.lengths


class PackedSplit(Split):
    """Sequences held end to end: ``tokens_x`` (L, ...) and ``tokens_y`` (L, ...) hold the
    L = ``lengths.sum()`` positions of the N sequences one after another. A batch is what a
    ``Split`` padded to the longest sequence gives, to the bit: padded to its own longest
    sequence when taken, inputs with ``x_fill``, targets with a missing label (-100, or NaN
    for float targets). So a split costs what its tokens cost, where a padded one costs every
    sequence at the length of the longest: CoNLL-2003's training inputs at 1 KB a token are
    10 times their tokens padded, and one sentence of 1,000 tokens among them made 188 MiB
    1.6 GiB. ``x`` and ``y`` still read as the padded tensors, built on each read (a copy:
    writing into one changes nothing here); training never reads them. Integer targets are
    held as ``torch.long`` (a uint8 tensor would pad with 156, not -100). Two splits are equal
    when their tokens, lengths and ``x_fill`` are; ``dataclasses.replace`` and ``asdict`` do
    not apply (its fields are the tokens, not ``x`` and ``y``)."""

    def __init__(
        self, tokens_x: Tensor, tokens_y: Tensor, lengths: Tensor, x_fill: float = 0
    ) -> None:
        for name, value in (("tokens_x", tokens_x), ("tokens_y", tokens_y), ("lengths", lengths)):
            if not isinstance(value, Tensor):
                raise DataError(
                    f"PackedSplit: {name} is a {type(value).__name__}; a PackedSplit holds "
                    "torch tensors (torch.as_tensor)"
                )
        if lengths.dim() != 1 or lengths.is_floating_point() or lengths.is_complex():
            raise DataError(
                f"PackedSplit: lengths must be one integer per sequence, got a {lengths.dtype} "
                f"tensor of shape {tuple(lengths.shape)}"
            )
        if len(lengths) and int(lengths.min()) < 0:
            raise DataError(f"PackedSplit: a negative length ({int(lengths.min())})")
        total = int(lengths.sum())
        for name, value in (("tokens_x", tokens_x), ("tokens_y", tokens_y)):
            if value.dim() == 0 or value.shape[0] != total:
                raise DataError(
                    f"PackedSplit: {name} of shape {tuple(value.shape)} for lengths that sum to "
                    f"{total}; it holds one row per position, the sequences end to end"
                )
        self.tokens_x = tokens_x
        self.tokens_y = tokens_y if tokens_y.is_floating_point() else tokens_y.long()
        self.lengths: Tensor = lengths.long()
        self.x_fill = x_fill
        self.starts = torch.cumsum(self.lengths, 0) - self.lengths

    @property
    def x(self) -> Tensor:
        return self.take(slice(None))[0]

    @x.setter
    def x(self, value: Tensor) -> None:
        raise AttributeError("a PackedSplit's x is built from tokens_x; set tokens_x")

    @property
    def y(self) -> Tensor:
        return self.take(slice(None))[1]

    @y.setter
    def y(self, value: Tensor) -> None:
        raise AttributeError("a PackedSplit's y is built from tokens_y; set tokens_y")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PackedSplit):
            return NotImplemented
        return self.x_fill == other.x_fill and all(
            a.shape == b.shape and a.dtype == b.dtype and torch.equal(a, b)
            for a, b in (
                (self.lengths, other.lengths),
                (self.tokens_x, other.tokens_x),
                (self.tokens_y, other.tokens_y),
            )
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"PackedSplit({len(self)} sequences, {self.tokens} positions, inputs "
            f"{tuple(self.tokens_x.shape[1:])} {self.tokens_x.dtype} a position)"
        )

    def __len__(self) -> int:
        return len(self.lengths)

    @property
    def rank(self) -> int:
        return self.tokens_x.dim() + 1

    @property
    def positions(self) -> int:
        return int(self.lengths.max()) if len(self.lengths) else 0

    def take(self, idx: Tensor | slice) -> tuple[Tensor, Tensor]:
        lengths, starts = self.lengths[idx], self.starts[idx]
        # no rows (a process's empty slice of the last global batch): (0, T, ...) at the
        # split's longest T, as a padded split gives (the network is handed no empty axis)
        longest = self.positions if len(lengths) == 0 else None
        x = pad_sequences(self.tokens_x, starts, lengths, self.x_fill, longest)
        return x, self._targets(starts, lengths, longest)

    def _targets(self, starts: Tensor, lengths: Tensor, longest: int | None = None) -> Tensor:
        """The targets of the sequences at ``starts``, padded with a missing label."""
        fill = float("nan") if self.tokens_y.is_floating_point() else IGNORE_INDEX
        return pad_sequences(self.tokens_y, starts, lengths, fill, longest)

    def observed_in(self, idx: Tensor | slice) -> int:
        targets = self._targets(self.starts[idx], self.lengths[idx])  # the batch's alone
        return int(observed(targets).sum())

    def held(self) -> tuple[Tensor, Tensor]:
        return self.tokens_x, self.tokens_y

    def row_of(self, index: int) -> int:
        return int(torch.searchsorted(self.starts, index, right=True)) - 1

    def same_inputs(self, other: Split) -> bool:
        return (
            isinstance(other, PackedSplit)
            and other.tokens_x is self.tokens_x
            and (other.lengths is self.lengths or torch.equal(other.lengths, self.lengths))
        )


def pad_sequences(
    tokens: Tensor, starts: Tensor, lengths: Tensor, fill: float, longest: int | None = None
) -> Tensor:
    """(B, T, ...): the B sequences of ``tokens`` (L, ...) that start at ``starts`` and hold
    ``lengths`` positions, each padded with ``fill`` to T, the longest of them (or
    ``longest``, at least that)."""
    if longest is None:
        longest = int(lengths.max()) if len(lengths) else 0
    steps = torch.arange(longest)
    seen = steps[None, :] < lengths[:, None]
    out = tokens.new_full((len(lengths), longest, *tokens.shape[1:]), fill)
    out[seen] = tokens[(starts[:, None] + steps[None, :])[seen]]
    return out


@dataclass
class TaskData:
    task: Task
    train: Split
    dev: Split
    test: Split


@dataclass
class Problem:
    """What a data source builds: the tasks with their data, the input width the trunk reads,
    and optionally an input encoder (embeddings) that the mechanisms share like the trunk."""

    tasks: list[TaskData]
    input_dim: int
    build_stem: Callable[[], nn.Module] | None = None
    meta: dict[str, Any] = field(default_factory=dict)  # what the source wants to pass on
    # how new inputs become the model's inputs (a codec's spec, JSON; see data/codecs.py)
    inference: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.tasks:
            raise DataError("a Problem needs at least one task")
        names = [td.task.name for td in self.tasks]
        if len(set(names)) != len(names):
            raise DataError(f"task names must be unique, got {names}")
        for td in self.tasks:
            for split_name in ("train", "dev", "test"):
                if len(getattr(td, split_name)) == 0:
                    raise DataError(f"task {td.task.name!r} has an empty {split_name} split")
                check_split(td, split_name, self.input_dim, self.build_stem is not None)

    def select(self, names: list[str]) -> Problem:
        """The same problem restricted to ``names``, in that order."""
        by_name = {td.task.name: td for td in self.tasks}
        unknown = [n for n in names if n not in by_name]
        if unknown:
            raise DataError(f"unknown task(s) {unknown}; the data's tasks are {list(by_name)}")
        chosen = [by_name[n] for n in names]
        return Problem(chosen, self.input_dim, self.build_stem, self.meta, self.inference)


def check_split(td: TaskData, split: str, input_dim: int, encoded: bool) -> None:
    """One line naming the task, the split and the row of what the network cannot read in
    ``td``'s ``split``, before torch would say it from deep inside training: inputs of another
    rank than the task's training inputs, of another dtype than the network's or another width
    than ``input_dim``, or not finite (``encoded``: inputs an input encoder reads are left to
    it); class targets that are not ``torch.long`` (or ``uint8``) ids in ``0 .. out_dim - 1``
    (or -100, missing; dev and test may hold the task's ``gold_only`` ids), or not one per row
    (and position) of the inputs; regression targets that are not floats, not one per row (and
    position, and output where ``out_dim`` > 1), or infinite (NaN is missing). A training
    split without an observed target is a warning (its head cannot learn; a series whose
    history is shorter than its dev days has none); dev and test may have none (a series
    unobserved over its horizon)."""
    task = td.task
    data: Split = getattr(td, split)
    x, y = data.held()  # a PackedSplit's tokens: their rows are positions, not sequences
    where = f"task {task.name!r}, {split} split"
    rank = td.train.rank
    if data.rank != rank:
        held = "" if x.dim() == data.rank else f", {data.rank}-d batches held as tokens"
        raise DataError(
            f"{where}: inputs of shape {tuple(x.shape)}{held}, but the task's training inputs "
            f"are {rank}-d"
        )
    if not encoded:  # an input encoder reads what it reads (ids, features of its own)
        if x.dtype != torch.get_default_dtype():
            raise DataError(
                f"{where}: inputs are {x.dtype}; the network reads "
                f"{torch.get_default_dtype()} (x.to({torch.get_default_dtype()}))"
            )
        if x.shape[-1] != input_dim:
            raise DataError(
                f"{where}: inputs have {x.shape[-1]} features, but the problem's input_dim "
                f"is {input_dim}"
            )
        row = first_nonfinite_row(x)
        if row is not None:
            raise DataError(f"{where}: a NaN or infinite input in row {data.row_of(row)}")
    if task.kind == "classification":
        if y.dtype not in (torch.long, torch.uint8):
            raise DataError(
                f"{where}: class targets are {y.dtype}; they are class ids, torch.long "
                "(y.long()), -100 for a missing label"
            )
        if not encoded and y.dim() != x.dim() - 1:
            raise DataError(
                f"{where}: class targets of shape {tuple(y.shape)} for inputs of shape "
                f"{tuple(x.shape)}; one class id per row (and position): "
                f"{tuple(x.shape[:-1])}"
            )
        classes = task.out_dim + (len(task.gold_only) if split != "train" else 0)
        outside = (y != IGNORE_INDEX) & ((y < 0) | (y >= classes))
        if bool(outside.any()):
            gold = f", then {len(task.gold_only)} gold_only" if classes > task.out_dim else ""
            raise DataError(
                f"{where}: class id {int(y[outside][0])} in row "
                f"{data.row_of(first_row(outside))} is outside 0..{classes - 1} "
                f"(out_dim {task.out_dim}{gold}; -100 marks a missing label)"
            )
    else:
        if not y.is_floating_point():
            raise DataError(
                f"{where}: regression targets are {y.dtype}; they are floats (y.float()), "
                "NaN for a missing value"
            )
        outputs = () if task.out_dim == 1 else (task.out_dim,)
        shape = (*x.shape[:-1], *outputs)
        if not encoded and tuple(y.shape) != shape:  # else the first step refuses it
            squeeze = " (y.squeeze(-1))" if tuple(y.shape) == (*shape, 1) else ""
            per = "row (and position)" + (f", {task.out_dim} outputs each" if outputs else "")
            raise DataError(
                f"{where}: regression targets of shape {tuple(y.shape)} for inputs of shape "
                f"{tuple(x.shape)}; one value per {per}: {shape}{squeeze}"
            )
        infinite = torch.isinf(y)
        if bool(infinite.any()):
            raise DataError(
                f"{where}: an infinite target in row {data.row_of(first_row(infinite))} (NaN "
                "marks a missing one)"
            )
    if split == "train" and not bool(observed(y).any()):
        warnings.warn(f"{where}: no observed target; the task's head cannot learn", stacklevel=4)


def first_row(bad: Tensor) -> int:
    """The first row of ``bad`` (a bool tensor, one row per example) that holds a True."""
    return int(bad.reshape(len(bad), -1).any(1).nonzero()[0])


def first_nonfinite_row(x: Tensor, rows: int = 4096) -> int | None:
    """The first row of ``x`` that holds a NaN or an infinity, or None. Read ``rows`` rows at a
    time: ``torch.isfinite`` of a whole split makes a float copy and bool masks beside it, more
    than the split itself (a table's one-hot of 5,000 ids: 2.8 GB of training inputs)."""
    for start in range(0, len(x), rows):
        bad = ~torch.isfinite(x[start : start + rows])
        if bool(bad.any()):
            return start + first_row(bad)
    return None


def check_dev_observed(problem: Problem) -> None:
    """Every task has an observed dev target (model selection scores them), else a one-line
    ``DataError``: before a run makes its folder, where the loop would find it after an
    epoch."""
    unscored = [td.task.name for td in problem.tasks if not bool(observed(td.dev.held()[1]).any())]
    if unscored:
        raise no_dev_label(unscored)


def no_dev_label(tasks: list[str]) -> DataError:
    """The error of ``tasks`` that have no observed dev label (here, or in the loop's dev
    scores)."""
    return DataError(
        f"task(s) {tasks} have no observed label in their dev split; model selection needs at "
        "least one"
    )


class BatchStream:
    """Endless shuffled minibatches of one split, reshuffled at each pass, from its own
    generator so that a run is repeatable and resumable from (seed, epoch).

    With ``world > 1`` processes, every process draws the same permutation and takes its own
    slice of each global batch of ``batch_size * world`` examples: the processes never share an
    example, and together they see exactly the batches one process with ``batch_size * world``
    would. ``next`` also returns this process's share of the global batch, times ``world``
    (``share_of``: 1.0 when the slices hold as many observed targets), so that averaging
    per-process mean losses over processes gives the global mean even for the last, smaller
    batch, for sentences of other lengths and for missing labels.
    """

    def __init__(
        self,
        split: Split,
        batch_size: int,
        generator: torch.Generator,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.split = split
        self.batch_size = batch_size
        self.generator = generator
        self.rank = rank
        self.world = world
        self._order = torch.empty(0, dtype=torch.long)
        self._pos = 0

    def next(self) -> tuple[Tensor, Tensor, float]:
        idx, share = self.next_index()
        x, y = self.split.take(idx)
        return x, y, share

    def next_index(self) -> tuple[Tensor, float]:
        """The rows of this process's next batch, and its share (see ``next``)."""
        idx, global_idx = self.next_rows()
        return idx, share_of(self.split, idx, global_idx, self.world)

    def next_rows(self) -> tuple[Tensor, Tensor]:
        """The rows of this process's next batch and those of the whole global batch."""
        if self._pos >= len(self._order):
            self._order = torch.randperm(len(self.split), generator=self.generator)
            self._pos = 0
        span = self.batch_size * self.world
        global_idx = self._order[self._pos : self._pos + span]
        self._pos += span
        idx = global_idx[self.rank * self.batch_size : (self.rank + 1) * self.batch_size]
        return idx, global_idx


def share_of(split: Split, idx: Tensor, global_idx: Tensor, world: int) -> float:
    """This process's share of a global batch, times ``world``: its observed targets over the
    global batch's. Every task's loss is a mean over observed targets (rows, the tokens of
    padded sentences, the values that are not missing), so scaling each process's mean loss
    by its share and averaging over processes gives the global batch's mean loss, as one
    process with the whole batch computes it. 1.0 for one process, and where nothing of the
    global batch is observed (every process's loss is then zero)."""
    if world == 1:
        return 1.0
    total = split.observed_in(global_idx)
    if total == 0:
        return 1.0
    return split.observed_in(idx) * world / total


def by_share(value: V, share: float) -> V:
    """A process's loss (a tensor or a number) times its ``share`` of the global batch, or the
    loss itself at 1.0: one process adds no op, so its results stay bitwise what they were."""
    return value * share if share != 1.0 else value


def cat_padded(parts: list[Tensor]) -> Tensor:
    """Concatenate batches along rows; sequence batches cut to different lengths are padded
    at the end with a missing label (-100 for integers, NaN for floats)."""
    if len({p.shape[1:] for p in parts}) <= 1:
        return torch.cat(parts)
    longest = max(p.shape[1] for p in parts)
    fill = float("nan") if parts[0].is_floating_point() else IGNORE_INDEX
    padded = []
    for p in parts:
        grow = [0, 0] * (p.dim() - 2) + [0, longest - p.shape[1]]
        padded.append(torch.nn.functional.pad(p, grow, value=fill))
    return torch.cat(padded)
