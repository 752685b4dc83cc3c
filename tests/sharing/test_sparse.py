"""Sparse sharing: masked steps, equivalences with hard and hierarchical sharing, the mask
search (density, selection, resumption) and mask storage."""

from __future__ import annotations

import itertools
import json
import math
import shutil
import warnings
from pathlib import Path

import pytest
import torch

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import CheckpointError, ConfigError
from mtlshare.models.trunks import Backbone, TrunkConfig, backbone_from_config
from mtlshare.sharing.hard import HardConfig, HardSharing
from mtlshare.sharing.hierarchical import HierarchicalConfig, HierarchicalSharing
from mtlshare.sharing.sparse import (
    SparseConfig,
    SparseSharing,
    describe_kept,
    describe_masks,
    masks_from_state,
)
from mtlshare.sharing.sparse import search as imp
from mtlshare.sharing.sparse.masks import density, expected_density, pack_mask
from mtlshare.sharing.sparse.report import mask_summary
from mtlshare.tasks.task import Task
from mtlshare.training.checkpoint import load_checkpoint, save_checkpoint
from mtlshare.training.folder import RunFolder
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig
from mtlshare.training.settings import TrainConfig

TASKS = [Task("a", "regression"), Task("b", "classification", 3, "accuracy")]


def problem(kind: str = "mlp", n: int = 48, seed: int = 0) -> Problem:
    g = torch.Generator().manual_seed(seed)
    shape = (n, 5) if kind == "mlp" else (n, 4, 5)

    def split(m: int) -> tuple[Split, Split]:
        x = torch.randn(m, *shape[1:], generator=g)
        reg = Split(x, x.sum(-1))
        cls = Split(x, (x[..., 0] > 0).long() + (x[..., 1] > 0).long())
        return reg, cls

    (ra, ca), (rd, cd), (rt, ct) = split(n), split(16), split(16)
    return Problem([TaskData(TASKS[0], ra, rd, rt), TaskData(TASKS[1], ca, cd, ct)], 5)


def backbone(kind: str = "mlp"):
    return backbone_from_config(TrunkConfig(kind=kind, hidden=[8, 6]), 5)


