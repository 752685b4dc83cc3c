"""A run on the user's own tensors (a ``Problem`` passed to ``mtlshare.run``, a config whose
``data.source`` is ``"custom"``) is a run folder like any other: ``load_run`` reads it back in
another process and predicts what the trained model did; inputs the plain codec cannot describe
are refused before training, and what would read data from a ``custom`` config refuses it."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

import mtlshare
from mtlshare.app.build import build_model, build_problem, check_parameter_groups
from mtlshare.config import Config, from_dict
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import ConfigError, DataError, MtlshareError
from mtlshare.models.trunks import Backbone, TrunkConfig, backbone_from_config
from mtlshare.registry import MECHANISMS
from mtlshare.sharing.base import SharingModel, run_layers
from mtlshare.tasks.task import Task

PARTS = (slice(0, 48), slice(48, 64), slice(64, 80))  # train, dev, test


def own_problem(x: torch.Tensor, build_stem: Callable[[], nn.Module] | None = None) -> Problem:
    """Two tasks on the same rows: a value and a class per row (per position of a sequence)."""
    value = x @ torch.randn(x.shape[-1], generator=torch.Generator().manual_seed(1))
    kind = (x[..., 0] > x[..., 1]).long()
    return Problem(
        [
            TaskData(Task("value", "regression"), *(Split(x[p], value[p]) for p in PARTS)),
            TaskData(
                Task("kind", "classification", out_dim=2, metric="accuracy"),
                *(Split(x[p], kind[p]) for p in PARTS),
            ),
        ],
        input_dim=x.shape[-1],
        build_stem=build_stem,
    )


def tiny_config(source: str = "custom") -> Config:
    return from_dict({"data": {"source": source}, "trunk": {"hidden": [8]}, "train": {"epochs": 2}})


READ_BACK = """
import sys
import torch
import mtlshare
run = mtlshare.load_run(sys.argv[1])
x = torch.load(sys.argv[2])
torch.save({t: run.predict(t, x) for t in ("value", "kind")}, sys.argv[3])
"""


def test_a_run_on_own_tensors_is_read_back_in_a_new_process(tmp_path: Path) -> None:
    x = torch.randn(80, 5, generator=torch.Generator().manual_seed(0))
    cfg = tiny_config()
    trained = mtlshare.train(cfg, tmp_path / "run", problem=own_problem(x), progress=False)
    spec = json.loads((tmp_path / "run" / "inference.json").read_text())
    assert spec["data_source"] == "custom"
    assert spec["codec"]["codec"] == "tensor"
    assert spec["codec"]["features"] == ["x0", "x1", "x2", "x3", "x4"]
    trained.model.eval()
    with torch.no_grad():
        expected = {
            "value": trained.model(x, "value").squeeze(-1),
            "kind": trained.model(x, "kind").argmax(-1),
        }
    torch.save(x, tmp_path / "x.pt")
    files = [str(tmp_path / f) for f in ("run", "x.pt", "out.pt")]
    done = subprocess.run(
        [sys.executable, "-c", READ_BACK, *files],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    got = torch.load(tmp_path / "out.pt")
    assert torch.equal(got["value"], expected["value"])
    assert torch.equal(got["kind"], expected["kind"])


@pytest.mark.parametrize(
    ("x", "build_stem", "says"),
    [
        (torch.randn(80, 3, 5), None, "not 3-d inputs"),  # sequences
        (torch.randn(80, 5), nn.Identity, "not inputs an encoder"),
    ],
    ids=["sequences", "encoder"],
)
def test_inputs_the_plain_codec_cannot_read_are_refused_before_training(
    tmp_path: Path, x: torch.Tensor, build_stem: Callable[[], nn.Module] | None, says: str
) -> None:
    cfg = tiny_config()  # the problem passed in names no codec
    cfg = cfg.replace(**({"trunk.kind": "lstm"} if x.dim() == 3 else {}))
    problem = own_problem(x, build_stem)
    with pytest.raises(DataError, match=f"names no codec.*{says}") as refused:
        mtlshare.run(cfg, tmp_path / "run", problem=problem, progress=False)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "run").exists()  # refused before anything was written


class _Steps(nn.Module):
    """An input encoder that makes a sequence of three steps of each row (no ``keeps_rank``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.unsqueeze(1).expand(-1, 3, -1)


class _Rows(nn.Module):
    """An input encoder that keeps a row a row, as the table's category vectors do."""

    keeps_rank = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


@pytest.mark.parametrize(
    ("shape", "build_stem", "says"),
    [
        ((80, 3, 5), None, None),
        ((80, 5), _Steps, None),
        ((80, 5), None, "gives 2-d inputs"),
        ((80, 5), _Rows, "gives 2-d inputs"),
        ((80, 2, 3, 5), None, "gives 4-d inputs"),
    ],
    ids=["sequences", "encoder making sequences", "rows", "encoder keeping rows", "4-d"],
)
@pytest.mark.parametrize("kind", ["lstm", "conv"])
def test_a_sequence_trunk_is_built_on_sequences_or_an_encoder_that_makes_them_only(
    kind: str,
    shape: tuple[int, ...],
    build_stem: Callable[[], nn.Module] | None,
    says: str | None,
) -> None:
    cfg = tiny_config().replace(**{"trunk.kind": kind})
    problem = own_problem(torch.randn(*shape), build_stem)
    if says is None:
        assert isinstance(build_model(cfg, problem), SharingModel)
        return
    with pytest.raises(ConfigError, match=f"trunk.kind = '{kind}' reads sequences.*{says}"):
        build_model(cfg, problem)


def test_a_custom_config_serialises_and_names_no_data_to_read(tmp_path: Path) -> None:
    loaded = from_dict(tomllib.loads(Config().to_toml()))  # Config() names no data source
    assert (loaded.data_source, loaded.data) == ("custom", None)
    assert from_dict(tomllib.loads(loaded.to_toml())).to_toml() == loaded.to_toml()
    with pytest.raises(ConfigError, match=r"unknown key data\.n_tasks; data\.source = 'custom'"):
        from_dict({"data": {"source": "custom", "n_tasks": 2}})
    with pytest.raises(ConfigError, match=r"data\.source = 'custom'.*names no data to read"):
        build_problem(tiny_config())
    with pytest.raises(ConfigError, match=r"data\.source = 'custom'"):
        mtlshare.run(tiny_config(), tmp_path / "run", progress=False)  # no problem=
    assert not (tmp_path / "run").exists()


def test_the_configs_tasks_select_from_own_tensors_as_from_a_data_source(tmp_path: Path) -> None:
    x = torch.randn(80, 5, generator=torch.Generator().manual_seed(0))
    one = tiny_config().replace(tasks=["kind"])
    results = mtlshare.run(one, tmp_path / "one", problem=own_problem(x), progress=False)
    assert list(results["tasks"]) == ["kind"]
    typo = tiny_config().replace(tasks=["kind", "valeu"])
    with pytest.raises(ConfigError, match=r"^tasks: unknown task\(s\) \['valeu'\]"):
        mtlshare.run(typo, tmp_path / "typo", problem=own_problem(x), progress=False)
    assert not (tmp_path / "typo").exists()


def test_a_task_without_an_observed_dev_label_is_refused_before_out(tmp_path: Path) -> None:
    problem = own_problem(torch.randn(80, 5, generator=torch.Generator().manual_seed(0)))
    problem.tasks[1].dev.y[:] = -100
    with pytest.raises(
        DataError, match=r"task\(s\) \['kind'\] have no observed label in their dev"
    ):
        mtlshare.run(tiny_config(), tmp_path / "run", problem=problem, progress=False)
    assert not (tmp_path / "run").exists()


def test_an_infinite_dev_score_stops_the_run_in_one_line(tmp_path: Path) -> None:
    """A dev target of 1e30 is finite, but its squared error is not: no score could beat it, so
    the run would end with no best model kept."""
    problem = own_problem(torch.randn(80, 5, generator=torch.Generator().manual_seed(0)))
    problem.tasks[0].dev.y[3] = 1e30
    with pytest.raises(MtlshareError, match=r"dev score of -inf \(infinite: \['value'\]\)"):
        mtlshare.run(tiny_config(), tmp_path / "run", problem=problem, progress=False)
    # where selection does not read it (another task, or the last epoch kept), the run goes on
    on_kind = tiny_config().replace(**{"train.select_on": "kind"})
    done = mtlshare.run(on_kind, tmp_path / "kind", problem=problem, progress=False)
    assert done["tasks"]["value"]["dev"] == float("inf")
    last = tiny_config().replace(**{"train.keep": "last"})
    assert mtlshare.run(last, tmp_path / "last", problem=problem, progress=False)["best_epoch"] == 2


def test_a_custom_run_without_its_inference_spec_says_nothing_can_rebuild_it(tmp_path: Path):
    x = torch.randn(80, 5, generator=torch.Generator().manual_seed(0))
    mtlshare.run(tiny_config(), tmp_path / "run", problem=own_problem(x), progress=False)
    (tmp_path / "run" / "inference.json").unlink()
    with pytest.raises(MtlshareError, match=r"a Problem passed from Python .* train it again"):
        mtlshare.load_run(tmp_path / "run")


class ForgetsItsHeads(SharingModel):
    """A mechanism of one's own whose task_parameters leave out the heads."""

    def __init__(self, backbone: Backbone, tasks: list[Task]) -> None:
        super().__init__(tasks)
        self.stem, self.trunk = backbone.stem(), backbone.layers()
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})

    def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
        return self.heads[task](run_layers(self.trunk, self.stem(x)))

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.trunk.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        return iter(())


