"""The comparison plot is written as a real PNG, atomically, without a display."""

from __future__ import annotations

import math
import os
import stat

import pytest
from matplotlib.colors import to_hex

from mtlshare.errors import MtlshareError
from mtlshare.evaluation import plots
from mtlshare.evaluation.looks import looks
from mtlshare.evaluation.plots import plot_comparisons, save_figure
from mtlshare.evaluation.report import compare, merge_single


def _result(mechanism, values):
    return {
        "mechanism": mechanism,
        "seed": 0,
        "tasks": {
            name: {"metric": "mse", "higher_is_better": False, "dev": v, "test": v}
            for name, v in values.items()
        },
        "params": {"total": 10, "shared": 5, "task_specific": 5, "counted": 10},
        "train_seconds": 1.0,
    }


def _comparison(t1, t2):
    single = merge_single([_result("single", {"t1": 0.5}), _result("single", {"t2": 0.5})])
    return compare(
        single, [_result("hard", {"t1": t1, "t2": t2}), _result("soft", {"t1": t2, "t2": t1})]
    )


def test_plot_writes_png(tmp_path):
    comparisons = {
        "relatedness 0.9": _comparison(0.4, 0.45),
        "relatedness 0.1": _comparison(0.7, 0.6),
    }
    out = plot_comparisons(comparisons, tmp_path / "figs" / "transfer.png", title="Transfer")
    assert out == tmp_path / "figs" / "transfer.png"
    data = out.read_bytes()
    assert data.startswith(b"\x89PNG")
    assert len(data) > 1000
    # the temporary file was moved into place, not left behind
    assert [p.name for p in out.parent.iterdir()] == ["transfer.png"]


def test_plot_accepts_str_path_and_overwrites(tmp_path):
    target = tmp_path / "one.png"
    target.write_bytes(b"old")
    out = plot_comparisons({"only": _comparison(0.4, 0.6)}, str(target))
    assert out.read_bytes().startswith(b"\x89PNG")


def test_plot_skips_infinite_changes(tmp_path):
    single = merge_single([_result("single", {"t1": 0.0})])
    cmp = compare(single, [_result("hard", {"t1": 0.1})])
    assert math.isinf(cmp["rows"][1]["tasks"]["t1"]["relative_change"])
    out = plot_comparisons({"zero baseline": cmp}, tmp_path / "inf.png")
    assert out.read_bytes().startswith(b"\x89PNG")


def test_plot_rejects_empty(tmp_path):
    with pytest.raises(MtlshareError):
        plot_comparisons({}, tmp_path / "none.png")


def _keep_figure(monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_figure", lambda fig, path, **kw: figures.append(fig))
    return figures


def _bar_colours(fig):
    """{mechanism: face colour} of the bars of every panel."""
    return {
        c.get_label(): to_hex(c.patches[0].get_facecolor())
        for ax in fig.axes
        for c in ax.containers
    }


def test_a_mechanism_has_one_colour_in_every_figure_and_none_is_repeated(monkeypatch, tmp_path):
    """The colours come from ``looks``: ``hard`` alike in a figure of two rows and of many,
    and eleven and more mechanisms (matplotlib's cycle has ten colours) all look different."""
    figures = _keep_figure(monkeypatch)
    plot_comparisons({"a": _comparison(0.4, 0.6)}, tmp_path / "a.png")
    names = [f"m{i}" for i in range(40)]
    many = compare(
        merge_single([_result("single", {"t1": 0.5})]),
        [_result(n, {"t1": 0.4}) for n in ["hard", *names]],
    )
    plot_comparisons({"many": many}, tmp_path / "b.png")
    few, lots = (_bar_colours(f) for f in figures)
    assert few["hard"] == lots["hard"] == looks(["hard"])["hard"].colour
    hatches = {c.get_label(): c.patches[0].get_hatch() for c in figures[1].axes[0].containers}
    assert len({(lots[n], hatches[n]) for n in lots}) == len(lots) == 41


def test_looks_are_fixed_for_known_names_and_distinct_past_the_palette():
    assert looks(["autoets", "hard"]) == {
        "autoets": looks(["autoets"])["autoets"],
        "hard": looks(["x", "hard"])["hard"],
    }
    assert looks(["b", "a"]) == looks(["a", "b"])  # unknown names: sorted, not by order met
    drawn = looks([f"n{i}" for i in range(60)])
    assert len({(lk.colour, lk.linestyle) for lk in drawn.values()}) == 60
    assert len({(lk.colour, lk.hatch) for lk in drawn.values()}) == 60


def test_one_figure_legend_names_the_mechanisms_of_every_panel(monkeypatch, tmp_path):
    """``mmoe`` is only in the first panel: it still has its entry in the one legend."""
    figures = _keep_figure(monkeypatch)
    first = compare(merge_single([_result("single", {"t1": 0.5})]), [_result("mmoe", {"t1": 0.4})])
    second = compare(merge_single([_result("single", {"t1": 0.5})]), [_result("hard", {"t1": 0.4})])
    plot_comparisons({"a": first, "b": second}, tmp_path / "a.png")
    (fig,) = figures
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.texts] == ["mmoe", "hard"]


