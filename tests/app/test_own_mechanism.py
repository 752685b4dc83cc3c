"""A mechanism of one's own that breaks the interface the README documents (A mechanism or a
data source of your own) is refused in one line naming it and what was expected: a parameter
in two groups, no ``self.heads`` or a ``regularizer`` of another signature when the model is
built (before ``--out``); a regularizer that is no scalar >= 0 at its first step; a ``report``
that ``results.json`` cannot hold before anything of the run's results is written. Each was
found accepted (counts that come out wrong, a ``predict`` that fails after training) or a
traceback."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
import torch
from torch import Tensor, nn

import mtlshare
from mtlshare.app.build import check_mechanism, check_parameter_groups
from mtlshare.app.run import checked_report
from mtlshare.cli import main
from mtlshare.config import Config, from_dict
from mtlshare.data.datasets import Problem, Split, TaskData
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.models.trunks import Backbone, TrunkConfig, backbone_from_config
from mtlshare.registry import MECHANISMS, Entry
from mtlshare.sharing.base import SharingModel, StructureTrainer, run_layers
from mtlshare.tasks.task import Task
from mtlshare.training.objective import LossWeighting, Objective, WeightingConfig, check_penalty

PARTS = (slice(0, 48), slice(48, 64), slice(64, 80))  # train, dev, test


class Mine(SharingModel):
    """Hard sharing written to the README's interface; the tests break one member each."""

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: object = None) -> None:
        super().__init__(tasks)
        self.stem, self.trunk = backbone.stem(), backbone.layers()
        self.heads = nn.ModuleDict({t.name: t.build_head(backbone.out_dims[-1]) for t in tasks})

    def forward(self, x: Tensor, task: str) -> Tensor:
        return self.heads[task](run_layers(self.trunk, self.stem(x)))

    def shared_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.stem.parameters()
        yield from self.trunk.parameters()

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.heads[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.heads.parameters()


def problem() -> Problem:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(80, 5, generator=g)
    value = x @ torch.randn(5, generator=g)
    kind = (x[:, 0] > x[:, 1]).long()
    return Problem(
        [
            TaskData(Task("value", "regression"), *(Split(x[p], value[p]) for p in PARTS)),
            TaskData(
                Task("kind", "classification", out_dim=2, metric="accuracy"),
                *(Split(x[p], kind[p]) for p in PARTS),
            ),
        ],
        input_dim=5,
    )


def config(**train: Any) -> Config:
    return from_dict(
        {
            "mechanism": "mine",
            "data": {"source": "custom"},
            "trunk": {"hidden": [8]},
            "train": {"epochs": 2, **train},
        }
    )


@pytest.fixture
def register(monkeypatch: pytest.MonkeyPatch):
    """Register a class as the mechanism ``mine`` for this test only."""

    def put(cls: type[SharingModel]) -> None:
        MECHANISMS.names()  # the library's own first
        monkeypatch.setitem(MECHANISMS._entries, "mine", Entry("mine", cls, None, "", ""))

    return put


def tiny_model(cls: type[SharingModel]) -> SharingModel:
    backbone = backbone_from_config(TrunkConfig(hidden=[4]), 3, None)
    return cls(backbone, [Task("a", "regression"), Task("b", "regression")])


# -- parameter groups ---------------------------------------------------------------------------
class SharedAlsoTheTasks(Mine):
    """The trunk yielded by shared_parameters() and by every task's group: task_specific
    came out 0 (a shared parameter counts as shared only)."""

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.trunk.parameters()
        yield from self.heads[task].parameters()


class OneHeadForTwo(Mine):
    """Task a's head yielded by task b's group too."""

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.heads[task].parameters()
        if task == "b":
            yield from self.heads["a"].parameters()


def test_a_parameter_in_the_shared_group_and_a_tasks_is_refused_by_name() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^mechanism 'mine': 2 parameter\(s\) in shared_parameters\(\) and "
        r"task_parameters\('a'\): trunk\.0\.linear\.weight, trunk\.0\.linear\.bias; ",
    ):
        check_parameter_groups("mine", tiny_model(SharedAlsoTheTasks))


def test_a_parameter_in_two_tasks_groups_is_refused_by_name() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^mechanism 'mine': 2 parameter\(s\) in task_parameters\('a'\) and "
        r"task_parameters\('b'\): heads\.a\.weight, heads\.a\.bias; ",
    ):
        check_parameter_groups("mine", tiny_model(OneHeadForTwo))


