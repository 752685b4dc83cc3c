"""``[sparse]``: the settings of the mask search (Algorithm 1 of the paper) and of the choice of
mask, checked before anything is built."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mtlshare.errors import ConfigError, one_of

REWINDS = ("warmup", "init")
RULES = ("best", "round", "density")


@dataclass
class SparseConfig:
    """``[sparse]``: the mask search (Algorithm 1 of the paper) and the choice of mask.

    ``alpha``: share of the remaining weights pruned per round; ``target_density`` (S): stop
    once a mask keeps at most this share; ``round_steps`` / ``round_epochs`` (k): training per
    round (steps win when > 0); ``warmup_steps`` / ``warmup_epochs`` (w): multi-task warm-up
    before the search; ``rewind``: "warmup" (to the weights after warm-up) or "init" (which
    discards a warm-up: the subnets train from the initial weights too);
    ``select``: "best" (best dev score, ties to the lowest density), "round" (``select_round``)
    or "density" (first mask with density <= ``select_density``); ``prunable``: glob patterns
    over the trunk's parameter names (empty: every weight matrix or kernel of the trunk;
    embeddings, biases, norm layers' gains and heads are never pruned by default); ``depths``:
    per-task supervision depth (as in hierarchical sharing); ``masks_from``: the output folder
    of a finished sparse run whose selected masks to train with, for this run's tasks, instead
    of searching (the weights start from this run's own initialisation: the paper's "single
    task on its subnet").
    """

    alpha: float = 0.2
    target_density: float = 0.1
    round_steps: int = 0
    round_epochs: float = 1.0
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    rewind: str = "warmup"
    select: str = "best"
    select_round: int = 0
    select_density: float = 0.0
    prunable: list[str] = field(default_factory=list)
    depths: dict[str, int] = field(default_factory=dict)
    masks_from: str = ""

    def validate(self) -> None:
        if not 0.0 < self.alpha < 1.0:
            raise ConfigError(f"sparse.alpha: the pruning rate must be in (0, 1), got {self.alpha}")
        if not 0.0 < self.target_density <= 1.0:
            raise ConfigError(
                f"sparse.target_density: must be in (0, 1], got {self.target_density}"
            )
        for key in (
            "round_steps",
            "round_epochs",
            "warmup_steps",
            "warmup_epochs",
            "select_round",
            "select_density",
        ):
            value = getattr(self, key)
            if not (value >= 0 and math.isfinite(value)):
                raise ConfigError(f"sparse.{key}: must be a finite number >= 0, got {value}")
        if self.round_steps == 0 and self.round_epochs <= 0:
            raise ConfigError(
                "sparse: set round_steps or round_epochs > 0 (k, the training per pruning round)"
            )
        if self.rewind not in REWINDS:
            raise ConfigError(f"sparse.rewind: {self.rewind!r} is not one of {one_of(REWINDS)}")
        if self.select not in RULES:
            raise ConfigError(f"sparse.select: {self.select!r} is not one of {one_of(RULES)}")
