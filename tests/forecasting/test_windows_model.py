"""The window forecaster's pieces: every registered mechanism trains on a windows problem, an
untrained network forecasts exactly its base, a horizon step a series never observes keeps the
base (linear head) or the shared forecast (affine head), ``train.keep``, ``trunk.last_activation``
and configs saved before a key existed still resuming."""

from __future__ import annotations

import datetime
import math
from pathlib import Path

import numpy as np
import pytest
import torch

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.app.build import build_model, build_problem
from mtlshare.app.forecast_methods import fit_and_forecast
from mtlshare.app.forecast_pool import train_one
from mtlshare.config import from_dict, same_config
from mtlshare.data.windows import window_scale
from mtlshare.errors import ConfigError
from mtlshare.models.trunks import TrunkConfig, backbone_from_config
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import run_layers
from mtlshare.tasks.task import AffineHead, Task
from mtlshare.training.loop import Trainer
from mtlshare.training.objective import LossWeighting

START = datetime.date(2011, 1, 3)
HORIZON = 21


def write_csv(path: Path, days: int = 200) -> Path:
    rng = np.random.default_rng(0)
    rows = ["date,a,b"]
    for t in range(days):
        day = START + datetime.timedelta(days=t)
        season = math.sin(2 * math.pi * t / 365.25)
        a = math.exp(6 + season + 0.3 * (day.weekday() >= 5) + rng.normal(0, 0.1))
        b = math.exp(4 + 2 * season - 0.3 * (day.weekday() >= 5) + rng.normal(0, 0.1))
        rows.append(f"{day},{a:.3f},{b:.3f}")
    path.write_text("\n".join(rows) + "\n")
    return path


def config(csv: Path, **changes: object):
    raw = {
        "mechanism": "hard",
        "data": {
            "source": "daily_windows",
            "path": str(csv),
            "layout": "wide",
            "series": ["a", "b"],
            "origin": (START + datetime.timedelta(days=150)).isoformat(),
            "horizon": HORIZON,
            "dev_days": 7,
            "context": 14,
            "history": {"b": 30},
        },
        "trunk": {"hidden": [8]},
        "train": {"epochs": 2, "batch_size": 16, "lr": 0.01, "weight_decay": 0.01},
    }
    cfg = from_dict(raw)
    return cfg.replace(**changes) if changes else cfg


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_csv(tmp_path_factory.mktemp("windows") / "s.csv")


def base_forecast(problem, name: str) -> np.ndarray:
    view = problem.meta["forecast"]
    context = view.history[name][view.origin - 14 : view.origin]
    scale = window_scale(context, HORIZON, True, 2)
    return np.expm1(scale.base)


@pytest.mark.parametrize("name", MECHANISMS.names())
def test_every_mechanism_trains_on_windows_and_starts_at_the_base(csv, name):
    cfg = config(csv, mechanism=name)
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    model.eval()
    with torch.no_grad():
        out = model(problem.tasks[1].test.x, "b")
    assert out.shape == (1, HORIZON) and torch.equal(out, torch.zeros_like(out))
    forecast, info = fit_and_forecast(cfg, problem, "b")
    assert forecast.shape == (HORIZON,) and np.isfinite(forecast).all() and (forecast >= 0).all()
    assert info["tasks"] == ["a", "b"] and info["epochs_run"] == 2


def test_a_step_the_series_never_observes_keeps_the_base(csv):
    """b has 30 days: its windows observe at most 30 - 14 - 7 = 9 steps before the dev days, so
    its head's rows for later steps get no gradient; with a zero start they stay exactly 0, weight
    decay included, and the forecast there is the base."""
    cfg = config(csv, **{"train.epochs": 5})
    problem = build_problem(cfg)
    observed = ~torch.isnan(torch.cat([problem.tasks[1].train.y, problem.tasks[1].dev.y]))
    never = (~observed.any(0)).nonzero().flatten()
    assert never.numel() > 0 and int(never[0]) <= 16
    forecast, _ = fit_and_forecast(cfg, problem, "b")
    base = base_forecast(problem, "b")
    np.testing.assert_allclose(forecast[never.numpy()], base[never.numpy()], rtol=1e-6)
    assert not np.allclose(forecast[:3], base[:3])  # the observed steps did learn


