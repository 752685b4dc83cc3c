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
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn


@dataclass(frozen=True)
class Dist:
    """This process's place in the job; ``world == 1`` when not under torchrun."""

    rank: int = 0
    world: int = 1

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_environment() -> Dist:
    """Join the process group torchrun describes in the environment (``WORLD_SIZE``, ``RANK``,
    ``MASTER_ADDR``...), once; a single process when there is none."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        dist.init_process_group(backend=backend)
    return Dist(dist.get_rank(), dist.get_world_size())


def wrap(model: nn.Module, where: Dist) -> nn.Module:
    """``model`` itself, or a ``DistributedDataParallel`` over it when there are processes."""
    if not where.enabled:
        return model
    return nn.parallel.DistributedDataParallel(model, find_unused_parameters=True)


def barrier(where: Dist) -> None:
    if where.enabled:
        dist.barrier()


def shutdown() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
