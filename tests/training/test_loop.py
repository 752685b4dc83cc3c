"""The training loop and what it is made of: task samplers, loss weighting, missing labels,
repeatability, early stopping and model selection on dev, resume, gradient clipping, NaN losses.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.data.samplers import task_probabilities, task_schedule
from mtlshare.data.synthetic import SyntheticConfig, synthetic_problem
from mtlshare.errors import CheckpointError, ConfigError, DataError, MtlshareError
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.metrics import IGNORE_INDEX, accuracy, mae, mse
from mtlshare.tasks.task import Task
from mtlshare.training.checkpoint import load_checkpoint
from mtlshare.training.folder import RunFolder
from mtlshare.training.loop import FitResult, Trainer
from mtlshare.training.objective import LossWeighting, WeightingConfig
from mtlshare.training.settings import TrainConfig
from mtlshare.training.state import LoopState
from update_norm import assert_the_step_is_bounded

# -- helpers -----------------------------------------------------------------------------------


def small_problem(n_train: int = 48) -> Problem:
    cfg = SyntheticConfig(input_dim=4, n_train=n_train, n_dev=32, n_test=32, sines=2, data_seed=3)
    return synthetic_problem(cfg)


def noise_problem() -> Problem:
    """Targets independent of inputs: a large network memorises train and gets worse on dev."""
    g = torch.Generator().manual_seed(5)

    def split(n: int) -> Split:
        return Split(torch.randn(n, 4, generator=g), torch.randn(n, generator=g))

    return Problem([TaskData(Task("t1", "regression"), split(16), split(64), split(64))], 4)


def make_model(
    problem: Problem,
    mechanism: str = "hard",
    hidden: tuple[int, ...] = (16,),
    dropout: float = 0.0,
    seed: int = 0,
) -> SharingModel:
    torch.manual_seed(seed)
    trunk = TrunkConfig(kind="mlp", hidden=list(hidden), dropout=dropout)
    backbone = backbone_from_config(trunk, problem.input_dim)
    entry = MECHANISMS[mechanism]
    return entry.build(backbone, [td.task for td in problem.tasks], entry.config())


def make_trainer(
    model: SharingModel,
    problem: Problem,
    cfg: TrainConfig,
    *,
    weighting: str = "fixed",
    seed: int = 0,
    out_dir: object = None,
) -> Trainer:
    names = [td.task.name for td in problem.tasks]
    w = LossWeighting(names, WeightingConfig(kind=weighting))
    folder = RunFolder(out_dir) if out_dir is not None else None  # type: ignore[arg-type]
    return Trainer(model, problem, cfg, w, seed=seed, folder=folder, progress=False)  # type: ignore[arg-type]


def without_timing(history: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "train_seconds"} for r in history]


def assert_same_state(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k


def score_of(model: SharingModel, problem: Problem, split: str = "test") -> dict[str, float]:
    model.eval()
    out = {}
    with torch.no_grad():
        for td in problem.tasks:
            data = getattr(td, split)
            out[td.task.name] = td.task.score(model(data.x, td.task.name), data.y)
    return out


def model_from_checkpoint(problem: Problem, path: object, **kw: object) -> SharingModel:
    tensors, _ = load_checkpoint(path)  # type: ignore[arg-type]
    model = make_model(problem, seed=999, **kw)  # type: ignore[arg-type]
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    return model


# -- samplers ----------------------------------------------------------------------------------


def test_task_probabilities_by_hand():
    assert task_probabilities([100, 300], "proportional") == pytest.approx([0.25, 0.75])
    assert task_probabilities([100, 300, 600], "uniform") == pytest.approx([1 / 3] * 3)
    assert task_probabilities([100, 300], "round_robin") == pytest.approx([0.5, 0.5])
    # size ** (1 / T): sqrt(100) = 10, sqrt(400) = 20
    assert task_probabilities([100, 400], "temperature", 2.0) == pytest.approx([1 / 3, 2 / 3])
    assert task_probabilities([100, 400], "temperature", 1.0) == pytest.approx([0.2, 0.8])
    hot = task_probabilities([100, 400], "temperature", 1000.0)
    assert hot == pytest.approx([0.5, 0.5], abs=1e-3)


@pytest.mark.parametrize(
    ("sizes", "kind", "temperature", "message"),
    [
        ([10, 10], "zipf", 1.0, "train.sampler"),
        ([10, 0], "proportional", 1.0, "training examples"),
        ([], "uniform", 1.0, "training examples"),
        ([10, 20], "temperature", 0.0, "train.temperature"),
    ],
)
def test_task_probabilities_errors(sizes, kind, temperature, message):
    with pytest.raises(ConfigError, match=message):
        task_probabilities(sizes, kind, temperature)


def test_a_small_temperature_sharpens_towards_the_largest_task_without_overflow():
    """size ** (1 / T) beyond floating point (10000 ** 100) was an ``OverflowError`` traceback
    from the loop; the ratios are those of the sizes over the largest, and a task whose ratio
    is below the smallest float, never to be drawn, is a one-line error."""
    assert task_probabilities([10000, 5000], "temperature", 0.01) == pytest.approx(
        [1.0, 0.5**100], rel=1e-12
    )
    with pytest.raises(ConfigError, match=r"train\.temperature: 0\.01 gives a task of 1 example"):
        task_probabilities([10000, 1], "temperature", 0.01)


def test_a_small_temperature_reads_the_tasks_in_any_order():
    """The ratios are over the largest size wherever it is in the list, not the first's: with
    the smaller task first, its ratio to the largest is what tells drawn from never drawn."""
    assert task_probabilities([5000, 10000], "temperature", 0.01) == pytest.approx(
        [0.5**100, 1.0], rel=1e-12
    )
    with pytest.raises(ConfigError, match=r"train\.temperature: 0\.01 gives a task of 1 example"):
        task_probabilities([1, 10000], "temperature", 0.01)


def test_round_robin_continues_from_the_offset():
    g = torch.Generator().manual_seed(0)
    assert task_schedule([5, 50, 500], "round_robin", 5, g) == [0, 1, 2, 0, 1]
    assert task_schedule([5, 50, 500], "round_robin", 5, g, offset=4) == [1, 2, 0, 1, 2]


@pytest.mark.parametrize(
    ("kind", "temperature"),
    [("proportional", 1.0), ("uniform", 1.0), ("temperature", 2.0), ("temperature", 0.5)],
)
def test_sampled_frequencies_match_the_probabilities(kind, temperature):
    sizes, n = [50, 150, 800], 40_000
    g = torch.Generator().manual_seed(11)
    order = task_schedule(sizes, kind, n, g, temperature)
    assert len(order) == n
    freq = [order.count(i) / n for i in range(len(sizes))]
    probs = task_probabilities(sizes, kind, temperature)
    for f, p in zip(freq, probs, strict=True):
        assert abs(f - p) < 5 * math.sqrt(p * (1 - p) / n) + 1e-9


def test_schedule_is_repeatable_from_its_generator():
    def draw(seed: int) -> list[int]:
        return task_schedule([10, 20], "proportional", 50, torch.Generator().manual_seed(seed))

    assert draw(1) == draw(1)
    assert draw(1) != draw(2)


# -- loss weighting ----------------------------------------------------------------------------


def test_fixed_weights_multiply_the_task_loss():
    w = LossWeighting(["t1", "t2"], WeightingConfig(kind="fixed", weights={"t1": 0.25}))
    loss = torch.tensor(2.0)
    assert float(w("t1", loss).detach()) == pytest.approx(0.5)
    assert float(w("t2", loss).detach()) == pytest.approx(2.0)
    assert w.current() == {"t1": 0.25, "t2": 1.0}
    assert not w.log_vars.requires_grad


def test_uncertainty_weighting_formula():
    w = LossWeighting(["t1", "t2"], WeightingConfig(kind="uncertainty"))
    with torch.no_grad():
        w.log_vars.copy_(torch.tensor([0.3, -0.7]))
    loss = torch.tensor(2.0)
    assert float(w("t1", loss).detach()) == pytest.approx(math.exp(-0.3) * 2.0 + 0.3)
    assert float(w("t2", loss).detach()) == pytest.approx(math.exp(0.7) * 2.0 - 0.7)
    assert w.current() == pytest.approx({"t1": math.exp(-0.3), "t2": math.exp(0.7)})
    assert w.weight_vector().tolist() == pytest.approx([math.exp(-0.3), math.exp(0.7)])
    assert not w.weight_vector().requires_grad  # a constant, as every kind's
    out = w("t2", loss)
    out.backward()
    # d/ds (exp(-s) L + s) = 1 - exp(-s) L
    assert float(w.log_vars.grad[1]) == pytest.approx(1 - math.exp(0.7) * 2.0)
    assert float(w.log_vars.grad[0]) == 0.0


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (WeightingConfig(kind="bogus"), "weighting.kind"),
        (WeightingConfig(weights={"pos": 1.0}), "unknown task"),
        (WeightingConfig(weights={"t1": -1.0}), "must be >= 0"),
    ],
)
def test_weighting_config_errors(cfg, message):
    with pytest.raises(ConfigError, match=message):
        LossWeighting(["t1", "t2"], cfg)


def test_uncertainty_log_variances_are_learned_by_fit():
    problem = small_problem()
    model = make_model(problem)
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.05, patience=0)
    trainer = make_trainer(model, problem, cfg, weighting="uncertainty")
    result = trainer.fit()
    log_vars = trainer.weighting.log_vars.detach()
    assert (log_vars != 0).all()
    last = result.history[-1]["loss_weights"]
    assert last == pytest.approx({"t1": math.exp(-log_vars[0]), "t2": math.exp(-log_vars[1])})


# -- missing labels ----------------------------------------------------------------------------


def _loss_and_grad(task: Task, head_out: Tensor, target: Tensor) -> tuple[Tensor, Tensor]:
    out = head_out.clone().requires_grad_(True)
    loss = task.loss(out, target)
    (grad,) = torch.autograd.grad(loss, out)
    return loss.detach(), grad


@pytest.mark.parametrize("shape", [(6,), (3, 4)], ids=["per_example", "per_position"])
def test_regression_loss_ignores_predictions_at_missing_labels(shape):
    task = Task("r", "regression")
    g = torch.Generator().manual_seed(0)
    pred = torch.randn(*shape, 1, generator=g)
    target = torch.randn(*shape, generator=g)
    missing = torch.zeros(shape, dtype=torch.bool)
    missing.view(-1)[::2] = True
    target[missing] = float("nan")

    loss, grad = _loss_and_grad(task, pred, target)
    keep = ~missing
    assert float(loss) == pytest.approx(
        float(((pred.squeeze(-1)[keep] - target[keep]) ** 2).mean())
    )
    assert torch.isfinite(grad).all()
    assert (grad.squeeze(-1)[missing] == 0).all()

    other = pred.clone()
    other.squeeze(-1)[missing] += 1000.0
    loss2, grad2 = _loss_and_grad(task, other, target)
    assert torch.equal(loss, loss2)
    assert torch.equal(grad, grad2)


def test_regression_loss_by_hand():
    task = Task("r", "regression")
    pred = torch.tensor([[1.0], [2.0], [3.0], [4.0]])
    target = torch.tensor([1.5, float("nan"), 2.0, float("nan")])
    assert float(task.loss(pred, target)) == pytest.approx((0.25 + 1.0) / 2)


@pytest.mark.parametrize("target_shape", [(4, 1), (1, 4)])
def test_regression_targets_of_another_shape_are_refused_not_broadcast(target_shape):
    """(N, 1) targets against (N,) predictions would broadcast to an (N, N) difference: a loss
    that trains, silently wrong, until the metric fails after the epoch."""
    task = Task("r", "regression")
    with pytest.raises(DataError, match=r"task 'r': regression targets of shape"):
        task.loss(torch.zeros(4, 1), torch.zeros(target_shape))


@pytest.mark.parametrize("shape", [(6,), (3, 4)], ids=["per_example", "per_position"])
def test_classification_loss_ignores_logits_at_missing_labels(shape):
    task = Task("c", "classification", 3, "accuracy")
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(*shape, 3, generator=g)
    target = torch.randint(0, 3, shape, generator=g)
    missing = torch.zeros(shape, dtype=torch.bool)
    missing.view(-1)[1::3] = True
    target[missing] = IGNORE_INDEX

    loss, grad = _loss_and_grad(task, logits, target)
    keep = ~missing
    assert float(loss) == pytest.approx(float(F.cross_entropy(logits[keep], target[keep])))
    assert (grad[missing] == 0).all()

    other = logits.clone()
    other[missing] = torch.tensor([50.0, -50.0, 3.0])
    loss2, grad2 = _loss_and_grad(task, other, target)
    assert torch.equal(loss, loss2)
    assert torch.equal(grad, grad2)


@pytest.mark.parametrize(
    ("task", "target"),
    [
        (Task("r", "regression"), torch.full((4,), float("nan"))),
        (Task("c", "classification", 3, "accuracy"), torch.full((4,), IGNORE_INDEX)),
    ],
)
def test_all_missing_batch_gives_zero_loss_with_a_graph(task, target):
    out = torch.randn(4, task.out_dim, requires_grad=True)
    loss = task.loss(out, target)
    assert float(loss.detach()) == 0.0
    loss.backward()
    assert torch.equal(out.grad, torch.zeros_like(out))


def test_metrics_exclude_missing_labels_by_hand():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0])
    target = torch.tensor([1.5, float("nan"), 2.0, float("nan")])
    assert mse(pred, target) == pytest.approx((0.25 + 1.0) / 2)
    assert mae(pred, target) == pytest.approx((0.5 + 1.0) / 2)
    logits = torch.eye(3)[[0, 1, 2, 0]]  # arg-max classes 0, 1, 2, 0
    labels = torch.tensor([0, IGNORE_INDEX, 1, 0])
    assert accuracy(logits, labels) == pytest.approx(2 / 3)
    assert math.isnan(mse(pred, torch.full((4,), float("nan"))))
    assert math.isnan(accuracy(logits, torch.full((4,), IGNORE_INDEX)))
    task = Task("r", "regression", 1, "mae")
    assert task.score(pred[:, None], target) == pytest.approx(0.75)


def test_fit_with_missing_labels_stays_finite():
    g = torch.Generator().manual_seed(1)

    def split(n: int, cls: bool) -> Split:
        x = torch.randn(n, 4, generator=g)
        if cls:
            y = (x[:, 0] > 0).long()
            y[::3] = IGNORE_INDEX
        else:
            y = x.sum(-1)
            y[::2] = float("nan")
        return Split(x, y)

    tasks = [Task("r", "regression"), Task("c", "classification", 2, "accuracy")]
    problem = Problem(
        [
            TaskData(t, split(32, i == 1), split(32, i == 1), split(32, i == 1))
            for i, t in enumerate(tasks)
        ],
        4,
    )
    model = make_model(problem)
    result = make_trainer(model, problem, TrainConfig(epochs=2, batch_size=8, patience=0)).fit()
    for value in [*result.dev.values(), *result.test.values()]:
        assert math.isfinite(value)
    assert 0.0 <= result.dev["c"] <= 1.0


# -- repeatability -----------------------------------------------------------------------------


def _fit(seed: int, dropout: float = 0.1) -> tuple[SharingModel, FitResult]:
    problem = small_problem()
    model = make_model(problem, mechanism="soft", dropout=dropout, seed=seed)
    cfg = TrainConfig(epochs=2, batch_size=16, patience=0)
    return model, make_trainer(model, problem, cfg, seed=seed).fit()


def test_same_seed_gives_bitwise_identical_training():
    model_a, fit_a = _fit(seed=3)
    model_b, fit_b = _fit(seed=3)
    assert_same_state(model_a.state_dict(), model_b.state_dict())
    assert without_timing(fit_a.history) == without_timing(fit_b.history)
    assert (fit_a.dev, fit_a.test) == (fit_b.dev, fit_b.test)
    model_c, _ = _fit(seed=4)
    assert not torch.equal(
        model_a.state_dict()["heads.t1.weight"], model_c.state_dict()["heads.t1.weight"]
    )


def test_trainer_seed_alone_changes_batches_and_dropout():
    problem = small_problem()
    states = []
    for seed in (0, 1):
        model = make_model(problem, dropout=0.1, seed=0)  # same initial weights
        make_trainer(model, problem, TrainConfig(epochs=1, batch_size=16), seed=seed).fit()
        states.append(model.state_dict())
    assert not torch.equal(states[0]["heads.t1.weight"], states[1]["heads.t1.weight"])


# -- selection, early stopping, test on the selected model -------------------------------------

OVERFIT = TrainConfig(epochs=40, batch_size=8, optimizer="adam", lr=0.01, patience=3)


def _overfit(out_dir: object) -> tuple[Problem, SharingModel, FitResult]:
    problem = noise_problem()
    model = make_model(problem, hidden=(64, 64))
    return problem, model, make_trainer(model, problem, OVERFIT, out_dir=out_dir).fit()


def test_early_stopping_and_selection_on_dev(tmp_path):
    _, _, result = _overfit(tmp_path)
    history = result.history
    assert [r["epoch"] for r in history] == list(range(1, len(history) + 1))
    assert result.epochs_run == len(history) < OVERFIT.epochs
    scores = [r["selection_score"] for r in history]
    for r in history:  # the mean of signed dev metrics: minus the dev MSE of the one task
        assert r["selection_score"] == -r["dev"]["t1"]
    assert result.best_epoch == scores.index(max(scores)) + 1
    assert result.epochs_run == result.best_epoch + OVERFIT.patience
    assert result.best_epoch < result.epochs_run
    # the returned dev scores are those of the selected epoch
    assert result.dev == history[result.best_epoch - 1]["dev"]


def test_test_is_scored_on_the_selected_model(tmp_path):
    problem, model, result = _overfit(tmp_path)
    best = model_from_checkpoint(problem, tmp_path / "checkpoint" / "best", hidden=(64, 64))
    last = model_from_checkpoint(problem, tmp_path / "checkpoint" / "last", hidden=(64, 64))
    assert result.test == score_of(best, problem)
    assert result.test != score_of(last, problem)
    assert_same_state(model.state_dict(), best.state_dict())


def test_test_is_scored_on_the_selected_model_without_out_dir(tmp_path):
    _, _, with_dir = _overfit(tmp_path)
    _, _, without_dir = _overfit(None)
    assert without_dir.best_epoch == with_dir.best_epoch < without_dir.epochs_run
    assert without_dir.test == with_dir.test


def test_select_on_one_task(tmp_path):
    problem = small_problem()
    cfg = TrainConfig(epochs=3, batch_size=16, patience=0, select_on="t2")
    result = make_trainer(make_model(problem), problem, cfg).fit()
    for r in result.history:
        assert r["selection_score"] == -r["dev"]["t2"]
    with pytest.raises(ConfigError, match=r"train\.select_on"):
        make_trainer(make_model(problem), problem, TrainConfig(select_on="t9"))


def test_patience_counts_epochs_since_the_last_strict_improvement():
    """Scripted selection scores (higher is better): an improvement resets the count of bad
    epochs, and a tie with the best is not an improvement (the earlier epoch is kept)."""
    problem = small_problem()
    cfg = TrainConfig(epochs=10, batch_size=16, patience=2, steps_per_epoch=1)
    trainer = make_trainer(make_model(problem), problem, cfg)
    scores = iter([1.0, 0.0, 2.0, 2.0, 0.0, 5.0, 5.0, 5.0, 5.0, 5.0])
    trainer.selection_score = lambda dev: next(scores)  # type: ignore[method-assign]
    result = trainer.fit()
    # epoch 2 bad (1), epoch 3 best (0), epoch 4 ties (1), epoch 5 bad (2): stop
    assert (result.best_epoch, result.epochs_run) == (3, 5)


def test_lr_decay_leaves_the_first_epoch_at_the_configured_lr():
    problem = small_problem()
    cfg = TrainConfig(epochs=3, batch_size=16, lr=0.1, lr_decay=1.0, patience=0)
    trainer = make_trainer(make_model(problem), problem, cfg)
    made = []
    original = trainer.make_optimizer

    def remember() -> torch.optim.Optimizer:
        made.append(original())
        return made[-1]

    trainer.make_optimizer = remember  # type: ignore[method-assign]
    lrs = []
    trainer.fit(on_epoch=lambda record: lrs.append(made[0].param_groups[0]["lr"]))
    assert lrs == pytest.approx([0.1, 0.1 / 2, 0.1 / 3])  # lr / (1 + decay * (epoch - 1))


def test_run_steps_returns_each_tasks_mean_raw_loss():
    problem = small_problem()
    cfg = TrainConfig(batch_size=16, sampler="round_robin")
    trainer = make_trainer(make_model(problem), problem, cfg)
    raw = {"t1": 1.0, "t2": 3.0}
    trainer.step = lambda optimizer, task, x, y, share=1.0: raw[task]  # type: ignore[method-assign]
    losses = trainer.run_steps(trainer.make_optimizer(), ["t1", "t2"], 6, epoch=1)
    assert losses == {"t1": 1.0, "t2": 3.0}
    assert trainer.last_counts == {"t1": 3, "t2": 3}


def test_a_soft_sharing_step_scales_its_penalty_share_by_the_inverse_task_probability():
    """A step of one task stands for 1 / p of any task's steps: its share of the soft-sharing
    penalty is scaled by that, so the expected gradient is the whole penalty's."""
    problem = small_problem()
    model = make_model(problem, "soft")
    cfg = TrainConfig(batch_size=16, sampler="proportional")
    trainer = make_trainer(model, problem, cfg)
    trainer.run_steps(trainer.make_optimizer(), ["t1", "t2"], 1, epoch=1)
    assert trainer.objective_module.every == pytest.approx({"t1": 2.0, "t2": 2.0})
    x, y = problem.tasks[0].train.take(torch.arange(8))
    loss, raw = trainer.objective_module(x, y, "t1")
    share = float(model.regularizer("t1", 2.0).detach())
    assert share > 0 and share != pytest.approx(float(model.regularizer("t1", 1.0).detach()))
    assert float((loss - raw).detach()) == pytest.approx(share)


