"""Sparse sharing (Sun, Shao et al., "Learning Sparse Sharing Architectures for Multiple Tasks",
AAAI 2020): one over-parameterised base network; each task t finds a binary mask M_t over its
prunable weights by iterative magnitude pruning (``search.py``, driven by ``driver.py``); then
the overlapping subnets are trained together, a step on task t going through M_t * theta and
changing only entries inside M_t (masks applied in place: ``inplace.py``). Masks are bool
tensors in memory (1 byte per entry per task) and bit-packed in ``state_dict`` (1 bit).

All-ones masks make this hard sharing; per-task ``depths`` make it hierarchical sharing.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.errors import CheckpointError, ConfigError, MtlshareError
from mtlshare.models.trunks import Backbone
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel, StructureTrainer
from mtlshare.sharing.hierarchical import depth_head, resolve_depths
from mtlshare.sharing.sparse.config import SparseConfig
from mtlshare.sharing.sparse.driver import search_subnets
from mtlshare.sharing.sparse.inplace import InPlaceMasks
from mtlshare.sharing.sparse.masks import (
    check_kept,
    depth_domain,
    json_tensor,
    pack_masks,
    tensor_json,
    unpack_masks,
)
from mtlshare.sharing.sparse.report import PACKED_PREFIX, mask_summary, masks_from_state
from mtlshare.sharing.sparse.search import Candidate
from mtlshare.tasks.task import Task


@MECHANISMS.register(
    "sparse",
    config=SparseConfig,
    summary="per-task subnets of one base network, found by magnitude pruning",
    paper="Sun, Shao et al., AAAI 2020",
)
class SparseSharing(SharingModel):
    add_task_strategy = "new mask, frozen entries"
    joint_backward = False  # a task's pass applies its mask in place: one backward per task

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: SparseConfig) -> None:
        super().__init__(tasks)
        cfg.validate()
        self.cfg = cfg
        self.depths = resolve_depths(cfg.depths, tasks, backbone.depth, "sparse.depths")
        self.stem = backbone.stem()
        self.layers = backbone.layers(0, max(self.depths.values()))
        self.heads = nn.ModuleDict(
            {
                t.name: depth_head(t, backbone.out_dims, self.depths[t.name], "sparse.depths")
                for t in tasks
            }
        )
        self.prunable_names = self._select_prunable(cfg.prunable)
        named = dict(self.layers.named_parameters())
        self._params: dict[str, nn.Parameter] = {n: named[n] for n in self.prunable_names}
        # every task's mask (all ones until the search) and the buffers applying one in place
        self._inplace = InPlaceMasks(self._params, [t.name for t in tasks])
        self.search_tasks: list[str] | None = None  # None: search every task
        self.searched = False
        self.candidates: list[Candidate] = []
        # the search's rounds and per-round overlaps, kept in the state so that a resumed run
        # still reports them
        self.search_summary: dict[str, Any] = {"rounds": [], "rounds_overlap": []}

    # -- which weights ------------------------------------------------------------------------
    def _select_prunable(self, patterns: list[str]) -> list[str]:
        params = dict(self.layers.named_parameters())
        names = list(params)
        if not patterns:  # weight matrices and kernels: not biases, not a norm layer's gains
            chosen = [n for n in names if "weight" in n.rsplit(".", 1)[-1] and params[n].dim() > 1]
        else:
            chosen = [n for n in names if any(fnmatch.fnmatch(n, p) for p in patterns)]
            if not chosen:
                raise ConfigError(
                    f"sparse.prunable: {patterns} match none of the trunk's parameters: {names}"
                )
        return chosen

    def _prunable(self) -> dict[str, nn.Parameter]:
        return dict(self._params)

    def set_masks(self, masks: Mapping[str, Mapping[str, Tensor]]) -> None:
        """Use the given masks ({task: {param name: bool}}) and skip the search."""
        for task, m in masks.items():
            self.set_mask(task, m)
        self.searched = True

    @property
    def masks(self) -> dict[str, dict[str, Tensor]]:
        """``masks[task][name]``: bool, the shape of ``layers.<name>``."""
        return self._inplace.masks

    def set_mask(self, task: str, mask: Mapping[str, Tensor]) -> None:
        expected = self._prunable()
        if set(mask) != set(expected):
            raise ConfigError(
                f"mask for {task!r} covers {sorted(mask)}, expected {sorted(expected)}"
            )
        self._inplace.set(
            task,
            {
                n: mask[n]
                .to(device=expected[n].device, dtype=torch.bool)
                .reshape(expected[n].shape)
                for n in self.prunable_names
            },
        )

    def _apply(self, fn: Any, recurse: bool = True) -> SparseSharing:
        # .to(device) and friends move the parameters; the masks (plain tensors) follow
        self.restore_weights()
        super()._apply(fn, recurse)
        self._inplace.moved(fn)
        return self

    # -- forward and steps (``inplace.py``) -------------------------------------------------------
    def apply_mask(self, task: str) -> None:
        """Set aside and zero the prunable entries outside ``task``'s mask (in place)."""
        self._inplace.apply(task)

    def restore_weights(self) -> None:
        """Put the entries set aside by ``apply_mask`` back, exactly."""
        self._inplace.restore()

    def buffer_bytes(self) -> int:
        return self._inplace.buffer_bytes()

    def forward(self, x: Tensor, task: str) -> Tensor:
        self.apply_mask(task)
        try:
            h = self.stem(x)
            for layer in self.layers[: self.depths[task]]:
                h = layer(h)
            return self.heads[task](h)
        finally:
            # a training pass keeps the mask applied until its optimizer step is done
            if not (self.training and torch.is_grad_enabled()):
                self.restore_weights()

    def before_optimizer_step(self, task: str) -> None:
        self._inplace.drop_outside_grads(task)

    def leave_task(self, tasks: list[str] | None = None) -> None:
        # a joint update over ``tasks`` moves the entries of their masks' union, and only those
        self._inplace.apply_union(tasks or self.task_names)

    def after_optimizer_step(self, task: str) -> None:
        self._inplace.after_step()

    def frozen_entries(self, name: str) -> Tensor:
        """Where ``freeze_entries`` froze prunable weight ``name`` (bool, its shape)."""
        return self._inplace.frozen[name][0]

    def freeze_entries(self, tasks: list[str]) -> None:
        """Keep every prunable entry that ``tasks``' masks use exactly as it is now, whatever
        the optimizer does: for training a new task on a trained model, where only the entries
        no existing mask uses may learn (``freeze_for_new_tasks``)."""
        self._inplace.freeze(tasks)

    # -- adding tasks: a new mask over the trained network, the trained masks' entries frozen ----
    def freeze_for_new_tasks(self, trained: list[str], new: list[str]) -> None:
        super().freeze_for_new_tasks(trained, new)
        for p in self._params.values():
            p.requires_grad_(True)  # entries of the trained tasks' masks are frozen one by one
        self.freeze_entries(trained)
        free = sum(int((~self.frozen_entries(n)).sum()) for n in self.prunable_names)
        if free == 0:  # the trained masks use every entry: the search has nothing of its own
            total = sum(self.frozen_entries(n).numel() for n in self.prunable_names)
            warnings.warn(
                f"adding {new}: the trained masks of {trained} use all {total:,} prunable "
                "weights, so none is free: the new mask search can only select among frozen "
                "weights, and only the new heads learn",
                stacklevel=2,
            )
        self.search_tasks = new
        self.searched = False
        # search from the trained weights (the rewind point), without a warm-up
        self.cfg.warmup_steps, self.cfg.warmup_epochs = 0, 0.0
        self.cfg.rewind = "warmup"
        self.cfg.masks_from = ""

    def trainable_for_new_tasks(self) -> int:
        free = sum(int((~self.frozen_entries(n)).sum()) for n in self.prunable_names)
        others = (p for n, p in self.layers.named_parameters() if n not in self._params)
        rest = [*self.stem.parameters(), *others, *self.heads.parameters()]
        return free + sum(p.numel() for p in rest if p.requires_grad)

    def snapshot_frozen(self) -> dict[str, Tensor]:
        prunable = {f"layers.{n}" for n in self.prunable_names}
        return {
            n: p.detach().clone()
            for n, p in self.named_parameters()
            if not p.requires_grad or n in prunable
        }

    def changed_since(self, snapshot: dict[str, Tensor]) -> list[str]:
        params = dict(self.named_parameters())
        changed = []
        for n, old in snapshot.items():
            now = params[n].detach()
            key = n.removeprefix("layers.")
            if key in self._inplace.frozen:  # a prunable weight: only its frozen entries must hold
                used = self.frozen_entries(key)
                if not torch.equal(now[used], old[used]):
                    changed.append(n)
            elif not torch.equal(now, old):
                changed.append(n)
        return changed

    def addition_report(self, new: list[str]) -> dict[str, Any]:
        free = sum(
            int(((~self.frozen_entries(n)) & self.masks[t][n]).sum())
            for t in new
            for n in self.prunable_names
        )
        return {"sparse": self.report()["sparse"], "new_mask_free_entries": free}

    # -- the search -----------------------------------------------------------------------------
    def load_masks_from(self, trainer: StructureTrainer, run_dir: str) -> None:
        """Take this model's tasks' masks from the model a finished sparse run selected."""
        try:
            state = trainer.selected_state(run_dir)
        except MtlshareError as e:
            raise ConfigError(f"sparse.masks_from: {e}") from None
        try:
            masks = masks_from_state(state)
        except (KeyError, ValueError, ConfigError) as e:
            raise ConfigError(f"sparse.masks_from: {run_dir} holds no sparse masks ({e})") from None
        for task in self.task_names:
            if task not in masks:
                raise ConfigError(
                    f"sparse.masks_from: {run_dir} has no mask for task {task!r} "
                    f"(it has {sorted(masks)})"
                )
            mask = self.fitted_mask(masks[task])
            if mask is None:
                raise ConfigError(
                    f"sparse.masks_from: the masks in {run_dir} do not fit this network "
                    "(different trunk or prunable weights)"
                )
            self.set_mask(task, mask)
        self.searched = True

    def fitted_mask(self, mask: Mapping[str, Tensor]) -> dict[str, Tensor] | None:
        """A task's ``mask`` from a sparse run as a mask of this network, or None when it does
        not fit (another trunk or other prunable weights). A task read at a shallower depth
        (``sparse.depths``) keeps nothing in the deeper layers, which a network of that task
        alone does not have: those entries are left out."""
        own = self._prunable()
        kept = {n: m for n, m in mask.items() if n in own or bool(m.any())}
        if set(kept) != set(own) or any(kept[n].shape != own[n].shape for n in own):
            return None
        return kept

    def prepare(self, trainer: StructureTrainer) -> None:
        if self.searched:
            return
        if self.cfg.masks_from:
            self.load_masks_from(trainer, self.cfg.masks_from)
            return
        names = self.search_tasks if self.search_tasks is not None else self.task_names
        outcome = search_subnets(self, trainer, names)
        self.candidates = outcome.candidates
        self.search_summary = outcome.summary
        for task, mask in outcome.chosen.items():
            self.set_mask(task, mask)
        self.load_weights(outcome.rewind_to)
        self.searched = True

    def domain(self, task: str) -> dict[str, Tensor] | None:
        """The prunable entries ``task`` reads (bool per weight): those of the layers up to its
        depth; ``None`` when every task reads every layer."""
        if min(self.depths.values()) == len(self.layers):
            return None
        return depth_domain(self._prunable(), self.depths[task])

    def prunable_weights(self) -> dict[str, Tensor]:
        """The prunable weights by name, detached (what magnitude pruning ranks)."""
        return {n: p.detach() for n, p in self._prunable().items()}

    def load_weights(self, state: Mapping[str, Tensor]) -> None:
        """Overwrite every weight (not the masks) with ``state``, e.g. the rewind point."""
        self._inplace.forget()  # every weight is overwritten: nothing to put back
        nn.Module.load_state_dict(self, state)

    def weights(self) -> dict[str, Tensor]:
        """A copy of every weight, without the masks: the rewind point."""
        return self._weights()

    def _weights(self) -> dict[str, Tensor]:
        """A copy of every weight, without the masks: the rewind point."""
        self.restore_weights()
        return {k: v.detach().clone() for k, v in nn.Module.state_dict(self).items()}

    # -- state: masks bit-packed ------------------------------------------------------------------
    def state_dict(self, *args: Any, **kwargs: Any) -> dict[str, Any]:  # type: ignore[override]
        self.restore_weights()
        state = super().state_dict(*args, **kwargs)
        packed, meta = pack_masks(
            {t: {n: m.cpu() for n, m in ms.items()} for t, ms in self.masks.items()}
        )
        state.update({PACKED_PREFIX + k: v for k, v in packed.items()})
        # the shapes travel as a uint8 tensor of JSON so the whole state stays in safetensors
        state[PACKED_PREFIX + "meta"] = json_tensor(
            {**meta, "searched": self.searched, "summary": self.search_summary}
        )
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        self._inplace.forget()  # every weight is overwritten: nothing to put back
        own = {k: v for k, v in state_dict.items() if not k.startswith(PACKED_PREFIX)}
        if PACKED_PREFIX + "meta" in state_dict:
            meta = tensor_json(state_dict[PACKED_PREFIX + "meta"])
            packed = {
                k[len(PACKED_PREFIX) :]: v
                for k, v in state_dict.items()
                if k.startswith(PACKED_PREFIX) and k != PACKED_PREFIX + "meta"
            }
            masks = unpack_masks(packed, meta)
            check_kept(masks)
            summary = meta.get("summary", self.search_summary)
            if not isinstance(summary, dict) or not all(
                isinstance(summary.get(k), list) for k in ("rounds", "rounds_overlap")
            ):
                raise CheckpointError("packed masks' metadata: 'summary' is not a search's")
            for task, m in masks.items():
                self.set_mask(task, m)
            self.searched = bool(meta.get("searched", True))
            self.search_summary = summary
        elif strict:
            raise KeyError("sparse state has no masks (" + PACKED_PREFIX + "meta)")
        return super().load_state_dict(own, strict=strict, assign=assign)

    # -- interface ------------------------------------------------------------------------------
    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.layers.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.heads.parameters()

    def param_counts(self) -> dict[str, int]:
        """Entry-level counts: a prunable entry is shared when two or more masks keep it,
        task-specific when one does, and not counted when none does (pruned everywhere)."""
        counts = super().param_counts()
        stacked = {
            n: torch.stack([self.masks[t][n] for t in self.task_names]).sum(0)
            for n in self.prunable_names
        }
        used_by = torch.cat([s.reshape(-1) for s in stacked.values()])
        prunable_total = int(used_by.numel())
        unused = int((used_by == 0).sum())
        shared_masked = int((used_by >= 2).sum())
        specific_masked = int((used_by == 1).sum())
        counts["total"] -= unused
        counts["counted"] -= unused
        counts["shared"] = counts["shared"] - prunable_total + shared_masked
        counts["task_specific"] += specific_masked
        return counts

    def report(self) -> dict[str, Any]:
        names = self.task_names
        return {
            "sparse": {
                # density: of the weights each task reads (every prunable weight without depths)
                **mask_summary(self.masks, {t: self.domain(t) for t in names}),
                "rounds": self.search_summary["rounds"],
                "rounds_overlap": self.search_summary["rounds_overlap"],
            }
        }

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        if not self.search_summary["rounds"]:
            return []
        from mtlshare.sharing.sparse.plots import plot_search

        return plot_search(self.report()["sparse"], out_dir)
