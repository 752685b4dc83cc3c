"""A figure is an extra: one that cannot be drawn is a one-line warning naming it, and the run's
results, the comparison's tables are written as usual (``mtlshare.app.figures.draw``)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from mtlshare.app.figures import draw
from mtlshare.cli import main

DEMO = Path(__file__).resolve().parents[2] / "recipes" / "demo" / "demo.toml"
SMALL = ["train.epochs=1", "data.n_train=64", "data.n_dev=32", "data.n_test=32"]


def fails(*args, **kwargs):
    raise RuntimeError("no canvas")


def test_draw_returns_the_figure_or_warns_and_returns_none():
    assert draw("a.png", lambda x, y=0: x + y, 1, y=2) == 3
    with pytest.warns(UserWarning, match=r"^a\.png: not drawn \(RuntimeError: no canvas\)$"):
        assert draw("a.png", fails) is None
    with pytest.raises(KeyboardInterrupt), warnings.catch_warnings():
        warnings.simplefilter("error")

        def interrupted():
            raise KeyboardInterrupt

        draw("a.png", interrupted)  # not a plotting error: it stops the command as ever


def test_a_run_whose_figures_fail_still_finishes_with_its_results(tmp_path, capsys, monkeypatch):
    import mtlshare.sharing.gating.plots as gate_plots

    monkeypatch.setattr(gate_plots, "plot_run_gates", fails)
    out = tmp_path / "mmoe"
    assert main(["run", str(DEMO), "--out", str(out), "--quiet", "mechanism=mmoe", *SMALL]) == 0
    assert json.loads((out / "results.json").read_text())["mechanism"] == "mmoe"
    assert not (out / "gates.png").exists()
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "not drawn" in ln]
    assert warned == [f"mtlshare: warning: {out}: the figures: not drawn (RuntimeError: no canvas)"]


def test_a_comparison_whose_curves_fail_writes_its_tables_and_exits_0(
    tmp_path, capsys, monkeypatch
):
    """Runs read back without ``metrics.jsonl`` (kept by hand, say) have no dev curves: the
    comparison was exit 2 after writing its tables, and skipped the gates' figure."""
    out = tmp_path / "cmp"
    args = ["compare", str(DEMO), "--out", str(out), "--quiet", "--mechanisms", "single,mmoe"]
    assert main([*args, "--seeds", "0", *SMALL]) == 0
    for metrics in out.rglob("metrics.jsonl"):
        metrics.unlink()
    for name in ("comparison.json", "comparison.md", "dev_curves.png", "gates.png"):
        (out / name).unlink()
    capsys.readouterr()
    assert main([*args, "--seeds", "0", "--resume", *SMALL]) == 0
    assert (out / "comparison.json").is_file() and (out / "gates.png").is_file()
    assert not (out / "dev_curves.png").exists()
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "not drawn" in ln]
    assert len(warned) == 1 and warned[0].startswith(
        f"mtlshare: warning: {out / 'dev_curves.png'}: not drawn (MtlshareError: "
    ), warned


def test_draws_warning_points_at_the_line_that_asked_for_the_figure():
    """``stacklevel``: Python's warning line names the caller of ``draw``, not ``draw``."""
    with pytest.warns(UserWarning, match="not drawn") as record:
        draw("a.png", fails)
    assert [w.filename for w in record] == [__file__]


def test_a_comparison_whose_gates_figure_fails_writes_its_tables_and_titled_curves(
    tmp_path, capsys, monkeypatch
):
    """The gates' figure of a comparison cannot be drawn: a warning naming it, exit 0, the
    tables and the dev curves written as usual, the curves under the comparison's title."""
    import mtlshare.evaluation.curves as curves_module
    import mtlshare.sharing.gating.plots as gate_plots

    monkeypatch.setattr(gate_plots, "plot_comparison_gates", fails)
    titles = []
    real = curves_module.save_figure

    def keep(fig, path, **kwargs):
        # the figure's own texts hold its suptitle (Figure.get_suptitle is new in matplotlib 3.8)
        titles.append([text.get_text() for text in fig.texts])
        return real(fig, path, **kwargs)

    monkeypatch.setattr(curves_module, "save_figure", keep)
    out = tmp_path / "cmp"
    args = ["compare", str(DEMO), "--out", str(out), "--quiet", "--mechanisms", "single,mmoe"]
    assert main([*args, "--seeds", "0", *SMALL, 'compare.title="gated"']) == 0
    assert (out / "comparison.json").is_file() and (out / "dev_curves.png").is_file()
    assert not (out / "gates.png").exists()
    assert titles == [["gated"]]
    warned = [ln for ln in capsys.readouterr().err.splitlines() if "not drawn" in ln]
    assert warned == [
        f"mtlshare: warning: {out / 'gates.png'}: not drawn (RuntimeError: no canvas)"
    ]