def random_masks(model: SparseSharing, keep: float = 0.5, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return {
        t: {n: torch.rand(p.shape, generator=g) < keep for n, p in model._prunable().items()}
        for t in model.task_names
    }


def trainer(model, prob, tmp=None, opt="sgd", epochs=2, **kw):
    cfg = TrainConfig(
        epochs=epochs,
        batch_size=8,
        optimizer=opt,
        lr=0.05,
        momentum=0.9,
        weight_decay=0.01,
        patience=0,
        **kw,
    )
    w = LossWeighting(model.task_names, WeightingConfig())
    folder = RunFolder(tmp) if tmp is not None else None
    return Trainer(model, prob, cfg, w, seed=0, folder=folder, progress=False)


@pytest.mark.parametrize("kind", ["mlp", "conv", "lstm", "gru"])
@pytest.mark.parametrize("opt", ["sgd", "adam", "adamw"])
def test_a_step_changes_entries_inside_the_mask_only(kind, opt):
    torch.manual_seed(0)
    model = SparseSharing(backbone(kind), TASKS, SparseConfig())
    masks = random_masks(model)
    model.set_masks(masks)
    prob = problem(kind)
    t = trainer(model, prob, opt=opt)
    optimizer = t.make_optimizer()
    # a step on b first fills momentum / Adam state everywhere b's mask is
    for task in ["b", "a", "b", "a"]:
        before = {n: p.detach().clone() for n, p in model._prunable().items()}
        x, y = prob.tasks[0 if task == "a" else 1].train.x[:8], None
        y = prob.tasks[0 if task == "a" else 1].train.y[:8]
        t.step(optimizer, task, x, y)
        for n, p in model._prunable().items():
            inside = masks[task][n]
            assert torch.equal(p.detach()[~inside], before[n][~inside]), (kind, task, n)
            assert not torch.equal(p.detach()[inside], before[n][inside]), (kind, task, n)


def test_masked_lstm_weights_move_and_pruned_ones_do_not():
    """The parametrize trap (PyTorch issue 65688) must not apply: LSTM weights really train."""
    torch.manual_seed(0)
    model = SparseSharing(backbone("lstm"), TASKS, SparseConfig())
    masks = random_masks(model, keep=0.3)
    model.set_masks(masks)
    lstm_names = [n for n in model.prunable_names if "rnn.weight" in n]
    assert {"0.rnn.weight_ih_l0", "0.rnn.weight_hh_l0", "0.rnn.weight_ih_l0_reverse"} <= set(
        lstm_names
    )
    start = {n: p.detach().clone() for n, p in model._prunable().items()}
    prob = problem("lstm")
    t = trainer(model, prob)
    opt = t.make_optimizer()
    for _ in range(3):
        t.step(opt, "a", prob.tasks[0].train.x[:8], prob.tasks[0].train.y[:8])
    for n in lstm_names:
        p = dict(model.layers.named_parameters())[n].detach()
        moved = p != start[n]
        assert moved[masks["a"][n]].float().mean() > 0.9, n
        assert not moved[~masks["a"][n]].any(), n


@pytest.mark.parametrize("kind", ["mlp", "lstm"])
def test_all_ones_masks_reproduce_hard_sharing_bit_for_bit(kind):
    prob = problem(kind)
    torch.manual_seed(3)
    hard = HardSharing(backbone(kind), TASKS, HardConfig())
    torch.manual_seed(3)
    sparse = SparseSharing(backbone(kind), TASKS, SparseConfig())
    sparse.set_masks(
        {
            t: {n: torch.ones_like(p, dtype=torch.bool) for n, p in sparse._prunable().items()}
            for t in sparse.task_names
        }
    )
    trainer(hard, prob, epochs=3).fit()
    trainer(sparse, prob, epochs=3).fit()
    hp = [p for _, p in sorted(hard.named_parameters())]
    sp = dict(sparse.named_parameters())
    mapping = {n.replace("shared.", "layers."): p for n, p in hard.named_parameters()}
    assert len(hp) == len(sp)
    for n, p in sp.items():
        assert torch.equal(p, mapping[n]), n


def test_per_task_depths_reproduce_hierarchical_sharing_bit_for_bit():
    prob = problem("lstm")
    depths = {"a": 1, "b": 2}
    torch.manual_seed(5)
    hier = HierarchicalSharing(backbone("lstm"), TASKS, HierarchicalConfig(depths=depths))
    torch.manual_seed(5)
    sparse = SparseSharing(backbone("lstm"), TASKS, SparseConfig(depths=depths))
    sparse.set_masks(
        {
            t: {n: torch.ones_like(p, dtype=torch.bool) for n, p in sparse._prunable().items()}
            for t in sparse.task_names
        }
    )
    trainer(hier, prob, epochs=3).fit()
    trainer(sparse, prob, epochs=3).fit()
    hp = dict(hier.named_parameters())
    for n, p in sparse.named_parameters():
        assert torch.equal(p, hp[n]), n


def search_model(alpha=0.3, target=0.2, **kw):
    torch.manual_seed(0)
    cfg = SparseConfig(alpha=alpha, target_density=target, round_steps=4, warmup_steps=6, **kw)
    return SparseSharing(backbone("mlp"), TASKS, cfg)


def test_search_density_follows_one_minus_alpha_to_the_r():
    model = search_model()
    trainer(model, problem()).fit()
    total = sum(p.numel() for p in model._prunable().values())
    rounds = imp.rounds_needed(0.3, 0.2)
    for task in model.task_names:
        cands = [c for c in model.candidates if c.task == task]
        assert len(cands) == rounds + 1
        assert cands[-1].density <= 0.2 < cands[-2].density
        for c in cands:
            assert abs(c.density - expected_density(0.3, c.round)) <= 0.5 * c.round / total + 1e-12
        # pruning only ever removes entries
        for prev, nxt in itertools.pairwise(cands):
            for n in prev.mask:
                assert not (nxt.mask[n] & ~prev.mask[n]).any()


def test_with_depths_a_task_s_search_prunes_only_the_layers_it_reads():
    """sparse.depths: task a reads layer 0 only. Its search starts from, prunes among and
    measures density over layer 0's weights; its masks never keep a deeper weight, so they add
    nothing to the overlap or the counted parameters there."""
    model = search_model(depths={"a": 1, "b": 2})
    trainer(model, problem()).fit()
    names = list(model._prunable())
    shallow = [n for n in names if n.startswith("0.")]
    deep = [n for n in names if not n.startswith("0.")]
    assert shallow and deep
    reads = sum(model._prunable()[n].numel() for n in shallow)
    a_rounds = [c for c in model.candidates if c.task == "a"]
    assert a_rounds[0].density == 1.0  # all of layer 0, nothing deeper
    for prev, nxt in itertools.pairwise(a_rounds):
        kept = sum(int(prev.mask[n].sum()) for n in shallow)
        assert sum(int(nxt.mask[n].sum()) for n in shallow) == kept - round(0.3 * kept)
    for c in a_rounds:
        assert not any(c.mask[n].any() for n in deep)
        assert c.density == sum(int(c.mask[n].sum()) for n in shallow) / reads
    assert a_rounds[-1].density <= 0.2 < a_rounds[-2].density
    # b reads both layers: its search is the usual one over all of them
    b_rounds = [c for c in model.candidates if c.task == "b"]
    total = sum(p.numel() for p in model._prunable().values())
    assert b_rounds[0].density == 1.0 and len(b_rounds) == imp.rounds_needed(0.3, 0.2) + 1
    assert b_rounds[1].density == (total - round(0.3 * total)) / total
    chosen_a = model.masks["a"]
    assert not any(chosen_a[n].any() for n in deep)
    kept_a = sum(int(chosen_a[n].sum()) for n in shallow)
    assert model.report()["sparse"]["density"]["a"] == kept_a / reads
    # `mtlshare masks` reads the depths from the run's config: the same density for a
    text = describe_masks(model.masks, {"a": 1})
    line = next(x for x in text.splitlines() if x.strip().startswith("a "))
    assert line.split()[-1] == f"{kept_a / reads:.4f}"
    assert f"{kept_a / total:.4f}" != f"{kept_a / reads:.4f}"  # the test tells them apart


def test_the_masks_report_gives_every_task_its_own_densities_and_the_overlap_of_all():
    """Two tasks of different densities, per task and per tensor: each column is its task's,
    and the overlap ratio is of both masks (1 / 3), not of one; a finished run's results.json
    block (the masks' summary through JSON) gives the same report."""
    yes, no = True, False
    masks = {
        "a": {"w": torch.tensor([yes, yes, no, no]), "v": torch.tensor([yes, no])},
        "b": {"w": torch.tensor([yes, no, no, no]), "v": torch.tensor([no, no])},
    }
    text = describe_masks(masks)
    assert text.splitlines() == [
        "density per task:",
        "  a            0.5000",
        "  b            0.1667",
        "density per tensor:",
        "  " + " " * 28 + "           a           b",
        "  w                                 0.5000      0.2500",
        "  v                                 0.5000      0.0000",
        "overlap ratio of all masks (Eq. 4): 0.3333",
        "pairwise overlap:",
        "  " + " " * 12 + "           a           b",
        "  a                 1.0000      0.3333",
        "  b                 0.3333      1.0000",
    ]
    block = json.loads(json.dumps(mask_summary(masks, {"a": None, "b": None})))
    assert describe_kept({"sparse": block}, "run/results.json") == text


@pytest.mark.parametrize(
    ("sparse", "why"),
    [
        ([1, 2], "KeyError: 'sparse'"),  # no block of mask_summary's
        (
            {"density": {}, "layer_density": {}, "overlap_ratio": 1.0, "pairwise_overlap": {}},
            "KeyError: 'sparse'",
        ),  # no task
        ("density", "KeyError: 'sparse'"),
        ({"density": {"a": "high"}}, "ValueError: Unknown format code"),
        ({"density": {"a": 0.5}, "layer_density": {"a": 0.5}}, "TypeError"),
    ],
    ids=["a list", "no task", "a string", "a density that is text", "a layer density"],
)
def test_a_kept_block_that_is_no_mask_summary_is_one_config_error(sparse, why):
    with pytest.raises(ConfigError, match=rf"^run/results\.json: no densities .*\({why}"):
        describe_kept({"sparse": sparse}, "run/results.json")


def test_selection_rules():
    def cand(r, d, s):
        return imp.Candidate("a", r, d, s, {})

    cands = [cand(0, 1.0, 0.5), cand(1, 0.7, 0.9), cand(2, 0.49, 0.9), cand(3, 0.34, 0.1)]
    assert imp.select(cands, "best").round == 2  # tie on score: the lower density wins
    assert imp.select(cands, "round", 1).round == 1
    assert imp.select(cands, "round", 99).round == 3
    assert imp.select(cands, "density", 0.5).round == 2
    assert imp.select(cands, "density", 0.01).round == 3
    with pytest.raises(ValueError, match=r"^no candidates to select from$"):
        imp.select([], "best")
    with pytest.raises(ValueError, match=r"^unknown selection rule 'worst'$"):
        imp.select(cands, "worst")


def test_selected_masks_are_the_best_candidates_and_reported():
    model = search_model(select="best")
    result = trainer(model, problem()).fit()
    assert result.epochs_run == 2
    for task in model.task_names:
        cands = [c for c in model.candidates if c.task == task]
        best = max(cands, key=lambda c: (c.score, -c.density))
        assert density(model.masks[task]) == best.density
        assert all(torch.equal(model.masks[task][n], best.mask[n]) for n in best.mask)
    rep = model.report()["sparse"]
    assert set(rep) >= {"density", "overlap_ratio", "pairwise_overlap", "rounds"}
    assert rep["pairwise_overlap"]["a"]["a"] == 1.0
    assert 0.0 < rep["overlap_ratio"] <= 1.0
    assert len(rep["rounds"]) == len(model.candidates)
    text = describe_masks(model.masks)
    assert "overlap ratio" in text and "0.linear.weight" in text


def test_masks_are_bool_in_memory_and_bit_packed_in_checkpoints(tmp_path):
    model = search_model()
    model.set_masks(random_masks(model, keep=0.4))
    for m in model.masks.values():
        assert all(t.dtype == torch.bool for t in m.values())
    state = model.state_dict()
    n = sum(p.numel() for p in model._prunable().values())
    packed_bytes = sum(
        v.numel()
        for k, v in state.items()
        if k.startswith("sparse_masks.") and k != "sparse_masks.meta"
    )
    assert packed_bytes == sum(math.ceil(p.numel() / 8) for p in model._prunable().values()) * 2
    assert packed_bytes <= 2 * n / 8 + 2 * len(model.prunable_names)
    save_checkpoint(tmp_path / "ck", state, {})
    tensors, _ = load_checkpoint(tmp_path / "ck")
    torch.manual_seed(9)
    other = search_model()
    other.load_state_dict(tensors)
    for t in model.task_names:
        for name, m in model.masks[t].items():
            assert torch.equal(other.masks[t][name], m)
    assert other.searched
    restored = masks_from_state(tensors)
    assert torch.equal(
        pack_mask(restored["a"]["0.linear.weight"]), pack_mask(model.masks["a"]["0.linear.weight"])
    )


def test_masks_metadata_without_a_summary_keep_the_models_own(tmp_path):
    """A packed state whose metadata has no search summary loads, and the model reports the
    summary it had (no rounds), not a summary without the lists its report reads."""
    from mtlshare.sharing.sparse.masks import json_tensor, tensor_json

    model = search_model()
    model.set_masks(random_masks(model))
    state = model.state_dict()
    meta = tensor_json(state["sparse_masks.meta"])
    del meta["summary"]
    other = search_model()
    other.load_state_dict({**state, "sparse_masks.meta": json_tensor(meta)})
    assert other.report()["sparse"]["rounds"] == []
    assert other.report()["sparse"]["rounds_overlap"] == []
    assert other.write_artifacts(tmp_path) == []


class Crash(Exception):
    pass


def test_an_interrupted_search_resumes_to_the_same_masks(tmp_path):
    prob = problem()
    full = search_model()
    trainer(full, prob, tmp_path / "full").fit()

    calls = {"n": 0}
    crashing = search_model()
    t = trainer(crashing, prob, tmp_path / "cut")
    original = t.run_steps

    def run_steps(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 8:  # warm-up, then mid-way through the second task's rounds
            raise Crash
        return original(*args, **kwargs)

    t.run_steps = run_steps
    with pytest.raises(Crash):
        t.fit()
    resumed = search_model()
    trainer(resumed, prob, tmp_path / "cut").fit(resume=True)
    assert [c.summary() for c in resumed.candidates] == [c.summary() for c in full.candidates]
    for task in full.task_names:
        for n, m in full.masks[task].items():
            assert torch.equal(resumed.masks[task][n], m)
    for (n, p), (_, q) in zip(full.named_parameters(), resumed.named_parameters(), strict=True):
        assert torch.equal(p, q), n


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("alpha", 0.0),
        ("alpha", 1.0),
        ("alpha", -0.2),
        ("target_density", 0.0),
        ("target_density", 1.5),
        ("rewind", "start"),
        ("select", "worst"),
    ],
)
def test_bad_sparse_config_is_refused(key, value):
    with pytest.raises(ConfigError, match=f"sparse.{key}"):
        SparseSharing(backbone(), TASKS, SparseConfig(**{key: value}))