# -- resume ------------------------------------------------------------------------------------


def test_a_resume_state_whose_history_is_not_one_record_per_epoch_is_refused(tmp_path):
    meta = LoopState(epoch=2, global_step=6, best_epoch=1, history=[{"epoch": 1}]).meta()
    with pytest.raises(CheckpointError, match="1 records in a run of 5 epochs"):
        LoopState.from_meta(meta, tmp_path, 5)
    meta["history"].append({"epoch": 2})
    assert LoopState.from_meta(meta, tmp_path, 5).epoch == 2


@pytest.mark.parametrize("key", ["best_score", "train_seconds", "epoch"])
@pytest.mark.parametrize("sign", [1, -1])
def test_a_resume_state_number_of_400_digits_is_refused_in_one_short_line(tmp_path, key, sign):
    """JSON's integers have no bound: ``float`` of one of 400 digits (either sign) was an
    ``OverflowError`` traceback, and the line that names it shows its first digits only."""
    meta = LoopState(epoch=1, global_step=3, best_epoch=1, history=[{"epoch": 1}]).meta()
    meta[key] = sign * 10**400
    with pytest.raises(CheckpointError) as e:
        LoopState.from_meta(meta, tmp_path, 5)
    said = str(e.value)
    shown = repr(sign * 10**400)[:37] + "..."
    assert f"({key!r} is {shown});" in said and len(said) < 250, said