def test_affine_head_reads_a_shared_horizon_and_keeps_it_where_unobserved(csv):
    changes = {
        "trunk.hidden": [8, HORIZON],
        "trunk.last_activation": "identity",
        "data.head": "affine",
        "train.epochs": 3,
    }
    cfg = config(csv, **changes)
    problem = build_problem(cfg)
    trained = build_model(cfg, problem)
    assert isinstance(trained.head("b"), AffineHead)
    assert isinstance(trained.shared[-1].act, torch.nn.Identity)
    Trainer(trained, problem, cfg.train, LossWeighting(["a", "b"], cfg.weighting)).fit()
    observed = ~torch.isnan(torch.cat([problem.tasks[1].train.y, problem.tasks[1].dev.y]))
    never = (~observed.any(0)).nonzero().flatten()
    scale, shift = trained.head("b").scale.detach(), trained.head("b").shift.detach()
    assert torch.equal(scale[never], torch.zeros_like(scale[never]))
    assert torch.equal(shift[never], torch.zeros_like(shift[never]))
    trained.eval()
    with torch.no_grad():
        x = problem.tasks[1].test.x
        shared = run_layers(trained.shared, x)
        assert torch.allclose(trained(x, "b")[0, never], shared[0, never])


@pytest.mark.parametrize("mechanism", ["hierarchical", "sparse"])
def test_an_affine_head_read_below_the_top_names_the_layer_its_depth_reads(mechanism):
    """A task supervised at layer 1 of two: the width to change is layer 1's (the last width
    of trunk.hidden, which the error used to name, already fits)."""
    backbone = backbone_from_config(TrunkConfig(kind="mlp", hidden=[8, 5]), 3)
    tasks = [Task("a", "regression"), Task("b", "regression", 5, "mae", head="affine")]
    entry = MECHANISMS[mechanism]
    assert entry.config is not None
    low = entry.config(depths={"b": 1})
    with pytest.raises(ConfigError) as err:
        entry.build(backbone, tasks, low)
    assert f"set width 1 of trunk.hidden, the layer {mechanism}.depths.b = 1 reads, to 5" in str(
        err.value
    )
    entry.build(backbone, tasks, entry.config(depths={"b": 2}))  # the top layer is 5 wide


def test_affine_head_needs_as_many_inputs_as_outputs():
    task = Task("b", "regression", 5, "mae", head="affine")
    with pytest.raises(ConfigError, match=r"set the last width of trunk\.hidden to 5"):
        task.build_head(8)
    with pytest.raises(ConfigError, match="affine head needs a regression task"):
        Task("c", "classification", 3, "accuracy", head="affine")
    head = task.build_head(5)
    x = torch.randn(2, 5)
    assert torch.equal(head(x), x)


def test_keep_last_hands_back_the_last_epoch(csv):
    cfg = config(csv, **{"train.epochs": 4, "train.keep": "last", "train.lr": 0.5})
    problem = build_problem(cfg)
    model = build_model(cfg, problem)
    fit = Trainer(model, problem, cfg.train, LossWeighting(["a", "b"], cfg.weighting)).fit()
    assert fit.best_epoch == 4
    with pytest.raises(ConfigError, match=r"train\.keep"):
        config(csv, **{"train.keep": "first"})


def test_last_activation_only_changes_the_last_layer():
    backbone = backbone_from_config(TrunkConfig(hidden=[4, 3], last_activation="identity"), 5)
    layers = backbone.layers()
    assert isinstance(layers[0].act, torch.nn.ReLU) and isinstance(layers[1].act, torch.nn.Identity)
    with pytest.raises(ConfigError, match="last_activation"):
        TrunkConfig(last_activation="sigmoid").validate()
    with pytest.raises(ConfigError, match="recurrent"):
        TrunkConfig(kind="lstm", last_activation="identity").validate()


def test_a_config_saved_before_a_key_existed_still_resumes(csv):
    current = config(csv).to_toml()
    older = "\n".join(line for line in current.splitlines() if not line.startswith("keep ="))
    assert older != current and same_config(older, current)
    assert not same_config(current.replace("epochs = 2", "epochs = 3"), current)
    assert not same_config(current + "\nunknown_key = 1\n", current)


def test_the_forecast_reads_the_target_s_own_test_window(csv, monkeypatch):
    import mtlshare.app.forecast_methods as methods

    cfg = config(csv)
    problem = build_problem(cfg)
    built = []

    def spy(c, p):
        built.append(build_model(c, p))
        return built[-1]

    monkeypatch.setattr(methods, "build_model", spy)
    forecast, _ = fit_and_forecast(cfg, problem, "b")
    model = built[0].eval()
    with torch.no_grad():
        out = model(problem.tasks[1].test.x, "b").numpy()
        other = model(problem.tasks[0].test.x, "b").numpy()
    np.testing.assert_allclose(forecast, problem.meta["forecast"].decoders["b"](out), rtol=1e-6)
    assert not np.allclose(other, out)  # a's window would give another forecast


def test_the_single_method_trains_the_target_alone(csv):
    cfg = config(csv)
    forecast, info = train_one("single", cfg, build_problem(cfg), "b")
    assert info["tasks"] == ["b"] and forecast.shape == (HORIZON,)
