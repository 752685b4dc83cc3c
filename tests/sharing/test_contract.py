"""Contract tests: every registered mechanism on every trunk kind, with 2 and 3 tasks.

The table is read from ``mtlshare.registry.MECHANISMS``, so a newly registered mechanism is
tested here without touching this file. Each case is tiny and runs on CPU in milliseconds.
"""

from __future__ import annotations

import json

import pytest
import torch
from torch import Tensor, nn

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.task import Task
from mtlshare.training.checkpoint import load_checkpoint, save_checkpoint

INPUT_DIM = 5
BATCH = 4
TIME = 6
N_CLASSES = 3
TRUNKS = ("mlp", "conv", "lstm", "gru")
SEQUENCE_TRUNKS = ("conv", "lstm", "gru")

ALL_TASKS = [
    Task("reg", "regression", 1, "mse"),
    Task("cls", "classification", N_CLASSES, "accuracy"),
    Task("reg2", "regression", 1, "mae"),
]

CASES = [
    pytest.param(name, kind, n, id=f"{name}-{kind}-{n}tasks")
    for name in MECHANISMS.names()
    for kind in TRUNKS
    for n in (2, 3)
]


def test_the_table_covers_every_registered_mechanism() -> None:
    names = {c.values[0] for c in CASES}
    assert names == set(MECHANISMS.names())
    assert {"hard", "conditioned", "soft", "cross_stitch", "hierarchical"} <= names


def build(name: str, kind: str, n_tasks: int, seed: int = 0) -> SharingModel:
    entry = MECHANISMS[name]
    torch.manual_seed(seed)
    backbone = backbone_from_config(TrunkConfig(kind=kind, hidden=[8, 8]), INPUT_DIM)
    cfg = entry.config() if entry.config is not None else None
    model = entry.build(backbone, ALL_TASKS[:n_tasks], cfg)
    assert isinstance(model, SharingModel)
    return model


