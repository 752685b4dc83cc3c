"""Known answers of the mixture-of-experts mechanisms (``mmoe``, ``ple``):

- MMoE with one expert is hard sharing of the whole trunk: the same outputs for the same
  weights, and the same weights after the same training steps;
- a gate that puts all its weight on one expert trains only that expert;
- parameter counts (every expert once) against hand-computed values;
- the gate weights reported on dev: means over real positions only, against a fixed gate;
- PLE levels: the trunk split into slices, a shared gate between levels, stacked levels on
  every trunk kind; bad settings are one-line errors naming the key.
"""

from __future__ import annotations

import pytest
import torch
from torch import Tensor

from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import ConfigError
from mtlshare.models.trunks import Backbone, TrunkConfig, backbone_from_config
from mtlshare.sharing.base import SharingModel, run_layers
from mtlshare.sharing.gating import Gate, GateTally, level_bounds, real_positions
from mtlshare.sharing.gating.report import overlap, summarize, weight_on_shared
from mtlshare.sharing.hard import HardConfig, HardSharing
from mtlshare.sharing.mmoe import MMoEConfig, MMoESharing
from mtlshare.sharing.ple import PLEConfig, PLESharing
from mtlshare.tasks.task import Task
from mtlshare.training.checkpoint import load_checkpoint, save_checkpoint
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig
from mtlshare.training.settings import TrainConfig

INPUT_DIM = 5
TRUNKS = ("mlp", "conv", "lstm", "gru")
T1 = Task("t1", "regression", 1, "mse")
T2 = Task("t2", "classification", 3, "accuracy")
T3 = Task("t3", "regression", 1, "mae")
FAR = -1e4  # a logit whose softmax weight is exactly 0 in float32 (exp underflows)


def backbone(kind: str = "mlp", hidden: tuple[int, ...] = (8, 8)) -> Backbone:
    return backbone_from_config(TrunkConfig(kind=kind, hidden=list(hidden)), INPUT_DIM)


def inputs(kind: str, n: int = 6, seed: int = 1) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    if kind == "mlp":
        return torch.randn(n, INPUT_DIM, generator=g)
    return torch.randn(n, 4, INPUT_DIM, generator=g)


def targets(task: Task, kind: str, n: int = 6, seed: int = 2) -> Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n,) if kind == "mlp" else (n, 4)
    if task.kind == "regression":
        return torch.randn(*shape, generator=g)
    return torch.randint(0, task.out_dim, shape, generator=g)


def trainer(model: SharingModel, tasks: list[Task], kind: str) -> Trainer:
    x, data = inputs(kind), []
    for t in tasks:
        split = Split(x, targets(t, kind))
        data.append(TaskData(t, split, split, split))
    cfg = TrainConfig(optimizer="sgd", lr=0.05, momentum=0.9)
    weighting = LossWeighting([t.name for t in tasks], WeightingConfig())
    return Trainer(model, Problem(data, INPUT_DIM), cfg, weighting, progress=False)


def eval_out(model: SharingModel, x: Tensor, task: str) -> Tensor:
    model.eval()
    with torch.no_grad():
        return model(x, task)


def state(model: SharingModel, prefix: str = "") -> dict[str, Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items() if k.startswith(prefix)}


def hard_as_mmoe(hard: HardSharing) -> dict[str, Tensor]:
    """Hard sharing's trunk and heads under MMoE's names (expert 0)."""
    out = {}
    for key, value in hard.state_dict().items():
        if key.startswith("shared."):
            out["experts.0." + key.removeprefix("shared.")] = value.clone()
        elif key.startswith(("heads.", "stem.")):
            out[key] = value.clone()
    return out


# -- MMoE with one expert = hard sharing ---------------------------------------------------------