def test_resume_gives_bitwise_identical_training(tmp_path):
    problem = small_problem()
    cfg = dict(batch_size=16, optimizer="adam", lr=0.01, patience=0, sampler="proportional")

    def trainer(out: object, epochs: int) -> Trainer:
        model = make_model(problem, mechanism="soft", dropout=0.2, seed=0)
        return make_trainer(model, problem, TrainConfig(epochs=epochs, **cfg), out_dir=out)

    straight = trainer(tmp_path / "a", 4)
    full = straight.fit()
    first = trainer(tmp_path / "b", 2)
    first.fit()
    again = trainer(tmp_path / "b", 4)
    resumed = again.fit(resume=True)

    assert without_timing(resumed.history) == without_timing(full.history)
    assert (resumed.best_epoch, resumed.dev, resumed.test) == (full.best_epoch, full.dev, full.test)
    assert_same_state(again.model.state_dict(), straight.model.state_dict())
    last_a, meta_a = load_checkpoint(tmp_path / "a" / "checkpoint" / "last")
    last_b, meta_b = load_checkpoint(tmp_path / "b" / "checkpoint" / "last")
    assert_same_state(last_a, last_b)  # model, optimizer state and RNG
    assert meta_a["global_step"] == meta_b["global_step"]


# -- gradient clipping and NaN losses ----------------------------------------------------------