def inputs(kind: str, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (BATCH, TIME, INPUT_DIM) if kind in SEQUENCE_TRUNKS else (BATCH, INPUT_DIM)
    return torch.randn(*shape, generator=g)


def targets(task: Task, kind: str, seed: int = 2) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (BATCH, TIME) if kind in SEQUENCE_TRUNKS else (BATCH,)
    if task.kind == "regression":
        return torch.randn(*shape, generator=g)
    return torch.randint(0, task.out_dim, shape, generator=g)


def outputs(model: SharingModel, x: Tensor) -> dict[str, Tensor]:
    model.eval()
    with torch.no_grad():
        return {t: model(x, t) for t in model.task_names}


def ids(params: object) -> set[int]:
    return {id(p) for p in params}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_forward_gives_one_output_per_position_and_class(name, kind, n_tasks):
    model = build(name, kind, n_tasks)
    x = inputs(kind)
    assert model.task_names == [t.name for t in ALL_TASKS[:n_tasks]]
    for task in ALL_TASKS[:n_tasks]:
        out = model(x, task.name)
        positions = (BATCH, TIME) if kind in SEQUENCE_TRUNKS else (BATCH,)
        assert out.shape == (*positions, task.out_dim)
        assert torch.isfinite(out).all()
        # the task's own loss reads it without reshaping
        assert torch.isfinite(task.loss(out, targets(task, kind)))


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_param_counts_are_consistent(name, kind, n_tasks):
    model = build(name, kind, n_tasks)
    counts = model.param_counts()
    assert set(counts) == {"total", "shared", "task_specific", "counted"}
    assert all(isinstance(v, int) and v >= 0 for v in counts.values())
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    assert counts["counted"] <= counts["total"]
    assert counts["shared"] + counts["task_specific"] <= counts["total"]
    # every task has a head, and heads are left out of ``counted``
    assert counts["task_specific"] > 0
    assert counts["counted"] < counts["total"]


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_parameter_groups_are_disjoint_and_complete(name, kind, n_tasks):
    model = build(name, kind, n_tasks)
    everything = ids(model.parameters())
    shared = ids(model.shared_parameters())
    per_task = {t: ids(model.task_parameters(t)) for t in model.task_names}
    names = model.task_names
    for i, s in enumerate(names):
        assert per_task[s], f"task {s} owns no parameters"
        assert not per_task[s] & shared, f"task {s} and shared overlap"
        for t in names[i + 1 :]:
            assert not per_task[s] & per_task[t], f"tasks {s} and {t} overlap"
    assert shared.union(*per_task.values()) == everything
    assert ids(model.uncounted_parameters()) <= everything


@pytest.mark.parametrize("name", MECHANISMS.names())
def test_an_input_encoder_is_in_the_groups_and_not_counted(name):
    """With a stem that has parameters (the tagger's embeddings), every parameter is still
    shared or some task's, and every task's stem is left out of ``counted``."""
    entry = MECHANISMS[name]
    torch.manual_seed(0)
    backbone = backbone_from_config(
        TrunkConfig(kind="mlp", hidden=[8, 8]), INPUT_DIM, lambda: nn.Linear(INPUT_DIM, INPUT_DIM)
    )
    cfg = entry.config() if entry.config is not None else None
    model = entry.build(backbone, ALL_TASKS[:2], cfg)
    shared = ids(model.shared_parameters())
    per_task = {t: ids(model.task_parameters(t)) for t in model.task_names}
    assert shared.union(*per_task.values()) == ids(model.parameters())
    uncounted = ids(model.uncounted_parameters())
    for t in model.task_names:
        stem = ids(model.stem_for(t).parameters())
        assert stem and stem <= uncounted, t
        assert stem <= shared | per_task[t], t


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_regularizer_is_a_finite_scalar(name, kind, n_tasks):
    reg = build(name, kind, n_tasks).regularizer()
    assert isinstance(reg, Tensor)
    assert reg.dim() == 0
    assert torch.isfinite(reg)
    assert float(reg.detach()) >= 0.0


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_one_optimizer_step_moves_the_task_and_stays_finite(name, kind, n_tasks):
    model = build(name, kind, n_tasks)
    x = inputs(kind)
    for task in ALL_TASKS[:n_tasks]:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        y = targets(task, kind)
        own = list(model.task_parameters(task.name))
        before = [p.detach().clone() for p in own]
        model.train()
        loss = task.loss(model(x, task.name), y) + model.regularizer()
        assert torch.isfinite(loss)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        model.after_optimizer_step(task.name)
        assert any(not torch.equal(b, p) for b, p in zip(before, own, strict=True)), (
            f"a step on {task.name} moved none of its parameters"
        )
        after = task.loss(model(x, task.name), y) + model.regularizer()
        assert torch.isfinite(after)


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_checkpoint_round_trip_reproduces_outputs_bitwise(name, kind, n_tasks, tmp_path):
    model = build(name, kind, n_tasks, seed=0)
    x = inputs(kind)
    # move away from the initialisation so that a fresh build cannot match by accident
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    expected = outputs(model, x)
    save_checkpoint(tmp_path / "ckpt", model.state_dict(), {"mechanism": name})
    tensors, meta = load_checkpoint(tmp_path / "ckpt")
    assert meta == {"mechanism": name}

    fresh = build(name, kind, n_tasks, seed=123)
    before = outputs(fresh, x)
    assert any(not torch.equal(before[t], expected[t]) for t in expected)
    fresh.load_state_dict(tensors, strict=True)
    got = outputs(fresh, x)
    for t in expected:
        assert torch.equal(got[t], expected[t]), t


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_same_seed_same_model(name, kind, n_tasks):
    x = inputs(kind)
    first = outputs(build(name, kind, n_tasks, seed=7), x)
    second = outputs(build(name, kind, n_tasks, seed=7), x)
    other = outputs(build(name, kind, n_tasks, seed=8), x)
    for t in first:
        assert torch.equal(first[t], second[t]), t
    assert any(not torch.equal(first[t], other[t]) for t in first)


@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_the_calls_the_loop_and_predict_make_are_answered(name, kind, n_tasks):
    """What training and ``load_run`` call beyond ``forward``, with the arguments they pass:
    a mechanism written to the interface as the README gives it (``regularizer()``, heads kept
    elsewhere) passed every test above and then failed in its first training step or its
    first prediction."""
    model = build(name, kind, n_tasks)
    names = model.task_names
    for task in names:  # an alternate step's share of the penalty (objective.Objective)
        reg = model.regularizer(task, float(n_tasks))
        assert isinstance(reg, Tensor) and reg.dim() == 0 and torch.isfinite(reg), task
    whole = model.regularizer(None)  # a joint step's
    assert isinstance(whole, Tensor) and whole.dim() == 0 and torch.isfinite(whole)
    x = inputs(kind)
    expected = outputs(model, x)
    with torch.no_grad():
        together = model.forward_tasks(x, names)  # a joint step on one batch for every task
    assert list(together) == names
    for task in names:
        assert torch.allclose(together[task], expected[task], atol=1e-6), task
        head = model.head(task)  # a task's decoding and loss may need it (predict, CRF)
        assert isinstance(head, nn.Module)
        assert ids(head.parameters()) <= ids(model.task_parameters(task)), task
    json.dumps(model.report())  # written into results.json after training


@pytest.mark.skipif(not torch.cuda.is_available(), reason="torch sees no GPU here")
@pytest.mark.parametrize(("name", "kind", "n_tasks"), CASES)
def test_on_the_gpu_a_step_of_each_task_ends_where_the_cpus_does(name, kind, n_tasks, monkeypatch):
    """Every mechanism on every trunk, moved with ``.to("cuda")``: one step of each task (with
    the loop's hooks) leaves every parameter on the GPU, and its outputs equal the CPU model's
    within float error. cuDNN's TF32 (on by default for convolutions and recurrent layers) is
    switched off, so the GPU computes in full float32 as the CPU does; matrix products are
    already in full float32 by default."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    cpu, gpu = build(name, kind, n_tasks), build(name, kind, n_tasks).to("cuda")
    x = inputs(kind)
    for task in ALL_TASKS[:n_tasks]:
        y = targets(task, kind)
        for model, device in ((cpu, "cpu"), (gpu, "cuda")):
            optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
            model.train()
            loss = task.loss(model(x.to(device), task.name), y.to(device)) + model.regularizer()
            optimizer.zero_grad()
            loss.backward()
            model.before_optimizer_step(task.name)
            optimizer.step()
            model.after_optimizer_step(task.name)
    assert all(p.device.type == "cuda" for p in gpu.parameters())
    assert all(b.device.type == "cuda" for b in gpu.buffers())
    expected, got = outputs(cpu, x), outputs(gpu, x.to("cuda"))
    for t in expected:
        assert got[t].device.type == "cuda"
        torch.testing.assert_close(got[t].cpu(), expected[t], rtol=1e-4, atol=1e-5, msg=t)
