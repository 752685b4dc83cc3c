"""CRF heads (``mtlshare.models.crf.CRFHead`` over pytorch-crf) and their use through ``Task``
(``head = "crf"``), the training loop (``Objective`` and ``Trainer.score`` pass the head) and
``SharingModel.head``.
"""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from torch import Tensor, nn
from torchcrf import CRF

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import ConfigError, DataError
from mtlshare.models.crf import IGNORE_INDEX, CRFHead
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.task import Task
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, Objective, WeightingConfig
from mtlshare.training.settings import TrainConfig

N_TAGS = 4
IN_DIM = 5


def head_and_emissions(batch: int = 4, time: int = 6, seed: int = 0) -> tuple[CRFHead, Tensor]:
    torch.manual_seed(seed)
    head = CRFHead(IN_DIM, N_TAGS)
    with torch.no_grad():  # pytorch-crf starts transitions near 0: make them matter
        head.crf.transitions.normal_(0.0, 1.0)
        head.crf.start_transitions.normal_(0.0, 1.0)
        head.crf.end_transitions.normal_(0.0, 1.0)
    emissions = torch.randn(batch, time, N_TAGS, requires_grad=True)
    return head, emissions


def padded_target(lengths: list[int], time: int = 6, seed: int = 1) -> Tensor:
    """Random tags; positions at or after each row's length are missing (-100)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, N_TAGS, (len(lengths), time), generator=g)
    for i, n in enumerate(lengths):
        y[i, n:] = IGNORE_INDEX
    return y


def ones(n: int) -> Tensor:
    return torch.ones(1, n, dtype=torch.bool)


def reference_nll(crf: CRF, emissions: Tensor, target: Tensor) -> Tensor:
    """What the head should compute, straight from pytorch-crf, over the observed rows."""
    mask = target != IGNORE_INDEX
    rows = mask.any(1)
    tags = target.clamp(min=0)
    ll = crf(emissions[rows], tags[rows], mask=mask[rows], reduction="sum")
    return -ll / mask.sum()


@torch.no_grad()
def brute_force_nll(crf: CRF, emissions: Tensor, tags: list[int]) -> float:
    """-log p(tags) for one sequence of the given length, by enumerating every path."""
    n = len(tags)
    em = emissions[:n].detach()

    def score(path: tuple[int, ...]) -> float:
        s = crf.start_transitions[path[0]] + em[0, path[0]] + crf.end_transitions[path[-1]]
        for t in range(1, n):
            s = s + crf.transitions[path[t - 1], path[t]] + em[t, path[t]]
        return float(s)

    scores = torch.tensor([score(p) for p in itertools.product(range(N_TAGS), repeat=n)])
    return float(torch.logsumexp(scores, 0)) - score(tuple(tags))


# -- nll ---------------------------------------------------------------------------------------


def test_nll_matches_pytorch_crf_on_a_padded_batch():
    head, em = head_and_emissions()
    y = padded_target([6, 3, 1, 5])
    got = head.nll(em, y)
    want = reference_nll(head.crf, em, y)
    assert got.shape == ()
    assert torch.allclose(got, want, atol=1e-5)
    # per observed token: the sum over rows divided by the 15 labelled positions
    per_row = [
        -head.crf(em[i : i + 1, :n], y[i : i + 1, :n], mask=ones(n), reduction="sum").item()
        for i, n in enumerate([6, 3, 1, 5])
    ]
    assert got.item() == pytest.approx(sum(per_row) / 15, rel=1e-5)


def test_nll_is_the_exact_negative_log_likelihood():
    """Independent of pytorch-crf's own algorithm: enumerate every path of short sequences."""
    head, em = head_and_emissions(batch=2, time=4)
    y = padded_target([4, 2], time=4)
    got = head.nll(em, y).item()
    by_hand = brute_force_nll(head.crf, em[0], y[0].tolist()) + brute_force_nll(
        head.crf, em[1], y[1, :2].tolist()
    )
    assert got == pytest.approx(by_hand / 6, rel=1e-5)