def test_a_trainer_given_a_task_without_a_dev_label_stops_after_its_first_epoch():
    """``run`` refuses such a problem before it makes a folder; a ``Trainer`` used on its own
    finds it at the first dev score."""
    import dataclasses

    problem = small_problem()
    t2 = problem.tasks[1]
    unlabelled = Split(t2.dev.x, torch.full_like(t2.dev.y, float("nan")))
    problem.tasks[1] = dataclasses.replace(t2, dev=unlabelled)
    trainer = make_trainer(make_model(problem), problem, TrainConfig(epochs=2))
    with pytest.raises(DataError) as err:
        trainer.fit()
    assert str(err.value) == (
        "task(s) ['t2'] have no observed label in their dev split; model selection needs at "
        "least one"
    )
    assert trainer.global_step == trainer.steps_per_epoch(["t1", "t2"])  # one epoch trained


@pytest.mark.parametrize(("clip", "bound"), [(1e-3, 1e-3), (0.0, None)])
def test_grad_clip_limits_the_update(clip, bound):
    problem = small_problem()
    model = make_model(problem, hidden=(16, 16))
    cfg = TrainConfig(optimizer="sgd", lr=1.0, momentum=0.0, grad_clip=clip)
    trainer = make_trainer(model, problem, cfg)
    before = [p.detach().clone() for p in model.parameters()]
    train = problem.tasks[0].train
    trainer.step(trainer.make_optimizer(), "t1", train.x[:16], train.y[:16] * 10)
    assert_the_step_is_bounded(model, before, bound)


