"""Tests a mutation review of the application layer found missing: each fails with a small
change to the code that a real bug could make."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from torch import nn

from mtlshare.app.predict import load_run
from mtlshare.cli import main
from mtlshare.errors import ConfigError, MtlshareError


@pytest.fixture(scope="module")
def tagging_run(tmp_path_factory: pytest.TempPathFactory, tagger_config: str) -> Path:
    """A tiny part-of-speech tagger, trained for one epoch on four sentences."""
    base = tmp_path_factory.mktemp("tagging")
    (base / "train.txt").write_text("the DT\ncat NN\n\na DT\ndog NN\n\nthe DT\ndog NN\n")
    (base / "dev.txt").write_text("a DT\ncat NN\n")
    (base / "run.toml").write_text(tagger_config)
    assert main(["run", str(base / "run.toml"), "--out", str(base / "run"), "--quiet"]) == 0
    return base / "run"


@pytest.mark.parametrize("bad", [[0, 2], [3, 2]], ids=["empty row", "longer than x"])
def test_predict_refuses_lengths_outside_one_to_the_width_of_x(tagging_run, tmp_path, bad):
    """A length of 0 or one past x's width was predicted (all -100, or a shape error deep in
    the model) instead of the one line naming ``lengths``."""
    run = load_run(tagging_run)
    text = tmp_path / "s.txt"
    text.write_text("the cat\na dog\n")
    x, lengths = run.codec.encode(run.codec.read(text, "auto"))
    assert x.shape[:2] == (2, 2) and lengths.tolist() == [2, 2]
    assert run.predict("pos", x, lengths).shape[:2] == (2, 2)
    assert run.predict("pos", x, torch.tensor([1, 2])).shape[0] == 2  # the bounds themselves
    with pytest.raises(MtlshareError, match=r"^lengths: expected one length in 1\.\.2 per row"):
        run.predict("pos", x, torch.tensor(bad))


def test_predict_on_a_tagger_says_what_is_wrong_with_ids_and_lengths(tagging_run, tmp_path):
    """Ids of a dtype an embedding cannot read (uint8), no positions, lengths as a list or as
    floats: one line each (torch's embedding error, ``min(): Expected reduction dim``, an
    AttributeError, or floats taken silently); a length out of range names the values."""
    run = load_run(tagging_run)
    text = tmp_path / "s.txt"
    text.write_text("the cat\na dog\n")
    x, lengths = run.codec.encode(run.codec.read(text, "auto"))
    expected = run.predict("pos", x, lengths)
    assert torch.equal(run.predict("pos", x.to(torch.int32), lengths), expected)
    for ids, args, message in (
        (x.to(torch.uint8), (lengths,), r"^x: torch\.uint8; this run reads integer ids"),
        (
            x[:, :0],
            (),
            r"^x: shape \(2, 0, \d+\); this run reads 3-d inputs with at least one "
            r"row and one position$",
        ),
        (x, ([2, 2],), r"^lengths: a list; predict takes a torch\.Tensor of integers$"),
        (x, (lengths.float(),), r"^lengths: torch\.float32; predict takes integer lengths$"),
        (
            x,
            (torch.tensor([2, 3]),),
            r"^lengths: expected one length in 1\.\.2 per row of x "
            r"\(2\), got 2\.\.3$",
        ),
        (x, (torch.tensor([2]),), r"got shape \(1,\)$"),
    ):
        with pytest.raises(MtlshareError, match=message):
            run.predict("pos", ids, *args)


def test_a_cuda_index_one_past_the_last_gpu_is_refused_by_name(synthetic_run, monkeypatch):
    """With two GPUs, cuda:1 is the last; cuda:2 says how many torch sees (it was let through
    to torch's own error while the model moved)."""
    import mtlshare.app.predict as predict_module

    monkeypatch.setattr(predict_module.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(predict_module.torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        MtlshareError, match=r"'cuda:2' but torch sees 2 GPU\(s\): cuda:0 to cuda:1"
    ):
        load_run(synthetic_run, device="cuda:2")


def test_a_train_run_from_python_reads_relative_data_paths_from_the_config_folder(
    tmp_path, monkeypatch, tagger_config
):
    """As ``mtlshare run`` does, whatever the working directory (``cfg.base_dir``)."""
    from mtlshare.app.run import run
    from mtlshare.config import load_config

    (tmp_path / "train.txt").write_text("the DT\ncat NN\n\na DT\ndog NN\n")
    (tmp_path / "dev.txt").write_text("a DT\ncat NN\n")
    (tmp_path / "run.toml").write_text(tagger_config)
    cfg = load_config(tmp_path / "run.toml")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # train.txt does not exist from here
    results = run(cfg, tmp_path / "out", progress=False)
    assert "pos" in results["tasks"]


def _forgets_its_heads(backbone, tasks, config):
    """A mechanism of one's own whose task_parameters leave out the heads."""
    from mtlshare.sharing.base import SharingModel, run_layers

    class ForgetsItsHeads(SharingModel):
        def __init__(self) -> None:
            super().__init__(tasks)
            self.stem, self.trunk = backbone.stem(), backbone.layers()
            out = backbone.out_dims[-1]
            self.heads = nn.ModuleDict({t.name: t.build_head(out) for t in tasks})

        def forward(self, x: torch.Tensor, task: str) -> torch.Tensor:
            return self.heads[task](run_layers(self.trunk, self.stem(x)))

        def shared_parameters(self) -> Iterator[nn.Parameter]:
            yield from self.trunk.parameters()

        def task_parameters(self, task: str) -> Iterator[nn.Parameter]:
            return iter(())

    return ForgetsItsHeads()


def test_a_mechanism_leaving_parameters_out_of_its_groups_is_refused_before_training(
    tmp_path, monkeypatch
):
    """Its heads would train with the optimizer never told of them (counts that do not add
    up, heads that never learn): refused when the model is built, before --out."""
    from mtlshare.app.run import run
    from mtlshare.config import load_config
    from mtlshare.registry import MECHANISMS, Entry

    MECHANISMS.names()
    monkeypatch.setitem(
        MECHANISMS._entries, "mine", Entry("mine", _forgets_its_heads, None, "", "")
    )
    demo = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"
    cfg = load_config(demo, ["mechanism=mine", "train.epochs=1"])
    with pytest.raises(ConfigError, match=r"'mine': \d+ parameter\(s\) in neither"):
        run(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_evaluate_warns_of_unseen_tags_of_the_runs_tasks_only(tmp_path, capsys, tagger_config):
    """A run of one task (``tasks = ["pos"]``) over data with two tables: an unseen tag of the
    task it did not train counts in none of its scores, so evaluate says nothing of it."""
    (tmp_path / "train.txt").write_text("the DT B-NP\ncat NN I-NP\n\na DT B-NP\ndog NN I-NP\n")
    (tmp_path / "dev.txt").write_text("a DT B-NP\ncat NN I-NP\n")
    (tmp_path / "test.txt").write_text("a DT B-NP\ncat NN B-XP\n")
    config = tagger_config.replace('test = "dev.txt"', 'test = "test.txt"\nunseen_tags = "map"')
    config = config.replace('["word", "pos"]', '["word", "pos", "chunk"]')
    config = 'tasks = ["pos"]\n' + config + '\n[data.tasks.chunk]\ncolumn = "chunk"\n'
    (tmp_path / "run.toml").write_text(config)
    folder = tmp_path / "run"
    assert main(["run", str(tmp_path / "run.toml"), "--out", str(folder), "--quiet"]) == 0
    capsys.readouterr()
    assert main(["evaluate", str(folder)]) == 0
    assert "never seen" not in capsys.readouterr().err


@pytest.mark.parametrize("dtype", [torch.bool, torch.complex64])
def test_predict_refuses_ids_of_a_dtype_that_is_not_integer(tagging_run, tmp_path, dtype):
    """Booleans and complex numbers are no word ids: one line, not torch's traceback from the
    embedding."""
    run = load_run(tagging_run)
    text = tmp_path / "s.txt"
    text.write_text("the cat\n")
    x, lengths = run.codec.encode(run.codec.read(text, "auto"))
    with pytest.raises(MtlshareError, match=r"^x: torch\.(bool|complex64); this run reads integer"):
        run.predict("pos", x.to(dtype), lengths)


def test_a_model_is_built_from_its_seed_whatever_the_caller_drew_before():
    """``build_model`` draws a run's initial weights from ``cfg.seed``: two runs of one config in
    one process (a comparison's, a script's) start from the same weights whatever was drawn
    before them, and another seed starts elsewhere (the seeding moved out of ``build_network``,
    which ``load_run`` calls with its own generator)."""
    from mtlshare.app.build import build_model, build_problem
    from mtlshare.config import load_config

    demo = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"
    cfg = load_config(demo, ["data.n_dev=20", "data.n_test=20"])
    problem = build_problem(cfg)
    torch.manual_seed(1)
    first = build_model(cfg, problem).state_dict()
    torch.rand(5)
    again = build_model(cfg, problem).state_dict()
    other = build_model(cfg.replace(seed=1), problem).state_dict()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)
