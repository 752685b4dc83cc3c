"""A NaN or an infinity in a mechanism's or the weighting's numbers (``soft.weights``,
``conditioned.descriptors``, ``weighting.weights``, ``sparse.*``, ``weighting.cagrad_c``, the
synthetic data's ``noise``) is refused in one line, exit 2, before the
run's folder is made; it used to pass the ``>= 0`` checks and stop training at its first step
with "loss is nan" (or inf), leaving a half-written folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlshare.cli import main
from mtlshare.training.objective import LossWeighting, WeightingConfig

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        (["mechanism=soft", "soft.weights=[nan]"], "soft.weights"),
        (["mechanism=soft", "soft.weights=[0.1, inf]"], "soft.weights"),
        (["mechanism=conditioned", "conditioned.descriptors={t1 = [nan], t2 = [1.0]}"], "t1"),
        (["mechanism=conditioned", "conditioned.descriptors={t1 = [1.0], t2 = [-inf]}"], "t2"),
        (["weighting.weights={t1 = nan}"], "weighting.weights"),
        (["weighting.weights={t2 = inf}"], "weighting.weights"),
        # NaN passed the ``< 0`` checks: round_epochs=nan was a 37-line traceback from the
        # search, warmup_epochs=nan skipped the warm-up, select_density=nan took the last mask
        (["mechanism=sparse", "sparse.round_epochs=nan"], "sparse.round_epochs"),
        (["mechanism=sparse", "sparse.warmup_epochs=nan"], "sparse.warmup_epochs"),
        (["mechanism=sparse", "sparse.warmup_epochs=inf"], "sparse.warmup_epochs"),
        (["mechanism=sparse", "sparse.select=density", "sparse.select_density=nan"], "density"),
        # never checked: torchjd's traceback at the first joint step (cvxpy's for NaN)
        (
            ["weighting.kind=aggregator", "weighting.aggregator=cagrad", "weighting.cagrad_c=nan"],
            "weighting.cagrad_c",
        ),
        (
            ["weighting.kind=aggregator", "weighting.aggregator=cagrad", "weighting.cagrad_c=-1"],
            "weighting.cagrad_c",
        ),
        (["data.noise=nan"], "data.noise"),
    ],
)
def test_a_non_finite_number_is_one_line_before_the_folder(tmp_path, capsys, overrides, named):
    out = tmp_path / "o"
    argv = ["run", DEMO, *overrides, "train.epochs=1", "--out", str(out), "--quiet"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mtlshare: error:"), err
    assert named in err and "finite" in err, err
    assert not out.exists()


def test_weights_for_a_weighting_that_finds_its_own_are_refused(tmp_path, capsys):
    """``weighting.weights`` beside ``kind = "dwa"`` (or any kind but ``fixed``) was trained on
    silently, the weights unread; it is refused like ``aggregator`` without its kind."""
    out = tmp_path / "o"
    argv = ["run", DEMO, "weighting.kind=dwa", "weighting.weights={t1 = 5.0}", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "weighting.weights" in err and "'dwa'" in err, err
    assert not out.exists()


@pytest.mark.parametrize("command", ["run", "compare"])
@pytest.mark.parametrize("weights", ["{t1 = 0.0, t2 = 0.0}", "{t1 = 0, t2 = 0.0}"])
def test_fixed_weights_that_are_all_zero_are_refused(tmp_path, capsys, command, weights):
    """Every loss times 0 trained nothing, exit 0, and reported the untrained model; one task
    weighed 0 beside another (or beside one not named, which weighs 1) is still a run."""
    out = tmp_path / "o"
    argv = [command, DEMO, f"weighting.weights={weights}", "train.epochs=1", "--out", str(out)]
    argv += ["--mechanisms", "single,hard"] if command == "compare" else []
    assert main([*argv, "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "weighting.weights" in err, err
    assert "at least one > 0" in err, err
    assert not out.exists()
    LossWeighting(["t1", "t2"], WeightingConfig(weights={"t1": 0.0}))  # t2 weighs 1


def test_masks_from_a_folder_without_a_run_names_the_key(tmp_path, capsys):
    out = tmp_path / "o"
    argv = ["run", DEMO, "mechanism=sparse", f"sparse.masks_from={tmp_path / 'none'}"]
    assert main([*argv, "train.epochs=1", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sparse.masks_from: " in err, err
    assert "no complete checkpoint" in err, err
    assert not out.exists()  # its config.toml and inference.json were left


CONLL = str(ROOT / "recipes" / "conll2003" / "quick.toml")
BIKE = str(ROOT / "recipes" / "forecasting" / "bike_sharing.toml")


@pytest.mark.parametrize(
    ("config", "override", "named"),
    [
        # torch's "Overflow when unpacking long long": a 29-line traceback, exit 1
        (DEMO, "data.data_seed=18446744073709551616", "data.data_seed: "),
        (DEMO, "data.data_seed=-1", "data.data_seed: "),  # the data of 2**64 - 1, silently
        (CONLL, "data.embedding_seed=18446744073709551616", "data.embedding_seed: "),
        (CONLL, "data.dev_seed=-3", "data.dev_seed: "),
        (DEMO, "train.threads=100000", "train.threads: "),  # a segfault, exit 139, no message
        # NaN or infinite targets were taken for missing labels: "no observed label in dev"
        (DEMO, "data.scale=nan", "data.scale: "),
        (DEMO, "data.scale=inf", "data.scale: "),
        # the reader's checks did not name the key
        (BIKE, "data.fourier_terms=-1", "data.fourier_terms: "),
        (BIKE, "data.layout='tall'", "data.layout: "),
    ],
)
def test_a_setting_out_of_range_is_one_line_naming_its_key(
    tmp_path, capsys, config, override, named
):
    out = tmp_path / "o"
    assert main(["run", config, override, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mtlshare: error:"), err
    assert named in err, err
    assert not out.exists()