@pytest.mark.parametrize("optimizer", ["adamw", "adam"])
def test_adamw_shrinks_the_weights_apart_from_the_gradient(optimizer):
    """AdamW's first step: p (1 - lr wd) - lr g / (|g| + eps) for every weight with a
    gradient; Adam's puts the decay into the gradient instead: p - lr (g + wd p) / |g + wd p|."""
    problem = small_problem()
    model = make_model(problem)
    lr, wd = 0.01, 0.5
    trainer = make_trainer(model, problem, TrainConfig(optimizer=optimizer, lr=lr, weight_decay=wd))
    train = problem.tasks[0].train
    x, y = train.x[:16], train.y[:16]
    model.zero_grad()
    problem.tasks[0].task.loss(model(x, "t1"), y).backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    trainer.step(trainer.make_optimizer(), "t1", x, y)
    for n, p in model.named_parameters():
        if n not in grads:  # the other task's head: no gradient, no step, no decay
            assert torch.equal(p.detach(), before[n]), n
            continue
        g, p0 = grads[n], before[n]
        if optimizer == "adamw":
            expected = p0 * (1 - lr * wd) - lr * g / (g.abs() + 1e-8)
        else:
            expected = p0 - lr * (g + wd * p0) / ((g + wd * p0).abs() + 1e-8)
        assert torch.allclose(p.detach(), expected, atol=1e-6), n