@pytest.mark.parametrize("kind", TRUNKS)
def test_mmoe_with_one_expert_is_hard_sharing(kind):
    tasks = [T1, T2, T3]
    torch.manual_seed(0)
    hard = HardSharing(backbone(kind), tasks, HardConfig())
    torch.manual_seed(1)
    mmoe = MMoESharing(backbone(kind), tasks, MMoEConfig(experts=1))
    loaded = mmoe.load_state_dict(hard_as_mmoe(hard), strict=False)
    assert loaded.unexpected_keys == []
    assert all(k.startswith("gates.") for k in loaded.missing_keys)
    x = inputs(kind)
    if kind != "mlp":  # sentences of different lengths, padded with all-zero steps
        x[0, 2:] = 0.0
        x[3, 1:] = 0.0
    for t in tasks:
        assert torch.equal(eval_out(mmoe, x, t.name), eval_out(hard, x, t.name)), t.name

    # and the same steps give the same weights: a softmax over one expert passes no gradient
    gates, start = state(mmoe, "gates."), hard_as_mmoe(hard)
    joint, alone = trainer(mmoe, tasks, kind), trainer(hard, tasks, kind)
    opt_mmoe, opt_hard = joint.make_optimizer(), alone.make_optimizer()
    for step, task in enumerate([T1, T2, T3, T1]):
        xb, yb = inputs(kind, seed=10 + step), targets(task, kind, seed=20 + step)
        joint.step(opt_mmoe, task.name, xb, yb)
        alone.step(opt_hard, task.name, xb, yb)
    expected = hard_as_mmoe(hard)
    got = {k: v for k, v in mmoe.state_dict().items() if not k.startswith("gates.")}
    assert got.keys() == expected.keys()
    assert any(not torch.equal(got[k], v) for k, v in start.items()), "nothing trained"
    for key, value in expected.items():
        assert torch.equal(got[key], value), key
    for key, value in gates.items():
        assert torch.equal(mmoe.state_dict()[key], value), key


# -- a gate with all weight on one expert trains only that expert --------------------------------


def pin_gate(gate: torch.nn.Module, expert: int) -> None:
    """Every weight of ``gate`` on ``expert``: zero weights, logits 0 there and FAR elsewhere."""
    assert isinstance(gate, Gate)
    with torch.no_grad():
        gate.linear.weight.zero_()
        gate.linear.bias.fill_(FAR)
        gate.linear.bias[expert] = 0.0


@pytest.mark.parametrize("kind", TRUNKS)
def test_a_gate_on_one_expert_trains_only_that_expert(kind):
    torch.manual_seed(0)
    model = MMoESharing(backbone(kind), [T1, T2], MMoEConfig(experts=3))
    pin_gate(model.gates["t1"], 1)
    x = inputs(kind)
    with torch.no_grad():
        expert = model.experts[1]
        h = x
        for layer in expert:
            h = layer(h)
    torch.testing.assert_close(eval_out(model, x, "t1"), model.heads["t1"](h).detach())
    before = {i: state(model, f"experts.{i}.") for i in range(3)}
    run = trainer(model, [T1], kind)
    optimizer = run.make_optimizer()
    for step in range(3):
        run.step(optimizer, "t1", inputs(kind, seed=30 + step), targets(T1, kind, seed=40 + step))
    after = {i: state(model, f"experts.{i}.") for i in range(3)}
    assert any(not torch.equal(after[1][k], v) for k, v in before[1].items()), "expert 1 still"
    for i in (0, 2):
        for k, v in before[i].items():
            assert torch.equal(after[i][k], v), k


@pytest.mark.parametrize("expert", [0, 2])
def test_gate_weight_e_is_expert_es(expert):
    """The gate's e-th weight goes to ``experts[e]`` (the one the report calls e<e+1>)."""
    torch.manual_seed(0)
    model = MMoESharing(backbone(), [T1, T2], MMoEConfig(experts=3))
    pin_gate(model.gates["t1"], expert)
    x = inputs("mlp")
    with torch.no_grad():
        expected = model.heads["t1"](run_layers(model.experts[expert], x))
    torch.testing.assert_close(eval_out(model, x, "t1"), expected)


def test_ple_task_experts_read_their_tasks_stream():
    """Above the first level, a task's experts read its own stream (its gate's mixture of the
    level below), not the shared one."""
    torch.manual_seed(0)
    model = PLESharing(backbone(), [T1, T2], PLEConfig(levels=2))
    for level in model.levels:
        pin_gate(level.gates["t1"], 1)  # [shared-1, t1-1]: all on t1's own expert
    x = inputs("mlp")
    with torch.no_grad():
        h = run_layers(model.levels[0].own["t1"][0], x)
        expected = model.heads["t1"](run_layers(model.levels[1].own["t1"][0], h))
    torch.testing.assert_close(eval_out(model, x, "t1"), expected)


