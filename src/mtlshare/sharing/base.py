"""The one interface every sharing mechanism implements.

A mechanism is an ``nn.Module`` built from a ``Backbone`` (the layers of the trunk) and the list
of tasks. The training loop only ever calls the methods below, so it never needs to know which
mechanism it trains.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch
from torch import Tensor, nn

from mtlshare.models.trunks import Backbone
from mtlshare.tasks.task import Task

# where the interface below is written for users, named in the errors about a mechanism of
# one's own that breaks it
INTERFACE_DOC = "docs/mechanisms.md: A mechanism or a data source of your own"


class SharingModel(nn.Module):
    """Base class of all mechanisms.

    Subclasses implement ``forward(x, task) -> head output`` and say which parameters are shared,
    which belong to one task, and which are embeddings or output layers (left out of the counted
    parameters, the convention of the Sparse Sharing paper).
    """

    # ``mtlshare add-task``: how this mechanism trains a new task without changing what the
    # trained tasks use, in a few words; None: it cannot (the command lists those that can)
    add_task_strategy: ClassVar[str | None] = None
    # joint steps (``train.schedule = "joint"``): whether one backward over the summed task
    # losses gives every task's gradient; False when a task's pass changes the network in place
    # (sparse sharing's masks), so each task takes its own backward
    joint_backward: ClassVar[bool] = True

    def __init__(self, tasks: list[Task]) -> None:
        super().__init__()
        self.tasks = {t.name: t for t in tasks}

    @property
    def task_names(self) -> list[str]:
        return list(self.tasks)

    def forward(self, x: Tensor, task: str) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward_tasks(self, x: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        """Every task's head output for one batch that all of them read (a joint step on data
        labelled for every task). Mechanisms whose tasks share layers override it to run those
        once; by default each task runs its own pass."""
        return {t: self(x, t) for t in tasks}

    def leave_task(self, tasks: list[str] | None = None) -> None:
        """Called once a joint step's per-task passes over ``tasks`` are done, before its
        optimizer step (``after_optimizer_step`` follows it): a mechanism that changed the
        network in place for one task makes it ready for an update of all of them (sparse
        sharing: only the union of their masks may move). No-op here."""

    def head(self, task: str) -> nn.Module:
        """``task``'s output layer (its loss and decoding may need it, e.g. a CRF); every
        mechanism keeps its heads in ``self.heads``, keyed by task."""
        heads = self._modules.get("heads")
        if not isinstance(heads, nn.ModuleDict):  # pragma: no cover - a mechanism's bug
            raise TypeError(f"{type(self).__name__} keeps no ModuleDict of heads")
        return heads[task]

    def stem_for(self, task: str) -> nn.Module:
        """The input encoder ``task`` reads: the shared ``stem``, or its own in ``stems``."""
        stems = self._modules.get("stems")
        if isinstance(stems, nn.ModuleDict):
            return stems[task]
        stem = self._modules.get("stem")
        if stem is None:  # pragma: no cover - a mechanism's bug
            raise TypeError(f"{type(self).__name__} keeps no stem")
        return stem

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        """Parameters that more than one task reads."""
        raise NotImplementedError

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        """Parameters owned by ``task`` alone: its head and its own layers or copies (a
        cross-stitch trunk counts here even though the units let other tasks read it)."""
        raise NotImplementedError

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        """Embeddings and output layers: in ``total`` but not in ``counted``."""
        raise NotImplementedError

    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        """A penalty added to a training step's loss; zero unless the mechanism ties weights.

        ``task``: the step's task (alternate steps), whose share of the penalty is all the step
        needs; ``every``: how many steps of any task one step of ``task`` stands for (the
        inverse of its sampling probability), so that over the tasks' steps the expected
        gradient is the whole penalty's. ``None``: the whole penalty (a joint step)."""
        return torch.zeros(())

    def before_optimizer_step(self, task: str) -> None:
        """Called right after backward on ``task``'s batch, before gradient clipping and the
        optimizer step; a no-op unless overridden."""

    def after_optimizer_step(self, task: str) -> None:
        """Called after each optimizer step on ``task``'s batch; a no-op unless overridden."""

    def prepare(self, trainer: StructureTrainer) -> None:
        """Called once before training; mechanisms that search a structure do it here."""

    def analyse(self, inputs: Mapping[str, Iterable[Tensor]]) -> None:
        """Called by the training loop once, on the model selected on dev, in eval mode and
        without gradients: ``inputs[task]`` yields the task's dev inputs in batches, on the
        model's device, read only when iterated (so a mechanism that ignores them costs
        nothing). A mechanism that reports statistics of its forward passes (the gate weights of
        a mixture of experts) computes them here, for ``report`` and ``write_artifacts``."""

    def report(self) -> dict[str, Any]:
        """Extra, mechanism-specific results for ``results.json``."""
        return {}

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        """Write mechanism-specific files (plots) into ``out_dir``; returns their paths."""
        return []

    # -- adding tasks to a trained model (``add_task_strategy``) --------------------------------
    def freeze_for_new_tasks(self, trained: list[str], new: list[str]) -> None:
        """Make only the new tasks' own parameters trainable: everything the trained tasks read
        (shared parameters, their own) is frozen, also a new task's parameter that is shared
        or another task's (a head tied to the shared word embedding)."""
        taken = {id(p) for p in self.shared_parameters()}
        taken |= {id(p) for t in trained for p in self.task_parameters(t)}
        own = {id(p) for t in new for p in self.task_parameters(t)} - taken
        for p in self.parameters():
            p.requires_grad_(id(p) in own)

    def trainable_for_new_tasks(self) -> int:
        """Scalars training the new tasks may change."""
        return _numel(p for p in self.parameters() if p.requires_grad)

    def snapshot_frozen(self) -> dict[str, Tensor]:
        """Copies of what the trained tasks read, to check after training that it is unchanged."""
        return {n: p.detach().clone() for n, p in self.named_parameters() if not p.requires_grad}

    def changed_since(self, snapshot: dict[str, Tensor]) -> list[str]:
        """Names of the snapshot's parameters whose values differ now."""
        params = dict(self.named_parameters())
        return [n for n, old in snapshot.items() if not torch.equal(params[n].detach(), old)]

    def addition_report(self, new: list[str]) -> dict[str, Any]:
        """Mechanism-specific facts about the added tasks, for ``add_task.json``."""
        return {}

    def param_counts(self) -> dict[str, int]:
        """Numbers of scalar parameters: ``total``, ``shared``, ``task_specific`` and ``counted``
        (``total`` without embeddings and output layers)."""
        total = _numel(self.parameters())
        shared = _numel(self.shared_parameters())
        shared_ids = {id(p) for p in self.shared_parameters()}
        # a task's parameter that is also shared (a head tied to the shared embedding) counts
        # as shared only
        specific = sum(
            _numel(p for p in self.task_parameters(t) if id(p) not in shared_ids)
            for t in self.tasks
        )
        uncounted = _numel(self.uncounted_parameters())
        return {
            "total": total,
            "shared": shared,
            "task_specific": specific,
            "counted": total - uncounted,
        }