def test_nan_loss_raises_naming_the_step_and_task():
    problem = small_problem()
    bad = problem.tasks[1].train
    bad.x[:] = float("nan")
    cfg = TrainConfig(epochs=1, batch_size=16, sampler="round_robin")
    trainer = make_trainer(make_model(problem), problem, cfg)
    with pytest.raises(MtlshareError, match=r"step 1 on task 't2'"):
        trainer.fit()


def test_nan_loss_in_a_single_step_names_the_global_step():
    problem = small_problem()
    trainer = make_trainer(make_model(problem), problem, TrainConfig())
    trainer.global_step = 7
    x = torch.full((4, 4), float("nan"))
    with pytest.raises(MtlshareError, match=r"step 7 on task 't1'"):
        trainer.step(trainer.make_optimizer(), "t1", x, torch.zeros(4))


# -- TrainConfig -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("epochs", 0),
        ("batch_size", 0),
        ("eval_batch_size", 0),
        ("steps_per_epoch", -1),
        ("patience", -1),
        ("grad_clip", -0.5),
        ("weight_decay", -1e-4),
        ("optimizer", "rmsprop"),
        ("lr", 0.0),
        ("sampler", "zipf"),
    ],
)
def test_train_config_validate_names_the_key(field, value):
    TrainConfig().validate()
    with pytest.raises(ConfigError, match=rf"train\.{field}"):
        TrainConfig(**{field: value}).validate()


def test_steps_per_epoch_default_is_the_number_of_batches():
    problem = small_problem(n_train=40)  # 2 tasks x ceil(40 / 16) = 6 steps
    trainer = make_trainer(make_model(problem), problem, TrainConfig(batch_size=16))
    assert trainer.steps_per_epoch(["t1", "t2"]) == 6
    fitted = make_trainer(
        make_model(problem), problem, TrainConfig(epochs=1, batch_size=16, steps_per_epoch=5)
    )
    fitted.fit()
    assert fitted.global_step == 5


def test_an_empty_batch_gives_a_zero_loss_not_nan():
    """Under torchrun a process can get no example of the last, smaller global batch."""
    from mtlshare.tasks.task import Task

    for task, target in (
        (Task("r", "regression"), torch.zeros(0)),
        (Task("c", "classification", 3, "accuracy"), torch.zeros(0, dtype=torch.long)),
    ):
        out = torch.zeros(0, task.out_dim, requires_grad=True)
        loss = task.loss(out, target)
        assert float(loss.detach()) == 0.0
        loss.backward()
