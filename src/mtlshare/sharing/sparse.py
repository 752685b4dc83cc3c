"""Sparse sharing (Sun, Shao et al., "Learning Sparse Sharing Architectures for Multiple Tasks",
AAAI 2020): one over-parameterised base network; each task t finds a binary mask M_t over its
prunable weights by iterative magnitude pruning (``mtlshare.pruning.imp``); then the overlapping
subnets are trained together, a step on task t going through M_t * theta and changing only
entries inside M_t.

Masks are applied in place, not by reparametrization: before task t's forward pass the
entries outside M_t are set aside into a buffer and zeroed, so the layers run their own fast
kernels on M_t * theta (LSTM included; ``torch.nn.utils.parametrize`` would silently stop LSTM
weight updates, PyTorch issue 65688); right after backward the gradients outside M_t are zeroed,
so clipping and the optimizer's state see only the subnet; after the optimizer step the set-aside
entries are put back exactly (momentum or weight decay may have moved them). An evaluation pass
restores the weights before it returns. This costs four passes over the prunable weights per
step, plus a bool-to-float conversion of the mask when the task changes, and no allocation;
``weight * mask`` through ``torch.func.functional_call`` allocated three tensors per weight per
step and cast the mask each time, and was slower here (benchmarks/sparse_step.py).
Masks are bool tensors in memory (1 byte per entry per task) and bit-packed in ``state_dict``
(1 bit); the step keeps two float buffers (8 bytes per prunable entry, whatever the number of
tasks).

All-ones masks make this hard sharing; per-task ``depths`` make it hierarchical sharing.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.errors import ConfigError
from mtlshare.models.trunks import Backbone
from mtlshare.pruning import imp
from mtlshare.pruning.masks import (
    density,
    layer_density,
    overlap_ratio,
    pack_masks,
    pairwise_overlap,
    unpack_masks,
)
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel, StructureTrainer
from mtlshare.sharing.hierarchical import resolve_depths
from mtlshare.tasks.task import Task

REWINDS = ("warmup", "init")
RULES = ("best", "round", "density")
PACKED_PREFIX = "sparse_masks."


@dataclass
class SparseConfig:
    """``[sparse]``: the mask search (Algorithm 1 of the paper) and the choice of mask.

    ``alpha``: share of the remaining weights pruned per round; ``target_density`` (S): stop
    once a mask keeps at most this share; ``round_steps`` / ``round_epochs`` (k): training per
    round (steps win when > 0); ``warmup_steps`` / ``warmup_epochs`` (w): multi-task warm-up
    before the search; ``rewind``: "warmup" (to the weights after warm-up) or "init";
    ``select``: "best" (best dev score, ties to the lowest density), "round" (``select_round``)
    or "density" (first mask with density <= ``select_density``); ``prunable``: glob patterns
    over the trunk's parameter names (empty: every weight of the trunk; embeddings, biases and
    heads are never pruned by default); ``depths``: per-task supervision depth (as in
    hierarchical sharing); ``masks_from``: the output folder of a finished sparse run whose
    selected masks to train with, for this run's tasks, instead of searching (the weights
    start from this run's own initialisation: the paper's "single task on its subnet").
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
            if getattr(self, key) < 0:
                raise ConfigError(f"sparse.{key}: must be >= 0, got {getattr(self, key)}")
        if self.round_steps == 0 and self.round_epochs <= 0:
            raise ConfigError(
                "sparse: set round_steps or round_epochs > 0 (k, the training per pruning round)"
            )
        if self.rewind not in REWINDS:
            raise ConfigError(f"sparse.rewind: {self.rewind!r} is not one of {REWINDS}")
        if self.select not in RULES:
            raise ConfigError(f"sparse.select: {self.select!r} is not one of {RULES}")