def test_many_long_task_names_are_slanted_on_a_wider_figure(monkeypatch, tmp_path):
    figures = _keep_figure(monkeypatch)
    tasks = {f"a_rather_long_task_name_{i}": 0.5 for i in range(6)}
    single = merge_single([_result("single", {t: v}) for t, v in tasks.items()])
    rows = [_result(m, tasks) for m in ("hard", "soft", "mmoe", "ple", "sparse", "adapters")]
    plot_comparisons({"a": compare(single, rows)}, tmp_path / "a.png")
    plot_comparisons({"a": _comparison(0.4, 0.6)}, tmp_path / "b.png")
    wide, narrow = figures
    assert wide.get_figwidth() > narrow.get_figwidth() + 2
    assert all(t.get_rotation() > 0 for t in wide.axes[0].get_xticklabels())


def test_changes_that_are_no_number_are_labelled_not_blank(monkeypatch, tmp_path):
    figures = _keep_figure(monkeypatch)
    cmp = _comparison(0.4, 0.6)
    for row, value in zip(cmp["rows"][1:], (math.nan, math.inf), strict=True):
        row["tasks"]["t1"]["relative_change"] = value
    cmp["rows"][1]["tasks"]["t2"]["relative_change"] = -math.inf
    plot_comparisons({"a": cmp}, tmp_path / "a.png")
    (fig,) = figures
    assert sorted(t.get_text() for t in fig.axes[0].texts) == ["+inf", "-inf", "n/a"]
    assert fig.axes[0].get_xlim() == (-0.5, 1.5)  # a NaN bar's slot is still on the axis


def test_only_the_baseline_is_an_error_that_says_so(tmp_path):
    only = compare(merge_single([_result("single", {"t1": 0.5})]), [])
    with pytest.raises(MtlshareError, match="only their baseline"):
        plot_comparisons({"a": only}, tmp_path / "a.png")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["x.pdf", "x.svg", "x"])
def test_save_figure_refuses_a_path_that_is_no_png(tmp_path, name):
    from matplotlib.figure import Figure

    with pytest.raises(ValueError, match=f"{name}: a figure is saved as a PNG"):
        save_figure(Figure(), tmp_path / name)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("beside_others", [False, True])
def test_save_figure_syncs_before_the_rename_and_has_atomic_write_texts_mode(
    tmp_path, monkeypatch, beside_others
):
    from matplotlib.figure import Figure

    from mtlshare.training.checkpoint import atomic_write_text

    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(os, "fsync", lambda fd: events.append("fsync") or real_fsync(fd))
    monkeypatch.setattr(os, "replace", lambda a, b: events.append("replace") or real_replace(a, b))
    out = save_figure(Figure(), tmp_path / "f.png", beside_others=beside_others)
    assert events == ["fsync", "replace"]
    atomic_write_text(tmp_path / "t.txt", "x", beside_others=beside_others)
    mode = stat.S_IMODE(out.stat().st_mode)
    assert mode == stat.S_IMODE((tmp_path / "t.txt").stat().st_mode)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.png", "t.txt"]


def test_atomic_write_text_in_a_users_folder_leaves_their_tmp_file_and_figures_keep_dpi(
    tmp_path,
):
    """``beside_others``: ``NAME.tmp`` may be the user's own file, left as it was; and a
    figure is saved at the dpi asked for (a 6.4-inch figure at 50 dpi is 320 pixels wide)."""
    from matplotlib.figure import Figure

    from mtlshare.training.checkpoint import atomic_write_text

    (tmp_path / "t.txt.tmp").write_text("the user's")
    atomic_write_text(tmp_path / "t.txt", "x", beside_others=True)
    assert (tmp_path / "t.txt.tmp").read_text() == "the user's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.txt", "t.txt.tmp"]
    png = save_figure(Figure(figsize=(6.4, 4.8)), tmp_path / "f.png", dpi=50).read_bytes()
    assert int.from_bytes(png[16:20], "big") == 320  # the IHDR chunk's width


def test_every_row_and_forecasting_method_has_a_fixed_look():
    """A new mechanism or method must be added to ``looks.KNOWN`` or ``looks.FORECASTERS`` (at
    its end), or its colour would shift with the other names of a figure."""
    import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
    from mtlshare.config import SINGLE, SUBNET
    from mtlshare.evaluation.looks import FORECASTERS, KNOWN
    from mtlshare.forecasting.config import METHODS
    from mtlshare.registry import MECHANISMS

    assert {SINGLE, SUBNET, *MECHANISMS.names()} <= set(KNOWN)
    assert set(METHODS) <= set(FORECASTERS)
    for known in (KNOWN, FORECASTERS):
        assert len({(lk.colour, lk.linestyle) for lk in looks(known, known).values()}) == len(known)
    # lines of the forecasting methods take the palette's darker half, as the first rows do
    assert [lk.colour for lk in looks(FORECASTERS, FORECASTERS).values()] == [
        lk.colour for lk in looks(KNOWN[: len(FORECASTERS)]).values()
    ]