def test_prunable_patterns_choose_tensors():
    model = SparseSharing(backbone(), TASKS, SparseConfig(prunable=["1.*weight"]))
    assert model.prunable_names == ["1.linear.weight"]
    with pytest.raises(ConfigError, match="match none"):
        SparseSharing(backbone(), TASKS, SparseConfig(prunable=["nothing*"]))


def test_evaluation_passes_leave_the_weights_whole():
    torch.manual_seed(0)
    model = SparseSharing(backbone("lstm"), TASKS, SparseConfig())
    model.set_masks(random_masks(model, keep=0.3))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = problem("lstm").tasks[0].dev.x
    model.eval()
    out_a = model(x, "a")
    model(x, "b")
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())
    # the eval output is that of the masked weights
    ref = SparseSharing(backbone("lstm"), TASKS, SparseConfig())
    ref.load_state_dict(model.state_dict())
    with torch.no_grad():
        for n, p in ref._prunable().items():
            p.mul_(model.masks["a"][n])
    ref.set_masks(
        {t: {n: torch.ones_like(m) for n, m in ms.items()} for t, ms in model.masks.items()}
    )
    ref.eval()
    assert torch.equal(ref(x, "a"), out_a)


def test_a_training_pass_without_a_step_is_undone_by_the_next_task_or_a_save():
    torch.manual_seed(0)
    model = SparseSharing(backbone(), TASKS, SparseConfig())
    model.set_masks(random_masks(model))
    start = {n: p.detach().clone() for n, p in model.named_parameters()}
    x = problem().tasks[0].train.x[:4]
    model.train()
    model(x, "a")  # mask a applied in place until its optimizer step
    state = model.state_dict()  # a save sees whole weights
    assert all(torch.equal(state[n], start[n]) for n in start)
    model(x, "a")
    model(x, "b")  # switching task puts a's entries back first
    model.restore_weights()
    assert all(torch.equal(p, start[n]) for n, p in model.named_parameters())


