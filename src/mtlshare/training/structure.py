"""The ``StructureTrainer`` the training loop hands to ``SharingModel.prepare``: a mechanism
that searches a structure (sparse sharing's masks) trains, scores and checkpoints through it."""

from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor, nn

from mtlshare.errors import CheckpointError
from mtlshare.training.distributed import RNG_KEYS, Dist, restore_rng, rng_states
from mtlshare.training.folder import RunFolder
from mtlshare.training.state import BEST

WEIGHTING = "loop.weighting."  # the prefix of the weighting's tensors in a search checkpoint


class Loop(Protocol):
    """What the search reaches of the training loop (``Trainer``)."""

    progress: bool
    global_step: int
    folder: RunFolder | None
    dist: Dist
    device: torch.device  # where it trains: a GPU's random state is saved with the CPU's

    @property
    def weighting(self) -> nn.Module: ...  # its state goes into the search's checkpoints

    def make_optimizer(self) -> torch.optim.Optimizer: ...

    def run_steps(
        self, optimizer: torch.optim.Optimizer, names: list[str], steps: int, epoch: int
    ) -> dict[str, float]: ...

    def score(self, task: str, split: str) -> float: ...

    def higher_is_better(self, task: str) -> bool: ...

    def steps_per_epoch(self, names: list[str]) -> int: ...


class LoopStructureTrainer:
    """The ``StructureTrainer`` a ``Trainer`` hands to ``SharingModel.prepare``: training and
    scoring through the loop, and the search's checkpoints in the run folder (with the loop's
    step counter and RNG states, so that a resumed search draws the same batches)."""

    def __init__(self, trainer: Loop, resume: bool) -> None:
        self.trainer = trainer
        self.resume = resume
        self.progress = trainer.progress

    def train_steps(self, tasks: list[str], steps: int) -> None:
        t = self.trainer
        t.run_steps(t.make_optimizer(), tasks, steps, epoch=-(t.global_step + 1))

    def dev_score(self, task: str) -> float:
        value = self.trainer.score(task, "dev")
        return value if self.trainer.higher_is_better(task) else -value

    def steps_per_epoch(self, tasks: list[str]) -> int:
        return self.trainer.steps_per_epoch(tasks)

    def save(self, name: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        t = self.trainer
        rng = rng_states(t.dist, t.device)  # collective: before the rank-0 gate
        if t.folder is None or not t.dist.is_main:
            return
        meta = {**meta, "loop.global_step": t.global_step}
        # the weighting's state too (RLW's last draw, the uncertainty weights), so that a
        # resumed search weighs its steps as the uncut one did
        weighting = {f"{WEIGHTING}{k}": v for k, v in t.weighting.state_dict().items()}
        t.folder.save_checkpoint(name, {**tensors, **weighting, **rng}, meta)

    def load(
        self, name: str, *, restore: bool = True
    ) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        t = self.trainer
        if not self.resume or t.folder is None or not t.folder.has_checkpoint(name):
            return None
        tensors, meta = t.folder.load_checkpoint(name)
        if restore:
            restore_rng(tensors, t.dist, t.device)
        weighting = {k[len(WEIGHTING) :]: v for k, v in tensors.items() if k.startswith(WEIGHTING)}
        if restore and weighting:  # (a search checkpoint of an earlier mtlshare has none)
            t.weighting.load_state_dict(weighting)
        tensors = {k: v for k, v in tensors.items() if not k.startswith((*RNG_KEYS, WEIGHTING))}
        step = meta.pop("loop.global_step", None)
        if isinstance(step, bool) or not isinstance(step, int) or step < 0:
            raise CheckpointError(
                f"{t.folder.checkpoint_dir(name) / 'meta.json'}: 'loop.global_step' is "
                f"{step!r}; the checkpoint is damaged or not mtlshare's"
            )
        if restore:
            t.global_step = step
        return tensors, meta

    def selected_state(self, run_dir: str) -> dict[str, Tensor]:
        return RunFolder(run_dir).model_state(BEST)