def test_a_gate_over_every_expert_trains_them_all():
    """Control for the test above: an open gate moves every expert."""
    torch.manual_seed(0)
    model = MMoESharing(backbone(), [T1, T2], MMoEConfig(experts=3))
    before = state(model, "experts.")
    run = trainer(model, [T1], "mlp")
    run.step(run.make_optimizer(), "t1", inputs("mlp"), targets(T1, "mlp"))
    after = state(model, "experts.")
    for i in range(3):
        assert not torch.equal(
            after[f"experts.{i}.0.linear.weight"], before[f"experts.{i}.0.linear.weight"]
        )


def test_a_ple_gate_on_its_own_expert_leaves_the_shared_expert_alone():
    torch.manual_seed(0)
    model = PLESharing(backbone(), [T1, T2], PLEConfig(shared_experts=1, task_experts=1))
    pin_gate(model.levels[0].gates["t1"], 1)  # [shared-1, t1-1]: all on t1's own expert
    shared, own = state(model, "levels.0.shared."), state(model, "levels.0.own.t1.")
    run = trainer(model, [T1], "mlp")
    optimizer = run.make_optimizer()
    for step in range(3):
        run.step(optimizer, "t1", inputs("mlp", seed=step), targets(T1, "mlp", seed=9 + step))
    now = state(model, "levels.0.shared.")
    for k, v in shared.items():
        assert torch.equal(now[k], v), k
    now = state(model, "levels.0.own.t1.")
    assert any(not torch.equal(now[k], v) for k, v in own.items())


# -- parameter counts: every expert once ---------------------------------------------------------


def test_mmoe_counts_every_expert_once():
    torch.manual_seed(0)
    model = MMoESharing(backbone(), [T1, T2], MMoEConfig(experts=3))
    expert = (5 * 8 + 8) + (8 * 8 + 8)  # 120: the MLP trunk 5 -> 8 -> 8
    gate = 5 * 3 + 3  # 18 per task
    heads = (8 + 1) + (8 * 3 + 3)  # 9 + 27
    assert model.param_counts() == {
        "total": 3 * expert + 2 * gate + heads,
        "shared": 3 * expert,
        "task_specific": 2 * gate + heads,
        "counted": 3 * expert + 2 * gate,
    }


def test_ple_counts_every_expert_once():
    torch.manual_seed(0)
    cfg = PLEConfig(shared_experts=2, task_experts=1, levels=2)
    model = PLESharing(backbone(), [T1, T2], cfg)
    low, high = 5 * 8 + 8, 8 * 8 + 8  # a level-1 expert (layer 1), a level-2 one (layer 2)
    experts = 4 * low + 4 * high  # 2 shared + 1 per task at each level
    task_gates = 2 * ((5 * 3 + 3) + (8 * 3 + 3))  # over 2 shared + 1 own, each level
    shared_gate = (5 * 2 + 2) + 2 * (5 * 1 + 1)  # between the levels: shared + each task's
    heads = (8 + 1) + (8 * 3 + 3)
    counts = model.param_counts()
    assert counts == {
        "total": experts + task_gates + shared_gate + heads,
        "shared": 2 * low + 2 * high + shared_gate,
        "task_specific": 2 * low + 2 * high + task_gates + heads,
        "counted": experts + task_gates + shared_gate,
    }


# -- the gate weights on dev -------------------------------------------------------------------


def test_reported_gate_weights_are_means_over_real_positions():
    torch.manual_seed(0)
    model = MMoESharing(backbone("lstm"), [T1, T2], MMoEConfig(experts=2))
    with torch.no_grad():  # t1's gate: softmax(0, log 3) = (1/4, 3/4) wherever the input is 0,
        for gate in model.gates.values():  # and elsewhere depending on the input
            gate.linear.bias.copy_(torch.tensor([0.0, torch.log(torch.tensor(3.0))]))
    x = inputs("lstm", n=3)
    x[0, 2:] = 0.0  # 2 real steps, then padding
    x[1, 1:] = 0.0  # 1 real step
    model.eval()
    with torch.no_grad():
        weights = model.gates["t1"](x)  # (3, 4, 2)
        real = x.ne(0).any(-1)
        expected = weights[real].double().mean(0)
        model.analyse({"t1": [x[:2], x[2:]], "t2": iter([])})
    gates = model.report()["gates"]
    assert gates["positions"] == {"t1": 2 + 1 + 4, "t2": 0}
    level = gates["levels"][0]
    assert level["experts"] == ["e1", "e2"]
    assert level["tasks"]["t2"] is None  # no dev input seen
    torch.testing.assert_close(torch.tensor(level["tasks"]["t1"], dtype=torch.double), expected)
    # the padded positions would have pulled the mean towards (1/4, 3/4)
    padded = weights[~real].double().mean(0)
    torch.testing.assert_close(padded, torch.tensor([0.25, 0.75], dtype=torch.double))
    assert not torch.allclose(weights.reshape(-1, 2).double().mean(0), expected)