def test_gradients_outside_the_mask_are_dropped_before_clipping():
    torch.manual_seed(0)
    model = SparseSharing(backbone(), TASKS, SparseConfig())
    masks = random_masks(model)
    model.set_masks(masks)
    d = problem().tasks[0].train
    loss = TASKS[0].loss(model(d.x[:8], "a"), d.y[:8])
    loss.backward()
    model.before_optimizer_step("a")
    for n, p in model._prunable().items():
        assert not p.grad[~masks["a"][n]].any()
        assert p.grad[masks["a"][n]].any()
    model.after_optimizer_step("a")


class Conv2dBlock(torch.nn.Module):
    """(batch, channels, h, w) -> same layout; the last block pools to (batch, channels)."""

    def __init__(self, cin: int, cout: int, pool: bool) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(cin, cout, 3, padding=1)
        self.pool = pool

    def forward(self, x):
        h = torch.relu(self.conv(x))
        return h.mean(dim=(2, 3)) if self.pool else h


def test_conv2d_weights_are_masked_too():
    from mtlshare.models.trunks import Backbone

    widths = [4, 6]
    bb = Backbone(3, widths, lambda i, d: Conv2dBlock(d, widths[i], pool=i == 1))
    torch.manual_seed(0)
    model = SparseSharing(bb, TASKS, SparseConfig())
    assert model.prunable_names == ["0.conv.weight", "1.conv.weight"]
    masks = random_masks(model)
    model.set_masks(masks)
    x = torch.randn(8, 3, 5, 5)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    for task, y in (("b", torch.randint(0, 3, (8,))), ("a", torch.randn(8)), ("b", None)):
        y = torch.randint(0, 3, (8,)) if y is None else y
        before = {n: p.detach().clone() for n, p in model._prunable().items()}
        loss = TASKS[0 if task == "a" else 1].loss(model(x, task), y)
        opt.zero_grad()
        loss.backward()
        model.before_optimizer_step(task)
        opt.step()
        model.after_optimizer_step(task)
        for n, p in model._prunable().items():
            inside = masks[task][n]
            assert torch.equal(p.detach()[~inside], before[n][~inside]), (task, n)
            assert not torch.equal(p.detach()[inside], before[n][inside]), (task, n)


