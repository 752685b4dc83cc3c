"""The size of one optimizer step, for the tests of ``train.grad_clip`` at alternating
(``test_loop``) and joint (``test_joint``) steps."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def assert_the_step_is_bounded(model: nn.Module, before: list[Tensor], bound: float | None) -> None:
    """The parameters moved from ``before`` by a norm within ``bound`` (SGD, lr 1: the clipped
    gradient's norm), or, unclipped (``bound`` None), by far more than the clip tried."""
    deltas = torch.cat(
        [(p.detach() - b).reshape(-1) for p, b in zip(model.parameters(), before, strict=True)]
    )
    if bound is None:
        assert float(deltas.norm()) > 100 * 1e-3
    else:
        assert 0 < float(deltas.norm()) <= bound * (1 + 1e-4)