def test_the_known_names_keep_the_colours_of_the_kept_figures():
    """The figures kept in the docs were drawn with these: a name moved in ``looks.KNOWN`` or
    ``looks.FORECASTERS`` (a new one put first, two swapped) would recolour the next ones."""
    from mtlshare.evaluation.looks import FORECASTERS, KNOWN

    assert {n: lk.colour for n, lk in looks(KNOWN).items()} == {
        "single": "#1f77b4",
        "hard": "#ff7f0e",
        "conditioned": "#2ca02c",
        "soft": "#d62728",
        "cross_stitch": "#9467bd",
        "hierarchical": "#8c564b",
        "sparse": "#e377c2",
        "adapters": "#bcbd22",
        "mmoe": "#17becf",
        "ple": "#aec7e8",
        "single_subnet": "#ffbb78",
    }
    assert {n: lk.colour for n, lk in looks(FORECASTERS, FORECASTERS).items()} == {
        "multitask": "#1f77b4",
        "single": "#ff7f0e",
        "seasonal_naive": "#2ca02c",
        "seasonal_mean": "#d62728",
        "naive": "#9467bd",
        "autoets": "#8c564b",
        "autoarima": "#e377c2",
        "prophet": "#bcbd22",
    }


def test_no_look_is_a_grey_or_black_which_history_and_actual_take():
    """A forecast's history is grey and its actual values black: no name's colour may be
    either, or a method's line would read as one of them."""
    from matplotlib.colors import to_rgb

    from mtlshare.evaluation.looks import PALETTE

    for colour in {lk.colour for lk in looks([f"n{i}" for i in range(len(PALETTE))], ()).values()}:
        r, g, b = to_rgb(colour)
        assert max(r, g, b) - min(r, g, b) > 0.1, colour


def test_save_figure_gives_a_figure_the_mode_of_the_umask_as_text_files(tmp_path):
    """Under a umask of 002 (a shared group) a figure is group-writable, as the results and
    ``atomic_write_text``'s files beside it are, in both kinds of folder."""
    from matplotlib.figure import Figure

    from mtlshare.training.checkpoint import atomic_write_text

    old = os.umask(0o002)
    try:
        for beside_others in (False, True):
            out = save_figure(
                Figure(), tmp_path / f"f{beside_others}.png", beside_others=beside_others
            )
            text = tmp_path / f"t{beside_others}.txt"
            atomic_write_text(text, "x", beside_others=beside_others)
            assert stat.S_IMODE(out.stat().st_mode) == 0o664
            assert stat.S_IMODE(text.stat().st_mode) == 0o664
    finally:
        os.umask(old)


def test_a_label_of_no_number_is_in_its_mechanisms_colour_and_minus_inf_hangs_below(
    monkeypatch, tmp_path
):
    """``n/a`` and ``+inf`` stand on the zero line, ``-inf`` hangs below it (it is a loss), each
    in the colour of its mechanism's bars."""
    figures = _keep_figure(monkeypatch)
    cmp = _comparison(0.4, 0.6)
    hard, soft = cmp["rows"][1:]
    hard["tasks"]["t1"]["relative_change"] = math.nan
    hard["tasks"]["t2"]["relative_change"] = -math.inf
    soft["tasks"]["t1"]["relative_change"] = math.inf
    plot_comparisons({"a": cmp}, tmp_path / "a.png")
    (fig,) = figures
    colours = _bar_colours(fig)
    texts = {t.get_text(): t for t in fig.axes[0].texts}
    assert {k: to_hex(t.get_color()) for k, t in texts.items()} == {
        "n/a": colours["hard"],
        "-inf": colours["hard"],
        "+inf": colours["soft"],
    }
    assert texts["-inf"].get_verticalalignment() == "top" and texts["-inf"].xyann[1] < 0
    for above in ("n/a", "+inf"):
        assert texts[above].get_verticalalignment() == "bottom" and texts[above].xyann[1] > 0


def test_the_legend_shows_each_mechanism_as_its_bars_colour_and_hatch(monkeypatch, tmp_path):
    """Past the 18 colours a mechanism's bars are hatched: its legend patch is too, and every
    patch has the face colour of its mechanism's bars."""
    figures = _keep_figure(monkeypatch)
    names = [f"m{i:02d}" for i in range(20)]
    many = compare(
        merge_single([_result("single", {"t1": 0.5})]), [_result(n, {"t1": 0.4}) for n in names]
    )
    plot_comparisons({"many": many}, tmp_path / "a.png")
    (fig,) = figures
    bars = {c.get_label(): c.patches[0] for c in fig.axes[0].containers}
    (legend,) = fig.legends
    patches = dict(zip((t.get_text() for t in legend.texts), legend.legend_handles, strict=True))
    assert list(patches) == names
    assert any(bars[n].get_hatch() for n in names)
    for n in names:
        assert to_hex(patches[n].get_facecolor()) == to_hex(bars[n].get_facecolor()), n
        assert patches[n].get_hatch() == bars[n].get_hatch(), n
