"""Sparse sharing's in-place steps and search driver, case by case: a replaced mask is the one
applied, frozen entries get no gradient, a joint update over some tasks sets aside what none of
them keeps, a no-grad pass in training mode leaves the weights whole, and the search's rounds,
warm-up and selection read the settings they should (a stub trainer counts the steps)."""

from __future__ import annotations

import pytest
import torch

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.sharing.sparse import SparseConfig, SparseSharing
from mtlshare.sharing.sparse.driver import search_subnets
from mtlshare.sharing.sparse.masks import density
from mtlshare.sharing.sparse.report import rounds_overlap
from mtlshare.sharing.sparse.search import Candidate
from mtlshare.tasks.task import Task

TASKS = [Task("a", "regression"), Task("b", "classification", 3, "accuracy")]


def sparse(**kw) -> SparseSharing:
    torch.manual_seed(0)
    trunk = backbone_from_config(TrunkConfig(kind="mlp", hidden=[8, 6]), 5)
    return SparseSharing(trunk, TASKS, SparseConfig(**kw))


def random_masks(model: SparseSharing, keep: float = 0.5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return {
        t: {n: torch.rand(p.shape, generator=g) < keep for n, p in model._prunable().items()}
        for t in model.task_names
    }


def whole(model: SparseSharing) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters()}


def test_a_mask_replaced_after_use_is_the_one_applied():
    """The float copy of a task's mask is refilled when its mask is replaced (as every search
    round does), not kept from the mask it had before."""
    model = sparse()
    x = torch.randn(4, 5)
    model.eval()
    model(x, "a")  # builds the float copy of a's all-ones mask
    mask = random_masks(model)["a"]
    model.set_mask("a", mask)
    model.train()
    model(x, "a")  # a training pass keeps the mask applied
    for n, p in model._prunable().items():
        assert not p[~mask[n]].any(), n
        assert p[mask[n]].any(), n
    model.restore_weights()


def test_frozen_entries_get_no_gradient():
    """Adding a task: entries the trained tasks use are frozen; their gradients are dropped
    before clipping and the optimizer (not only their values put back after the step)."""
    model = sparse()
    masks = random_masks(model)
    model.set_masks(masks)
    model.freeze_entries(["a"])
    model.train()
    model(torch.randn(8, 5), "b").sum().backward()
    model.before_optimizer_step("b")
    for n, p in model._prunable().items():
        frozen = model.frozen_entries(n)
        assert torch.equal(frozen, masks["a"][n])
        assert not p.grad[frozen].any(), n
        assert p.grad[masks["b"][n] & ~frozen].any(), n
    model.after_optimizer_step("b")


def test_a_joint_update_over_some_tasks_sets_aside_what_none_of_them_keeps():
    model = sparse()
    masks = random_masks(model)
    model.set_masks(masks)
    start = whole(model)
    model.leave_task(["a"])
    for n, p in model._prunable().items():
        assert not p[~masks["a"][n]].any(), n
        assert torch.equal(p[masks["a"][n]], start[f"layers.{n}"][masks["a"][n]]), n
    model.leave_task(["a", "b"])
    for n, p in model._prunable().items():
        union = masks["a"][n] | masks["b"][n]
        assert not p[~union].any(), n
    model.restore_weights()
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())


def test_a_no_grad_pass_in_training_mode_leaves_the_weights_whole():
    model = sparse()
    model.set_masks(random_masks(model))
    start = whole(model)
    model.train()
    with torch.no_grad():
        model(torch.randn(4, 5), "a")
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())


class StubTrainer:
    """A ``StructureTrainer`` that counts steps: task a's training set is 3 batches, b's 5."""

    progress = False

    def __init__(self) -> None:
        self.calls: list[tuple[tuple[str, ...], int]] = []

    def train_steps(self, tasks: list[str], steps: int) -> None:
        self.calls.append((tuple(tasks), steps))

    def dev_score(self, task: str) -> float:
        return 0.0

    def steps_per_epoch(self, tasks: list[str]) -> int:
        return sum({"a": 3, "b": 5}[t] for t in tasks)

    def save(self, name, tensors, meta) -> None:
        pass

    def load(self, name, *, restore=True):
        return None


def test_a_round_is_an_epoch_of_its_own_task_and_the_warm_up_of_all():
    model = sparse(alpha=0.5, target_density=0.3, round_epochs=1.0, warmup_epochs=2.0)
    stub = StubTrainer()
    search_subnets(model, stub, ["a", "b"])
    assert stub.calls[0] == (("a", "b"), 16)  # the warm-up: two epochs over both tasks
    rounds = stub.calls[1:]
    assert rounds and {steps for (task,), steps in rounds if task == "a"} == {3}
    assert {steps for (task,), steps in rounds if task == "b"} == {5}


@pytest.mark.parametrize(
    ("rule", "round_", "value", "expected"),
    [("round", 1, 0.0, 0.5), ("density", 0, 0.3, 0.25)],
)
def test_the_chosen_mask_follows_the_selection_rule_s_own_setting(rule, round_, value, expected):
    """Densities by round with alpha = 0.5: 1, 0.5, 0.25 (rounded per tensor, near enough)."""
    cfg = {"select": rule, "select_round": round_, "select_density": value}
    model = sparse(alpha=0.5, target_density=0.2, round_steps=1, **cfg)
    outcome = search_subnets(model, StubTrainer(), ["a", "b"])
    for task in ("a", "b"):
        assert density(outcome.chosen[task]) == pytest.approx(expected, abs=0.01)


