"""Hierarchical sharing (Søgaard and Goldberg, ACL 2016): one shared trunk, each task supervised
at the depth its config names, so low-level tasks read lower layers (e.g. POS at layer 1, NER at
layer 2). Layers above a task's depth are not run for that task.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from torch import Tensor, nn

from mtlshare.errors import ConfigError, count
from mtlshare.models.trunks import Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel, run_layers
from mtlshare.tasks.task import Task


@dataclass
class HierarchicalConfig:
    """``[hierarchical]``: ``depths = {task = layer}`` (1-based); unnamed tasks read the top."""

    depths: dict[str, int] = field(default_factory=dict)


def resolve_depths(
    depths: dict[str, int], tasks: list[Task], depth: int, key: str
) -> dict[str, int]:
    """Every task's supervision depth, checked against the task names and the trunk depth. A
    trunk deeper than every task reads is refused: its upper layers would never be built (no
    task reads them), so ``trunk.hidden``'s last widths and ``trunk.last_activation`` would be
    settings without effect, and the config would describe a model that was not trained."""
    names = [t.name for t in tasks]
    unknown = sorted(set(depths) - set(names))
    if unknown:
        raise ConfigError(f"{key}: unknown task(s) {unknown}; tasks are {names}")
    out = {n: depths.get(n, depth) for n in names}
    for n, d in out.items():
        if not 1 <= d <= depth:
            raise ConfigError(f"{key}.{n}: depth must be in [1, {depth}], got {d}")
    deepest = max(out.values(), default=depth)
    if deepest < depth:
        above = f"layer {depth}" if deepest + 1 == depth else f"layers {deepest + 1} to {depth}"
        raise ConfigError(
            f"{key}: no task reads above layer {deepest} of trunk.hidden's {depth}, so {above} "
            "would never be built, nor take trunk.last_activation: keep "
            f"{count(deepest, 'widths')} in trunk.hidden, or let a task read the top"
        )
    return out


def depth_head(task: Task, out_dims: list[int], depth: int, key: str) -> nn.Module:
    """``task``'s head over layer ``depth`` (1-based) of a trunk of widths ``out_dims``; an
    affine head's width error names the layer its depth (``key``) makes it read."""
    reads = "the last width of trunk.hidden"
    if depth < len(out_dims):
        reads = f"width {depth} of trunk.hidden, the layer {key}.{task.name} = {depth} reads,"
    return task.build_head(out_dims[depth - 1], reads)


@MECHANISMS.register(
    "hierarchical",
    config=HierarchicalConfig,
    summary="each task supervised at its own layer of one shared trunk",
    paper="Søgaard & Goldberg, ACL 2016",
)
class HierarchicalSharing(SharingModel):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: HierarchicalConfig) -> None:
        super().__init__(tasks)
        self.depths = resolve_depths(cfg.depths, tasks, backbone.depth, "hierarchical.depths")
        self.stem = backbone.stem()
        # layers above the deepest task's depth would never be read: not built
        self.layers = backbone.layers(0, max(self.depths.values()))
        self.heads = nn.ModuleDict(
            {
                t.name: depth_head(t, backbone.out_dims, self.depths[t.name], "hierarchical.depths")
                for t in tasks
            }
        )

    def forward(self, x: Tensor, task: str) -> Tensor:
        h = run_layers(self.layers[: self.depths[task]], self.stem(x))
        return self.heads[task](h)

    def forward_tasks(self, x: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        h, outs = self.stem(x), {}  # the trunk once, each head at its task's depth
        for i, layer in enumerate(self.layers):
            h = layer(h)
            outs.update({t: self.heads[t](h) for t in tasks if self.depths[t] == i + 1})
        return {t: outs[t] for t in tasks}

    def _users(self, layer: int) -> int:
        return sum(d > layer for d in self.depths.values())

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        for i, layer in enumerate(self.layers):
            if self._users(i) > 1:
                yield from layer.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        for i, layer in enumerate(self.layers):
            if self._users(i) == 1 and self.depths[task] > i:
                yield from layer.parameters()
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.heads.parameters()