def test_a_run_of_a_mechanism_with_a_parameter_in_two_groups_is_refused_before_out(
    tmp_path: Path, register
) -> None:
    register(SharedAlsoTheTasks)
    with pytest.raises(ConfigError, match=r"in shared_parameters\(\) and task_parameters"):
        mtlshare.run(config(), tmp_path / "run", problem=problem(), progress=False)
    assert not (tmp_path / "run").exists()


class TrunkInAAndHeadAInB(Mine):
    """Two kinds of overlap: the trunk in the shared group and task a's, task a's head in task
    b's group too; the first kind is named, with its own count."""

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        if task == "a":
            yield from self.trunk.parameters()
        yield from self.heads[task].parameters()
        if task == "b":
            yield from self.heads["a"].parameters()


class HeadTwiceInItsGroup(Mine):
    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.heads[task].parameters()
        yield from self.heads[task].parameters()  # the same group twice: still one group


class ThreeLeftOut(Mine):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: object = None) -> None:
        super().__init__(backbone, tasks, cfg)
        self.extra = nn.Linear(2, 2)
        self.scale = nn.Parameter(torch.ones(1))


class OutHead(nn.Module):
    """A head with an ``out`` projection, as a tied head has; this one is tied to nothing."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.out = nn.Linear(dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        return self.out(x)


class OutHeadForTwo(OneHeadForTwo):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: object = None) -> None:
        super().__init__(backbone, tasks, cfg)
        self.heads = nn.ModuleDict({t.name: OutHead(backbone.out_dims[-1]) for t in tasks})


def test_only_the_first_kind_of_overlap_is_counted_and_named() -> None:
    with pytest.raises(
        ConfigError,
        match=r"^mechanism 'mine': 2 parameter\(s\) in shared_parameters\(\) and "
        r"task_parameters\('a'\): trunk\.0\.linear\.weight, trunk\.0\.linear\.bias; ",
    ):
        check_parameter_groups("mine", tiny_model(TrunkInAAndHeadAInB))


def test_a_parameter_yielded_twice_by_one_group_is_in_one_group() -> None:
    check_parameter_groups("mine", tiny_model(HeadTwiceInItsGroup))


def test_three_parameters_left_out_are_all_named_with_no_dots_after() -> None:
    with pytest.raises(
        ConfigError,
        match=r"task_parameters\(task\): scale, extra\.weight, extra\.bias; every parameter",
    ):
        check_parameter_groups("mine", tiny_model(ThreeLeftOut))


def test_a_head_with_an_out_projection_tied_to_nothing_is_no_exception() -> None:
    """Only a task with ``tie_embedding`` may have its projection in two groups."""
    with pytest.raises(
        ConfigError,
        match=r"^mechanism 'mine': 2 parameter\(s\) in task_parameters\('a'\) and "
        r"task_parameters\('b'\): heads\.a\.out\.weight, heads\.a\.out\.bias; ",
    ):
        check_parameter_groups("mine", tiny_model(OutHeadForTwo))


# -- heads ----------------------------------------------------------------------------------------
class HeadsElsewhere(Mine):
    """Its heads in ``self.outputs``: it trained, then ``load_run(...).predict`` failed."""

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: object = None) -> None:
        super().__init__(backbone, tasks, cfg)
        self.outputs = self.heads
        del self.heads

    def forward(self, x: Tensor, task: str) -> Tensor:
        return self.outputs[task](run_layers(self.trunk, self.stem(x)))

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.outputs[task].parameters()

    def uncounted_parameters(self) -> Iterator[nn.Parameter]:
        yield from self.outputs.parameters()


class HeadsOfSomeTasks(Mine):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: object = None) -> None:
        super().__init__(backbone, tasks, cfg)
        self.others = nn.ModuleDict({"b": self.heads.pop("b")})

    def forward(self, x: Tensor, task: str) -> Tensor:
        head = self.heads[task] if task in self.heads else self.others[task]
        return head(run_layers(self.trunk, self.stem(x)))

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from (self.heads[task] if task in self.heads else self.others[task]).parameters()


class HeadsInAList(Mine):
    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: object = None) -> None:
        super().__init__(backbone, tasks, cfg)
        self.order = [t.name for t in tasks]
        self.heads = nn.ModuleList(self.heads.values())  # type: ignore[assignment]

    def forward(self, x: Tensor, task: str) -> Tensor:
        return self.heads[self.order.index(task)](run_layers(self.trunk, self.stem(x)))

    def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
        yield from self.heads[self.order.index(task)].parameters()


def test_heads_in_another_container_than_a_module_dict_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"^mechanism 'mine': self\.heads is a ModuleList; "):
        check_mechanism("mine", tiny_model(HeadsInAList))


def test_a_mechanism_without_self_heads_is_refused_before_out(tmp_path: Path, register) -> None:
    register(HeadsElsewhere)
    with pytest.raises(ConfigError, match=r"^mechanism 'mine': self\.heads is missing; "):
        mtlshare.run(config(), tmp_path / "run", problem=problem(), progress=False)
    assert not (tmp_path / "run").exists()


def test_heads_that_miss_a_task_are_refused_by_name() -> None:
    with pytest.raises(ConfigError, match=r"^mechanism 'mine': self\.heads has no head of 'b'"):
        check_mechanism("mine", tiny_model(HeadsOfSomeTasks))


# -- the regularizer ------------------------------------------------------------------------------
class NoArguments(Mine):
    def regularizer(self) -> Tensor:  # type: ignore[override]
        return torch.zeros(())


def test_a_regularizer_of_another_signature_is_refused_before_out(tmp_path: Path, register) -> None:
    register(NoArguments)
    with pytest.raises(
        ConfigError,
        match=r"^mechanism 'mine': regularizer\(\) cannot take the training loop's calls, "
        r"regularizer\(task, every\) and regularizer\(None\); define it as "
        r"def regularizer\(self, task=None, every=1\.0\)",
    ):
        mtlshare.run(config(), tmp_path / "run", problem=problem(), progress=False)
    assert not (tmp_path / "run").exists()


class NoEvery(Mine):
    def regularizer(self, task: str | None = None) -> Tensor:  # type: ignore[override]
        return torch.zeros(())


class NoDefaults(Mine):
    def regularizer(self, task: str | None, every: float) -> Tensor:  # type: ignore[override]
        return torch.zeros(())


@pytest.mark.parametrize("cls", [NoEvery, NoDefaults], ids=["(task)", "(task, every)"])
def test_a_regularizer_that_takes_only_one_of_the_two_calls_is_refused(
    cls: type[SharingModel],
) -> None:
    """``(task)`` takes ``regularizer(None)`` but not an alternate step's ``(task, every)``;
    ``(task, every)`` without defaults the other way round."""
    with pytest.raises(ConfigError, match=r"^mechanism 'mine': regularizer\(task.*cannot take"):
        check_mechanism("mine", tiny_model(cls))


class BuiltinRegularizer(Mine):
    """A regularizer that is a builtin without a signature inspect can read (``max``)."""

    regularizer = max  # type: ignore[assignment]


def test_a_regularizer_without_a_readable_signature_is_refused_as_taking_no_calls() -> None:
    """Neither its signature nor its parameters can be read: it is refused as one of no
    parameters, in one line, not with inspect's ValueError."""
    with pytest.raises(
        ConfigError,
        match=r"^mechanism 'mine': regularizer\(\) cannot take the training loop's calls, ",
    ):
        check_mechanism("mine", tiny_model(BuiltinRegularizer))


