"""Task samplers: which task's batch the next training step takes.

All are driven by a ``torch.Generator`` they are given, so that a run is repeatable and every
process of a distributed job can draw the same sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from mtlshare.errors import ConfigError, one_of

SAMPLERS = ("proportional", "uniform", "round_robin", "temperature")


def task_probabilities(sizes: Sequence[int], kind: str, temperature: float = 1.0) -> list[float]:
    """Probability of each task under ``kind``: proportional to dataset size, uniform, or
    proportional to size**(1/temperature) (temperature 1 = proportional, large = uniform).
    Round-robin is deterministic; its long-run shares are uniform."""
    if kind not in SAMPLERS:
        raise ConfigError(f"train.sampler: {kind!r} is not one of {one_of(SAMPLERS)}")
    if not sizes or any(s <= 0 for s in sizes):
        raise ConfigError(f"every task needs training examples; sizes are {list(sizes)}")
    if kind in ("uniform", "round_robin"):
        return [1.0 / len(sizes)] * len(sizes)
    if kind == "temperature":
        if temperature <= 0:
            raise ConfigError(f"train.temperature: must be > 0, got {temperature}")
        try:
            weights = [s ** (1.0 / temperature) for s in sizes]
        except OverflowError:  # a small temperature: the same ratios, over the largest size
            weights = [(s / max(sizes)) ** (1.0 / temperature) for s in sizes]
        if not all(weights):  # a ratio below 1e-308: the task would never be drawn
            raise ConfigError(
                f"train.temperature: {temperature} gives a task of {min(sizes)} examples no "
                f"chance to be drawn beside one of {max(sizes)} (size ** (1 / temperature) "
                "is beyond floating point); use a larger temperature"
            )
    else:
        weights = [float(s) for s in sizes]
    total = sum(weights)
    return [w / total for w in weights]


def task_schedule(
    sizes: Sequence[int],
    kind: str,
    steps: int,
    generator: torch.Generator,
    temperature: float = 1.0,
    offset: int = 0,
) -> list[int]:
    """The task index of each of ``steps`` steps. ``offset`` is the global step of the first,
    so round-robin continues where the last epoch stopped."""
    probs = task_probabilities(sizes, kind, temperature)
    if kind == "round_robin":
        return [(offset + i) % len(sizes) for i in range(steps)]
    draws = torch.multinomial(torch.tensor(probs), steps, replacement=True, generator=generator)
    return [int(i) for i in draws]