def test_rows_without_labels_are_dropped():
    head, em = head_and_emissions(batch=4)
    y = padded_target([5, 0, 2, 0])
    got = head.nll(em, y)
    keep = torch.tensor([0, 2])
    assert torch.allclose(got, head.nll(em[keep], y[keep]), atol=1e-6)
    assert torch.allclose(got, reference_nll(head.crf, em, y), atol=1e-5)
    got.backward()
    assert em.grad is not None
    assert torch.count_nonzero(em.grad[1]) == 0 and torch.count_nonzero(em.grad[3]) == 0
    assert torch.count_nonzero(em.grad[0]) > 0
    # what was padding in a labelled row gets no gradient either
    assert torch.count_nonzero(em.grad[2, 2:]) == 0


def test_an_all_missing_batch_gives_zero_with_a_graph():
    head, em = head_and_emissions(batch=3)
    y = torch.full((3, 6), IGNORE_INDEX)
    loss = head.nll(em, y)
    assert loss.item() == 0.0
    assert loss.requires_grad
    loss.backward()
    assert em.grad is not None and torch.count_nonzero(em.grad) == 0


def test_nll_is_differentiable_in_every_crf_parameter():
    head, _ = head_and_emissions()
    x = torch.randn(4, 6, IN_DIM)
    head.nll(head(x), padded_target([6, 3, 1, 5])).backward()
    for name, p in head.named_parameters():
        assert p.grad is not None and torch.count_nonzero(p.grad) > 0, name


@pytest.mark.parametrize("gap", [[0, -100, 1, 2], [1, 2, -100, 3], [-100, 1, 2, 3]])
def test_labels_with_a_gap_raise_data_error(gap):
    head, em = head_and_emissions(batch=2, time=4)
    y = torch.tensor([[0, 1, 2, 3], gap])
    with pytest.raises(DataError, match="contiguous"):
        head.nll(em, y)
    with pytest.raises(DataError, match="contiguous"):
        head.decode(em, y != IGNORE_INDEX)
    task = Task("tags", "classification", N_TAGS, "accuracy", head="crf")
    with pytest.raises(DataError):
        task.loss(em, y, head)


def test_flat_targets_are_refused():
    head = CRFHead(IN_DIM, N_TAGS)
    with pytest.raises(DataError, match="batch, time"):
        head.nll(torch.randn(4, N_TAGS), torch.zeros(4, dtype=torch.long))


# -- decode ------------------------------------------------------------------------------------


def test_decode_is_viterbi_on_observed_positions_and_missing_elsewhere():
    head, em = head_and_emissions(batch=4)
    lengths = [6, 0, 3, 1]
    mask = padded_target(lengths) != IGNORE_INDEX
    out = head.decode(em, mask)
    assert out.shape == (4, 6) and out.dtype == torch.long
    for i, n in enumerate(lengths):
        assert (out[i, n:] == IGNORE_INDEX).all()
        if n:
            want = head.crf.decode(em[i : i + 1, :n].detach(), mask=ones(n))[0]
            assert out[i, :n].tolist() == want


def test_decode_uses_the_transitions_not_just_the_emissions():
    """With flat emissions the path comes from the start/transition scores alone."""
    head = CRFHead(IN_DIM, 3)
    with torch.no_grad():
        head.crf.start_transitions.copy_(torch.tensor([0.0, 5.0, 0.0]))
        head.crf.end_transitions.zero_()
        head.crf.transitions.fill_(-5.0)
        head.crf.transitions[0, 2] = head.crf.transitions[1, 0] = head.crf.transitions[2, 1] = 5.0
    em = torch.zeros(1, 5, 3)
    out = head.decode(em, torch.tensor([[True, True, True, True, False]]))
    assert out.tolist() == [[1, 0, 2, 1, IGNORE_INDEX]]