class NotAScalar(Mine):
    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        return torch.stack([p.square().sum() for p in self.trunk.parameters()])


class Negative(Mine):
    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        return -sum(p.square().sum() for p in self.trunk.parameters())  # type: ignore[return-value]


class AFloat(Mine):
    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        return 0.0  # type: ignore[return-value]


@pytest.mark.parametrize("schedule", ["alternate", "joint"])
@pytest.mark.parametrize(
    ("cls", "what"),
    [
        (NotAScalar, r"a tensor of shape \(2,\)"),
        (Negative, r"-[\d.e+]+"),
        (AFloat, r"a float"),
    ],
    ids=["not a scalar", "negative", "not a tensor"],
)
def test_a_regularizer_that_is_no_scalar_at_least_zero_stops_the_first_step(
    tmp_path: Path, register, cls: type[SharingModel], what: str, schedule: str
) -> None:
    """Checked on its first value of each kind of call (an alternate step's, a joint step's),
    not at every step."""
    register(cls)
    call = r"regularizer\(None\)" if schedule == "joint" else r"regularizer\('\w+', [\d.]+\)"
    with pytest.raises(
        MtlshareError,
        match=rf"^mechanism 'mine': {call} gave {what}; it must be a finite scalar tensor >= 0",
    ):
        mtlshare.run(config(schedule=schedule), tmp_path / "run", problem=problem(), progress=False)


