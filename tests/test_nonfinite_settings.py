"""A NaN or an infinity in a mechanism's or the weighting's numbers (``soft.weights``,
``conditioned.descriptors``, ``weighting.weights``) is refused in one line, exit 2, before the
run's folder is made; it used to pass the ``>= 0`` checks and stop training at its first step
with "loss is nan" (or inf), leaving a half-written folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from mtlshare.cli import main

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