def test_entries_are_counted_shared_by_two_masks_specific_by_one_and_not_by_none():
    model = sparse()
    whole_counts = model.param_counts()  # all-ones masks: every prunable entry shared
    masks = random_masks(model)
    model.set_masks(masks)
    counts = model.param_counts()
    used = torch.cat([(masks["a"][n].int() + masks["b"][n].int()).reshape(-1) for n in masks["a"]])
    both, one, none = (int((used == k).sum()) for k in (2, 1, 0))
    assert both and one and none
    assert counts["shared"] == whole_counts["shared"] - used.numel() + both
    assert counts["task_specific"] == whole_counts["task_specific"] + one
    assert counts["total"] == whole_counts["total"] - none
    assert counts["counted"] == whole_counts["counted"] - none


def test_a_new_task_s_free_entries_are_those_of_its_mask_no_trained_mask_keeps():
    model = sparse()
    masks = random_masks(model)
    model.set_masks(masks)
    model.freeze_entries(["a"])
    free = sum(int((masks["b"][n] & ~masks["a"][n]).sum()) for n in masks["a"])
    assert 0 < free < sum(int(m.sum()) for m in masks["b"].values())
    assert model.addition_report(["b"])["new_mask_free_entries"] == free


def test_adding_a_task_searches_its_mask_even_where_the_trained_run_read_its_masks():
    """A model trained on masks read from another run (``sparse.masks_from``, a single-task
    run on its subnet) searches the new task's mask; the trained task keeps its own."""
    model = sparse(masks_from="/elsewhere/sparse", round_steps=1, alpha=0.5, target_density=0.3)
    masks = random_masks(model)
    model.set_masks(masks)
    model.freeze_for_new_tasks(["a"], ["b"])
    stub = StubTrainer()
    model.prepare(stub)  # the stub has no selected_state: reading masks would fail
    assert {tasks for tasks, _ in stub.calls} == {("b",)}
    assert all(torch.equal(model.masks["a"][n], masks["a"][n]) for n in masks["a"])
    assert density(model.masks["b"]) < 1.0


@pytest.mark.parametrize("searched", [False, True])
def test_a_loaded_state_says_whether_its_masks_were_searched(searched):
    """An unsearched model's state loads as unsearched, so ``prepare`` still searches."""
    model = sparse()
    if searched:
        model.set_masks(random_masks(model))
    other = sparse()
    other.searched = not searched
    other.load_state_dict(model.state_dict())
    assert other.searched is searched


def test_rounds_overlap_lists_only_the_rounds_every_task_reached():
    """A search that could prune b no more stopped a round early: round 2 is a's alone."""
    ones = torch.ones(4, dtype=torch.bool)
    half, other = torch.tensor([1, 1, 0, 0]).bool(), torch.tensor([0, 1, 1, 0]).bool()
    quarter = torch.tensor([1, 0, 0, 0]).bool()
    cands = [
        Candidate("a", 0, 1.0, 0.1, {"w": ones}),
        Candidate("b", 0, 1.0, 0.3, {"w": ones}),
        Candidate("a", 1, 0.5, 0.2, {"w": half}),
        Candidate("b", 1, 0.5, 0.4, {"w": other}),
        Candidate("a", 2, 0.25, 0.5, {"w": quarter}),
    ]
    rows = rounds_overlap(cands, ["a", "b"])
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[1] == {
        "round": 1,
        "density": 0.5,
        "overlap_ratio": 1 / 3,
        "mean_dev_score": pytest.approx(0.3),
    }


def test_the_step_buffers_are_8_bytes_a_prunable_weight_whatever_the_number_of_tasks():
    model = sparse()
    model.set_masks(random_masks(model))
    prunable = sum(p.numel() for p in model._prunable().values())
    model.eval()
    for task in ("a", "b", "a"):
        model.apply_mask(task)
        assert model.buffer_bytes() == 8 * prunable, task
    model.restore_weights()


def test_changed_since_names_a_frozen_entry_or_parameter_that_moved_and_nothing_else():
    """What add-task checks after training the new task: the entries and parameters the
    trained tasks read are unchanged (the new task's free entries may move)."""
    model = sparse()
    masks = random_masks(model)
    model.set_masks(masks)
    model.freeze_for_new_tasks(["a"], ["b"])
    snapshot = model.snapshot_frozen()
    name = model.prunable_names[0]
    weight = model._prunable()[name]
    frozen = model.frozen_entries(name)
    with torch.no_grad():
        weight[~frozen] += 1.0  # free entries: the new task's to train
    assert model.changed_since(snapshot) == []
    with torch.no_grad():
        weight[frozen] += 1.0
    assert model.changed_since(snapshot) == [f"layers.{name}"]
    head = next(n for n, p in model.named_parameters() if n.startswith("heads.a"))
    with torch.no_grad():
        dict(model.named_parameters())[head].add_(1.0)
    assert model.changed_since(snapshot) == [f"layers.{name}", head]


def test_a_mask_of_other_weights_is_refused_and_a_state_without_masks_loads_only_unstrict():
    from mtlshare.errors import ConfigError

    model = sparse()
    names = sorted(model._prunable())
    with pytest.raises(ConfigError) as err:
        model.set_mask("a", {"0.weight": torch.ones(3, 3, dtype=torch.bool)})
    assert str(err.value) == f"mask for 'a' covers ['0.weight'], expected {names}"
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("sparse_masks.")}
    assert len(state) < len(model.state_dict())
    with pytest.raises(KeyError, match=r"sparse state has no masks \(sparse_masks\.meta\)"):
        sparse().load_state_dict(state)
    other = sparse()
    other.load_state_dict(state, strict=False)
    assert all(
        torch.equal(p, model.state_dict()[n]) for n, p in other.state_dict().items() if n in state
    )