def test_decode_of_an_all_missing_batch():
    head, em = head_and_emissions(batch=2)
    out = head.decode(em, torch.zeros(2, 6, dtype=torch.bool))
    assert (out == IGNORE_INDEX).all()


# -- through Task --------------------------------------------------------------------------------


def test_a_crf_head_needs_a_classification_task():
    with pytest.raises(ConfigError, match="crf"):
        Task("r", "regression", 1, "mse", head="crf")
    with pytest.raises(ConfigError, match="head"):
        Task("c", "classification", 3, "accuracy", head="softmax")


def test_task_builds_a_crf_head_and_needs_it_for_loss_and_predict():
    task = Task("tags", "classification", N_TAGS, "accuracy", head="crf")
    head = task.build_head(IN_DIM)
    assert isinstance(head, CRFHead)
    assert head.crf.num_tags == N_TAGS and head.proj.in_features == IN_DIM
    assert isinstance(Task("c", "classification", 3, "accuracy").build_head(IN_DIM), nn.Linear)
    x = torch.randn(4, 6, IN_DIM)
    y = padded_target([6, 3, 1, 5])
    out = head(x)
    with pytest.raises(TypeError, match="tags"):
        task.loss(out, y)
    with pytest.raises(TypeError, match="tags"):
        task.loss(out, y, nn.Linear(IN_DIM, N_TAGS))
    with pytest.raises(TypeError, match="tags"):
        task.predict(out, y)
    assert torch.allclose(task.loss(out, y, head), head.nll(out, y))
    pred = task.predict(out, y, head)
    assert torch.equal(pred, head.decode(out, y != IGNORE_INDEX))
    assert task.evaluate(pred, y) == task.score(out, y, head)
    correct = ((pred == y) & (y != IGNORE_INDEX)).sum()
    assert task.score(out, y, head) == pytest.approx(float(correct) / 15)


# -- learning ------------------------------------------------------------------------------------


def cycle_data(n: int, time: int, seed: int) -> tuple[Tensor, Tensor]:
    """Tags follow 0 -> 1 -> 2 -> 0 from a random start; only step 0 shows the tag in its
    input (one-hot), later steps show a constant. Each row ends after a random length.

    An emission-only (per-token) classifier cannot do better than chance after step 0: the
    right tag depends on the previous tag, which only the CRF's transitions carry.
    """
    g = torch.Generator().manual_seed(seed)
    start = torch.randint(0, 3, (n,), generator=g)
    tags = (start.unsqueeze(1) + torch.arange(time)) % 3
    x = torch.zeros(n, time, 4)
    x[torch.arange(n), 0, start] = 1.0
    x[:, 1:, 3] = 1.0
    lengths = torch.randint(2, time + 1, (n,), generator=g)
    pad = torch.arange(time) >= lengths.unsqueeze(1)
    tags = tags.masked_fill(pad, IGNORE_INDEX)
    x = x.masked_fill(pad.unsqueeze(-1), 0.0)
    return x, tags


def test_a_crf_learns_tags_that_depend_on_the_previous_tag():
    torch.manual_seed(0)
    task = Task("cycle", "classification", 3, "accuracy", head="crf")
    head = task.build_head(4)
    x, y = cycle_data(64, 8, seed=1)
    x_test, y_test = cycle_data(64, 8, seed=2)
    optimizer = torch.optim.Adam(head.parameters(), lr=0.1)
    losses = []
    for _ in range(80):
        optimizer.zero_grad()
        loss = task.loss(head(x), y, head)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]
    with torch.no_grad():
        assert task.score(head(x_test), y_test, head) > 0.98
        # the emissions alone (a softmax head's arg-max) cannot tell steps after the first
        later = y_test.clone()
        later[:, 0] = IGNORE_INDEX
        assert Task("s", "classification", 3, "accuracy").score(head(x_test), later) < 0.5


# -- through the training loop -------------------------------------------------------------------


