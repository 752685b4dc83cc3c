"""Masks applied in place to a network's own weights, one task at a time.

Before task t's forward pass the entries outside M_t are set aside into a buffer and zeroed,
so the layers run their own fast kernels on M_t * theta (LSTM included; a
``torch.nn.utils.parametrize`` reparametrization would silently stop LSTM weight updates,
PyTorch issue 65688); right after backward the gradients outside M_t are zeroed, so clipping
and the optimizer's state see only the subnet; after the optimizer step the set-aside entries
are put back exactly (momentum or weight decay may have moved them). This costs four passes
over the prunable weights per step, plus a bool-to-float conversion of the mask when the task
changes, and no allocation; ``weight * mask`` through ``torch.func.functional_call``
allocated three tensors per weight per step and cast the mask each time, and was slower here
(benchmarks/sparse_step.py). Masks are bool tensors (1 byte per entry per task); the step
keeps two float buffers (8 bytes per prunable entry, whatever the number of tasks).

For adding a task to a trained model, entries can also be frozen: whatever the optimizer does,
they are put back to their values after every step.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

UNION = "\x00"  # joins task names into the key of their masks' union (no task name has it)


class InPlaceMasks:
    """The masks of every task over ``params`` (name -> parameter) and the buffers that apply
    one of them in place. ``masks[task][name]`` is a bool tensor of the parameter's shape."""

    def __init__(self, params: dict[str, nn.Parameter], tasks: list[str]) -> None:
        # parameter objects are stable (loading copies into them), so the hot path caches them
        self.params = params
        self.masks: dict[str, dict[str, Tensor]] = {
            t: {n: torch.ones_like(p, dtype=torch.bool) for n, p in params.items()} for t in tasks
        }
        # the entries set aside while a task's mask is applied (zero inside the mask)
        self._kept: dict[str, Tensor] = {}
        self.applied: str | None = None
        self._maskf: dict[str, Tensor] = {}
        self._maskf_task: dict[str, str] = {}
        # adding a task to a trained model: entries other tasks use, and their values
        self.frozen: dict[str, tuple[Tensor, Tensor]] = {}

    def set(self, task: str, mask: dict[str, Tensor]) -> None:
        """Replace ``task``'s mask (already checked and shaped)."""
        self.restore()
        self._maskf_task.clear()  # the float copies may be stale now
        self.masks[task] = mask

    def moved(self, fn: Callable[[Tensor], Tensor]) -> None:
        """The parameters were moved (``Module._apply``): the masks follow, the step buffers
        are rebuilt on first use."""
        self.masks = {t: {n: fn(m) for n, m in ms.items()} for t, ms in self.masks.items()}
        self._kept, self._maskf, self._maskf_task = {}, {}, {}

    def forget(self) -> None:
        """Every weight was overwritten: nothing set aside is to be put back."""
        self.applied = None

    def mask_f(self, task: str, name: str) -> Tensor:
        """``task``'s mask of ``name`` as float32 in a reused buffer, refilled on task change.

        Multiplying float weights by a bool or uint8 mask makes PyTorch cast the mask on every
        call, doubling the cost of each masked pass; one float buffer per tensor (4 bytes per
        prunable weight, whatever the number of tasks) costs one conversion per task switch.
        """
        buf = self._maskf.get(name)
        if buf is None or buf.shape != self.params[name].shape:
            buf = self._maskf[name] = torch.empty_like(self.params[name])
            self._maskf_task.pop(name, None)
        if self._maskf_task.get(name) != task:
            buf.copy_(self._bool_mask(task, name))
            self._maskf_task[name] = task
        return buf

    def _bool_mask(self, key: str, name: str) -> Tensor:
        """A task's mask, or the union of several given as ``UNION`` joined names."""
        if key in self.masks:
            return self.masks[key][name]
        union = torch.zeros_like(self.params[name], dtype=torch.bool)
        for task in key.split(UNION):
            union |= self.masks[task][name]
        return union

    def apply_union(self, tasks: list[str]) -> None:
        """Set aside the entries outside every one of ``tasks``' masks (a joint update over
        them leaves those untouched; ``restore`` puts them back after it)."""
        self.apply(UNION.join(sorted(tasks)))

    @torch.no_grad()
    def apply(self, task: str) -> None:
        """Set aside and zero the entries outside ``task``'s mask."""
        if self.applied == task:
            return
        self.restore()
        for n, p in self.params.items():
            kept = self._kept.get(n)
            if kept is None or kept.shape != p.shape:
                kept = self._kept[n] = torch.empty_like(p)
            m = self.mask_f(task, n)
            torch.addcmul(p, p, m, value=-1.0, out=kept)  # p - p*m: outside entries, exactly
            p.mul_(m)
        self.applied = task

    @torch.no_grad()
    def restore(self) -> None:
        """Put the set-aside entries back: p*mask + kept (exact: one term is always zero)."""
        if self.applied is None:
            return
        for n, p in self.params.items():
            torch.addcmul(self._kept[n], p, self.mask_f(self.applied, n), out=p)
        self.applied = None

    def buffer_bytes(self) -> int:
        """Memory of the step buffers (set-aside entries and the current task's float mask:
        8 bytes per prunable weight, whatever the number of tasks)."""
        buffers = [*self._kept.values(), *self._maskf.values()]
        return sum(b.element_size() * b.numel() for b in buffers)

    @torch.no_grad()
    def drop_outside_grads(self, task: str) -> None:
        """Gradients outside the mask (or on frozen entries) are not the subnet's: zero them."""
        for n, p in self.params.items():
            if p.grad is not None:
                p.grad.mul_(self.mask_f(task, n))
                if n in self.frozen:
                    p.grad.masked_fill_(self.frozen[n][0], 0.0)

    @torch.no_grad()
    def after_step(self) -> None:
        """Restore the set-aside entries and put frozen entries back exactly."""
        self.restore()
        for n, (where, values) in self.frozen.items():
            p = self.params[n]
            torch.where(where, values, p, out=p)

    @torch.no_grad()
    def freeze(self, tasks: list[str]) -> None:
        """Keep every entry that ``tasks``' masks use exactly as it is now."""
        self.restore()
        self.frozen = {}
        for n, p in self.params.items():
            used = torch.zeros_like(p, dtype=torch.bool)
            for t in tasks:
                used |= self.masks[t][n]
            self.frozen[n] = (used, p.detach().clone())