@MECHANISMS.register(
    "sparse",
    config=SparseConfig,
    summary="per-task subnets of one base network, found by magnitude pruning",
    paper="Sun, Shao et al., AAAI 2020",
)
class SparseSharing(SharingModel):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: SparseConfig) -> None:
        super().__init__(tasks)
        cfg.validate()
        self.cfg = cfg
        self.depths = resolve_depths(cfg.depths, tasks, backbone.depth, "sparse.depths")
        self.stem = backbone.stem()
        self.layers = backbone.layers(0, max(self.depths.values()))
        self.heads = nn.ModuleDict(
            {t.name: t.build_head(backbone.out_dims[self.depths[t.name] - 1]) for t in tasks}
        )
        self.prunable_names = self._select_prunable(cfg.prunable)
        named = dict(self.layers.named_parameters())
        # parameter objects are stable (loading copies into them), so the hot path caches them
        self._params: dict[str, nn.Parameter] = {n: named[n] for n in self.prunable_names}
        self._by_layer = [
            [(n, n[len(f"{i}.") :]) for n in self.prunable_names if n.startswith(f"{i}.")]
            for i in range(len(self.layers))
        ]
        # the entries set aside while a task's mask is applied in place (zero inside the mask)
        self._kept: dict[str, Tensor] = {}
        self._applied: str | None = None
        self._maskf: dict[str, Tensor] = {}
        self._maskf_task: dict[str, str] = {}
        # adding a task to a trained model: entries other tasks use, and their values
        self._frozen: dict[str, tuple[Tensor, Tensor]] = {}
        self.search_tasks: list[str] | None = None  # None: search every task
        # masks[task][name]: bool, same shape as layers.<name>; all ones until the search
        self.masks: dict[str, dict[str, Tensor]] = {
            t.name: {n: torch.ones_like(p, dtype=torch.bool) for n, p in self._prunable().items()}
            for t in tasks
        }
        self.searched = False
        self.candidates: list[imp.Candidate] = []
        # the search's rounds and per-round overlaps, kept in the state so that a resumed run
        # still reports them
        self.search_summary: dict[str, Any] = {"rounds": [], "rounds_overlap": []}

    # -- which weights ------------------------------------------------------------------------
    def _select_prunable(self, patterns: list[str]) -> list[str]:
        names = [n for n, _ in self.layers.named_parameters()]
        if not patterns:
            chosen = [n for n in names if "weight" in n.rsplit(".", 1)[-1]]
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

    def set_mask(self, task: str, mask: Mapping[str, Tensor]) -> None:
        expected = self._prunable()
        if set(mask) != set(expected):
            raise ConfigError(
                f"mask for {task!r} covers {sorted(mask)}, expected {sorted(expected)}"
            )
        self.restore_weights()
        self._maskf_task.clear()  # the float copies may be stale now
        self.masks[task] = {
            n: mask[n].to(device=expected[n].device, dtype=torch.bool).reshape(expected[n].shape)
            for n in self.prunable_names
        }

    def _apply(self, fn: Any, recurse: bool = True) -> SparseSharing:
        # .to(device) and friends move the parameters; the masks (plain tensors) follow, and
        # the step buffers are rebuilt on first use
        self.restore_weights()
        super()._apply(fn, recurse)
        self.masks = {t: {n: fn(m) for n, m in ms.items()} for t, ms in self.masks.items()}
        self._kept, self._maskf, self._maskf_task = {}, {}, {}
        return self

    # -- forward and steps ----------------------------------------------------------------------
    def _mask_f(self, task: str, name: str) -> Tensor:
        """``task``'s mask of ``name`` as float32 in a reused buffer, refilled on task change.

        Multiplying float weights by a bool or uint8 mask makes PyTorch cast the mask on every
        call, doubling the cost of each masked pass; one float buffer per tensor (4 bytes per
        prunable weight, whatever the number of tasks) costs one conversion per task switch.
        """
        buf = self._maskf.get(name)
        if buf is None or buf.shape != self._params[name].shape:
            buf = self._maskf[name] = torch.empty_like(self._params[name])
            self._maskf_task.pop(name, None)
        if self._maskf_task.get(name) != task:
            buf.copy_(self.masks[task][name])
            self._maskf_task[name] = task
        return buf

    @torch.no_grad()
    def apply_mask(self, task: str) -> None:
        """Set aside and zero the prunable entries outside ``task``'s mask (in place)."""
        if self._applied == task:
            return
        self.restore_weights()
        for n, p in self._params.items():
            kept = self._kept.get(n)
            if kept is None or kept.shape != p.shape:
                kept = self._kept[n] = torch.empty_like(p)
            m = self._mask_f(task, n)
            torch.addcmul(p, p, m, value=-1.0, out=kept)  # p - p*m: outside entries, exactly
            p.mul_(m)
        self._applied = task

    @torch.no_grad()
    def restore_weights(self) -> None:
        """Put the set-aside entries back: p*mask + kept (exact: one term is always zero)."""
        if self._applied is None:
            return
        for n, p in self._params.items():
            torch.addcmul(self._kept[n], p, self._mask_f(self._applied, n), out=p)
        self._applied = None

    def buffer_bytes(self) -> int:
        """Memory of the step buffers (set-aside entries and the current task's float mask:
        8 bytes per prunable weight, whatever the number of tasks)."""
        buffers = [*self._kept.values(), *self._maskf.values()]
        return sum(b.element_size() * b.numel() for b in buffers)

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

    @torch.no_grad()
    def before_optimizer_step(self, task: str) -> None:
        # gradients outside the mask are not the subnet's: drop them before clipping and step
        for n, p in self._params.items():
            if p.grad is not None:
                p.grad.mul_(self._mask_f(task, n))
                if n in self._frozen:
                    p.grad.masked_fill_(self._frozen[n][0], 0.0)

    @torch.no_grad()
    def after_optimizer_step(self, task: str) -> None:
        self.restore_weights()
        for n, (where, values) in self._frozen.items():  # exactly as they were
            p = self._params[n]
            torch.where(where, values, p, out=p)

    def frozen_entries(self, name: str) -> Tensor:
        """Where ``freeze_entries`` froze prunable weight ``name`` (bool, its shape)."""
        return self._frozen[name][0]

    @torch.no_grad()
    def freeze_entries(self, tasks: list[str]) -> None:
        """Keep every prunable entry that ``tasks``' masks use exactly as it is now, whatever
        the optimizer does: for training a new task on a trained model, where only the entries
        no existing mask uses may learn (see ``mtlshare.transfer``)."""
        self.restore_weights()
        self._frozen = {}
        for n, p in self._params.items():
            used = torch.zeros_like(p, dtype=torch.bool)
            for t in tasks:
                used |= self.masks[t][n]
            self._frozen[n] = (used, p.detach().clone())

    # -- the search -----------------------------------------------------------------------------
    def _steps(self, trainer: StructureTrainer, names: list[str], steps: int, epochs: float) -> int:
        if steps > 0:
            return steps
        return max(1, round(epochs * trainer.steps_per_epoch(names)))

    def load_masks_from(self, run_dir: str | Path) -> None:
        """Take this model's tasks' masks from a finished sparse run's ``checkpoint/best``."""
        from mtlshare.training.checkpoint import load_checkpoint

        where = Path(run_dir) / "checkpoint" / "best"
        tensors, _ = load_checkpoint(where)
        try:
            masks = masks_from_state(tensors, prefix="model.")
        except (KeyError, ValueError) as e:
            raise ConfigError(f"sparse.masks_from: {where} holds no sparse masks ({e})") from None
        for task in self.task_names:
            if task not in masks:
                raise ConfigError(
                    f"sparse.masks_from: {where} has no mask for task {task!r} "
                    f"(it has {sorted(masks)})"
                )
            mask = masks[task]
            own = self._prunable()
            if set(mask) != set(own) or any(mask[n].shape != own[n].shape for n in own):
                raise ConfigError(
                    f"sparse.masks_from: the masks in {where} do not fit this network "
                    "(different trunk or prunable weights)"
                )
            self.set_mask(task, mask)
        self.searched = True

    def prepare(self, trainer: StructureTrainer) -> None:
        if self.searched:
            return
        cfg = self.cfg
        if cfg.masks_from:
            self.load_masks_from(cfg.masks_from)
            return
        names = self.search_tasks if self.search_tasks is not None else self.task_names
        init = self._weights()
        state = trainer.load("search")
        if state is not None and "rewind.done" in state[1]:
            tensors, _ = state
            rewind_to = {
                k[len("rewind.") :]: v for k, v in tensors.items() if k.startswith("rewind.")
            }
        else:
            warm = 0
            if cfg.warmup_steps > 0 or cfg.warmup_epochs > 0:
                warm = self._steps(trainer, names, cfg.warmup_steps, cfg.warmup_epochs)
            if warm > 0:
                trainer.train_steps(names, warm)
            rewind_to = init if cfg.rewind == "init" else self._weights()
            trainer.save(
                "search",
                {f"rewind.{k}": v for k, v in rewind_to.items()},
                {"rewind.done": True, "masks": None, "candidates": []},
            )
            state = None

        def rewind() -> None:
            self._applied = None  # every weight is overwritten: nothing to put back
            nn.Module.load_state_dict(self, rewind_to)

        def save(tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
            tensors = {**tensors, **{f"rewind.{k}": v for k, v in rewind_to.items()}}
            trainer.save("search", tensors, {**meta, "rewind.done": True})

        def load() -> tuple[dict[str, Tensor], dict[str, Any]] | None:
            if state is None or not state[1].get("candidates"):
                return None
            return state

        hooks = imp.SearchHooks(
            prunable=lambda: {n: p.detach() for n, p in self._prunable().items()},
            set_mask=self.set_mask,
            rewind=rewind,
            train=lambda t, k: trainer.train_steps([t], k),
            score=trainer.dev_score,
            save=save,
            load=load,
        )
        rounds = {t: self._steps(trainer, [t], cfg.round_steps, cfg.round_epochs) for t in names}
        self.candidates = imp.search_masks(
            names,
            hooks,
            alpha=cfg.alpha,
            target_density=cfg.target_density,
            steps=rounds,
            progress=trainer.progress,
        )
        self.search_summary = {
            "rounds": [c.summary() for c in self.candidates],
            "rounds_overlap": rounds_overlap(self.candidates, names) if len(names) > 1 else [],
        }
        value = cfg.select_round if cfg.select == "round" else cfg.select_density
        for task in names:
            chosen = imp.select([c for c in self.candidates if c.task == task], cfg.select, value)
            self.set_mask(task, chosen.mask)
        rewind()
        self.searched = True

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
        state[PACKED_PREFIX + "meta"] = _json_tensor(
            {**meta, "searched": self.searched, "summary": self.search_summary}
        )
        return state

    def load_state_dict(
        self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False
    ) -> Any:
        self._applied = None  # every weight is overwritten: nothing to put back
        own = {k: v for k, v in state_dict.items() if not k.startswith(PACKED_PREFIX)}
        if PACKED_PREFIX + "meta" in state_dict:
            meta = _tensor_json(state_dict[PACKED_PREFIX + "meta"])
            packed = {
                k[len(PACKED_PREFIX) :]: v
                for k, v in state_dict.items()
                if k.startswith(PACKED_PREFIX) and k != PACKED_PREFIX + "meta"
            }
            for task, m in unpack_masks(packed, meta).items():
                self.set_mask(task, m)
            self.searched = bool(meta.get("searched", True))
            self.search_summary = meta.get("summary", self.search_summary)
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
                "density": {t: density(self.masks[t]) for t in names},
                "overlap_ratio": overlap_ratio([self.masks[t] for t in names]),
                "pairwise_overlap": pairwise_overlap(self.masks),
                "layer_density": {t: layer_density(self.masks[t]) for t in names},
                "rounds": self.search_summary["rounds"],
                "rounds_overlap": self.search_summary["rounds_overlap"],
            }
        }

    def write_artifacts(self, out_dir: Path) -> list[Path]:
        if not self.search_summary["rounds"]:
            return []
        from mtlshare.evaluation.sparse_plots import plot_search

        return plot_search(self.report()["sparse"], out_dir)


