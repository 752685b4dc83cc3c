"""Tests a mutation review of the training code found missing: an RLW checkpoint of an earlier
mtlshare (no ``rlw_weights``) loads and takes its draw from the last epoch's record; GradNorm's
torchrun path reads the global batch's losses and gradients."""

from __future__ import annotations

import math

import pytest
import torch

from mtlshare.tasks.task import Task
from mtlshare.training.objective import LossWeighting, WeightingConfig


def test_an_rlw_checkpoint_without_its_draw_loads_and_takes_the_records_weights():
    """A checkpoint saved before RLW's draw was kept loads with no draw (``current`` says 1.0),
    and ``restore_current`` puts back the weights its last record logged."""
    saved = LossWeighting(["a", "b"], WeightingConfig(kind="rlw"), seed=3)
    state = {k: v for k, v in saved.state_dict().items() if k != "rlw_weights"}
    w = LossWeighting(["a", "b"], WeightingConfig(kind="rlw"), seed=3)
    w.begin_step(5)  # a draw the old checkpoint must not keep
    w.load_state_dict(state)
    assert w.current() == {"a": 1.0, "b": 1.0}
    w.restore_current({"a": 0.25, "b": 0.75})
    assert w.current() == pytest.approx({"a": 0.25, "b": 0.75})
    assert torch.equal(w("b", torch.tensor(2.0)), torch.tensor(1.5))
    # a checkpoint that has its draw keeps it: the record does not overwrite it
    w.restore_current({"a": 0.5, "b": 0.5})
    assert w.current() == pytest.approx({"a": 0.25, "b": 0.75})


def test_gradnorm_over_two_processes_reads_the_global_batchs_losses_and_gradients():
    """Rank 0 of two with 6 of a global batch's 8 rows (share 1.5; rank 1: 2 rows, share 0.5):
    its torchrun path, with ``mean`` averaging over the two ranks, gives the weights' gradient
    one process computes from the whole batch, step after step (the initial losses and the
    gradient norms are the global batch's, not rank 0's)."""
    torch.manual_seed(0)
    shared = torch.nn.Parameter(torch.randn(3, 3))
    x = torch.randn(8, 3)
    x[6:] *= 4.0  # rank 1's rows differ: rank 0's losses and gradients alone are not the batch's

    def raws(rows: torch.Tensor) -> dict[str, torch.Tensor]:
        h = rows @ shared
        return {"a": h.pow(2).mean(), "b": (h[:, 0] - 1.0).abs().mean()}

    one = LossWeighting(["a", "b"], WeightingConfig(kind="gradnorm", lr=0.1))
    rank0 = LossWeighting(["a", "b"], WeightingConfig(kind="gradnorm", lr=0.1))
    for step in range(3):
        with torch.no_grad():
            shared.mul_(0.7 + 0.2 * step)  # later steps: other losses than the first
        mine = {t: r * 1.5 for t, r in raws(x[:6]).items()}
        theirs = {t: r * 0.5 for t, r in raws(x[6:]).items()}
        their_losses = torch.stack([theirs[t].detach() for t in "ab"])
        their_grads = torch.stack(
            [torch.autograd.grad(theirs[t], shared, retain_graph=True)[0].reshape(-1) for t in "ab"]
        )

        def mean(v: torch.Tensor, losses=their_losses, grads=their_grads) -> torch.Tensor:
            """Rank 0's and rank 1's mean: the losses (tasks,) or the gradients (tasks, n)."""
            return (v + (losses if v.dim() == 1 else grads)) / 2

        expected = one.gradnorm_update(raws(x), shared)
        got = rank0.gradnorm_update(mine, shared, mean)
        assert torch.allclose(got, expected, atol=1e-5), (step, got, expected)
        one.apply_gradnorm(expected)
        rank0.apply_gradnorm(got)
    assert torch.allclose(one.initial_losses, rank0.initial_losses, atol=1e-6)


@pytest.mark.parametrize("processes", [False, True])
def test_gradnorm_takes_a_tasks_initial_loss_from_its_first_batch_with_a_label(processes):
    """A task whose first joint batch has no observed label has a loss of 0 there (``Task.loss``
    on all-NaN targets): that is no L_i(0). Its initial loss is its first loss with a label, so
    two tasks with equal losses and gradients from then on keep their weights about equal (with
    the 0 kept, b's ratio L_b / 1e-12 set its target at T times the mean norm for the whole run:
    b's weight rose about 0.035 a step, to 1.34 of 2 after ten)."""
    shared = torch.nn.Parameter(torch.tensor([0.5, 0.5]))
    task = Task("b", "regression")
    mean = (lambda v: v) if processes else None

    def raws(b_observed: bool) -> dict[str, torch.Tensor]:
        pred = (shared**2).sum().reshape(1, 1)  # 0.5: both losses 0.25, gradients (1, 1)
        b_target = torch.tensor([0.0 if b_observed else math.nan])
        return {"a": task.loss(pred, torch.zeros(1)), "b": task.loss(pred, b_target)}

    w = LossWeighting(["a", "b"], WeightingConfig(kind="gradnorm"))
    w.apply_gradnorm(w.gradnorm_update(raws(False), shared, mean))
    for _ in range(10):
        w.apply_gradnorm(w.gradnorm_update(raws(True), shared, mean))
    assert w.initial_losses.tolist() == [0.25, 0.25]
    weights = w.weight_vector()
    assert abs(float(weights[1] - weights[0])) < 0.1, weights


@pytest.mark.parametrize("processes", [False, True])
def test_gradnorm_keeps_the_initial_loss_of_a_task_that_had_one(processes):
    """While b waits for its first batch with a label, a's initial loss is set already: b's
    first loss fills b's entry alone, and a keeps its own first loss (0.25), not a's loss of
    the step that set b's (0.81)."""
    shared = torch.nn.Parameter(torch.tensor([0.5, 0.5]))
    task = Task("b", "regression")
    mean = (lambda v: v) if processes else None

    def raws(b_observed: bool) -> dict[str, torch.Tensor]:
        pred = (shared**2).sum().reshape(1, 1)
        b_target = torch.tensor([0.0 if b_observed else math.nan])
        return {"a": task.loss(pred, torch.zeros(1)), "b": task.loss(pred, b_target)}

    w = LossWeighting(["a", "b"], WeightingConfig(kind="gradnorm"))
    w.gradnorm_update(raws(False), shared, mean)  # a: 0.25; b: no label, 0
    assert w.initial_losses.tolist() == [0.25, 0.0]
    with torch.no_grad():
        shared.fill_(math.sqrt(0.45))  # pred 0.9: both losses 0.81
    w.gradnorm_update(raws(True), shared, mean)
    assert w.initial_losses.tolist() == pytest.approx([0.25, 0.81])
