"""The sparse search's figures (paper Fig. 3 and 4): layout, legend and density axis."""

from __future__ import annotations

import pytest

from mtlshare.sharing.sparse import plots

DENSITIES = [0.8**i for i in range(10)]


def _search(tasks, densities, score=0.5):
    return {
        "rounds": [
            {"task": t, "density": d, "dev_score": score, "round": i, "final": False}
            for t in tasks
            for i, d in enumerate(densities)
        ],
        "rounds_overlap": [
            {"density": d, "overlap_ratio": 1.0, "mean_dev_score": score, "round": i}
            for i, d in enumerate(densities)
        ],
    }


@pytest.fixture
def figures(monkeypatch):
    kept = []

    def keep(fig, path, **kwargs):
        kept.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    return kept


def test_the_figures_lay_themselves_out_with_a_legend_of_every_task_beside_the_axes(
    figures, tmp_path
):
    tasks = ["named_entity_recognition", "pos", "chunk", "t4", "t5", "t6"]
    plots.plot_search(_search(tasks, DENSITIES, score=-12345.6), tmp_path)
    fig3, fig4 = figures
    assert fig3.get_layout_engine() is not None and fig4.get_layout_engine() is not None
    assert fig3.axes[0].get_legend() is None
    (legend,) = fig3.legends
    assert [t.get_text() for t in legend.texts] == sorted(tasks)


def test_density_ticks_are_percentages_at_the_rounds_densities(figures, tmp_path):
    plots.plot_search(_search(["a", "b"], DENSITIES), tmp_path)
    for fig in figures:
        ax = fig.axes[0]
        fig.canvas.draw()
        ticks = list(ax.get_xticks())
        assert 1 < len(ticks) <= plots.TICKS
        assert set(ticks) <= set(DENSITIES) and ticks[0] == 1.0 and ticks[-1] == DENSITIES[-1]
        labels = [t.get_text() for t in ax.get_xticklabels()]
        assert all(label.endswith("%") for label in labels) and len(set(labels)) == len(labels)
        assert labels[0] == "100%"
        assert not [t for t in ax.xaxis.get_minorticklabels() if t.get_text()]
        left, right = ax.get_xlim()
        assert left > 1.0 > DENSITIES[-1] > right  # dense on the left


def test_one_round_has_sane_limits_around_its_density(figures, tmp_path):
    plots.plot_search(_search(["a"], [1.0]), tmp_path)
    for fig in figures:
        left, right = fig.axes[0].get_xlim()
        assert 1.0 < left < 1.5 and 0.7 < right < 1.0
        assert list(fig.axes[0].get_xticks()) == [1.0]


def _ticks(fig):
    ax = fig.axes[0]
    fig.canvas.draw()
    return list(ax.get_xticks()), [t.get_text() for t in ax.get_xticklabels()]


def test_the_tasks_densities_of_one_round_share_one_tick(figures, tmp_path):
    """Two tasks pruned to nearly the same density each round: one tick per round (the denser
    task's), not two ticks running together."""
    search = _search(["a"], DENSITIES)
    search["rounds"] += [
        {**r, "task": "b", "density": r["density"] * 0.99}
        for r in _search(["b"], DENSITIES)["rounds"]
    ]
    plots.plot_search(search, tmp_path)
    ticks, _ = _ticks(figures[0])
    assert ticks == DENSITIES


@pytest.mark.parametrize("rounds", [20, 25])
def test_many_rounds_get_at_most_ten_ticks_the_densest_and_the_sparsest_among_them(
    figures, tmp_path, rounds
):
    densities = [0.9**i for i in range(rounds)]
    plots.plot_search(_search(["a"], densities), tmp_path)
    for fig in figures:
        ticks, labels = _ticks(fig)
        assert len(ticks) <= plots.TICKS
        assert ticks[0] == 1.0 and ticks[-1] == densities[-1]
        assert set(ticks) <= set(densities) and len(set(labels)) == len(labels)


def test_ticks_take_the_fewest_decimals_that_tell_them_apart(figures, tmp_path):
    """1.4% and 1.1% need one decimal of percent: every tick gets one, and no more."""
    plots.plot_search(_search(["a"], [1.0, 0.5, 0.014, 0.011]), tmp_path)
    _, labels = _ticks(figures[0])
    assert labels == ["100.0%", "50.0%", "1.4%", "1.1%"]
    # 0.010% and 0.009% need three decimals, the most it takes
    plots.plot_search(_search(["a"], [1.0, 0.0001, 0.00009]), tmp_path)
    _, labels = _ticks(figures[2])
    assert labels == ["100.000%", "0.010%", "0.009%"]


def test_a_runs_tasks_take_the_palettes_colours_from_the_first_in_a_titled_legend(
    figures, tmp_path
):
    """Tasks are no comparison rows: sorted, they take the palette from its first colour
    (``looks(tasks, known=())``), whatever their names, eleven of them eleven colours, none the
    grey of matplotlib's cycle; the legend is titled ``task``."""
    from matplotlib.colors import to_hex

    from mtlshare.evaluation.looks import PALETTE

    tasks = ["pos", "hard", "chunk", *(f"t{i:02d}" for i in range(8))]
    plots.plot_search(_search(tasks, DENSITIES), tmp_path)
    fig3 = figures[0]
    colours = {line.get_label(): to_hex(line.get_color()) for line in fig3.axes[0].get_lines()}
    assert colours == dict(zip(sorted(tasks), PALETTE, strict=False))
    assert list(colours)[:3] == ["chunk", "hard", "pos"]
    (legend,) = fig3.legends
    assert legend.get_title().get_text() == "task"