@pytest.mark.parametrize("rewind", ["init", "warmup"])
def test_the_search_ends_rewound_to_the_configured_point(rewind):
    model = search_model(rewind=rewind)
    init = {k: v.clone() for k, v in torch.nn.Module.state_dict(model).items()}
    seen = {}
    t = trainer(model, problem())
    original = t.structure_trainer

    def spy(resume=False):
        st = original(resume)
        train_steps = st.train_steps

        def record(names, steps):
            train_steps(names, steps)
            if len(names) == 2:  # the multi-task warm-up
                seen.update({k: v.clone() for k, v in torch.nn.Module.state_dict(model).items()})

        st.train_steps = record
        return st

    t.structure_trainer = spy
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.prepare(t.structure_trainer())
    discarded = [w for w in caught if "discards the 6-step multi-task warm-up" in str(w.message)]
    # rewound to the initialisation, the warm-up's weights are never used: the user is told
    assert len(discarded) == (1 if rewind == "init" else 0)
    after = torch.nn.Module.state_dict(model)
    expected = init if rewind == "init" else seen
    assert seen, "the warm-up did not run"
    assert all(torch.equal(after[k], expected[k]) for k in expected)
    assert any(not torch.equal(seen[k], init[k]) for k in init)


def test_rewound_to_init_the_warning_counts_a_warm_up_given_in_epochs_in_steps():
    torch.manual_seed(0)
    cfg = SparseConfig(
        alpha=0.3, target_density=0.2, round_steps=4, warmup_epochs=1.0, rewind="init"
    )
    model = SparseSharing(backbone("mlp"), TASKS, cfg)
    st = trainer(model, problem()).structure_trainer()
    steps = st.steps_per_epoch(model.task_names)
    assert steps > 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.prepare(st)
    said = [str(w.message) for w in caught if "discards the" in str(w.message)]
    assert said and all(f"discards the {steps:,}-step multi-task warm-up" in m for m in said)


