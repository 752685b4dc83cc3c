"""The synthetic source: its data pinned, and shared inputs (MMoE's setting) served by one pass."""

from __future__ import annotations

import hashlib

import pytest
import torch

from mtlshare.data.synthetic import SyntheticConfig, synthetic_problem, task_weights
from mtlshare.errors import ConfigError


def _digest(problem) -> str:
    h = hashlib.sha256()
    for td in problem.tasks:
        for split in (td.train, td.dev, td.test):
            h.update(split.x.numpy().tobytes())
            h.update(split.y.numpy().tobytes())
    return h.hexdigest()


# per task and split (train, dev, test): the sums of x, x**2, y and y**2 of the default data,
# to 1e-6: their bytes depend on the CPU (the digest of them taken on an AMD EPYC VM differs on
# an Intel Xeon one: other kernels, other last bits of x @ w and of the sines), but a change of
# the generator (seeds, order of draws, the formula) moves these by far more
DEFAULT_SUMS = [
    (13.612485, 1584.439189, 33.676473, 141.050221),
    (-10.415796, 654.356309, 29.673861, 71.275285),
    (-13.346032, 924.082791, 34.530366, 130.320089),
    (-80.393194, 1609.140653, 46.346749, 140.504432),
    (4.922968, 643.454142, 19.824739, 79.432333),
    (-8.138505, 948.82876, 24.1081, 61.649611),
    (-35.93271, 1589.24064, 39.435268, 150.432576),
    (-14.402152, 544.558797, 14.484273, 43.979637),
    (34.862804, 954.914441, 31.837812, 95.099338),
]


def test_default_data_are_those_every_earlier_result_was_trained_on():
    problem = synthetic_problem(SyntheticConfig(n_tasks=3, n_train=50, n_dev=20, n_test=30))
    sums = []
    for td in problem.tasks:
        for split in (td.train, td.dev, td.test):
            x, y = split.x.double(), split.y.double()
            sums.append((x.sum(), (x * x).sum(), y.sum(), (y * y).sum()))
    assert [tuple(float(v) for v in row) for row in sums] == [
        pytest.approx(row, rel=1e-6, abs=1e-6) for row in DEFAULT_SUMS
    ]
    first, second = problem.tasks[:2]
    assert not torch.equal(first.train.x, second.train.x)


def test_shared_inputs_give_every_task_the_same_rows_with_its_own_targets():
    cfg = SyntheticConfig(n_tasks=3, n_train=50, n_dev=20, n_test=30, shared_inputs=True)
    problem = synthetic_problem(cfg)
    first = problem.tasks[0]
    for td in problem.tasks[1:]:
        for mine, theirs in ((td.train, first.train), (td.dev, first.dev), (td.test, first.test)):
            assert mine.x is theirs.x  # one tensor: the loop reads one batch for every task
            assert not torch.equal(mine.y, theirs.y)
    assert _digest(synthetic_problem(cfg)) == _digest(problem)  # seeded


def test_a_joint_step_on_shared_inputs_runs_the_cross_stitch_streams_once(tmp_path, monkeypatch):
    from mtlshare.app.run import run
    from mtlshare.config import load_config
    from mtlshare.sharing.cross_stitch import CrossStitchSharing as CrossStitch

    calls = {"streams": 0, "forward_tasks": 0}
    streams, forward_tasks = CrossStitch._streams, CrossStitch.forward_tasks

    def counted_streams(self, x):
        calls["streams"] += 1
        return streams(self, x)

    def counted_forward_tasks(self, x, tasks):
        calls["forward_tasks"] += 1
        return forward_tasks(self, x, tasks)

    monkeypatch.setattr(CrossStitch, "_streams", counted_streams)
    monkeypatch.setattr(CrossStitch, "forward_tasks", counted_forward_tasks)
    cfg = load_config(
        "recipes/demo/demo.toml",
        ["mechanism=cross_stitch", "train.schedule=joint", "data.shared_inputs=true",
         "data.n_tasks=4", "data.n_train=64", "data.n_dev=8", "data.n_test=8",
         "train.batch_size=32", "train.epochs=1", "train.patience=0"],
    )  # fmt: skip
    run(cfg, tmp_path / "run", progress=False)
    assert calls["forward_tasks"] == 2  # two joint steps, each one pass for the four tasks
    # + one pass per task for each evaluation: dev after the epoch, dev and test at the end
    assert calls["streams"] == 2 + 3 * 4


@pytest.mark.parametrize("p", [-0.5, 0.0, 0.9])
def test_relatedness_is_the_cosine_to_task_1_and_scale_the_norm(p):
    cfg = SyntheticConfig(relatedness=p, n_tasks=3, input_dim=8, scale=2.0)
    w = task_weights(cfg, torch.Generator().manual_seed(0))
    norms = w.norm(dim=1)
    assert torch.allclose(norms, torch.full((3,), 2.0), atol=1e-5)
    cosines = (w[1:] @ w[0]) / (norms[1:] * norms[0])
    assert torch.allclose(cosines, torch.full((2,), p), atol=1e-5)
    assert abs(float(w[1] @ w[2]) / 4.0 - p * p) < 1e-5  # t2, t3 share only their u_1 part


def test_the_bounds_of_relatedness_and_n_tasks_are_accepted_and_beyond_them_refused():
    edge = SyntheticConfig(relatedness=-1.0, n_tasks=4, input_dim=4, n_train=2, n_dev=2, n_test=2)
    assert len(synthetic_problem(edge).tasks) == 4
    for bad in ({"relatedness": -1.01}, {"relatedness": 1.01}, {"n_tasks": 5}, {"n_tasks": 0}):
        with pytest.raises(ConfigError):
            SyntheticConfig(**{**vars(edge), **bad}).validate()


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({"n_train": 0}, r"^data\.n_train: must be >= 1, got 0$"),
        ({"n_dev": 0}, r"^data\.n_dev: must be >= 1, got 0$"),
        ({"n_test": -2}, r"^data\.n_test: must be >= 1, got -2$"),
        ({"sines": -1}, r"^data\.sines: must be >= 0, got -1$"),
    ],
)
def test_sizes_below_one_and_negative_sines_are_refused(bad, message):
    edge = SyntheticConfig(n_tasks=2, input_dim=4, n_train=1, n_dev=1, n_test=1, sines=0)
    assert [len(td.train) for td in synthetic_problem(edge).tasks] == [1, 1]
    with pytest.raises(ConfigError, match=message):
        SyntheticConfig(**{**vars(edge), **bad}).validate()