class PerTaskCopies(SharingModel):
    """Base of the mechanisms that give every task its own copy of the whole network (soft
    sharing, cross-stitch): ``stems``, ``trunks`` and ``heads`` keyed by task. Each copy is
    owned by its task; embeddings and heads are not counted."""

    def __init__(self, backbone: Backbone, tasks: list[Task]) -> None:
        super().__init__(tasks)
        self.stems = nn.ModuleDict({t.name: backbone.stem() for t in tasks})
        self.trunks = nn.ModuleDict({t.name: backbone.layers() for t in tasks})
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.stems[task].parameters()
        yield from self.trunks[task].parameters()
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stems.parameters()
        yield from self.heads.parameters()


class StructureTrainer(Protocol):
    """What ``SharingModel.prepare`` may use, all through the main loop and objective (the
    training loop hands one over; a mechanism that searches a structure drives it)."""

    progress: bool  # show progress bars

    def train_steps(self, tasks: list[str], steps: int) -> None:
        """``steps`` sampled steps over ``tasks`` with a fresh optimizer of the configured kind."""
        ...

    def dev_score(self, task: str) -> float:
        """The task's dev metric, signed so that higher is better."""
        ...

    def steps_per_epoch(self, tasks: list[str]) -> int:
        """What one epoch over ``tasks`` means in steps."""
        ...

    def save(self, name: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """A resumable checkpoint of the search (the loop adds its step counter and RNG state,
        so that a resumed search draws the same batches)."""
        ...

    def load(
        self, name: str, *, restore: bool = True
    ) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """The checkpoint ``save`` wrote, or None when there is nothing to resume; ``restore``
        also sets the loop's step counter and RNG state to the saved ones."""
        ...

    def selected_state(self, run_dir: str) -> dict[str, Tensor]:
        """The model state another finished run selected (e.g. the masks to train with)."""
        ...


def _numel(params: Iterable[nn.Parameter]) -> int:
    seen: set[int] = set()
    n = 0
    for p in params:
        if id(p) not in seen:
            seen.add(id(p))
            n += p.numel()
    return n


def as_layers(module: nn.Module) -> nn.ModuleList:
    """A ``ModuleDict`` entry known to be a ``ModuleList`` of layers, typed as one."""
    if not isinstance(module, nn.ModuleList):
        raise TypeError(f"expected a ModuleList of layers, got {type(module).__name__}")
    return module


def run_layers(layers: nn.Module | Iterable[nn.Module], x: Tensor) -> Tensor:
    """Apply ``layers`` (a ``ModuleList`` or any iterable of layers) in order."""
    # annotated: torch 2.3's ``Module.__getattr__ -> Any`` keeps mypy from narrowing the union
    seq: Iterable[nn.Module] = layers.children() if isinstance(layers, nn.Module) else layers
    for layer in seq:
        x = layer(x)
    return x