def masks_from_state(state: Mapping[str, Tensor], prefix: str = "") -> dict[str, dict[str, Tensor]]:
    """The masks ({task: {param: bool}}) stored bit-packed in a sparse model's state dict
    (``prefix``: what the state's keys start with, e.g. "model." in a training checkpoint)."""
    head = prefix + PACKED_PREFIX
    if head + "meta" not in state:
        raise ConfigError("no sparse-sharing masks in this checkpoint (was it a sparse run?)")
    packed = {
        k[len(head) :]: v for k, v in state.items() if k.startswith(head) and k != head + "meta"
    }
    return unpack_masks(packed, _tensor_json(state[head + "meta"]))


def describe_masks(masks: Mapping[str, Mapping[str, Tensor]]) -> str:
    """A text report: density per task and per tensor, overlap ratio, pairwise overlaps."""
    names = list(masks)
    lines = ["density per task:"]
    lines += [f"  {t:12s} {density(masks[t]):.4f}" for t in names]
    lines.append("density per tensor:")
    params = list(next(iter(masks.values())))
    lines.append("  " + " " * 28 + "".join(f"{t:>12s}" for t in names))
    for p in params:
        row = "".join(f"{layer_density({p: masks[t][p]})[p]:12.4f}" for t in names)
        lines.append(f"  {p:28s}{row}")
    lines.append(f"overlap ratio of all masks (Eq. 4): {overlap_ratio(list(masks.values())):.4f}")
    pair = pairwise_overlap(masks)
    lines.append("pairwise overlap:")
    lines.append("  " + " " * 12 + "".join(f"{t:>12s}" for t in names))
    lines += ["  " + f"{a:12s}" + "".join(f"{pair[a][b]:12.4f}" for b in names) for a in names]
    return "\n".join(lines)


def rounds_overlap(candidates: list[imp.Candidate], names: list[str]) -> list[dict[str, Any]]:
    """Per round reached by every task: mean density, overlap ratio of the tasks' masks at that
    round, and mean dev score (the paper's Figure 4)."""
    out = []
    by_round: dict[int, dict[str, imp.Candidate]] = {}
    for c in candidates:
        by_round.setdefault(c.round, {})[c.task] = c
    for r in sorted(by_round):
        row = by_round[r]
        if set(row) != set(names):
            continue
        out.append(
            {
                "round": r,
                "density": sum(c.density for c in row.values()) / len(row),
                "overlap_ratio": overlap_ratio([row[t].mask for t in names]),
                "mean_dev_score": sum(c.score for c in row.values()) / len(row),
            }
        )
    return out


def _json_tensor(obj: Any) -> Tensor:
    import json

    return torch.tensor(list(json.dumps(obj, sort_keys=True).encode()), dtype=torch.uint8)


def _tensor_json(t: Tensor) -> Any:
    import json

    return json.loads(bytes(t.tolist()).decode())