class Scripted(Mine):
    """A regularizer that gives the values of ``penalties`` in turn."""

    def __init__(self, backbone: Backbone, tasks: list[Task], cfg: object = None) -> None:
        super().__init__(backbone, tasks, cfg)
        self.penalties: list[float] = []

    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        return torch.tensor(self.penalties.pop(0))


@pytest.mark.parametrize(
    ("penalty", "what"),
    [
        (torch.tensor(math.inf), "inf"),
        (torch.tensor(math.nan), "nan"),
        (torch.tensor(-1e-6), "-1e-06"),
        (torch.ones(1), r"a tensor of shape \(1,\)"),
    ],
    ids=["inf", "nan", "just below 0", "one value, not a scalar"],
)
def test_a_penalty_is_a_finite_scalar_at_least_zero(penalty: Tensor, what: str) -> None:
    model = tiny_model(Mine)
    check_penalty(model, torch.tensor(0.0), "regularizer(None)")  # 0 is a penalty: none
    with pytest.raises(
        MtlshareError, match=rf"^mechanism 'Mine': regularizer\(None\) gave {what};"
    ):
        check_penalty(model, penalty, "regularizer(None)")


def test_the_regularizer_is_checked_on_the_first_value_of_each_kind_of_call() -> None:
    """A task's share is checked on its first value only (a check per step would cost a sync
    per step); the first whole penalty, regularizer(None), is checked on its own."""
    data = problem()
    names = [td.task.name for td in data.tasks]
    model = Scripted(
        backbone_from_config(TrunkConfig(hidden=[4]), 5, None), [td.task for td in data.tasks]
    )
    objective = Objective(model, LossWeighting(names, WeightingConfig()), data)
    model.penalties = [1.0, -1.0, -2.0]
    assert float(objective.regularizer("value", 2.0)) == 1.0
    assert float(objective.regularizer("value", 2.0)) == -1.0  # not checked again
    with pytest.raises(MtlshareError, match=r"regularizer\(None\) gave -2;"):
        objective.regularizer(None)


class Counting(Mine):
    """A regularizer whose n-th call gives n: the mean a record holds tells which calls it read."""

    calls = 0

    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        self.calls += 1
        return torch.tensor(float(self.calls))


class SearchingFirst(Counting):
    """Trains 5 steps in ``prepare``, as a structure search does, before the first epoch."""

    def prepare(self, trainer: StructureTrainer) -> None:
        trainer.train_steps(list(self.tasks), 5)


