"""Joint steps (``train.schedule = "joint"``): every mechanism trains with them; loss weightings
(DWA, GradNorm, RLW, uncertainty, fixed) and torchjd aggregators give the updates their papers
define on known gradients; a task-specific parameter gets its own task's gradient; a cut joint
run resumes to the uninterrupted one; two processes agree; bad settings are one line."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from safetensors.torch import load_file

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.app.build import build_model, build_problem
from mtlshare.app.run import run
from mtlshare.cli import main
from mtlshare.config import load_config
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.sparse import driver
from mtlshare.training import aggregators
from mtlshare.training.joint import JointStepper, check_joint
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig
from update_norm import assert_the_step_is_bounded

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"
SMALL = ["train.epochs=2", "data.n_dev=40", "data.n_test=40", "data.n_train=80"]
JOINT = [*SMALL, "train.schedule=joint"]


def tiny(*extra: str):
    return load_config(DEMO, [*JOINT, *extra])


# -- every mechanism, every family -------------------------------------------------------------
# soft sharing shares no parameter: an aggregator has nothing to combine there, and is refused
# (test_an_aggregator_without_a_trained_shared_parameter_is_refused)
CASES = [
    (m, w) for m in MECHANISMS.names() for w in ("sum", "upgrad") if (m, w) != ("soft", "upgrad")
]
CASES += [("hard", "dwa"), ("hard", "rlw"), ("sparse", "dwa"), ("hard", "gradnorm")]
WEIGHTINGS = {
    "sum": [],
    "upgrad": ["weighting.kind=aggregator", "weighting.aggregator=upgrad"],
    "dwa": ["weighting.kind=dwa"],
    "rlw": ["weighting.kind=rlw"],
    "gradnorm": ["weighting.kind=gradnorm"],
}


# a mask search of one pruning round (the demo's prunes ten rounds of ten epochs each)
SHORT_SEARCH = ["sparse.warmup_epochs=1", "sparse.round_epochs=1", "sparse.target_density=0.5"]
SHORT_SEARCH += ["sparse.alpha=0.5"]


@pytest.mark.parametrize(("mechanism", "weighting"), CASES)
def test_every_mechanism_trains_with_joint_steps(tmp_path, mechanism, weighting):
    search = SHORT_SEARCH if mechanism == "sparse" else []
    cfg = tiny(f"mechanism={mechanism}", *WEIGHTINGS[weighting], *search)
    results = run(cfg, tmp_path / "run", progress=False)
    assert all(math.isfinite(r["test"]) for r in results["tasks"].values())
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    # a joint epoch: as many steps as the larger training set has batches, each task in each
    assert records[0]["task_steps"] == {"t1": 3, "t2": 3}
    assert records[1]["step"] - records[0]["step"] == 3
    # an aggregator's: those of its update
    assert set(records[-1]["loss_weights"]) == {"t1", "t2"}


def test_missing_labels_are_left_out_of_joint_losses(tmp_path):
    cfg = tiny()
    problem = build_problem(cfg)
    problem.tasks[1].train.y[::2] = float("nan")  # half of t2's training labels missing
    results = run(cfg, tmp_path / "run", problem=problem, progress=False)
    assert all(math.isfinite(r["test"]) for r in results["tasks"].values())


# -- loss weightings -------------------------------------------------------------------------
def test_dwa_weights_follow_the_ratio_of_the_last_two_epochs():
    w = LossWeighting(["a", "b"], WeightingConfig(kind="dwa", temperature=2.0))
    assert torch.equal(w.weight_vector(), torch.ones(2))  # nothing seen yet
    w.end_epoch({"a": 1.0, "b": 1.0})
    assert torch.equal(w.weight_vector(), torch.ones(2))  # one epoch: still 1
    w.end_epoch({"a": 0.5, "b": 1.0})  # a halved its loss, b did not
    ratios = torch.tensor([0.5, 1.0])
    expected = 2 * torch.softmax(ratios / 2.0, dim=0)
    assert torch.allclose(w.weight_vector(), expected)
    assert w.weight_vector()[1] > w.weight_vector()[0]  # the slower task weighs more
    assert w.current()["b"] == pytest.approx(float(expected[1]))


def test_metrics_log_the_dwa_weights_each_epoch_trained_with(tmp_path):
    # they were logged after the epoch's losses had moved them: epoch e showed epoch e+1's
    cfg = tiny("weighting.kind=dwa", "train.epochs=3")
    run(cfg, tmp_path / "run", progress=False)
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    ones = {"t1": 1.0, "t2": 1.0}
    assert records[0]["loss_weights"] == ones and records[1]["loss_weights"] == ones
    losses = [[r["train_loss"][t] for t in ("t1", "t2")] for r in records]
    ratios = torch.tensor(losses[1]) / torch.tensor(losses[0])  # epoch 3's: L2 / L1
    expected = 2 * torch.softmax(ratios / cfg.weighting.temperature, dim=0)
    assert [records[2]["loss_weights"][t] for t in ("t1", "t2")] == pytest.approx(
        expected.tolist(), rel=1e-5
    )


def test_rlw_draws_softmax_weights_from_the_seed_and_step():
    w = LossWeighting(["a", "b", "c"], WeightingConfig(kind="rlw"), seed=7)
    w.begin_step(3)
    first = w.weight_vector().clone()
    assert first.sum() == pytest.approx(1.0) and (first > 0).all()
    w.begin_step(4)
    assert not torch.equal(w.weight_vector(), first)
    again = LossWeighting(["a", "b", "c"], WeightingConfig(kind="rlw"), seed=7)
    again.begin_step(3)
    assert torch.equal(again.weight_vector(), first)


def test_rlw_before_any_joint_step_weighs_with_step_0s_draw():
    """A task's steps alone before any joint step (sparse sharing's mask search without a
    warm-up) read the weights of step 0; they used to fail an assertion."""
    w = LossWeighting(["a", "b", "c"], WeightingConfig(kind="rlw"), seed=7)
    loss = torch.tensor(2.0)
    drawn = LossWeighting(["a", "b", "c"], WeightingConfig(kind="rlw"), seed=7)
    drawn.begin_step(0)
    assert torch.equal(w("b", loss), drawn.weight_vector()[1] * loss)


def test_sparse_rlw_searches_without_a_warm_up(tmp_path):
    search = [*SHORT_SEARCH, "sparse.warmup_epochs=0"]
    cfg = tiny("mechanism=sparse", *WEIGHTINGS["rlw"], *search)
    results = run(cfg, tmp_path / "run", progress=False)
    assert all(math.isfinite(r["test"]) for r in results["tasks"].values())


@pytest.mark.parametrize("weighting", ["rlw", "uncertainty"])
def test_a_sparse_search_cut_and_resumed_weighs_as_the_uncut_one(tmp_path, monkeypatch, weighting):
    """The search's checkpoints hold the weighting's state: RLW's last draw (a resumed search
    used to fail an assertion, then to weigh with another draw) and the uncertainty weights."""
    kind = ["weighting.kind=uncertainty"] if weighting == "uncertainty" else WEIGHTINGS["rlw"]
    cfg = tiny("mechanism=sparse", *kind, *SHORT_SEARCH, "train.optimizer=sgd")
    whole = run(cfg, tmp_path / "whole", progress=False)
    original, calls = driver.SubnetSearch.train, {"n": 0}

    def cut(self, task, steps):
        calls["n"] += 1
        if calls["n"] == 3:  # inside the second task's rounds
            raise KeyboardInterrupt
        return original(self, task, steps)

    monkeypatch.setattr(driver.SubnetSearch, "train", cut)
    with pytest.raises(KeyboardInterrupt):
        run(cfg, tmp_path / "cut", progress=False)
    monkeypatch.setattr(driver.SubnetSearch, "train", original)
    resumed = run(cfg, tmp_path / "cut", resume=True, progress=False)
    assert {t: r["test"] for t, r in resumed["tasks"].items()} == {
        t: r["test"] for t, r in whole["tasks"].items()
    }


def test_gradnorm_raises_the_weight_of_the_task_with_the_smaller_gradient():
    shared = torch.nn.Parameter(torch.ones(3, 3))
    x = torch.randn(8, 3)
    small = (x @ shared).pow(2).mean() * 0.01
    large = (x @ shared).pow(2).mean()
    w = LossWeighting(["small", "large"], WeightingConfig(kind="gradnorm", lr=0.1))
    for _ in range(5):
        grad = w.gradnorm_update({"small": small, "large": large}, shared)
        w.apply_gradnorm(grad)
    weights = w.weight_vector()
    assert weights.sum() == pytest.approx(2.0)
    assert weights[0] > 1.0 > weights[1]


def test_fixed_and_uncertainty_joint_steps_optimise_the_summed_objective():
    cfg = tiny("weighting.weights={t1 = 2.0}")
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    w = LossWeighting(["t1", "t2"], cfg.weighting)
    raws = {"t1": torch.tensor(3.0), "t2": torch.tensor(5.0)}
    assert float(w.combine(raws)) == 2 * 3.0 + 5.0
    u = LossWeighting(["t1", "t2"], WeightingConfig(kind="uncertainty"))
    with torch.no_grad():
        u.log_vars.copy_(torch.tensor([0.5, -0.5]))
    expected = math.exp(-0.5) * 3 + 0.5 + math.exp(0.5) * 5 - 0.5
    assert float(u.combine(raws)) == pytest.approx(expected)
    assert model is not None


def test_gradnorm_targets_use_the_inverse_training_rate_relative_to_the_mean():
    shared = torch.nn.Parameter(torch.ones(4))
    w = LossWeighting(["a", "b"], WeightingConfig(kind="gradnorm", alpha=1.5))
    w.gradnorm_update({"a": shared.sum(), "b": shared.sum()}, shared)  # initial losses (4, 4)
    # a's loss halved, b's unchanged: r = (0.5, 1) / 0.75; both gradient norms are 2, so the
    # targets 2 * r**1.5 = (1.09, 3.08) put a's norm above its target and b's below
    grad = w.gradnorm_update({"a": shared.sum() - 2.0, "b": shared.sum()}, shared)
    assert torch.allclose(grad, torch.tensor([2.0, -2.0]))


def test_gradnorm_over_processes_gives_one_process_what_autograd_gives_it():
    """The torchrun path (each task's gradient averaged over processes, then its norm, the
    weights' gradient in closed form) with one process's mean, the identity, equals autograd's
    path over the same steps."""
    torch.manual_seed(0)
    shared = torch.nn.Parameter(torch.randn(3, 3))
    x = torch.randn(8, 3)
    ways = [LossWeighting(["a", "b"], WeightingConfig(kind="gradnorm", lr=0.1)) for _ in "12"]
    for step in range(4):
        raws = {"a": (x @ shared).pow(2).mean() / (step + 1), "b": (x @ shared).sum().abs()}
        grads = [
            ways[0].gradnorm_update(raws, shared),
            ways[1].gradnorm_update(raws, shared, lambda v: v),
        ]
        assert torch.allclose(grads[0], grads[1], atol=1e-6), grads
        for way, grad in zip(ways, grads, strict=True):
            way.apply_gradnorm(grad)
    assert torch.allclose(ways[0].weight_vector(), ways[1].weight_vector(), atol=1e-6)
    assert torch.equal(ways[0].initial_losses, ways[1].initial_losses)


def test_gradnorm_measures_the_gradients_at_the_last_shared_weight_matrix():
    cfg = tiny()  # an MLP trunk 16 -> 64 -> 64, shared by both tasks
    at = check_joint("gradnorm", build_model(cfg, build_problem(cfg)))
    assert at is not None and at.shape == (64, 64)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["mechanism=soft"], "SoftSharing shares none"),
        (
            ["mechanism=adapters", "adapters.freeze_trunk=true"],
            "AdapterSharing trains none of those it shares: they are frozen",
        ),
    ],
)
def test_gradnorm_without_a_trained_shared_matrix_says_which_is_missing(extra, why):
    cfg = tiny(*extra)
    with pytest.raises(ConfigError, match=why):
        check_joint("gradnorm", build_model(cfg, build_problem(cfg)))


def test_an_aggregator_combines_shared_vectors_too_where_gradnorm_needs_a_matrix():
    """A model whose trained shared parameters are all vectors (its shared weight matrices
    frozen here) gives an aggregator something to combine; GradNorm measures at a matrix."""
    cfg = tiny()
    model = build_model(cfg, build_problem(cfg))
    for p in model.shared_parameters():
        p.requires_grad_(p.dim() < 2)
    assert any(p.requires_grad for p in model.shared_parameters())
    assert check_joint("aggregator", model) is None
    with pytest.raises(ConfigError, match="trains none of those it shares: they are frozen"):
        check_joint("gradnorm", model)


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        (["mechanism=soft"], "SoftSharing shares none"),
        (["hard.shared_layers=0"], "HardSharing shares none"),
        (
            ["mechanism=adapters", "adapters.freeze_trunk=true"],
            "AdapterSharing trains none of those it shares: they are frozen",
        ),
    ],
)
@pytest.mark.parametrize("aggregator", ["upgrad", "mgda"])
def test_an_aggregator_without_a_trained_shared_parameter_is_refused(
    tmp_path, capsys, extra, why, aggregator
):
    """It combines the tasks' gradients of what they share: with nothing shared it trained each
    task alone, exit 0, logging loss_weights {}; refused in one line now, before --out."""
    out = tmp_path / "out"
    argv = ["run", str(DEMO), *JOINT, *extra, "weighting.kind=aggregator"]
    assert main([*argv, f"weighting.aggregator={aggregator}", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "weighting.kind = 'aggregator' needs shared" in err[0], err
    assert why in err[0], err
    assert not out.exists()


def test_a_joint_epoch_returns_each_tasks_mean_raw_loss():
    cfg = tiny()
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    trainer = Trainer(model, problem, cfg.train, LossWeighting(["t1", "t2"], cfg.weighting))
    assert trainer.joint is not None
    trainer.joint.step = lambda optimizer, batches: {"t1": 1.0, "t2": 3.0}  # type: ignore[method-assign]
    losses = trainer.joint.run(trainer.make_optimizer(), ["t1", "t2"], 4, epoch=1)
    assert losses == {"t1": 1.0, "t2": 3.0}
    assert trainer.last_counts == {"t1": 4, "t2": 4}


@pytest.mark.parametrize("per_task", [False, True], ids=["sum", "per_task"])
def test_soft_sharing_joint_steps_add_the_whole_penalty_gradient(per_task):
    """Soft sharing gives each task its own trunk, so no parameter is reached by two tasks: a
    joint step's gradient, summed or taken per task (the way an aggregator's is, which soft
    sharing refuses: there is nothing to aggregate), is that of the summed task losses plus the
    whole distance penalty (added once, outside the tasks' gradients)."""
    cfg = tiny("mechanism=soft", "soft.weights=[1.0]")
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    w = LossWeighting(["t1", "t2"], cfg.weighting)
    trainer = Trainer(model, problem, cfg.train, w, progress=False)
    xs = {td.task.name: td.train.take(torch.arange(8)) for td in problem.tasks}
    tasks = {td.task.name: td.task for td in problem.tasks}
    model.train()
    model.zero_grad()
    penalty = model.regularizer(None)
    assert float(penalty.detach()) > 0
    (sum(tasks[n].loss(model(x, n), y) for n, (x, y) in xs.items()) + penalty).backward()
    expected = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert trainer.joint is not None
    trainer.joint.per_task = per_task
    trainer.joint.step(torch.optim.SGD(trainer.parameters(), lr=0.0), xs)
    for n, p in model.named_parameters():
        if n in expected:
            assert torch.allclose(p.grad, expected[n], atol=1e-6), n


# -- aggregators ---------------------------------------------------------------------------------
NAMES = list(aggregators.AGGREGATORS)


@pytest.mark.parametrize("name", NAMES)
def test_with_one_task_a_joint_step_is_its_plain_gradient(name):
    """A parameter one task alone reaches is never aggregated: with one task every update is
    its own gradient, whatever the aggregator would do to a one-row matrix."""
    cfg = tiny("weighting.kind=aggregator", f"weighting.aggregator={name}", 'tasks=["t1"]')
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    trainer = Trainer(model, problem, cfg.train, LossWeighting(["t1"], cfg.weighting))
    batch = problem.tasks[0].train.take(torch.arange(8))
    model.zero_grad()
    problem.tasks[0].task.loss(model(*batch[:1], "t1"), batch[1]).backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    assert trainer.joint is not None
    trainer.joint.step(torch.optim.SGD(trainer.parameters(), lr=0.0), {"t1": batch})
    for n, p in model.named_parameters():
        if n in plain:
            assert torch.allclose(p.grad, plain[n], atol=1e-6), (name, n)


ORTHOGONAL = {  # two orthogonal unit gradients e1, e2: what each paper's rule gives
    "mgda": [0.5, 0.5],  # the min-norm point of the segment
    "upgrad": [0.5, 0.5],  # no conflict: the mean
    "dualproj": [0.5, 0.5],  # the mean is in the dual cone already
    "imtl_g": [0.5, 0.5],  # equal projections with weights summing to 1
    "aligned_mtl": [0.5, 0.5],
    "pcgrad": [1.0, 1.0],  # no conflict: nothing projected, the sum
    "graddrop": [1.0, 1.0],  # no sign conflict: every component kept
    "cagrad": [0.75, 0.75],  # the mean moved by c |mean| along itself, c = 0.5
    "nash_mtl": [2**-0.5, 2**-0.5],  # alpha = 1/alpha: the sum, scaled to max_norm 1
}


@pytest.mark.parametrize("name", NAMES)
def test_two_orthogonal_gradients(name):
    got = aggregators.make_aggregator(name, 2)(torch.eye(2))
    assert torch.allclose(got, torch.tensor(ORTHOGONAL[name]), atol=1e-4), (name, got)


def test_two_conflicting_gradients_mgda_and_pcgrad_by_hand():
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    j = torch.stack([g1, g2])
    # MGDA: min over a of |a g1 + (1-a) g2|^2 -> a = (g2.g2 - g1.g2) / |g1 - g2|^2 = 3/5
    a = (g2 @ g2 - g1 @ g2) / (g1 - g2).pow(2).sum()
    assert torch.allclose(aggregators.make_aggregator("mgda", 2)(j), a * g1 + (1 - a) * g2)
    # PCGrad: each projected off the other (they conflict: g1.g2 < 0), then summed
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2
    p2 = g2 - (g2 @ g1) / (g1 @ g1) * g1
    assert torch.allclose(aggregators.make_aggregator("pcgrad", 2)(j), p1 + p2)


def test_two_conflicting_gradients_dualproj_and_upgrad_by_hand():
    j = torch.tensor([[1.0, 0.0], [-2.0, 1.0]])
    # the dual cone {d : J d >= 0} is d1 >= 0, d2 >= 2 d1
    # DualProj: the mean (-0.5, 0.5) projected onto the cone: (0, 0.5)
    dualproj = aggregators.make_aggregator("dualproj", 2)(j)
    assert torch.allclose(dualproj, torch.tensor([0.0, 0.5]), atol=1e-3)
    # UPGrad: each gradient projected, then the mean: g1 -> (0.2, 0.4), g2 -> (0, 1)
    upgrad = aggregators.make_aggregator("upgrad", 2)(j)
    assert torch.allclose(upgrad, torch.tensor([0.1, 0.7]), atol=1e-3)


@pytest.mark.parametrize("name", ["upgrad", "dualproj", "mgda"])
def test_conflict_free_aggregators_never_oppose_a_task(name):
    j = torch.tensor([[1.0, 0.0], [-2.0, 1.0]])
    d = aggregators.make_aggregator(name, 2)(j)
    assert (j @ d >= -1e-3).all(), (name, j @ d)  # no task loss goes up, to the solver tolerance
    assert not torch.allclose(d, j.mean(0))  # the plain mean would oppose g1


def test_task_specific_parameters_get_their_own_tasks_gradient(tmp_path, monkeypatch):
    """Hard sharing, UPGrad: a head's update is its own task's gradient alone; the trunk's is
    the aggregation of both tasks' gradients."""
    cfg = tiny("weighting.kind=aggregator", "weighting.aggregator=upgrad", "train.epochs=1")
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    w = LossWeighting(["t1", "t2"], cfg.weighting)
    trainer = Trainer(model, problem, cfg.train, w, progress=False)
    optimizer = torch.optim.SGD(trainer.parameters(), lr=0.0)  # keep the weights: read grads
    xs = {td.task.name: td.train.take(torch.arange(8)) for td in problem.tasks}
    own = {}
    for name, (x, y) in xs.items():
        model.zero_grad()
        problem_task = next(td.task for td in problem.tasks if td.task.name == name)
        problem_task.loss(model(x, name), y).backward()
        own[name] = model.heads[name].weight.grad.clone()
    assert trainer.joint is not None
    trainer.joint.step(optimizer, xs)
    for name in xs:
        assert torch.allclose(model.heads[name].weight.grad, own[name], atol=1e-6), name


def test_an_aggregators_logged_weights_are_those_of_its_update(tmp_path):
    """Hard sharing, UPGrad: the weights logged for the step are those whose weighted sum of the
    tasks' trunk gradients is the trunk's update; per epoch, their mean over its steps."""
    cfg = tiny("weighting.kind=aggregator", "weighting.aggregator=upgrad", "train.epochs=1")
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    w = LossWeighting(["t1", "t2"], cfg.weighting)
    trainer = Trainer(model, problem, cfg.train, w, progress=False)
    optimizer = torch.optim.SGD(trainer.parameters(), lr=0.0)
    trunk = [p for n, p in model.named_parameters() if not n.startswith("heads.")]
    xs = {td.task.name: td.train.take(torch.arange(8)) for td in problem.tasks}
    own = {}
    for td in problem.tasks:
        model.zero_grad()
        x, y = xs[td.task.name]
        td.task.loss(model(x, td.task.name), y).backward()
        own[td.task.name] = [p.grad.clone() for p in trunk]
    assert w.current() == {}  # nothing aggregated yet
    assert trainer.joint is not None
    trainer.joint.step(optimizer, xs)
    weights = w.current()
    assert set(weights) == {"t1", "t2"} and weights != {"t1": 1.0, "t2": 1.0}
    for k, p in enumerate(trunk):
        expected = sum(weights[t] * own[t][k] for t in own)
        assert torch.allclose(p.grad, expected, atol=1e-6)
    trainer.joint.step(optimizer, xs)  # the same batches: the same weights, the same mean
    assert w.current() == pytest.approx(weights)
    w.end_epoch({})
    assert w.current() == pytest.approx(weights)  # between epochs: the last epoch's mean

    results = run(tiny(*WEIGHTINGS["upgrad"]), tmp_path / "upgrad", progress=False)
    records = [json.loads(line) for line in (tmp_path / "upgrad" / "metrics.jsonl").open()]
    assert all(r["loss_weights"] != {"t1": 1.0, "t2": 1.0} for r in records)
    assert results["loss_weights"] == records[-1]["loss_weights"]
    graddrop = ["weighting.kind=aggregator", "weighting.aggregator=graddrop"]
    results = run(tiny(*graddrop), tmp_path / "graddrop", progress=False)
    assert results["loss_weights"] == {}  # it has no weights: none are made up


def test_sparse_joint_updates_stay_inside_the_union_of_the_masks(tmp_path):
    cfg = tiny(
        "mechanism=sparse",
        "sparse.warmup_steps=2",
        "sparse.round_steps=2",
        "sparse.alpha=0.5",
        "sparse.target_density=0.3",
        "sparse.select=density",
        "sparse.select_density=0.3",
        "weighting.kind=aggregator",
        "weighting.aggregator=mgda",
    )
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    trainer = Trainer(model, problem, cfg.train, LossWeighting(["t1", "t2"], cfg.weighting))
    model.prepare(trainer.structure_trainer())
    before = {n: p.detach().clone() for n, p in model.prunable_weights().items()}
    optimizer = trainer.make_optimizer()
    xs = {td.task.name: td.train.take(torch.arange(8)) for td in problem.tasks}
    assert trainer.joint is not None
    trainer.joint.step(optimizer, xs)
    for n, p in model.prunable_weights().items():
        union = model.masks["t1"][n] | model.masks["t2"][n]
        assert torch.equal(p[~union], before[n][~union]), n
        assert not torch.equal(p[union], before[n][union]), n


# -- resume and processes ------------------------------------------------------------------------
def _cut_after_two_of_four_epochs(tmp_path: Path, extra: list[str]) -> Path:
    """The folder of a run of ``extra`` cut after epoch 2 of 4 (its config asks for 4 epochs,
    its results are gone), ready to resume."""
    cut = tmp_path / "cut"
    run(tiny(*extra, "train.epochs=2"), cut, progress=False)
    config = (cut / "config.toml").read_text().replace("epochs = 2", "epochs = 4")
    (cut / "config.toml").write_text(config)
    (cut / "results.json").unlink()
    return cut


def test_a_cut_joint_run_resumes_to_the_uninterrupted_one(tmp_path):
    extra = ["weighting.kind=dwa", "trunk.dropout=0.2", "train.patience=0"]
    full = run(tiny(*extra, "train.epochs=4"), tmp_path / "full", progress=False)
    cut = _cut_after_two_of_four_epochs(tmp_path, extra)
    resumed = run(tiny(*extra, "train.epochs=4"), cut, progress=False, resume=True)
    assert resumed["tasks"] == full["tasks"]
    assert resumed["loss_weights"] == full["loss_weights"]


@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem")
def test_nash_mtl_restarts_from_its_saved_warm_start_to_the_bit():
    """Nash-MTL solves from its last weights: on these matrices a fresh start gives other
    weights (by 0.23), the saved warm start the uncut aggregator's own."""
    g = torch.Generator().manual_seed(5)
    matrices = [torch.randn(3, 20, generator=g) for _ in range(4)]
    uncut = aggregators.make_aggregator("nash_mtl", 3)
    fresh = aggregators.make_aggregator("nash_mtl", 3)
    assert bool(aggregators.warm_start(fresh).isnan().all())  # type: ignore[union-attr]
    for m in matrices[:3]:
        uncut(m)
    state = aggregators.warm_start(uncut)
    assert state is not None and bool(torch.isfinite(state).all())
    resumed = aggregators.make_aggregator("nash_mtl", 3)
    aggregators.set_warm_start(resumed, state)
    expected = uncut(matrices[3])
    assert torch.equal(resumed(matrices[3]), expected)
    assert (fresh(matrices[3]) - expected).abs().max() > 0.1
    assert aggregators.warm_start(aggregators.make_aggregator("upgrad", 3)) is None


@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem")
def test_a_nash_mtl_step_starts_from_the_warm_start_in_the_weighting_state():
    """The joint stepper hands the aggregator the warm start held in the weighting's state (a
    checkpoint's, once resumed) and leaves the new one there; upgrad keeps no such state.
    Three tasks: with two, Nash-MTL's weights do not depend on the warm start."""
    cfg = tiny("weighting.kind=aggregator", "weighting.aggregator=nash_mtl")
    names = ["a", "b", "c"]
    weighting = LossWeighting(names, cfg.weighting)
    model = build_model(cfg, build_problem(cfg))
    trainer = SimpleNamespace(weighting=weighting, model=model, names=names)
    stepper = JointStepper(trainer)  # type: ignore[arg-type]
    stepper._rows = names  # as _combine sets them, for the recorded weights
    g = torch.Generator().manual_seed(5)
    matrices = [torch.randn(3, 20, generator=g) for _ in range(3)]
    uncut = aggregators.make_aggregator("nash_mtl", 3)
    for m in matrices[:2]:
        uncut(m)
    state = aggregators.warm_start(uncut)
    assert state is not None
    weighting.aggregator_state.copy_(state)
    expected = uncut(matrices[2])
    assert torch.equal(stepper._aggregate(matrices[2]), expected)
    after = aggregators.warm_start(uncut)
    assert after is not None and not torch.equal(after, state)  # this solve moved it
    assert torch.equal(weighting.aggregator_state, after)
    upgrad = LossWeighting(names, WeightingConfig(kind="aggregator", aggregator="upgrad"))
    assert "aggregator_state" not in upgrad.state_dict()


@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem")
def test_a_cut_nash_mtl_run_keeps_its_warm_start_in_the_checkpoint(tmp_path):
    extra = ["weighting.kind=aggregator", "weighting.aggregator=nash_mtl", "train.patience=0"]
    full = run(tiny(*extra, "train.epochs=4"), tmp_path / "full", progress=False)
    cut = _cut_after_two_of_four_epochs(tmp_path, extra)
    tensors = load_file(cut / "checkpoint" / "last" / "tensors.safetensors")
    saved = tensors["weighting.aggregator_state"]
    assert saved.dtype == torch.float64 and bool(torch.isfinite(saved).all())
    resumed = run(tiny(*extra, "train.epochs=4"), cut, progress=False, resume=True)
    assert resumed["tasks"] == full["tasks"]
    assert resumed["loss_weights"] == full["loss_weights"]


@pytest.mark.parametrize("weighting", ["upgrad", "rlw"])
def test_a_run_cut_after_its_last_checkpoint_reports_its_last_epochs_weights(tmp_path, weighting):
    # killed after checkpoint/last of the last epoch, before results.json: the resumed run
    # trains no epoch, and its aggregator's (or RLW's) weights are not in the state_dict
    cfg = tiny(*WEIGHTINGS[weighting], "train.patience=0")
    full = run(cfg, tmp_path / "full", progress=False)
    run(cfg, tmp_path / "cut", progress=False)
    (tmp_path / "cut" / "results.json").unlink()
    resumed = run(cfg, tmp_path / "cut", progress=False, resume=True)
    assert full["loss_weights"] and set(full["loss_weights"].values()) != {1.0}
    assert resumed["loss_weights"] == full["loss_weights"]
    assert resumed["tasks"] == full["tasks"]


def test_two_processes_make_the_same_joint_update_as_one(tmp_path):
    common = [str(DEMO), *JOINT, "train.optimizer=sgd", "train.lr=0.05", "train.patience=0"]
    common += ["weighting.kind=aggregator", "weighting.aggregator=upgrad", "--quiet"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["run", *common, "train.batch_size=16", "--out", str(one)]) == 0  # reference
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    torchrun += ["--nproc_per_node=2", "-m", "mtlshare", "run", *common]
    proc = subprocess.run(
        [*torchrun, "train.batch_size=8", "--out", str(two)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    a = json.loads((one / "results.json").read_text())["tasks"]
    b = json.loads((two / "results.json").read_text())["tasks"]
    for task in a:
        assert b[task]["test"] == pytest.approx(a[task]["test"], rel=1e-4), task


# -- bad settings --------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["weighting.kind=aggregator", "weighting.aggregator=upgrad"], "set train.schedule"),
        (
            ["train.schedule=joint", "weighting.kind=aggregator", "weighting.aggregator=nope"],
            "choose one of upgrad, mgda, pcgrad",
        ),
        (["train.schedule=joint", "weighting.kind=gradnorm", 'tasks=["t1"]'], "two or more"),
        (
            ["train.schedule=joint", "weighting.kind=gradnorm", "mechanism=sparse"],
            "SparseSharing takes one per task",
        ),
        (["train.schedule=jointly"], "train.schedule"),
        (["weighting.kind=dwa"], "set train.schedule = 'joint'"),
    ],
)
def test_bad_joint_settings_are_one_line_and_write_nothing(tmp_path, capsys, overrides, message):
    out = tmp_path / "out"
    assert main(["run", str(DEMO), *overrides, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0], err
    assert not out.exists()


def test_compare_refuses_a_row_its_model_cannot_take_before_writing(tmp_path, capsys):
    out = tmp_path / "cmp"
    variant = 'compare.variants={ "sparse+gradnorm" = { mechanism = "sparse", '
    variant += '"train.schedule" = "joint", "weighting.kind" = "gradnorm" } }'
    argv = ["compare", str(DEMO), variant, "--mechanisms", "single,sparse+gradnorm"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "compare row 'sparse+gradnorm': weighting.kind" in err[0], err
    assert not out.exists()


def test_a_missing_extra_names_its_install_command(monkeypatch):
    import importlib

    real = importlib.import_module

    def missing(name, *args):
        if name == "torchjd.aggregation":
            raise ModuleNotFoundError("No module named 'torchjd'", name="torchjd")
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", missing)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[joint\]"'):
        aggregators.make_aggregator("upgrad", 2)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[joint-solvers\]"'):
        aggregators.make_aggregator("nash_mtl", 2)


def test_rlw_draws_the_same_weights_in_every_process():
    """RLW's weights at a step depend on the seed and the step only, not on the process's
    string-hash seed: two processes (two ranks of a job, or a run and its rerun) agree."""
    code = (
        "from mtlshare.training.objective import LossWeighting, WeightingConfig\n"
        "w = LossWeighting(['a', 'b', 'c'], WeightingConfig(kind='rlw'), seed=7)\n"
        "w.begin_step(3)\n"
        "print(w.weight_vector().tolist())"
    )
    drawn = set()
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        drawn.add(proc.stdout)
    assert len(drawn) == 1, drawn


# -- clipping, non-finite losses and labelled tokens at joint steps -----------------------------
@pytest.mark.parametrize(("clip", "bound"), [(1e-3, 1e-3), (0.0, None)])
def test_grad_clip_limits_a_joint_update(clip, bound):
    sgd = ["train.optimizer=sgd", "train.lr=1.0", "train.momentum=0.0", "train.weight_decay=0"]
    cfg = tiny(*sgd, f"train.grad_clip={clip}")
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    trainer = Trainer(model, problem, cfg.train, LossWeighting(["t1", "t2"], cfg.weighting))
    before = [p.detach().clone() for p in model.parameters()]
    batches = {}
    for td in problem.tasks:
        x, y = td.train.take(torch.arange(16))
        batches[td.task.name] = (x, y * 10)
    assert trainer.joint is not None
    trainer.joint.step(trainer.make_optimizer(), batches)
    assert_the_step_is_bounded(model, before, bound)


def test_a_joint_step_with_a_loss_that_is_not_finite_is_one_line():
    cfg = tiny()
    problem = build_problem(cfg)
    trainer = Trainer(
        build_model(cfg, problem), problem, cfg.train, LossWeighting(["t1", "t2"], cfg.weighting)
    )
    batches = {td.task.name: td.train.take(torch.arange(4)) for td in problem.tasks}
    batches["t2"] = (batches["t2"][0], batches["t2"][1] * 1e30)  # its square overflows float32
    assert trainer.joint is not None
    with pytest.raises(MtlshareError) as err:
        trainer.joint.step(trainer.make_optimizer(), batches)
    assert str(err.value) == (
        "loss is inf at joint step 0 on task(s) ['t1', 't2']; lower train.lr or set train.grad_clip"
    )


def test_joint_steps_count_the_labelled_tokens_of_sequence_tasks():
    """Tokens per second are the labelled positions trained on: padding and unlabelled
    positions are not counted, each task's own."""
    from mtlshare.data.datasets import Problem, Split, TaskData
    from mtlshare.tasks.task import Task

    cfg = tiny("trunk.kind=lstm", "trunk.hidden=[4]")
    torch.manual_seed(0)
    x, lengths = torch.randn(4, 5, 3), torch.tensor([5, 3, 2, 1])
    labelled = torch.arange(5)[None, :] < lengths[:, None]
    y1 = torch.zeros(4, 5, dtype=torch.long).masked_fill(~labelled, -100)
    y2 = y1.clone()
    y2[0, :2] = -100  # two positions t2 has no label for
    tasks = []
    for name, y in (("t1", y1), ("t2", y2)):
        task = Task(name, "classification", 2, "accuracy")
        tasks.append(TaskData(task, *[Split(x.clone(), y, lengths)] * 3))
    problem = Problem(tasks, 3)
    trainer = Trainer(
        build_model(cfg, problem), problem, cfg.train, LossWeighting(["t1", "t2"], cfg.weighting)
    )
    assert trainer.joint is not None and cfg.train.batch_size >= 4
    trainer.joint.run(trainer.make_optimizer(), ["t1", "t2"], 3, epoch=1)
    assert trainer.tokens_seen == 3 * (11 + 9)  # every row each step: 11 and 9 labels