def cycle_problem() -> Problem:
    def split(n: int, seed: int) -> Split:
        x, y = cycle_data(n, 8, seed)
        return Split(x, y, lengths=(y != IGNORE_INDEX).sum(1))

    task = Task("cycle", "classification", 3, "accuracy", head="crf")
    return Problem([TaskData(task, split(64, 1), split(32, 2), split(32, 3))], 4)


def lstm_model(problem: Problem, mechanism: str = "hard", seed: int = 0) -> SharingModel:
    torch.manual_seed(seed)
    trunk = TrunkConfig(kind="lstm", hidden=[8])
    backbone = backbone_from_config(trunk, problem.input_dim)
    entry = MECHANISMS[mechanism]
    return entry.build(backbone, [td.task for td in problem.tasks], entry.config())


def test_the_objective_passes_the_crf_head():
    problem = cycle_problem()
    model = lstm_model(problem)
    weighting = LossWeighting(["cycle"], WeightingConfig(kind="fixed"))
    objective = Objective(model, weighting, problem)
    x, y = problem.tasks[0].train.take(slice(0, 16))
    loss, raw = objective(x, y, "cycle")
    assert torch.allclose(loss, raw)  # fixed weights of 1, no regularizer in hard sharing
    head = model.head("cycle")
    assert isinstance(head, CRFHead)
    assert torch.allclose(raw, head.nll(model(x, "cycle"), y))
    raw.backward()
    assert head.crf.transitions.grad is not None
    assert torch.count_nonzero(head.crf.transitions.grad) > 0


def test_trainer_fits_a_crf_task():
    problem = cycle_problem()
    model = lstm_model(problem)
    transitions0 = model.head("cycle").crf.transitions.detach().clone()
    cfg = TrainConfig(epochs=4, batch_size=16, lr=0.1, eval_batch_size=24)
    weighting = LossWeighting(["cycle"], WeightingConfig(kind="fixed"))
    trainer = Trainer(model, problem, cfg, weighting, seed=0, progress=False)
    fit = trainer.fit()
    assert math.isfinite(fit.dev["cycle"]) and math.isfinite(fit.test["cycle"])
    assert fit.dev["cycle"] > 0.9
    losses = [r["train_loss"]["cycle"] for r in fit.history]
    assert losses[-1] < losses[0]
    # the transitions only get gradients through the head the loop passes to the loss
    assert not torch.equal(model.head("cycle").crf.transitions, transitions0)
    # the loop's score (eval batches of 24, padded to different lengths and joined) is the
    # CRF decode of the whole split
    model.eval()
    test = problem.tasks[0].test
    with torch.no_grad():
        want = problem.tasks[0].task.score(model(test.x, "cycle"), test.y, model.head("cycle"))
    assert trainer.score("cycle", "test") == pytest.approx(want)
    assert any(r.get("tokens_per_second", 0) > 0 for r in fit.history)


# -- SharingModel.head -----------------------------------------------------------------------------

TASKS = [
    Task("a", "classification", 3, "accuracy", head="crf"),
    Task("b", "classification", 2, "accuracy"),
    Task("c", "regression", 1, "mse"),
]


@pytest.mark.parametrize("name", MECHANISMS.names())
def test_head_is_the_registered_head_module(name):
    entry = MECHANISMS[name]
    torch.manual_seed(0)
    backbone = backbone_from_config(TrunkConfig(kind="lstm", hidden=[8, 8]), IN_DIM)
    model = entry.build(backbone, TASKS, entry.config() if entry.config is not None else None)
    assert set(model.heads) == {t.name for t in TASKS}
    for task in TASKS:
        assert model.head(task.name) is model.heads[task.name]
    assert isinstance(model.head("a"), CRFHead)
    assert isinstance(model.head("b"), nn.Linear)
    x = torch.randn(2, 5, IN_DIM)
    model.eval()
    with torch.no_grad():
        assert model(x, "a").shape == (2, 5, 3)  # emissions, one score per tag
    with pytest.raises(KeyError):
        model.head("nope")
