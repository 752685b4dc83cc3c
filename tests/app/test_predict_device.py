"""Where a trained run predicts: ``load_run(device=...)`` (the CPU by default, wherever the run
was trained), ``evaluate(device=...)`` and ``--device`` of ``mtlshare predict`` and ``evaluate``.

This machine may have no GPU. What is tested without one: the CPU, named as a string or as a
``torch.device``, predicts what the default always did; every batch reaches the model through
``.to(the model's device)`` (inputs that note where they are sent, and a model that notes what
it is given); bad devices are one-line errors; a run trained with ``train.device = "cuda"`` is
used here on the CPU.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import nn

import mtlshare.app.predict as predict_module
from mtlshare.app.predict import evaluate, load_run
from mtlshare.app.run import run
from mtlshare.cli import main
from mtlshare.config import load_config
from mtlshare.errors import MtlshareError
from mtlshare.training.loop import Trainer

ROOT = Path(__file__).resolve().parents[2]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"
QUICK = ROOT / "recipes" / "conll2003" / "quick.toml"
CONLL = ROOT.parent / "shared" / "data" / "conll2003"
needs_conll = pytest.mark.skipif(
    not (CONLL / "train.txt").is_file(),
    reason=f"the real CoNLL-2003 files are not at {CONLL} (../shared/data beside the repository)",
)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tagging_run(tmp_path_factory, first_sentences):
    """A small tagger (NER through a CRF head), tested on 60 of its training sentences."""
    base = tmp_path_factory.mktemp("conll")
    test = first_sentences(CONLL / "train.txt", 60, base / "seen.txt")
    cfg = load_config(
        QUICK,
        [
            f"data.train={CONLL / 'train.txt'}",
            f"data.dev={test}",
            f"data.test={test}",
            "data.train_sentences=200",
            "data.dev_sentences=60",
            "data.unseen_tags=map",
            "data.word_dim=8",
            "data.char_filters=4",
            "data.tasks.ner.head=crf",
            "trunk.hidden=[8]",
            "train.epochs=1",
            "train.batch_size=32",
        ],
    )
    run(cfg, base / "run", progress=False)
    return base / "run", test


class Sent(torch.Tensor):
    """An input that notes where each ``.to`` sends it (its slices are ``Sent`` too)."""

    moves: ClassVar[list[tuple[torch.dtype, tuple[int, ...], torch.device]]] = []

    def to(self, *args, **kwargs):  # type: ignore[override]
        out = super().to(*args, **kwargs)
        Sent.moves.append((self.dtype, tuple(self.shape), out.device))
        return out


class Probe(nn.Module):
    """The run's model, noting each input it is given (passed on as a plain tensor)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = model
        self.inputs: list[tuple[torch.dtype, tuple[int, ...], torch.device]] = []

    def forward(self, x, task):
        self.inputs.append((x.dtype, tuple(x.shape), x.device))
        return self.inner(x.as_subclass(torch.Tensor), task)

    def head(self, task):
        return self.inner.head(task)


def _probed(loaded, batch):
    loaded.config.train.eval_batch_size = batch
    Sent.moves = []
    return dataclasses.replace(loaded, model=Probe(loaded.model))


def test_the_cpu_as_a_string_or_a_device_predicts_what_the_default_does(synthetic_run):
    x = torch.randn(9, load_run(synthetic_run).spec["input_dim"])
    default = load_run(synthetic_run)
    assert default.device == CPU
    expected = default.model(x, "t1").squeeze(-1).detach()  # one batch: the model itself
    for device in ("cpu", CPU, "auto" if not torch.cuda.is_available() else "cpu"):
        loaded = load_run(synthetic_run, device=device)
        assert loaded.device == CPU
        for task in ("t1", "t2"):
            got = loaded.predict(task, x)
            assert got.device == CPU
            assert torch.equal(got, default.predict(task, x))
        assert torch.equal(loaded.predict("t1", x), expected)


def test_each_batch_of_rows_is_sent_to_the_models_device(synthetic_run):
    loaded = load_run(synthetic_run, device=CPU)
    loaded.config.train.eval_batch_size = 3
    x = torch.randn(7, loaded.spec["input_dim"])
    expected = loaded.predict("t2", x)
    probed = _probed(loaded, batch=3)
    got = probed.predict("t2", x.as_subclass(Sent))
    assert torch.equal(got.as_subclass(torch.Tensor), expected) and got.device == CPU
    given = probed.model.inputs
    assert [shape for _, shape, _ in given] == [(3, x.shape[1]), (3, x.shape[1]), (1, x.shape[1])]
    assert all(device == probed.device for _, _, device in given)
    assert sorted(Sent.moves) == sorted(given)  # each reached the model by .to(its device)