def test_ple_reports_each_gate_over_its_own_experts():
    torch.manual_seed(0)
    model = PLESharing(backbone(), [T1, T2], PLEConfig(levels=2))
    for level in model.levels:
        pin_gate(level.gates["t1"], 0)  # every weight of t1 on the shared expert
        pin_gate(level.gates["t2"], 1)  # every weight of t2 on its own
    with torch.no_grad():
        gate = model.levels[0].shared_gate
        gate.base.weight.zero_(), gate.base.bias.fill_(FAR)
        for part in gate.tasks.values():
            part.linear.weight.zero_(), part.linear.bias.zero_()  # t1-1 and t2-1 half each
    model.eval()
    with torch.no_grad():
        model.analyse({"t1": [inputs("mlp")], "t2": [inputs("mlp", seed=3)]})
    levels = model.report()["gates"]["levels"]
    assert levels[0]["experts"] == ["shared-1", "t1-1", "t2-1"]
    assert levels[0]["tasks"] == {"t1": [1.0, 0.0, None], "t2": [0.0, None, 1.0]}
    assert levels[0]["shared"] == [0.0, 0.5, 0.5]
    assert "shared" not in levels[1]  # no shared gate after the last level
    assert overlap(levels[1]["tasks"]["t1"], levels[1]["tasks"]["t2"]) == 0.0
    assert weight_on_shared(levels[0], "t1") == 1.0 and weight_on_shared(levels[0], "t2") == 0.0


def test_real_positions_are_steps_with_any_nonzero_feature():
    h = torch.ones(2, 3, 4)
    h[0, 1] = torch.tensor([0.0, 1.0, 0.0, 0.0])  # real, with zero features
    h[1, 2] = 0.0  # padding
    assert real_positions(h).tolist() == [[True, True, True], [True, True, False]]
    assert real_positions(torch.zeros(2, 4)) is None  # (batch, features): every row counts


def test_gate_report_maths():
    assert overlap([0.5, 0.5, None], [0.2, None, 0.8]) == pytest.approx(0.2)
    assert overlap([0.3, 0.7], [0.3, 0.7]) == pytest.approx(1.0)
    level = {"experts": ["s", "a", "b"], "tasks": {"a": [0.25, 0.75, None], "b": [0.5, None, 0.5]}}
    assert weight_on_shared(level, "a") == 0.25 and weight_on_shared(level, "b") == 0.5
    run = {"levels": [level]}
    other = {"levels": [{**level, "tasks": {"a": [1.0, 0.0, None], "b": [1.0, None, 0.0]}}]}
    summary = summarize([run, other], [0, 1])
    pair = summary["levels"][0]["pairs"][0]
    assert pair["tasks"] == ["a", "b"] and pair["seeds"] == [0.25, 1.0]
    assert pair["overlap"] == pytest.approx(0.625)
    assert summary["levels"][0]["on_shared"]["a"] == {"weight": 0.625, "seeds": [0.25, 1.0]}
    tally = GateTally()
    tally.add(0, "a", torch.tensor([[0.5, 0.5], [1.0, 0.0]]), None)
    assert tally.mean(0, "a") == [0.75, 0.25] and tally.mean(0, "b") is None


# -- PLE levels ---------------------------------------------------------------------------------


def test_level_bounds_split_the_trunk():
    assert level_bounds(2, 1, "k") == [(0, 2)]
    assert level_bounds(2, 2, "k") == [(0, 1), (1, 2)]
    assert level_bounds(3, 2, "k") == [(0, 2), (2, 3)]
    assert level_bounds(5, 3, "k") == [(0, 2), (2, 4), (4, 5)]


