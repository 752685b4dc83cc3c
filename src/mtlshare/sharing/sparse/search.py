"""Iterative magnitude pruning, the mask search of Sparse Sharing (Sun, Shao et al., AAAI 2020,
Algorithm 1), driven through a small protocol (``SearchSubject``), so that it knows nothing of
the training loop or of any model.

For each task t, starting from an all-ones mask: rewind the weights to the rewind point, train
k steps on t through mask M, score M on dev, keep (M, density, score) as a candidate; stop once
the density is at most the target S, else prune ``alpha`` of M's remaining weights by global
magnitude and repeat. The state is saved after every round; a resumed search continues at the
next round and ends with the same masks as an uninterrupted one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor
from tqdm import tqdm

from mtlshare.sharing.sparse.masks import (
    density,
    global_magnitude_prune,
    ones_like_params,
    pack_masks,
    unpack_masks,
)

Masks = dict[str, Tensor]


@dataclass
class Candidate:
    """One round's mask of one task with its density and dev score (higher is better)."""

    task: str
    round: int
    density: float
    score: float
    mask: Masks = field(repr=False)
    final: bool = False  # the task's last round
    # the mask packed for the search's checkpoint, once: every round saves every candidate,
    # and packing them all again each time grew with the square of tasks x rounds
    packed: tuple[dict[str, Tensor], dict[str, Any]] | None = field(default=None, repr=False)

    def packed_mask(self) -> tuple[dict[str, Tensor], dict[str, Any]]:
        if self.packed is None:
            self.packed = pack_masks({"m": self.mask})
        return self.packed

    def summary(self) -> dict[str, Any]:
        return {
            "task": self.task,
            "round": self.round,
            "density": self.density,
            "dev_score": self.score,
            "final": self.final,
        }


class SearchSubject(Protocol):
    """What the search needs from the network it prunes and the loop that trains it."""

    def prunable(self) -> Mapping[str, Tensor]:
        """The current prunable weights by name."""
        ...

    def set_mask(self, task: str, masks: Masks) -> None:
        """Make ``task``'s forward pass use ``masks``."""
        ...

    def rewind(self) -> None:
        """Reset every weight to the rewind point."""
        ...

    def train(self, task: str, steps: int) -> None:
        """Train ``task`` alone for ``steps`` steps."""
        ...

    def score(self, task: str) -> float:
        """``task``'s dev score, higher is better."""
        ...

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        """Persist the search state."""
        ...

    def load(self) -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """The saved search state, or None to start afresh."""
        ...


def rounds_needed(alpha: float, target_density: float) -> int:
    """Pruning rounds until (1 - alpha)^r <= target (the search also trains round 0, unpruned)."""
    if target_density >= 1.0:
        return 0
    return math.ceil(math.log(target_density) / math.log(1.0 - alpha) - 1e-9)


def _pack(
    candidates: list[Candidate], current: Masks | None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """Every candidate's mask (packed once each) and the one being pruned, in the layout of
    ``pack_masks`` with keys ``TASK@ROUND`` and ``current``."""
    tensors, meta = pack_masks({})
    for c in candidates:
        key = f"{c.task}@{c.round}"
        packed, packed_meta = c.packed_mask()
        tensors.update({f"{key}/{k[2:]}": v for k, v in packed.items()})
        meta["shapes"][key] = packed_meta["shapes"]["m"]
    if current is not None:  # last, as the keys were always laid out
        current_tensors, current_meta = pack_masks({"current": current})
        tensors.update(current_tensors)
        meta["shapes"].update(current_meta["shapes"])
    return tensors, {"masks": meta, "candidates": [c.summary() for c in candidates]}


def search_masks(
    tasks: list[str],
    subject: SearchSubject,
    *,
    alpha: float,
    target_density: float,
    steps: Mapping[str, int],
    progress: bool = True,
) -> list[Candidate]:
    """Every round's candidate mask for every task (Algorithm 1), resuming a saved search.
    ``steps[task]`` is k, the training steps of one round."""
    candidates: list[Candidate] = []
    current: Masks | None = None
    state = subject.load()
    if state is not None:
        tensors, meta = state
        unpacked = unpack_masks(tensors, meta["masks"])
        for c in meta["candidates"]:
            candidates.append(
                Candidate(
                    c["task"],
                    c["round"],
                    c["density"],
                    c["dev_score"],
                    unpacked[f"{c['task']}@{c['round']}"],
                    bool(c.get("final", False)),
                )
            )
        current = unpacked.get("current")
    per_task = rounds_needed(alpha, target_density) + 1
    bar = tqdm(
        total=per_task * len(tasks),
        initial=len(candidates),
        disable=None if progress else True,  # None: off when not a terminal
        desc="mask search",
        unit="round",
        leave=False,
        dynamic_ncols=True,
    )
    for task in tasks:
        done = [c for c in candidates if c.task == task]
        if done and (done[-1].final or done[-1].density <= target_density):
            continue  # this task's search had finished before the interruption
        mask = current if (done and current is not None) else ones_like_params(subject.prunable())
        r = len(done)
        while True:
            bar.set_description(f"mask search {task} round {r}")
            subject.rewind()
            subject.set_mask(task, mask)
            subject.train(task, steps[task])
            d = density(mask)
            candidates.append(Candidate(task, r, d, subject.score(task), mask))
            bar.update(1)
            bar.set_postfix(density=f"{d:.3f}", dev=f"{candidates[-1].score:.4g}")
            finished = d <= target_density
            if not finished:
                pruned = global_magnitude_prune(subject.prunable(), mask, alpha)
                if not any(bool(m.any()) for m in pruned.values()):
                    # a task keeps at least its last weights: the search stops above the target
                    _warn_floor(task, mask, d, target_density, alpha)
                    finished = True
                else:
                    # too few weights left for alpha to remove one (round(alpha * n) == 0):
                    # stop here rather than train the same mask forever
                    finished = density(pruned) == d
                    mask = pruned
            candidates[-1].final = finished
            subject.save(*_pack(candidates, None if finished else mask))
            if finished:
                break
            r += 1
        current = None
    bar.close()
    return candidates


def _warn_floor(task: str, mask: Masks, d: float, target: float, alpha: float) -> None:
    left = sum(int(m.sum()) for m in mask.values())
    warnings.warn(
        f"sparse: the search for {task!r} stopped at density {d:.3g}, above target_density "
        f"{target:g}: pruning {alpha:g} of the {left} weights left would empty the mask",
        stacklevel=3,
    )


def select(candidates: list[Candidate], rule: str, value: float = 0.0) -> Candidate:
    """One task's chosen candidate.

    ``best``: the best dev score, ties to the lowest density (the paper's rule); ``round``: round
    ``int(value)`` (the last if the search ended earlier); ``density``: the first candidate whose
    density is at most ``value`` (the last if none is).
    """
    if not candidates:
        raise ValueError("no candidates to select from")
    if rule == "best":
        return max(candidates, key=lambda c: (c.score, -c.density))
    if rule == "round":
        return candidates[min(int(value), len(candidates) - 1)]
    if rule == "density":
        return next((c for c in candidates if c.density <= value), candidates[-1])
    raise ValueError(f"unknown selection rule {rule!r}")
