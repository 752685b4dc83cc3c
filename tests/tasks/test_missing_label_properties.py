"""Properties of losses and metrics with missing labels, on drawn batches: a missing position
(NaN target, class -100, CRF padding) changes neither the loss, nor the gradient anywhere, nor
the metric, whatever the prediction there; and the loss is that of the observed rows alone."""

from __future__ import annotations

import math

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from mtlshare.models.crf import CRFHead
from mtlshare.tasks.metrics import IGNORE_INDEX, accuracy, mae, mse, span_f1
from mtlshare.tasks.task import Task

quick = settings(max_examples=60, deadline=None)
LABELS = ("O", "B-PER", "I-PER", "B-LOC", "I-LOC")


def loss_and_grad(task: Task, out: torch.Tensor, target: torch.Tensor, head=None):
    out = out.clone().requires_grad_(True)
    loss = task.loss(out, target, head)
    (grad,) = torch.autograd.grad(loss, out, allow_unused=True)
    return loss.detach(), torch.zeros_like(out) if grad is None else grad


@quick
@given(st.integers(1, 12), st.integers(1, 3), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_a_regression_loss_never_reads_the_prediction_at_a_missing_target(rows, width, seed, p):
    g = torch.Generator().manual_seed(seed)
    out = torch.randn(rows, width, 1, generator=g)
    target = torch.randn(rows, width, generator=g)
    missing = torch.rand(rows, width, generator=g) < p
    target[missing] = math.nan
    task = Task("r", "regression")
    loss, grad = loss_and_grad(task, out, target)
    other = out.clone()
    other[missing] = torch.randn(int(missing.sum()), 1, generator=g) * 1e3
    loss2, grad2 = loss_and_grad(task, other, target)
    assert torch.equal(loss, loss2) and torch.equal(grad, grad2)
    assert not grad[missing].any()
    keep = ~missing
    if keep.any():
        alone = ((out.squeeze(-1)[keep] - target[keep]) ** 2).mean()
        assert torch.allclose(loss, alone, rtol=1e-5, atol=1e-6)
        for metric, fn in ((mse, lambda d: d**2), (mae, torch.abs)):
            value = fn(out.squeeze(-1)[keep] - target[keep]).mean()
            assert math.isclose(metric(other.squeeze(-1), target), float(value), rel_tol=1e-5)
    else:
        assert float(loss) == 0.0  # an all-missing batch: zero with a graph
        assert math.isnan(mse(out.squeeze(-1), target)) and math.isnan(mae(out, target))


@quick
@given(st.integers(1, 10), st.integers(0, 2**31 - 1), st.floats(0.0, 1.0))
def test_a_class_loss_and_accuracy_never_read_the_logits_at_an_ignored_target(rows, seed, p):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(rows, 4, generator=g)
    target = torch.randint(0, 4, (rows,), generator=g)
    ignored = torch.rand(rows, generator=g) < p
    target[ignored] = IGNORE_INDEX
    task = Task("c", "classification", 4, "accuracy")
    loss, grad = loss_and_grad(task, logits, target)
    other = logits.clone()
    other[ignored] = torch.randn(int(ignored.sum()), 4, generator=g) * 50
    loss2, grad2 = loss_and_grad(task, other, target)
    assert torch.equal(loss, loss2) and torch.equal(grad, grad2)
    assert not grad[ignored].any()
    keep = ~ignored
    if keep.any():
        alone = torch.nn.functional.cross_entropy(logits[keep], target[keep])
        assert torch.allclose(loss, alone, rtol=1e-6, atol=1e-7)
        right = sum(int(logits[i].argmax()) == int(target[i]) for i in keep.nonzero().flatten())
        assert accuracy(other, target) == right / int(keep.sum())
    else:
        assert float(loss) == 0.0 and math.isnan(accuracy(other, target))


@st.composite
def padded_sequences(draw):
    """(batch, time) tag ids with each row's missing labels at its end, and its lengths."""
    rows, time = draw(st.integers(1, 4)), draw(st.integers(1, 6))
    lengths = draw(st.lists(st.integers(0, time), min_size=rows, max_size=rows))
    ids = draw(
        st.lists(
            st.lists(st.integers(0, len(LABELS) - 1), min_size=time, max_size=time),
            min_size=rows,
            max_size=rows,
        )
    )
    target = torch.tensor(ids)
    for r, n in enumerate(lengths):
        target[r, n:] = IGNORE_INDEX
    return target, draw(st.integers(0, 2**31 - 1))


@quick
@given(padded_sequences())
def test_a_crf_loss_and_span_f1_never_read_the_padding(drawn):
    target, seed = drawn
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    head = CRFHead(3, len(LABELS))
    task = Task("ner", "classification", len(LABELS), "span_f1", head="crf", labels=LABELS)
    emissions = torch.randn(*target.shape, len(LABELS), generator=g)
    pad = target == IGNORE_INDEX
    other = emissions.clone()
    other[pad] = torch.randn(int(pad.sum()), len(LABELS), generator=g) * 100
    loss, grad = loss_and_grad(task, emissions, target, head)
    loss2, grad2 = loss_and_grad(task, other, target, head)
    assert torch.allclose(loss, loss2, rtol=0, atol=1e-6)
    assert torch.allclose(grad, grad2, rtol=0, atol=1e-6)
    assert not grad[pad].any()
    guess = torch.randint(0, len(LABELS), target.shape, generator=g)
    noise = torch.where(pad, torch.randint(0, len(LABELS), target.shape, generator=g), guess)
    f1 = span_f1(guess, target, LABELS)
    assert (math.isnan(f1) and bool(pad.all())) or f1 == span_f1(noise, target, LABELS)