@pytest.mark.parametrize("kind", TRUNKS)
@pytest.mark.parametrize("levels", [1, 2, 3])
def test_stacked_ple_on_every_trunk(kind, levels, tmp_path):
    tasks = [T1, T2, T3]
    cfg = PLEConfig(shared_experts=2, task_experts=1, levels=levels)
    torch.manual_seed(0)
    model = PLESharing(backbone(kind, (6, 7, 8)), tasks, cfg)
    assert len(model.levels) == levels
    assert sum(lv.shared_gate is not None for lv in model.levels) == levels - 1
    x = inputs(kind)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    expected = {t.name: eval_out(model, x, t.name) for t in tasks}
    for t in tasks:
        assert expected[t.name].shape[-1] == t.out_dim and torch.isfinite(expected[t.name]).all()
    save_checkpoint(tmp_path / "ckpt", model.state_dict(), {})
    torch.manual_seed(5)
    fresh = PLESharing(backbone(kind, (6, 7, 8)), tasks, cfg)
    fresh.load_state_dict(load_checkpoint(tmp_path / "ckpt")[0], strict=True)
    for t in tasks:
        assert torch.equal(eval_out(fresh, x, t.name), expected[t.name])
    # the shared stream reads every task's experts: t2's level-1 expert changes t1's output
    if levels > 1:
        with torch.no_grad():
            for p in model.levels[0].own["t2"].parameters():
                p.mul_(2.0)
        assert not torch.equal(eval_out(model, x, "t1"), expected["t1"])


def test_a_task_that_does_not_feed_the_shared_gate_does_not_change_the_others():
    torch.manual_seed(0)
    model = PLESharing(backbone(), [T1, T2, T3], PLEConfig(levels=2))
    x = inputs("mlp")
    model.freeze_for_new_tasks(["t1", "t2"], ["t3"])
    assert model.levels[0].shared_gate.feeding() == ["t1", "t2"]
    before = {t: eval_out(model, x, t) for t in ("t1", "t2")}
    with torch.no_grad():
        for p in model.levels[0].own["t3"].parameters():
            p.add_(1.0)
    for t in ("t1", "t2"):
        assert torch.equal(eval_out(model, x, t), before[t])
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(".t3." in f".{n}" for n in trainable)
    assert not any("shared_gate" in n for n in trainable)


# -- joint steps: every task from one pass over the experts -------------------------------------


@pytest.mark.parametrize("kind", TRUNKS)
@pytest.mark.parametrize(
    "build",
    [
        lambda b, tasks: MMoESharing(b, tasks, MMoEConfig(experts=3)),
        lambda b, tasks: PLESharing(b, tasks, PLEConfig(shared_experts=2, levels=1)),
        lambda b, tasks: PLESharing(b, tasks, PLEConfig(shared_experts=2, levels=2)),
    ],
    ids=["mmoe", "cgc", "ple-2"],
)
def test_forward_tasks_is_each_tasks_forward_with_the_experts_run_once(build, kind):
    tasks = [T1, T2, T3]
    torch.manual_seed(0)
    model = build(backbone(kind, (6, 7)), tasks)
    model.eval()
    calls: list[int] = []
    for layer in model.modules():  # every layer with weights (experts, gates, heads) counts
        if not list(layer.children()) and list(layer.parameters(recurse=False)):
            layer.register_forward_hook(lambda m, i, o: calls.append(id(m)))
    x = inputs(kind)
    with torch.no_grad():
        alone = {t.name: model(x, t.name) for t in tasks}
        calls.clear()
        joint = model.forward_tasks(x, ["t3", "t1", "t2"])
    assert list(joint) == ["t3", "t1", "t2"]
    for t in tasks:
        assert torch.equal(joint[t.name], alone[t.name]), t.name
    assert calls and len(calls) == len(set(calls))  # no layer ran twice for the three tasks