@needs_conll
def test_each_batch_of_sentences_and_its_lengths_is_sent_to_the_models_device(tagging_run):
    folder, test = tagging_run
    loaded = load_run(folder, device="cpu")
    assert loaded.tasks["ner"].head == "crf"
    x, lengths = loaded.codec.encode(loaded.codec.read(test, "conll"))
    x, lengths = x[:20], lengths[:20]
    loaded.config.train.eval_batch_size = 8
    expected = {t: loaded.predict(t, x, lengths) for t in ("pos", "ner")}
    for task in ("pos", "ner"):
        probed = _probed(loaded, batch=8)
        got = probed.predict(task, x.as_subclass(Sent), lengths.as_subclass(Sent))
        assert torch.equal(got, expected[task]) and got.device == CPU
        given = probed.model.inputs
        assert len(given) == 3 and all(device == probed.device for _, _, device in given)
        inputs = [m for m in Sent.moves if m[0] == x.dtype]
        assert sorted(inputs) == sorted(given)  # each batch reached the model by .to(its device)
        sent_lengths = [m for m in Sent.moves if m[0] == lengths.dtype]
        assert len(sent_lengths) == 3 and all(d == probed.device for _, _, d in sent_lengths)


def test_evaluate_scores_on_the_device_asked_for(synthetic_run, monkeypatch):
    devices = []

    class Spy(Trainer):
        def __init__(self, *args, **kwargs):
            devices.append(kwargs.get("device"))
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(predict_module, "Trainer", Spy)
    results = json.loads((synthetic_run / "results.json").read_text())["tasks"]
    for device in (CPU, "cpu"):
        scores = evaluate(synthetic_run, device=device)
        assert {t: s["test"] for t, s in scores.items()} == {
            t: r["test"] for t, r in results.items()
        }
    assert devices == [CPU, CPU]


def test_bad_devices_are_one_line_errors(synthetic_run, tmp_path, capsys):
    good = tmp_path / "in.csv"
    width = load_run(synthetic_run).spec["input_dim"]
    good.write_text(",".join(f"x{i}" for i in range(width)) + "\n" + ",".join(["0"] * width))
    out = tmp_path / "out.csv"
    cases = {"gpu0": "is not a device", "meta": "holds no values", "cuda:x": "is not a device"}
    if not torch.cuda.is_available():
        cases.update({"cuda": "torch sees no GPU here", "cuda:1": "torch sees no GPU here"})
    for device, message in cases.items():
        for command in (
            ["predict", str(synthetic_run), str(good), "--out", str(out)],
            ["evaluate", str(synthetic_run)],
        ):
            assert main([*command, "--device", device]) == 2, (device, command[0])
            err = capsys.readouterr().err.strip().splitlines()
            assert len(err) == 1 and err[0].startswith("mtlshare: error: --device:"), err
            assert message in err[0], (device, err)
        assert not out.exists()
        with pytest.raises(MtlshareError, match=message):
            load_run(synthetic_run, device=device)
    with pytest.raises(MtlshareError, match=r"neither a str nor a torch\.device"):
        load_run(synthetic_run, device=0)  # type: ignore[arg-type]
    assert (
        main(["predict", str(synthetic_run), str(good), "--out", str(out), "--device", "cpu"]) == 0
    )


@pytest.mark.skipif(torch.cuda.is_available(), reason="a machine with a GPU can use it")
def test_a_run_trained_on_a_gpu_is_used_here_on_the_cpu(
    synthetic_run, tmp_path, capsys, trained_on_a_gpu
):
    """Its ``config.toml`` says ``train.device = "cuda"``, which ``load_config`` refuses here."""
    copy = trained_on_a_gpu(synthetic_run, tmp_path / "gpu-run")
    loaded = load_run(copy)
    assert loaded.device == CPU and loaded.config.train.device == "auto"
    x = torch.randn(5, loaded.spec["input_dim"])
    assert torch.equal(loaded.predict("t1", x), load_run(synthetic_run).predict("t1", x))
    results = json.loads((copy / "results.json").read_text())["tasks"]
    assert {t: s["test"] for t, s in evaluate(copy).items()} == {
        t: r["test"] for t, r in results.items()
    }
    assert main(["evaluate", str(copy)]) == 0
    assert f"{results['t1']['test']:.6g}" in capsys.readouterr().out