@pytest.mark.parametrize("cls", [Counting, SearchingFirst])
@pytest.mark.parametrize("schedule", ["alternate", "joint"])
def test_metrics_record_the_mean_penalty_of_each_epochs_steps(
    tmp_path: Path, register, schedule: str, cls: type[Counting]
) -> None:
    """``train_penalty`` is the mean of the regularizer terms the epoch's steps added: the
    epoch's own (not a search's before it, nor an earlier epoch's), one per step, alternate
    or joint."""
    register(cls)
    mtlshare.run(
        config(schedule=schedule, epochs=3, batch_size=8),
        tmp_path / "run",
        problem=problem(),
        progress=False,
    )
    lines = (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    records = [json.loads(line) for line in lines]
    steps = 12 if schedule == "alternate" else 6  # 48 rows of each of two tasks, batches of 8
    before = 5 if cls is SearchingFirst else 0  # the search's steps are alternate ones
    assert [r["train_penalty"] for r in records] == [
        before + (epoch - 1) * steps + (steps + 1) / 2 for epoch in (1, 2, 3)
    ]


def test_metrics_record_no_penalty_for_a_mechanism_without_a_regularizer(
    tmp_path: Path, register
) -> None:
    register(Mine)
    mtlshare.run(config(), tmp_path / "run", problem=problem(), progress=False)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines and all("train_penalty" not in json.loads(line) for line in lines)


class Zero(Mine):
    """A regularizer that adds 0 at every step, as soft sharing does at weight 0."""

    def regularizer(self, task: str | None = None, every: float = 1.0) -> Tensor:
        return torch.zeros(())


def test_metrics_record_a_penalty_of_zero_as_zero(tmp_path: Path, register) -> None:
    """A regularizer that added 0 still added a term: ``train_penalty`` is 0.0, not left out
    as for a mechanism without a regularizer (None, not any falsy value, means none)."""
    register(Zero)
    mtlshare.run(config(), tmp_path / "run", problem=problem(), progress=False)
    lines = (tmp_path / "run" / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(json.loads(line)["train_penalty"] == 0.0 for line in lines)


def test_take_penalty_is_the_mean_of_the_terms_since_the_last_read() -> None:
    """From a new objective, then from each read: the mean of the regularizer terms added
    (a task's share or the whole), None when none was."""
    data = problem()
    names = [td.task.name for td in data.tasks]
    model = Scripted(
        backbone_from_config(TrunkConfig(hidden=[4]), 5, None), [td.task for td in data.tasks]
    )
    objective = Objective(model, LossWeighting(names, WeightingConfig()), data)
    model.penalties = [1.0, 3.0, 5.0]
    objective.regularizer("value", 2.0)
    objective.regularizer(None)
    assert objective.take_penalty() == 2.0  # (1 + 3) / 2: the terms since the objective began
    assert objective.take_penalty() is None  # read: none since
    objective.regularizer("kind", 2.0)
    assert objective.take_penalty() == 5.0


# -- report ---------------------------------------------------------------------------------------
def circular() -> dict[str, Any]:
    loop: dict[str, Any] = {}
    loop["again"] = loop
    return loop


class Reports(Mine):
    extra: ClassVar[Any] = {}

    def report(self) -> Any:
        return self.extra


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (
            {"mine": {"scale": torch.tensor(1.0)}},
            r"report\(\)\['mine'\] is not JSON-serialisable \(Object of type Tensor",
        ),
        ({"tasks": {"value": 1.0}}, r"report\(\) gives 'tasks', a key of results\.json's own"),
        ({"params": 3, "mine": 1}, r"report\(\) gives 'params', a key of results\.json's own"),
        ([("mine", 1.0)], r"report\(\) gave a list; it must be a dict"),
        (
            {"mine": circular()},
            r"report\(\)\['mine'\] is not JSON-serialisable \(Circular reference detected",
        ),  # json's ValueError, not its TypeError: a traceback if only the TypeError is caught
    ],
    ids=["a tensor", "tasks", "params", "not a dict", "circular"],
)
def test_a_report_results_json_cannot_hold_is_refused_before_results_are_written(
    tmp_path: Path, register, extra: Any, message: str
) -> None:
    """It was a traceback with no results.json (a tensor), or it overwrote the run's own
    results and crashed after (``tasks``). The training is kept: fixed, ``--resume`` ends the
    run from its last checkpoint without training again."""
    register(type("Bad", (Reports,), {"extra": extra}))
    with pytest.raises(MtlshareError, match=rf"^mechanism 'mine': {message}"):
        mtlshare.run(config(), tmp_path / "run", problem=problem(), progress=False)
    assert not (tmp_path / "run" / "results.json").exists()
    register(type("Fixed", (Reports,), {"extra": {"mine": {"scale": 1.0}}}))
    results = mtlshare.run(
        config(), tmp_path / "run", problem=problem(), progress=False, resume=True
    )
    assert results["mine"] == {"scale": 1.0} and set(results["tasks"]) == {"value", "kind"}
    assert results["epochs_run"] == 2


# the keys ``run_results`` and ``train`` write, some only for some runs (GloVe vectors, a forecast,
# several processes): a report giving one overwrote the run's own or was overwritten by it
RESULTS_KEYS = ["mechanism", "seed", "tasks", "params", "train_seconds", "wall_seconds"]
RESULTS_KEYS += [
    "best_epoch",
    "epochs_run",
    "loss_weights",
    "word_vectors",
    "forecast",
    "processes",
    "machine",
]


@pytest.mark.parametrize("key", RESULTS_KEYS)
def test_every_key_of_results_json_is_refused_in_a_report(key: str) -> None:
    with pytest.raises(MtlshareError, match=rf"report\(\) gives '{key}', a key of results"):
        checked_report("mine", {"mine": 1.0, key: 1.0})
    assert checked_report("mine", {"mine": 1.0}) == {"mine": 1.0}


def test_the_command_line_prints_a_bad_report_in_one_line_exit_2(
    tmp_path: Path, register, capsys: pytest.CaptureFixture[str]
) -> None:
    register(type("Bad", (Reports,), {"extra": {"tasks": "mine"}}))
    demo = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"
    args = ["run", str(demo), "mechanism=mine", "train.epochs=1", "--quiet"]
    assert main([*args, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "'tasks', a key of results.json's own" in err