# -- bad settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "key"),
    [
        (lambda: MMoEConfig(experts=0).validate(), "mmoe.experts"),
        (lambda: PLEConfig(shared_experts=0).validate(), "ple.shared_experts"),
        (lambda: PLEConfig(task_experts=-1).validate(), "ple.task_experts"),
        (lambda: PLEConfig(levels=0).validate(), "ple.levels"),
        (lambda: PLESharing(backbone(), [T1], PLEConfig(levels=3)), "ple.levels"),
        (lambda: MMoESharing(backbone(), [T1], MMoEConfig(experts=0)), "mmoe.experts"),
        (lambda: Gate(4, 0, "ple.shared_experts + ple.task_experts"), "ple.shared_experts"),
    ],
    ids=[
        "mmoe-experts",
        "ple-shared",
        "ple-task",
        "ple-levels",
        "levels-over-depth",
        "mmoe-build",
        "empty-gate",
    ],
)
def test_bad_settings_name_the_key(build, key):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as err:
        build()
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("kind", TRUNKS)
def test_stacked_ple_keeps_the_contract(kind):
    """What the contract tests check on the default (one level), on two levels and 3 tasks:
    disjoint and complete parameter groups, and a step on a task moves its own parameters."""
    torch.manual_seed(0)
    model = PLESharing(backbone(kind), [T1, T2, T3], PLEConfig(levels=2, shared_experts=2))
    shared = {id(p) for p in model.shared_parameters()}
    own = {t: {id(p) for p in model.task_parameters(t)} for t in model.task_names}
    assert all(not (own[t] & shared) for t in own)
    assert not (own["t1"] & own["t2"]) and not (own["t2"] & own["t3"])
    assert shared.union(*own.values()) == {id(p) for p in model.parameters()}
    run = trainer(model, [T2], kind)
    before = state(model)
    run.step(run.make_optimizer(), "t2", inputs(kind), targets(T2, kind))
    after = state(model)
    names = dict(model.named_parameters())
    moved = {k for k in before if k in names and not torch.equal(before[k], after[k])}
    assert any(".t2." in f".{k}" for k in moved)
    # t2's step reaches the shared experts and, through the shared gate, t1's and t3's
    # level-1 experts, but never their gates, level-2 experts or heads
    assert any(k.startswith("levels.0.shared.") for k in moved)
    for k in moved:
        assert not k.startswith(("heads.t1", "heads.t3", "levels.1.own.t1", "levels.1.own.t3"))
        assert ".gates.t1." not in k and ".gates.t3." not in k


def test_a_task_without_a_gate_in_some_seed_is_left_out_of_the_summary():
    level = {"experts": ["s", "a"], "tasks": {"a": [0.5, 0.5], "b": [1.0, None], "c": [0.2, 0.8]}}
    blind = {"levels": [{**level, "tasks": {**level["tasks"], "b": None}}]}
    summary = summarize([{"levels": [level]}, blind], [0, 1])["levels"][0]
    assert [p["tasks"] for p in summary["pairs"]] == [["a", "c"]]
    assert list(summary["on_shared"]) == ["a", "c"]


def test_a_gate_without_dev_positions_is_a_blank_row_that_says_why(tmp_path, monkeypatch):
    """gates.png: a task whose gate saw no dev position has no weights; its row is blank and
    its name says so, where a gate mixing no expert at all could not be told from it."""
    import math

    from mtlshare.sharing.gating import plots

    drawn = []

    def keep(fig, path):
        drawn.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    level = {"experts": ["e1", "e2"], "tasks": {"t1": [0.25, 0.75], "t2": None}}
    plots.plot_run_gates(
        {"split": "dev", "positions": {"t1": 4, "t2": 0}, "levels": [level]}, tmp_path / "gates.png"
    )
    ax = drawn[0].axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["t1", "t2 (no dev positions)"]
    image = ax.get_images()[0].get_array()
    assert list(image[0]) == [0.25, 0.75]
    assert all(math.isnan(w) for w in image.filled(math.nan)[1])
    assert sorted(t.get_text() for t in ax.texts) == ["0.25", "0.75"]


def test_a_gate_grid_leaves_an_empty_cell_blank_and_a_figure_without_title_untitled(
    tmp_path, monkeypatch
):
    from mtlshare.sharing.gating import plots

    drawn = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path: drawn.append(fig) or path)
    level = {"experts": ["e1", "e2"], "tasks": {"t1": [0.25, 0.75]}}
    plots.plot_gates([[("one", level), ("two", level)], [("three", level)]], tmp_path / "g.png")
    fig = drawn[0]
    panels = [ax for ax in fig.axes if ax.get_images()]
    assert [ax.get_title() for ax in panels] == ["one", "two", "three"]
    blank = [ax for ax in fig.axes if not ax.axison]
    assert len(blank) == 1 and not blank[0].get_images()  # row 2, column 2: nothing drawn
    assert fig._suptitle is None


def test_a_model_not_analysed_on_dev_reports_and_draws_no_gates(tmp_path):
    torch.manual_seed(0)
    model = MMoESharing(backbone(), [T1, T2], MMoEConfig(experts=2))
    assert model.report() == {}
    assert model.write_artifacts(tmp_path) == [] and list(tmp_path.iterdir()) == []
