"""Where the training loop stands between epochs: what ``checkpoint/last`` carries besides the
tensors, read back with every field checked."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.errors import CheckpointError, short_repr
from mtlshare.training import checkpoint as ckpt
from mtlshare.training.distributed import Dist, restore_rng, rng_states
from mtlshare.training.folder import RunFolder

LAST = "last"
BEST = "best"


@dataclass
class LoopState:
    """Where the loop stands: the last finished epoch, the best one, the epochs without
    improvement, the history of records, the training seconds; saved in ``checkpoint/last``."""

    epoch: int = 0
    global_step: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    bad: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    elapsed: float = 0.0

    def meta(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "bad": self.bad,
            "history": self.history,
            "train_seconds": self.elapsed,
        }

    @classmethod
    def from_meta(cls, meta: dict[str, Any], where: Path, epochs: int) -> LoopState:
        """The state a ``meta.json`` holds, each field checked: a wrong type or an impossible
        value (a negative epoch, an epoch beyond the schedule) is a ``CheckpointError``."""

        def need(key: str, kind: type | tuple[type, ...]) -> Any:
            value = meta.get(key)
            if isinstance(value, bool) or not isinstance(value, kind) or not _fits(value):
                raise CheckpointError(
                    f"{where / 'meta.json'}: does not fit this run or is incomplete ({key!r} "
                    f"is {short_repr(value)}); the checkpoint is damaged or not mtlshare's"
                )
            return value

        state = cls(
            epoch=need("epoch", int),
            global_step=need("global_step", int),
            best_score=float(need("best_score", (int, float))),
            best_epoch=need("best_epoch", int),
            bad=need("bad", int),
            history=need("history", list),
            elapsed=float(need("train_seconds", (int, float))),
        )
        if not (
            0 <= state.epoch <= epochs
            and 0 <= state.best_epoch <= state.epoch
            and state.bad >= 0
            and state.global_step >= 0
            and len(state.history) == state.epoch
        ):
            raise CheckpointError(
                f"{where / 'meta.json'}: does not fit this run or is incomplete (epoch "
                f"{state.epoch}, best epoch {state.best_epoch}, {len(state.history)} records in a "
                f"run of {epochs} epochs)"
            )
        return state


def _fits(value: object) -> bool:
    """Whether a number of ``meta.json`` is one a float can hold (JSON's integers have no
    bound: ``float`` of one of 400 digits is an ``OverflowError``)."""
    return not isinstance(value, int) or abs(value) < 2**63


class LoopCheckpoints:
    """What the loop saves in the run folder and restores from it: the model's and the
    weighting's tensors (prefixed ``model.`` and ``weighting.``), the optimizer's state and
    every process's random states (``last``; its GPU's too when ``device`` is one), beside the
    ``LoopState`` in ``meta.json``."""

    def __init__(
        self,
        model: nn.Module,
        weighting: nn.Module,
        folder: RunFolder | None,
        dist: Dist,
        device: torch.device | None = None,
    ) -> None:
        self.model, self.weighting, self.folder, self.dist = model, weighting, folder, dist
        self.device = dist.device if device is None else device  # where the loop trains

    @property
    def writes(self) -> bool:
        """Whether this process writes the run's files (rank 0, with a folder)."""
        return self.folder is not None and self.dist.is_main

    def tensors(self) -> dict[str, Tensor]:
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"weighting.{k}": v for k, v in self.weighting.state_dict().items()})
        return tensors

    def load_tensors(self, tensors: dict[str, Tensor]) -> None:
        self.model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        self.weighting.load_state_dict(
            {k[10:]: v for k, v in tensors.items() if k.startswith("weighting.")}
        )

    def load_saved(self, name: str) -> None:
        """The model's and the weighting's tensors from the folder's checkpoint ``name`` (a
        resumed run's selected model, scored when it ends); one that does not fit this run is
        a one-line ``CheckpointError``, as for ``resume``, not torch's list of keys."""
        assert self.folder is not None
        where = self.folder.checkpoint_dir(name)
        tensors, _ = self.folder.load_checkpoint(name)
        with fitting(where):
            self.load_tensors(tensors)

    def save(
        self, name: str, optimizer: torch.optim.Optimizer | None, meta: dict[str, Any]
    ) -> None:
        # collective: every rank makes the call
        rng = rng_states(self.dist, self.device) if optimizer is not None else {}
        if self.folder is None or not self.dist.is_main:
            return
        tensors = self.tensors()
        if optimizer is not None:
            opt_tensors, opt_meta = ckpt.optimizer_to_flat(optimizer.state_dict())
            tensors.update(opt_tensors)
            tensors.update(rng)
            meta = {**meta, "optimizer": opt_meta}
        self.folder.save_checkpoint(name, tensors, meta)

    def resume(self, optimizer: torch.optim.Optimizer, epochs: int) -> LoopState | None:
        """The loop's state from ``checkpoint/last``, restored into model and optimizer; None
        when there is none. A checkpoint of another run or with damaged metadata is a one-line
        ``CheckpointError``."""
        if self.folder is None or not self.folder.has_checkpoint(LAST):
            return None
        where = self.folder.checkpoint_dir(LAST)
        tensors, meta = self.folder.load_checkpoint(LAST)
        state = LoopState.from_meta(meta, where, epochs)
        with fitting(where):
            self.load_tensors(tensors)
            optimizer.load_state_dict(ckpt.optimizer_from_flat(tensors, meta["optimizer"]))
        restore_rng(tensors, self.dist, self.device)
        return state


@contextlib.contextmanager
def fitting(where: Path) -> Iterator[None]:
    """Around loading checkpoint ``where`` into a run: a part the model checks itself and
    finds damaged (sparse masks), or tensors that do not fit, is a one-line
    ``CheckpointError`` naming the checkpoint, not torch's list of keys."""
    try:
        yield
    except CheckpointError as e:
        raise CheckpointError(f"{where}: {e}") from None
    except (KeyError, ValueError, RuntimeError, TypeError) as e:
        raise CheckpointError(
            f"{where}: does not fit this run or is incomplete ({type(e).__name__}: "
            f"{ckpt.error_line(e)[:200]})"
        ) from None