def test_a_mechanism_whose_groups_leave_parameters_out_is_refused_when_built() -> None:
    tasks = [Task("a", "regression"), Task("b", "regression")]
    backbone = backbone_from_config(TrunkConfig(hidden=[4]), 3, None)
    with pytest.raises(
        ConfigError, match=r"'mine': 4 parameter\(s\) in neither .*heads\.a\.weight"
    ):
        check_parameter_groups("mine", ForgetsItsHeads(backbone, tasks))
    for entry in MECHANISMS:  # the library's own pass
        model = entry.build(backbone, tasks, entry.config() if entry.config else None)
        check_parameter_groups(entry.name, model)


def test_a_problem_of_ones_own_needs_a_custom_source_and_the_api_a_config(tmp_path: Path) -> None:
    """A problem given with a config whose ``data.source`` is another (the demo's synthetic
    data) trained on the problem, while the run's files named that source: ``evaluate`` then
    read the synthetic data and failed without saying why. It is refused before anything is
    written; and a path or a dict given for the config is a TypeError saying what to give,
    as a string given for a list is (it was read letter by letter)."""
    problem = own_problem(torch.randn(80, 4))
    with pytest.raises(ConfigError, match=r"reads data source .synthetic.; set data\.source"):
        mtlshare.run(tiny_config("synthetic"), tmp_path / "run", problem=problem, progress=False)
    assert not (tmp_path / "run").exists()
    for call, what in (
        (lambda: mtlshare.run("demo.toml", tmp_path / "a"), "mtlshare.run"),
        (
            lambda: mtlshare.compare({"mechanism": "hard"}, ["hard"], tmp_path / "b"),
            "mtlshare.compare",
        ),
        (lambda: mtlshare.add_task(tmp_path, "demo.toml", tmp_path / "c"), "mtlshare.add_task"),
    ):
        with pytest.raises(
            TypeError, match=f"^{what}: cfg is a mtlshare Config .*not a (str|dict)$"
        ):
            call()
    cfg = tiny_config()
    for call, what in (
        (lambda: mtlshare.compare(cfg, "hard", tmp_path / "d"), "mechanisms"),  # type: ignore[arg-type]
        (lambda: mtlshare.compare(cfg, ["hard"], tmp_path / "d", seeds="0"), "seeds"),  # type: ignore[arg-type]
        (lambda: mtlshare.load_config("x.toml", "train.epochs=5"), "overrides"),  # type: ignore[arg-type]
    ):
        with pytest.raises(TypeError, match=f"{what}: give a list, not the string"):
            call()
    with pytest.raises(MtlshareError, match="seeds: '0' is not a seed"):
        mtlshare.compare(cfg, ["hard"], tmp_path / "d", seeds=["0"])  # type: ignore[list-item]
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("inference", "says"),
    [
        ({"codec": "nope"}, "unknown codec|names no codec|'nope'"),
        ({"codec": "tensor", "features": "abc"}, "abc is not a list of column names"),
        (
            {"codec": "tensor", "features": ["a", "b", "c"]},
            "names 3 features, but the inputs have 4",
        ),
        ({"codec": "tensor", "features": ["a"], "scales": {1j: 2}}, "not JSON"),
    ],
    ids=["unknown codec", "features not a list", "too few features", "not json"],
)
def test_a_codec_spec_load_run_cannot_use_is_refused_before_training(
    tmp_path: Path, inference: dict, says: str
) -> None:
    """A Problem's ``inference`` that names no codec load_run knows, describes it badly, names
    fewer features than the inputs have, or is no JSON (a ``TensorCodec`` given itself, not
    its ``spec()``): the run trained in full and then could not be loaded, or predicted
    nothing, or left a folder holding only its config. One line, before anything is written."""
    x = torch.randn(80, 4, generator=torch.Generator().manual_seed(0))
    problem = own_problem(x)
    problem.inference = inference
    with pytest.raises(DataError, match=f"^Problem.inference: .*({says})") as refused:
        mtlshare.run(tiny_config(), tmp_path / "run", problem=problem, progress=False)
    assert "\n" not in str(refused.value)
    assert not (tmp_path / "run").exists()
    problem.inference = {"codec": "tensor", "features": ["a", "b", "c", "d"]}  # as it should be
    mtlshare.run(tiny_config(), tmp_path / "run", problem=problem, progress=False)
    assert mtlshare.load_run(tmp_path / "run").predict("value", x[:3]).shape == (3,)
