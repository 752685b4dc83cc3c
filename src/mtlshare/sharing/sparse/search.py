"""Iterative magnitude pruning, the mask search of Sparse Sharing (Sun, Shao et al., AAAI 2020,
Algorithm 1), driven through a small protocol (``SearchSubject``), so that it knows nothing of
the training loop or of any model.

For each task t, starting from an all-ones mask: rewind the weights to the rewind point, train
k steps on t through mask M, score M on dev, keep (M, density, score) as a candidate; stop once
the density is at most the target S, else prune ``alpha`` of M's remaining weights by global
magnitude and repeat. The state is saved after every round; a resumed search continues at the
next round and ends with the same masks as an uninterrupted one. What a round saves does not
grow with the number of tasks: the rounds of the task being searched and its mask (the
progress), and each finished task's rounds once, in a part of their own, when it finishes.
"""

from __future__ import annotations

import math
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from torch import Tensor
from tqdm import tqdm

from mtlshare.errors import CheckpointError
from mtlshare.sharing.sparse.masks import (
    density_within,
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
    # the mask packed for the search's checkpoints, once (each round saves the task's rounds)
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

    def save(self, tensors: dict[str, Tensor], meta: dict[str, Any], part: str = "") -> None:
        """Persist the search state: its progress (``part`` empty) or a finished task's rounds
        (``part`` the task)."""
        ...

    def load(self, part: str = "") -> tuple[dict[str, Tensor], dict[str, Any]] | None:
        """What ``save`` persisted under ``part``, or None (for the progress: start afresh).
        Loading the progress also restores the state random draws continue from."""
        ...


def rounds_needed(alpha: float, target_density: float) -> int:
    """Pruning rounds until (1 - alpha)^r <= target (the search also trains round 0, unpruned)."""
    if target_density >= 1.0:
        return 0
    return math.ceil(math.log(target_density) / math.log(1.0 - alpha) - 1e-9)


def _pack(
    candidates: list[Candidate], current: Masks | None, done: list[str] | None = None
) -> tuple[dict[str, Tensor], dict[str, Any]]:
    """The candidates' masks (each packed once) and the one being pruned, in the layout of
    ``pack_masks`` with keys ``TASK@ROUND`` and ``current``; ``done`` (the progress only) names
    the finished tasks, whose rounds lie in parts of their own."""
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
    info: dict[str, Any] = {"masks": meta, "candidates": [c.summary() for c in candidates]}
    if done is not None:
        info["done"] = list(done)
    return tensors, info


def _unpack(
    tensors: dict[str, Tensor], meta: dict[str, Any]
) -> tuple[list[Candidate], Masks | None]:
    unpacked = unpack_masks(tensors, meta["masks"])
    candidates = [
        Candidate(
            c["task"],
            c["round"],
            c["density"],
            c["dev_score"],
            unpacked[f"{c['task']}@{c['round']}"],
            bool(c.get("final", False)),
        )
        for c in meta["candidates"]
    ]
    return candidates, unpacked.get("current")


def _resume(subject: SearchSubject) -> tuple[list[Candidate], Masks | None, list[str]]:
    """The saved candidates (finished tasks' parts first, then the progress), the mask being
    pruned and the tasks with parts. A search saved before parts existed keeps every candidate
    in its progress."""
    state = subject.load()
    if state is None:
        return [], None, []
    candidates: list[Candidate] = []
    for task in state[1].get("done", []):
        part = subject.load(task)
        if part is None:
            # a damaged run folder is the user's to fix: one line, not a traceback
            raise CheckpointError(
                f"the mask search's progress names {task!r} finished, but that task's rounds "
                "(its part of the search's checkpoints) are gone; train again with a new --out"
            )
        candidates += _unpack(*part)[0]
    own, current = _unpack(*state)
    return candidates + own, current, list(state[1].get("done", []))


def _finished(rounds: list[Candidate], target_density: float) -> bool:
    return bool(rounds) and (rounds[-1].final or rounds[-1].density <= target_density)


def search_masks(
    tasks: list[str],
    subject: SearchSubject,
    *,
    alpha: float,
    target_density: float,
    steps: Mapping[str, int],
    progress: bool = True,
    domains: Mapping[str, Masks] | None = None,
) -> list[Candidate]:
    """Every round's candidate mask for every task (Algorithm 1), resuming a saved search.
    ``steps[task]`` is k, the training steps of one round. ``domains[task]``: the weights the
    task can use (those of the layers it reads, with per-task depths): its search starts from
    them, prunes among them only, and its densities are fractions of them. Without it, every
    task's domain is every prunable weight."""
    domains = domains or {}
    candidates, current, finished_tasks = _resume(subject)
    for task in tasks:  # a search saved before parts existed: its finished tasks get theirs
        own = [c for c in candidates if c.task == task]
        if task not in finished_tasks and _finished(own, target_density):
            subject.save(*_pack(own, None), part=task)
            finished_tasks.append(task)
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
        if _finished(done, target_density):
            continue  # this task's search had finished before the interruption
        domain = domains.get(task)
        start = domain if domain is not None else ones_like_params(subject.prunable())
        mask = (
            current if (done and current is not None) else {n: m.clone() for n, m in start.items()}
        )
        r = len(done)
        while True:
            bar.set_description(f"mask search {task} round {r}")
            subject.rewind()
            subject.set_mask(task, mask)
            subject.train(task, steps[task])
            d = density_within(mask, domain)
            candidates.append(Candidate(task, r, d, subject.score(task), mask))
            done.append(candidates[-1])
            bar.update(1)
            bar.set_postfix(density=f"{d:.3f}", dev=f"{candidates[-1].score:.4g}")
            if progress:  # one line per round, also when stderr is not a terminal
                tqdm.write(
                    f"mask search {task} round {r}: density {d:.3f}, "
                    f"dev {candidates[-1].score:.4g}",
                    file=sys.stderr,
                )
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
                    finished = density_within(pruned, domain) == d
                    mask = pruned
            candidates[-1].final = finished
            if finished:  # the task's rounds in their part, then progress without them
                subject.save(*_pack(done, None), part=task)
                finished_tasks.append(task)
                subject.save(*_pack([], None, finished_tasks))
            else:
                subject.save(*_pack(done, mask, finished_tasks))
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
