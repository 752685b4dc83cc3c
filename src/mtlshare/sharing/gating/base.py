"""``GatedSharing``: what the mixture-of-experts mechanisms have in common beyond their layers:
the gate weights they tally on dev (``analyse``), report in ``results.json`` (``"gates"``) and
draw (``gates.png``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from torch import Tensor

from mtlshare.sharing.base import SharingModel
from mtlshare.sharing.gating.layers import GateTally, LevelLayout
from mtlshare.tasks.task import Task


class GatedSharing(SharingModel):
    """Base of the mechanisms whose tasks mix experts through gates. A subclass implements
    ``gated_forward(x, tasks, tally)``: the head outputs of ``tasks`` on one batch, every
    expert run once for all of them (``tally``: None, or where to add each gate's weights),
    and ``gate_layout()`` (which experts each level has and which of them each gate mixes).
    ``forward`` asks it for one task, ``forward_tasks`` (a joint step) for every task."""

    def __init__(self, tasks: list[Task]) -> None:
        super().__init__(tasks)
        self.tally: GateTally | None = None  # gate weights on dev, once ``analyse`` has run

    def gated_forward(
        self, x: Tensor, tasks: list[str], tally: GateTally | None
    ) -> dict[str, Tensor]:  # pragma: no cover - abstract
        raise NotImplementedError

    def gate_layout(self) -> list[LevelLayout]:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: Tensor, task: str) -> Tensor:
        return self.gated_forward(x, [task], None)[task]

    def forward_tasks(self, x: Tensor, tasks: list[str]) -> dict[str, Tensor]:
        return self.gated_forward(x, tasks, None)  # the experts once for every task

    def analyse(self, inputs: Mapping[str, Iterable[Tensor]]) -> None:
        self.tally = GateTally()
        for task, batches in inputs.items():
            for x in batches:
                self.gated_forward(x, [task], self.tally)

    def report(self) -> dict[str, Any]:
        return {"gates": self.tally.report(self.gate_layout())} if self.tally else {}

    def addition_report(self, new: list[str]) -> dict[str, Any]:
        return self.report()  # the new tasks' gates on their dev inputs

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        if self.tally is None:
            return []
        from mtlshare.sharing.gating.plots import plot_run_gates

        return [plot_run_gates(self.report()["gates"], out_dir / "gates.png")]