def test_masks_command_prints_densities_and_overlaps(tmp_path, capsys):
    from mtlshare.cli import main

    root = Path(__file__).resolve().parents[2]
    out = tmp_path / "run"
    args = [
        "run",
        str(root / "recipes" / "demo" / "demo.toml"),
        "mechanism=sparse",
        "sparse.round_steps=3",
        "sparse.warmup_steps=3",
        "sparse.alpha=0.5",
        "sparse.target_density=0.2",
        "train.epochs=1",
        "--out",
        str(out),
        "--quiet",
    ]
    assert main(args) == 0
    assert (out / "sparse_figure3.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "sparse_figure4.png").read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert main(["masks", str(out)]) == 0
    text = capsys.readouterr().out
    results = json.loads((out / "results.json").read_text())
    assert f"{results['sparse']['density']['t1']:.4f}" in text
    assert f"{results['sparse']['overlap_ratio']:.4f}" in text
    assert "pairwise overlap" in text and "0.linear.weight" in text

    # a run kept as recipes/keep_runs.py keeps one (no checkpoints): the same report, read
    # from its results.json, and a line saying so
    kept = tmp_path / "kept"
    shutil.copytree(out, kept, ignore=shutil.ignore_patterns("checkpoint"))
    assert main(["masks", str(kept)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[:-1] == text.splitlines()
    assert lines[-1] == f"(read from {kept / 'results.json'}: the run's checkpoints were not kept)"

    # what masks says where there are none to read: each a line naming the folder, exit 2
    stub = tmp_path / "stub"  # kept, its results' sparse block cut short by hand
    shutil.copytree(kept, stub)
    stub_results = {**results, "sparse": {"density": results["sparse"]["density"]}}
    (stub / "results.json").write_text(json.dumps(stub_results))
    hard = tmp_path / "hard"
    shutil.copytree(out, hard)
    config = hard / "config.toml"
    config.write_text(config.read_text().replace('mechanism = "sparse"', 'mechanism = "hard"'))
    for folder, message in (
        (stub, "results.json: no densities and overlaps of masks to read (KeyError"),
        (hard, "a 'hard' run; only sparse-sharing runs have masks"),
        (tmp_path / "nowhere", "not an mtlshare run folder"),
    ):
        assert main(["masks", str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and str(folder) in err[0] and message in err[0], err


SMALL_SPARSE = [str(Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"),
                "mechanism=sparse", "sparse.round_steps=3", "sparse.warmup_steps=3",
                "sparse.alpha=0.5", "sparse.target_density=0.2", "train.epochs=1"]  # fmt: skip


def _small_sparse_run(tmp_path: Path) -> tuple[Path, Path]:
    """A sparse run of the demo's data, one epoch (``tmp_path/run``, of ``SMALL_SPARSE``),
    and a file of one row of its 16 inputs to predict."""
    from mtlshare.cli import main

    out = tmp_path / "run"
    assert main(["run", *SMALL_SPARSE, "--out", str(out), "--quiet"]) == 0
    inputs = tmp_path / "in.csv"
    inputs.write_text(",".join(f"x{i}" for i in range(16)) + "\n" + ",".join(["0"] * 16) + "\n")
    return out, inputs


def _masks_or_predict(command: str, out: Path, inputs: Path) -> list[str]:
    """The command line of ``masks`` or ``predict`` (into ``o.csv`` beside ``inputs``) on run
    ``out``."""
    return {
        "masks": ["masks", str(out)],
        "predict": ["predict", str(out), str(inputs), "--out", str(inputs.parent / "o.csv")],
    }[command]


@pytest.mark.parametrize("command", ["masks", "predict"])
def test_damaged_masks_metadata_is_one_line_naming_the_checkpoint(tmp_path, capsys, command):
    """The masks' shapes travel as JSON in a uint8 tensor of the checkpoint: a checkpoint saved
    whole with that tensor damaged (not JSON, shapes not a table) was a ``JSONDecodeError`` or
    ``AttributeError`` traceback from ``masks`` and ``predict``."""
    from mtlshare.cli import main
    from mtlshare.sharing.sparse.masks import json_tensor, tensor_json

    out, inputs = _small_sparse_run(tmp_path)
    best = out / "checkpoint" / "best"
    key = "model.sparse_masks.meta"
    whole, meta = load_checkpoint(best)
    for damage, said in (
        (lambda t: torch.tensor(list(b"{nope"), dtype=torch.uint8), "masks' metadata is not JSON"),
        (lambda t: json_tensor({**tensor_json(t), "shapes": [1]}), "'shapes' is not {task"),
        (lambda t: json_tensor({**tensor_json(t), "summary": "x"}), "'summary' is not a search"),
        # each of the two lists the report reads
        (
            lambda t: json_tensor({**tensor_json(t), "summary": {"rounds": []}}),
            "'summary' is not a search",
        ),
        (
            lambda t: json_tensor({**tensor_json(t), "summary": {"rounds_overlap": []}}),
            "'summary' is not a search",
        ),
    ):
        save_checkpoint(best, {**whole, key: damage(whole[key])}, meta)
        if command == "masks" and "summary" in said:
            continue  # the masks command reads no search summary
        capsys.readouterr()
        assert main(_masks_or_predict(command, out, inputs)) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"{best}: " in err[0] and said in err[0], err
        assert not (tmp_path / "o.csv").exists()


@pytest.mark.parametrize("command", ["masks", "predict"])
def test_masks_that_keep_no_weight_are_refused_naming_the_checkpoint(tmp_path, capsys, command):
    """Every packed mask zeroed: ``masks`` ended in ``ValueError: overlap ratio is undefined``
    (a traceback); no search leaves such masks."""
    from mtlshare.cli import main

    out, inputs = _small_sparse_run(tmp_path)
    best = out / "checkpoint" / "best"
    _zero_masks(best)
    capsys.readouterr()
    assert main(_masks_or_predict(command, out, inputs)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{best}: packed masks keep no weight at all" in err[0], err


def _zero_masks(checkpoint: Path) -> None:
    """Every packed mask of ``checkpoint`` zeroed, the rest (and the masks' metadata) kept."""
    tensors, meta = load_checkpoint(checkpoint)
    zeroed = {
        k: torch.zeros_like(v) if k.startswith("model.sparse_masks.") and k[-5:] != ".meta" else v
        for k, v in tensors.items()
    }
    save_checkpoint(checkpoint, zeroed, meta)


@pytest.mark.parametrize("name", ["last", "best"])
def test_a_resumed_run_whose_masks_keep_no_weight_is_one_line_naming_the_checkpoint(
    tmp_path, capsys, name
):
    """Resuming reads ``checkpoint/last``, and a cut run at its cap scores ``checkpoint/best``:
    masks zeroed in either are refused in one line that says which checkpoint."""
    from mtlshare.cli import main

    out, _ = _small_sparse_run(tmp_path)
    (out / "results.json").unlink()
    damaged = out / "checkpoint" / name
    _zero_masks(damaged)
    capsys.readouterr()
    assert main(["run", *SMALL_SPARSE, "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{damaged}: packed masks keep no weight at all" in err[0], err


def test_a_search_that_can_prune_no_more_stops():
    # 0.2 of 2 remaining weights rounds to 0: the search must end, not train one mask forever
    model = search_model(alpha=0.2, target=1e-6, prunable=["1.linear.weight"])
    trainer(model, problem()).fit()
    for task in model.task_names:
        cands = [c for c in model.candidates if c.task == task]
        assert cands[-1].final and cands[-1].density > 1e-6
        assert len(cands) < 60


def test_a_resumed_run_still_reports_the_search(tmp_path):
    from mtlshare.training.checkpoint import load_checkpoint as load

    model = search_model()
    trainer(model, problem(), tmp_path / "run").fit()
    rounds = model.report()["sparse"]["rounds"]
    assert rounds
    tensors, _ = load(tmp_path / "run" / "checkpoint" / "last")
    again = search_model()
    again.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    assert again.report()["sparse"]["rounds"] == rounds
    assert again.report()["sparse"]["rounds_overlap"] == model.report()["sparse"]["rounds_overlap"]


def test_tiny_round_epochs_still_train_a_step():
    model = search_model()
    model.cfg.round_steps = 0
    model.cfg.round_epochs = 1e-4
    trainer(model, problem()).fit()
    assert model.candidates


def test_search_checkpoint_packs_each_candidate_once_in_the_same_layout():
    """The search checkpoint reuses each candidate's packed mask; its tensors and metadata are
    what packing every mask afresh, candidates then the current mask, gives."""
    from mtlshare.sharing.sparse.masks import pack_masks

    gen = torch.Generator().manual_seed(0)

    def masks() -> dict[str, torch.Tensor]:
        return {"w": torch.rand(5, 7, generator=gen) > 0.5, "b": torch.rand(3, generator=gen) > 0.5}

    cands = [
        imp.Candidate(task=t, round=r, density=0.5, score=0.1 * r, mask=masks())
        for t in ("a", "b")
        for r in (1, 2)
    ]
    current = masks()
    for _ in range(2):  # the second time from the cache
        tensors, meta = imp._pack(cands, current)
        expected_t, expected_m = pack_masks(
            {**{f"{c.task}@{c.round}": c.mask for c in cands}, "current": current}
        )
        assert list(tensors) == list(expected_t)
        assert all(torch.equal(tensors[k], expected_t[k]) for k in expected_t)
        assert json.dumps(meta["masks"]) == json.dumps(expected_m)
    assert all(c.packed is not None for c in cands)


class _MemorySubject:
    """A ``SearchSubject`` over fixed weights, keeping what is saved in memory; ``stop_after``
    saves, it raises (an interruption)."""

    def __init__(self, store: dict[str, tuple], stop_after: int = -1) -> None:
        gen = torch.Generator().manual_seed(1)
        self.weights = {"w": torch.randn(6, 8, generator=gen), "v": torch.randn(8, generator=gen)}
        self.store, self.stop_after, self.saved = store, stop_after, []
        self.mask: dict[str, torch.Tensor] = {}
        self.trained: list[str] = []

    def prunable(self):
        return self.weights

    def set_mask(self, task, masks):
        self.mask = masks

    def rewind(self):
        pass

    def train(self, task, steps):
        self.trained.append(task)

    def score(self, task):
        return float(sum(int(m.sum()) for m in self.mask.values())) + len(task)

    def save(self, tensors, meta, part=""):
        if len(self.saved) == self.stop_after:
            raise KeyboardInterrupt
        self.store[part] = (dict(tensors), json.loads(json.dumps(meta)))
        self.saved.append((part, len(meta["candidates"])))

    def load(self, part=""):
        return self.store.get(part)


def _search(subject, tasks):
    return imp.search_masks(
        tasks,
        subject,
        alpha=0.3,
        target_density=0.2,
        steps=dict.fromkeys(tasks, 1),
        progress=False,
    )


def _same(a, b):
    assert [(c.task, c.round, c.density, c.score, c.final) for c in a] == [
        (c.task, c.round, c.density, c.score, c.final) for c in b
    ]
    assert all(torch.equal(x.mask[k], y.mask[k]) for x, y in zip(a, b, strict=True) for k in x.mask)


def test_search_saves_a_constant_amount_per_round_and_resumes_from_its_parts():
    tasks = [f"t{i}" for i in range(5)]
    full_subject = _MemorySubject({})
    full = _search(full_subject, tasks)
    per_task = imp.rounds_needed(0.3, 0.2) + 1
    # a round saves only its task's rounds; each finished task's rounds are saved once
    assert max(n for _, n in full_subject.saved) <= per_task
    assert sorted(p for p, _ in full_subject.saved if p) == tasks
    for stop in (3, per_task + 1, 2 * per_task + 2):  # mid-task, at a task's end, later
        store: dict[str, tuple] = {}
        cut = _MemorySubject(store, stop_after=stop)
        with pytest.raises(KeyboardInterrupt):
            _search(cut, tasks)
        resumed = _MemorySubject(store)
        _same(_search(resumed, tasks), full)
        kept = sum(n for p, n in cut.saved if p) + (cut.saved[-1][1] if cut.saved else 0)
        assert len(resumed.trained) == len(full) - kept  # only the rounds not saved


def test_search_saved_before_parts_existed_resumes_and_gains_parts():
    tasks = ["a", "b", "c"]
    full = _search(_MemorySubject({}), tasks)
    per_task = imp.rounds_needed(0.3, 0.2) + 1
    old = full[: per_task + 2]  # a and two rounds of b, all in the progress, as saved before
    current = imp.global_magnitude_prune(_MemorySubject({}).weights, old[-1].mask, 0.3)
    store = {"": imp._pack(old, current)}
    assert "done" not in store[""][1]
    subject = _MemorySubject(store)
    _same(_search(subject, tasks), full)
    assert len(subject.trained) == len(full) - len(old)
    assert sorted(p for p in store if p) == tasks


def test_search_cut_between_a_tasks_part_and_its_progress_redoes_only_its_last_round():
    tasks = ["a", "b"]
    full = _search(_MemorySubject({}), tasks)
    per_task = imp.rounds_needed(0.3, 0.2) + 1
    store: dict[str, tuple] = {}
    with pytest.raises(KeyboardInterrupt):  # saves: a's rounds but its last, a's part, then cut
        _search(_MemorySubject(store, stop_after=per_task), tasks)
    assert "a" in store and store[""][1]["done"] == []
    resumed = _MemorySubject(store)
    _same(_search(resumed, tasks), full)
    assert resumed.trained == ["a"] + ["b"] * per_task


def test_a_search_whose_finished_task_lost_its_part_is_a_checkpoint_error():
    # the progress names a finished task whose rounds are gone (a damaged run folder): one
    # line from the CLI (CheckpointError), not a ValueError's traceback
    tasks = ["a", "b"]
    store: dict[str, tuple] = {}
    _search(_MemorySubject(store), tasks)
    assert store[""][1]["done"] == tasks
    del store["a"]
    with pytest.raises(CheckpointError, match="'a' finished, but that task's rounds"):
        _search(_MemorySubject(store), tasks)


def test_resuming_a_run_whose_search_lost_a_part_is_one_line_and_exit_2(tmp_path, capsys):
    from mtlshare.cli import main

    demo = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"
    args = ["run", str(demo), "mechanism=sparse", "train.epochs=1", "data.n_train=40"]
    args += ["data.n_dev=20", "data.n_test=20", "sparse.warmup_steps=1", "sparse.round_steps=1"]
    args += ["sparse.target_density=0.5", "sparse.alpha=0.5", "--quiet", "--out"]
    out = tmp_path / "run"
    assert main([*args, str(out)]) == 0
    # cut before the loop's first checkpoint, and the first task's part of the search lost
    for name in ("last", "best", "search-task-t1"):
        shutil.rmtree(out / "checkpoint" / name)
    (out / "results.json").unlink()
    capsys.readouterr()
    assert main([*args, str(out), "--resume"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mtlshare: error: ") and err.count("\n") == 1, err
    assert "'t1' finished" in err


def test_a_search_stops_at_a_density_equal_to_the_target():
    """56 weights halved twice leave exactly 0.25 of them: that round is the last."""
    cands = imp.search_masks(
        ["t"], _MemorySubject({}), alpha=0.5, target_density=0.25, steps={"t": 1}, progress=False
    )
    assert [c.density for c in cands] == [1.0, 0.5, 0.25] and cands[-1].final
    assert imp.rounds_needed(0.5, 0.25) == 2
    assert imp.rounds_needed(0.1, 0.9**4) == 4  # the ratio of logs is 4.000000000000001
    # a target of 1 or more is met before any pruning: no round
    assert imp.rounds_needed(0.5, 1.0) == imp.rounds_needed(0.5, 4.0) == 0


def test_by_default_a_custom_trunks_norm_gains_are_not_pruned():
    """The default prunable weights are the trunk's matrices and kernels: a norm layer's gain
    (a 1-d ``weight``) is not one, nor is a bias; patterns still reach them when asked."""
    from torch import nn

    def block(i: int, in_dim: int) -> nn.Module:
        return nn.Sequential(nn.Linear(in_dim, 8), nn.LayerNorm(8), nn.ReLU())

    custom = Backbone(input_dim=6, out_dims=[8, 8], build_layer=block)
    model = SparseSharing(custom, TASKS, SparseConfig())
    assert model.prunable_names == ["0.0.weight", "1.0.weight"]
    asked = SparseSharing(custom, TASKS, SparseConfig(prunable=["*.1.weight"]))
    assert asked.prunable_names == ["0.1.weight", "1.1.weight"]
