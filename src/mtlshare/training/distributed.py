"""Training across processes with PyTorch's own engine: ``torchrun`` starts the processes,
``torch.distributed`` connects them (gloo on CPU, nccl on GPUs) and
``DistributedDataParallel`` averages gradients.

What mtlshare adds: every process draws the same task at every step (the task sampler is seeded
identically everywhere), so gradients of different tasks or subnets are never averaged
together; each task's data is split across processes without overlap (``BatchStream``); only
rank 0 writes files. Parameters a step does not use (other tasks' heads, layers above a task's
depth) are handled by ``find_unused_parameters=True``. What scales is the data per task: every
process runs every task.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from mtlshare.errors import ConfigError

T = TypeVar("T")


def resolve_device(name: str) -> torch.device:
    """ "cpu", "cuda" or "auto" (cuda when available) as a device."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


@contextmanager
def torch_threads(threads: int) -> Iterator[None]:
    """``threads`` torch threads inside the block (0: as they are), and the count found before
    it again after it: a run's ``train.threads`` never changes the rest of the caller's process."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; ``world == 1`` when not under torchrun. ``device`` is
    where this process trains (its own GPU under nccl)."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment(device: str = "cpu") -> Dist:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE``, ``RANK``,
    ``LOCAL_RANK``, ``MASTER_ADDR``...), once; a single process when there is none.

    ``device`` is ``train.device``: on "cuda" (or "auto" with GPUs present) each process takes
    the GPU of its local rank and the processes talk over nccl; on the CPU over gloo.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    on = resolve_device(device)
    if on.type == "cuda":
        local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        gpus_needed(local, torch.cuda.device_count(), device)
        on = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(on)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if on.type == "cuda" else "gloo")
    return Dist(dist.get_rank(), dist.get_world_size(), on)


def gpus_needed(processes: int, gpus: int, device: str = "cuda") -> None:
    """Refuse, in one line, more GPU processes on this machine than it has GPUs: each process
    under nccl takes its own GPU (nccl refuses two processes on one GPU, "Duplicate GPU
    detected"), and a local rank past the last GPU has none to take. Every process checks
    before any joins the group, so none waits for a process that stopped. ``device`` is
    ``train.device`` as given ("cuda", "auto"), for the message."""
    if processes <= gpus:
        return
    use = f"--nproc_per_node={gpus} at most, or " if gpus else ""
    raise ConfigError(
        f"torchrun started {processes} processes on this machine with train.device = "
        f"{device!r}, but torch sees {gpus} GPU(s) here: each process needs a GPU of its own "
        f'(nccl does not share one between processes); use {use}train.device = "cpu" (gloo)'
    )


def wrap(model: nn.Module, where: Dist) -> nn.Module:
    """``model`` itself, or a ``DistributedDataParallel`` over it when there are processes."""
    if not where.enabled:
        return model
    ids = [where.device.index] if where.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(model, device_ids=ids, find_unused_parameters=True)


def from_rank0(obj: T, where: Dist) -> T:
    """Rank 0's ``obj`` on every process (through the process group, between our own processes
    only): decisions such as early stopping and a searched structure must be the same on every
    rank even where GPU kernels are not bit-for-bit repeatable."""
    if not where.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_over_processes(values: dict[str, float], where: Dist) -> dict[str, float]:
    """The mean of every process's ``values`` (the same keys on every process), summed in rank
    order, so the same on every rank. Through the process group's object collective, as
    ``from_rank0``: a tensor collective would need a tensor on the group's device (nccl
    reduces no CPU tensor). One process: ``values`` as they are."""
    if not where.enabled:
        return values
    parts: list[dict[str, float]] = [{} for _ in range(where.world)]
    dist.all_gather_object(parts, values)
    return {k: sum(part[k] for part in parts) / where.world for k in values}


def mean_over_processes_tensor(value: Tensor, where: Dist) -> Tensor:
    """The mean of every process's ``value`` (a tensor on the process's device, the same
    shape everywhere), the same on every rank."""
    total = value.detach().clone()
    dist.all_reduce(total)
    return total / where.world


RNG_KEYS = ("rng.torch", "rng.cuda")  # a checkpoint's random states, not the model's


def rng_states(where: Dist, device: torch.device | None = None) -> dict[str, torch.Tensor]:
    """Every process's random states, for rank 0 to save: "rng.torch" is this process's CPU
    generator (it drives dropout on the CPU), and on a GPU run (``device``, by default the
    process's ``where.device``, of type "cuda") "rng.cuda" is that GPU's generator, which
    dropout draws from there; "rng.torch.R" and "rng.cuda.R" are rank R's. A CPU run saves
    what it always did. A collective call: every rank must make it."""
    on = where.device if device is None else device
    own = {"rng.torch": torch.get_rng_state()}
    if on.type == "cuda":
        own["rng.cuda"] = torch.cuda.get_rng_state(on)
    states = dict(own)
    if where.enabled:
        gathered: list[object] = [None] * where.world
        dist.all_gather_object(gathered, own)
        for r, theirs in enumerate(gathered):
            assert isinstance(theirs, dict)
            states.update({f"{k}.{r}": t for k, t in theirs.items()})
    return states


def restore_rng(
    tensors: dict[str, torch.Tensor], where: Dist, device: torch.device | None = None
) -> None:
    """Put back this process's random states from ``rng_states`` output. The GPU's is put back
    on a GPU run (``device`` as for ``rng_states``) when the checkpoint has one: a checkpoint
    of a CPU run, or of an mtlshare that saved only the CPU's, restores the CPU's alone."""
    torch.set_rng_state(tensors.get(f"rng.torch.{where.rank}", tensors["rng.torch"]))
    on = where.device if device is None else device
    cuda = tensors.get(f"rng.cuda.{where.rank}", tensors.get("rng.cuda"))
    if on.type == "cuda" and cuda is not None:
        torch.cuda.set_rng_state(cuda, on)


def barrier(where: Dist) -> None:
    if where.enabled:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
