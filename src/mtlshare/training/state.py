"""Where the training loop stands between epochs: what ``checkpoint/last`` carries besides the
tensors, read back with every field checked."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mtlshare.errors import CheckpointError

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
            if isinstance(value, bool) or not isinstance(value, kind):
                raise CheckpointError(
                    f"{where / 'meta.json'}: does not fit this run or is incomplete ({key!r} "
                    f"is {value!r}); the checkpoint is damaged or not mtlshare's"
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
