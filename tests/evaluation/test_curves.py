"""Dev curves read from metrics.jsonl files and drawn, and `mtlshare curves`."""

from __future__ import annotations

import json
import os
import re
import stat
import threading
from pathlib import Path

import pytest

from mtlshare.cli import main
from mtlshare.errors import MtlshareError
from mtlshare.evaluation import curves as curves_module
from mtlshare.evaluation.curves import plot_dev_curves, read_curves
from mtlshare.evaluation.looks import looks


def _metrics(path, rows):
    path.mkdir(parents=True)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_curves_are_read_per_run_and_task_skipping_lines_that_are_not_epochs(tmp_path):
    _metrics(
        tmp_path / "hard" / "seed-0",
        [
            {"epoch": 1, "dev": {"a": 0.5, "b": 0.1}},
            {"epoch": 2, "dev": {"a": 0.6, "b": 0.2}},
        ],
    )
    _metrics(
        tmp_path / "single" / "seed-0" / "a",
        [
            {"search_round": 3, "dev": {"a": 0.2}},  # not an epoch
            {"epoch": 1, "dev": {"a": 0.4}},
        ],
    )
    curves = read_curves(tmp_path)
    assert curves == {
        "hard/seed-0": {"a": [(1, 0.5), (2, 0.6)], "b": [(1, 0.1), (2, 0.2)]},
        "single/seed-0/a": {"a": [(1, 0.4)]},
    }
    assert read_curves(tmp_path / "hard" / "seed-0") == {"seed-0": curves["hard/seed-0"]}
    png = plot_dev_curves(curves, tmp_path / "out" / "curves.png", "t")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_broken_metrics_line_names_file_and_line(tmp_path):
    run = tmp_path / "run"
    _metrics(run, [{"epoch": 1, "dev": {"a": 0.5}}])
    with (run / "metrics.jsonl").open("a") as f:
        f.write("{not json\n")
    with pytest.raises(MtlshareError, match=r"metrics\.jsonl:2: not a JSON line"):
        read_curves(run)
    with pytest.raises(MtlshareError, match=r"no metrics\.jsonl"):
        read_curves(tmp_path / "empty")


def test_curves_command_writes_the_png_and_refuses_an_empty_folder(tmp_path, capsys):
    _metrics(tmp_path / "cmp" / "hard" / "seed-0", [{"epoch": 1, "dev": {"a": 0.5}}])
    assert main(["curves", str(tmp_path / "cmp")]) == 0
    assert (tmp_path / "cmp" / "dev_curves.png").is_file()
    (tmp_path / "nothing").mkdir()
    capsys.readouterr()
    assert main(["curves", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mtlshare: error: {tmp_path / 'nothing'}: no metrics.jsonl below it; is it a run or "
        "comparison folder?"
    ]


def test_blank_lines_are_skipped_and_integer_scores_kept_but_not_other_values(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"epoch": 1, "dev": {"a": 0, "b": 0.5, "c": null}}\n\n   \n{"epoch": 2, "dev": {"a": 1}}\n'
    )
    assert read_curves(run) == {"run": {"a": [(1, 0.0), (2, 1.0)], "b": [(1, 0.5)]}}


def test_one_figure_legend_names_every_row_of_every_panel(tmp_path, monkeypatch):
    """Runs of other task sets (a comparison beside a run of other tasks): one legend beside
    the panels names every row once, whichever panels draw it, and no panel has its own."""
    curves = {
        "hard/seed-0": {"chunk": [(1, 0.5)], "ner": [(1, 0.4)], "pos": [(1, 0.9)]},
        "hard/seed-1": {"chunk": [(1, 0.6)], "ner": [(1, 0.3)], "pos": [(1, 0.8)]},
        "sparse/seed-0": {"chunk": [(1, 0.5)], "ner": [(1, 0.4)], "pos": [(1, 0.9)]},
        "hard-pn": {"ner": [(1, 0.2)], "pos": [(1, 0.7)]},
        "t1": {"t1": [(1, 0.1)], "t2": [(1, 0.2)]},
    }
    figures = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: figures.append(fig))
    plot_dev_curves(curves, tmp_path / "c.png")
    fig = figures.pop()
    assert all(ax.get_legend() is None for ax in fig.axes)
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.texts] == ["hard", "hard-pn", "sparse", "t1"]


def _figure(monkeypatch, *args, **kwargs):
    figures = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: figures.append(fig))
    plot_dev_curves(*args, **kwargs)
    return figures.pop()


def test_many_tasks_wrap_into_rows_of_three_panels(tmp_path, monkeypatch):
    tasks = [f"task_{i}" for i in range(8)]
    fig = _figure(
        monkeypatch, {"hard": {t: [(1, 0.5), (2, 0.6)] for t in tasks}}, tmp_path / "c.png"
    )
    drawn = [ax for ax in fig.axes if ax.axison]
    assert len(drawn) == 8
    assert len({ax.get_position().x0 for ax in drawn}) == 3  # three columns
    assert fig.get_figwidth() < 4.5 * 4


def test_a_rows_colour_is_the_same_in_the_demo_plot_and_the_curves(tmp_path, monkeypatch):
    """``hard`` has one colour in every figure, whatever the other rows are."""
    from matplotlib.colors import to_hex

    fig = _figure(
        monkeypatch,
        {"adapters": {"t1": [(1, 0.5)]}, "hard/seed-0": {"t1": [(1, 0.5)]}},
        tmp_path / "c.png",
    )
    (legend,) = fig.legends
    colours = {
        t.get_text(): to_hex(h.get_color())
        for t, h in zip(legend.texts, legend.legend_handles, strict=True)
    }
    assert colours["hard"] == looks(["hard"])["hard"].colour
    assert colours["adapters"] == looks(["adapters"])["adapters"].colour


def test_the_y_axis_names_each_tasks_metric_and_a_searched_sparse_row_is_marked(
    tmp_path, monkeypatch
):
    """``results.json`` beside a run's metrics names each task's metric and direction; a sparse
    run whose results hold search rounds is "after mask search" in the legend."""
    from matplotlib.figure import Figure

    rows = [{"epoch": e, "step": 10 * e, "dev": {"ner": 0.5, "y": 0.3}} for e in (1, 2)]
    _metrics(tmp_path / "cmp" / "hard", rows)
    _metrics(tmp_path / "cmp" / "sparse", rows)
    tasks = {
        "ner": {"metric": "span_f1", "higher_is_better": True},
        "y": {"metric": "mse", "higher_is_better": False},
    }
    (tmp_path / "cmp" / "hard" / "results.json").write_text(json.dumps({"tasks": tasks}))
    sparse = {"tasks": tasks, "sparse": {"rounds": [{"task": "ner", "density": 1.0}]}}
    (tmp_path / "cmp" / "sparse" / "results.json").write_text(json.dumps(sparse))
    runs = curves_module.read_run_info(tmp_path / "cmp")
    assert runs["sparse"].searched and not runs["hard"].searched
    figures: list[Figure] = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: figures.append(fig))
    curves_module.write_dev_curves(tmp_path / "cmp")
    (fig,) = figures
    labels = {ax.get_title(): ax.get_ylabel() for ax in fig.axes}
    assert labels == {
        "ner": "dev span F1 (higher is better)",
        "y": "dev MSE (lower is better)",
    }
    (legend,) = fig.legends
    assert [t.get_text() for t in legend.texts] == ["hard", "sparse (after mask search)"]


def test_task_entries_of_results_json_that_are_not_tables_name_no_metric(tmp_path):
    """A results.json not as a run writes it: a task entry that is no table, or one whose
    metric is no name, gives no metric for that task; what it does say (a direction) is kept,
    and nothing fails."""
    _metrics(tmp_path / "r", [{"epoch": 1, "dev": {"ner": 0.5, "y": 0.3}}])
    tasks = {"ner": "span_f1", "y": {"metric": 3, "higher_is_better": False}}
    (tmp_path / "r" / "results.json").write_text(json.dumps({"tasks": tasks}))
    info = curves_module.read_run_info(tmp_path / "r")["r"]
    assert (info.metric, info.higher_is_better) == ({}, {"y": False})


def test_a_run_still_training_shows_its_search_by_its_steps(tmp_path):
    """No results.json yet: a first epoch far past one epoch's steps followed a search."""
    _metrics(
        tmp_path / "s",
        [{"epoch": 1, "step": 500, "dev": {"a": 1}}, {"epoch": 2, "step": 510, "dev": {"a": 1}}],
    )
    _metrics(
        tmp_path / "h",
        [{"epoch": 1, "step": 10, "dev": {"a": 1}}, {"epoch": 2, "step": 20, "dev": {"a": 1}}],
    )
    assert curves_module.read_run_info(tmp_path / "s")["s"].searched
    assert not curves_module.read_run_info(tmp_path / "h")["h"].searched
    assert curves_module.read_run_info(tmp_path / "h")["h"].metric == {}


def test_one_epoch_has_one_whole_tick(tmp_path, monkeypatch):
    fig = _figure(monkeypatch, {"hard": {"a": [(1, 0.5)]}}, tmp_path / "c.png")
    ax = fig.axes[0]
    assert list(ax.get_xticks()) == [1]
    assert ax.get_xlim() == (0, 2)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b'{"epoch": 1, "dev": {"a": 0.5}}\n[1, 2]\n', "metrics.jsonl:2: not a JSON object"),
        (b"3\n", "metrics.jsonl:1: not a JSON object"),
        (b'{"epoch": 1, "dev": {"a": 0.5}}\n\xff\xfe\n', "metrics.jsonl: not UTF-8 text"),
    ],
    ids=["list", "number", "not_utf8"],
)
def test_a_metrics_file_that_is_no_json_objects_is_one_line_not_a_traceback(
    tmp_path, capsys, content, message
):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(content)
    assert main(["curves", str(run)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err
    assert not (run / "dev_curves.png").exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"[" * 100_000 + b"]" * 100_000 + b"\n", "metrics.jsonl:1: not a JSON line (nested too"),
        (b'{"epoch": 1, "dev": {"a": 1' + b"0" * 5000 + b"}}\n", "metrics.jsonl:1: not a JSON"),
    ],
    ids=["nested_deep", "5000_digits"],
)
@pytest.mark.parametrize("gaps", [[], ["--gaps", "1"]], ids=["curves", "gaps"])
def test_a_metrics_line_python_cannot_parse_is_one_line_not_a_traceback(
    tmp_path, capsys, content, message, gaps
):
    """JSON nested deeper than Python's parser recurses was a ``RecursionError``, and an
    integer of 5,000 digits a bare ``ValueError``: tracebacks, exit 1. ``--gaps`` reads the
    lines first for a search's steps (a run without results)."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_bytes(content)
    assert main(["curves", str(run), *gaps]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err, err


def test_numbers_no_float_holds_are_neither_scores_nor_epochs(tmp_path):
    """An epoch or a score of 400 digits (valid JSON) was an ``OverflowError`` traceback."""
    run = tmp_path / "run"
    run.mkdir()
    big = "1" + "0" * 400
    (run / "metrics.jsonl").write_text(
        f'{{"epoch": 1, "dev": {{"a": 0.5, "b": {big}}}}}\n'
        f'{{"epoch": {big}, "dev": {{"a": 0.7}}}}\n'
    )
    assert read_curves(run) == {"run": {"a": [(1, 0.5)]}}
    assert main(["curves", str(run), "--out", str(tmp_path / "c.png")]) == 0


def test_an_epoch_is_a_count_from_zero_and_a_negative_one_is_not_an_epoch(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"epoch": 0, "dev": {"a": 0.4}}\n{"epoch": -1, "dev": {"a": 0.9}}\n'
        '{"epoch": 1, "dev": {"a": 0.5}}\n'
    )
    assert read_curves(run) == {"run": {"a": [(0, 0.4), (1, 0.5)]}}


@pytest.mark.parametrize(
    ("name", "gaps", "says"),
    [
        ("metrics.jsonl", False, "not a regular file"),
        ("config.toml", False, None),
        ("results.json", False, None),
        ("add_task.json", False, None),
        # --gaps reads whether a run searched (its metrics, before its curves) and its seed
        ("metrics.jsonl", True, "not a regular file"),
        ("config.toml", True, "config.toml: no seed to read"),
    ],
    ids=["metrics", "config", "results", "add_task", "metrics_gaps", "config_gaps"],
)
def test_a_fifo_where_a_runs_file_should_be_does_not_block_curves(
    tmp_path, capsys, name, gaps, says
):
    """A named pipe (or a link to one) in a run folder: ``curves`` read it and waited for a
    writer that never came, for good. Now it is a file not there: one line, exit 2, where
    ``curves`` needs the file (``says``); else what it labels, so the curves are drawn
    without it."""
    run = tmp_path / "run"
    _metrics(run, [{"epoch": 1, "dev": {"a": 0.5}}])
    if name == "add_task.json":  # read beside a finished run's results only
        (run / "results.json").write_text("{}")
    (run / name).unlink(missing_ok=True)
    os.mkfifo(run / name)
    done = {}
    command = ["curves", str(run), "--out", str(tmp_path / "c.png")]

    def draw() -> None:
        done["code"] = main([*command, *(["--gaps", "1"] if gaps else [])])

    thread = threading.Thread(target=draw)
    thread.daemon = True
    thread.start()
    thread.join(30)
    blocked = thread.is_alive()
    if blocked:  # unblock the reader, so the test process can end
        os.close(os.open(run / name, os.O_WRONLY | os.O_NONBLOCK))
        thread.join(5)
    assert not blocked
    assert done.get("code") == (0 if says is None else 2), done
    if says is not None:
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and says in err, err


def test_true_and_false_are_not_scores_nor_epochs(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(
        '{"epoch": 1, "dev": {"a": 0.5, "b": true}}\n{"epoch": true, "dev": {"a": 0.7}}\n'
    )
    assert read_curves(run) == {"run": {"a": [(1, 0.5)]}}


def test_curves_out_must_be_a_png_in_a_folder_that_exists(tmp_path, capsys):
    _metrics(tmp_path / "run", [{"epoch": 1, "dev": {"a": 0.5}}, {"epoch": 2, "dev": {"a": 0.6}}])
    (tmp_path / "adir").mkdir()
    os.mkfifo(tmp_path / "pipe.png")
    for out, message in (
        (tmp_path / "curves.pdf", "ending in .png"),
        (tmp_path / "curves.txt", "ending in .png"),
        (tmp_path / "missing" / "curves.png", f"the folder {tmp_path / 'missing'} does not exist"),
        (tmp_path / "pipe.png", "not a file (a device or a named pipe)"),
    ):
        assert main(["curves", str(tmp_path / "run"), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--out {out}" in err[0] and message in err[0], err
        assert not (tmp_path / "missing").exists()
        assert not out.is_file()  # the pipe stays a pipe
    assert stat.S_ISFIFO((tmp_path / "pipe.png").lstat().st_mode)
    adir = tmp_path / "adir.png"
    adir.mkdir()
    assert main(["curves", str(tmp_path / "run"), "--out", str(adir)]) == 2
    assert "a folder; name the file to write" in capsys.readouterr().err
    assert list(adir.iterdir()) == []  # no temporary file left in it
    out = tmp_path / "Curves.PNG"
    assert main(["curves", str(tmp_path / "run"), "--out", str(out)]) == 0
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_the_epoch_axis_has_whole_epochs_only(tmp_path, monkeypatch):
    drawn = {}
    real = curves_module.save_figure

    def keep(fig, path, **kw):
        drawn["ticks"] = [t for ax in fig.axes for t in ax.get_xticks()]
        return real(fig, path, **kw)

    monkeypatch.setattr(curves_module, "save_figure", keep)
    plot_dev_curves({"run": {"a": [(1, 0.5), (2, 0.6)]}}, tmp_path / "c.png")
    assert drawn["ticks"] and all(float(t).is_integer() for t in drawn["ticks"])


def test_a_plot_cut_by_a_kill_leaves_a_file_the_next_write_replaces(tmp_path, monkeypatch):
    """In a folder of the library's the temporary file is ``NAME.tmp``: a write cut by a kill
    leaves that one file, and writing the plot again replaces it (a random hidden name was left
    for good, one more per kill). ``--out`` in a folder of the user's leaves their ``NAME.tmp``
    alone and leaves no other file."""
    _metrics(tmp_path / "cmp" / "hard" / "seed-0", [{"epoch": 1, "dev": {"a": 0.5}}])
    from matplotlib.figure import Figure

    def killed(self, *args, **kwargs):
        Path(args[0]).write_bytes(b"half a png")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(Figure, "savefig", killed)
        with pytest.raises(KeyboardInterrupt):
            curves_module.save_figure(Figure(), tmp_path / "cmp" / "dev_curves.png")
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["hard"]  # removed on error
    (tmp_path / "cmp" / "dev_curves.png.tmp").write_bytes(b"left by a SIGKILL")
    assert main(["curves", str(tmp_path / "cmp")]) == 0
    assert sorted(p.name for p in (tmp_path / "cmp").iterdir()) == ["dev_curves.png", "hard"]
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "c.png.tmp").write_bytes(b"the user's")
    assert main(["curves", str(tmp_path / "cmp"), "--out", str(mine / "c.png")]) == 0
    assert sorted(p.name for p in mine.iterdir()) == ["c.png", "c.png.tmp"]
    assert (mine / "c.png.tmp").read_bytes() == b"the user's"


def _results(path, tasks, **more):
    (path / "results.json").write_text(json.dumps({"tasks": tasks, **more}))


def _ylabels(monkeypatch, folder):
    figures = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: figures.append(fig))
    curves_module.write_dev_curves(folder)
    (fig,) = figures
    return {ax.get_title(): ax.get_ylabel() for ax in fig.axes if ax.axison}


def test_every_metric_has_its_name_on_the_y_axis_and_no_results_say_score(tmp_path, monkeypatch):
    """accuracy and MAE are named as the tables name them; a run with no ``results.json`` (still
    training) knows no metric: its panel says ``dev score``."""
    rows = [{"epoch": e, "step": 10 * e, "dev": {"acc": 0.5, "err": 0.3}} for e in (1, 2)]
    _metrics(tmp_path / "done", rows)
    tasks = {
        "acc": {"metric": "accuracy", "higher_is_better": True},
        "err": {"metric": "mae", "higher_is_better": False},
    }
    _results(tmp_path / "done", tasks)
    assert _ylabels(monkeypatch, tmp_path / "done") == {
        "acc": "dev accuracy (higher is better)",
        "err": "dev MAE (lower is better)",
    }
    _metrics(tmp_path / "training", rows)
    assert set(_ylabels(monkeypatch, tmp_path / "training").values()) == {"dev score"}


def test_runs_that_disagree_on_a_tasks_metric_or_direction_say_neither(tmp_path, monkeypatch):
    """Two runs measuring ``y`` differently: the axis names no metric and no direction (it
    took one of them, or failed to unpack two)."""
    rows = [{"epoch": 1, "step": 10, "dev": {"y": 0.5}}]
    _metrics(tmp_path / "cmp" / "a", rows)
    _metrics(tmp_path / "cmp" / "b", rows)
    _results(tmp_path / "cmp" / "a", {"y": {"metric": "mse", "higher_is_better": False}})
    _results(tmp_path / "cmp" / "b", {"y": {"metric": "accuracy", "higher_is_better": True}})
    assert _ylabels(monkeypatch, tmp_path / "cmp") == {"y": "dev score"}


def test_a_panel_is_labelled_from_the_runs_it_draws_only(tmp_path, monkeypatch):
    """Run ``b`` names ``y`` in its results but has no dev curve of it (every dev score of it
    missing): it does not make ``y``'s panel lose its metric."""
    _metrics(tmp_path / "cmp" / "a", [{"epoch": 1, "step": 10, "dev": {"y": 0.5}}])
    _metrics(tmp_path / "cmp" / "b", [{"epoch": 1, "step": 10, "dev": {"y": None, "z": 0.5}}])
    mse = {"metric": "mse", "higher_is_better": False}
    _results(tmp_path / "cmp" / "a", {"y": mse})
    _results(
        tmp_path / "cmp" / "b", {"y": {"metric": "accuracy", "higher_is_better": True}, "z": mse}
    )
    assert _ylabels(monkeypatch, tmp_path / "cmp") == {
        "y": "dev MSE (lower is better)",
        "z": "dev MSE (lower is better)",
    }


def test_results_that_are_not_what_mtlshare_writes_cost_only_the_labels(
    tmp_path, monkeypatch, capsys
):
    """A ``results.json`` that is a list, or whose direction is no boolean, draws the curves
    with ``dev score`` and no direction: the labels are all it feeds."""
    rows = [
        {"epoch": 1, "step": 10, "dev": {"y": 0.5}},
        {"epoch": 2, "step": 20, "dev": {"y": 0.6}},
    ]
    _metrics(tmp_path / "listed", rows)
    (tmp_path / "listed" / "results.json").write_text("[1, 2]")
    assert curves_module.read_run_info(tmp_path / "listed") == {"listed": curves_module.RunInfo()}
    assert main(["curves", str(tmp_path / "listed")]) == 0
    assert (tmp_path / "listed" / "dev_curves.png").is_file()
    _metrics(tmp_path / "odd", rows)
    _results(tmp_path / "odd", {"y": {"metric": "mse", "higher_is_better": None}})
    assert _ylabels(monkeypatch, tmp_path / "odd") == {"y": "dev MSE"}


def test_every_seed_of_a_searched_row_marks_the_row_and_given_masks_do_not(tmp_path, monkeypatch):
    """A comparison's ``sparse/seed-K`` runs with search rounds mark the ``sparse`` row;
    ``single_subnet``, whose masks were given (a ``sparse`` entry without rounds), is not
    marked."""
    rows = [{"epoch": e, "step": 10 * e, "dev": {"a": 0.5}} for e in (1, 2)]
    task = {"a": {"metric": "mse", "higher_is_better": False}}
    for seed in (0, 1):
        _metrics(tmp_path / "cmp" / "sparse" / f"seed-{seed}", rows)
        _results(
            tmp_path / "cmp" / "sparse" / f"seed-{seed}",
            task,
            sparse={"rounds": [{"task": "a", "density": 1.0}]},
        )
    _metrics(tmp_path / "cmp" / "single_subnet", rows)
    _results(tmp_path / "cmp" / "single_subnet", task, sparse={"rounds": [], "density": {"a": 0.5}})
    figures = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: figures.append(fig))
    curves_module.write_dev_curves(tmp_path / "cmp")
    (legend,) = figures[0].legends
    assert [t.get_text() for t in legend.texts] == ["single_subnet", "sparse (after mask search)"]


@pytest.mark.parametrize(
    ("steps", "searched"),
    [((21, 31), True), ((20, 30), False), ((5, 5), False), ((9, 4), False)],
    ids=["past_twice", "twice_exactly", "no_step_between", "steps_going_back"],
)
def test_a_search_is_read_from_steps_only_past_twice_an_epochs_steps(tmp_path, steps, searched):
    """A run still training shows a search when its first epoch ends past twice the steps of
    the next epoch; lines that are not dev evaluations (no ``dev``) are not epochs."""
    _metrics(
        tmp_path / "run",
        [
            {"step": 1000, "split": "train", "loss": 0.5},  # not an evaluation
            {"step": 1010, "split": "train", "loss": 0.4},
            *({"epoch": e, "step": s, "dev": {"a": 0.5}} for e, s in enumerate(steps, 1)),
        ],
    )
    assert curves_module.read_run_info(tmp_path / "run")["run"].searched is searched


def test_a_row_past_the_palette_is_dashed_in_its_panels_and_in_the_legend(tmp_path, monkeypatch):
    """Rows past the 18 colours repeat a colour dashed; the legend's line shows the same
    style as the panel's, so that the two rows of one colour can be told apart."""
    names = [f"row{i:02d}" for i in range(20)]
    fig = _figure(monkeypatch, {n: {"a": [(1, 0.5), (2, 0.6)]} for n in names}, tmp_path / "c.png")
    drawn = looks(names)
    styles = {n: drawn[n].linestyle for n in names}
    assert "--" in styles.values()
    lines = fig.axes[0].get_lines()
    assert [line.get_linestyle() for line in lines] == [styles[n] for n in names]
    (legend,) = fig.legends
    legend_styles = {
        t.get_text(): h.get_linestyle()
        for t, h in zip(legend.texts, legend.legend_handles, strict=True)
    }
    assert legend_styles == styles


def test_curves_out_labels_its_axes_from_the_results_too(tmp_path, monkeypatch):
    """``mtlshare curves RUN --out FILE`` (a folder of the user's) names the metric as the
    figure in the run's folder does."""
    _metrics(tmp_path / "run", [{"epoch": e, "step": 10 * e, "dev": {"y": 0.5}} for e in (1, 2)])
    _results(tmp_path / "run", {"y": {"metric": "mse", "higher_is_better": False}})
    figures = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: figures.append(fig))
    assert main(["curves", str(tmp_path / "run"), "--out", str(tmp_path / "c.png")]) == 0
    (fig,) = figures
    assert fig.axes[0].get_ylabel() == "dev MSE (lower is better)"


def _ended(path: Path, epochs: int, best: int | None, ran: int | None, cap: int | None) -> None:
    _metrics(path, [{"epoch": e, "dev": {"a": 0.1 * e}} for e in range(1, epochs + 1)])
    if ran is not None:
        (path / "results.json").write_text(json.dumps({"best_epoch": best, "epochs_run": ran}))
    if cap is not None:
        (path / "config.toml").write_text(f"[train]\nepochs = {cap}\n")


def test_the_stopping_table_says_what_ended_each_run(tmp_path, capsys):
    _ended(tmp_path / "cmp" / "hard", 20, 20, 20, 20)  # the cap, still improving
    _ended(tmp_path / "cmp" / "single" / "a", 20, 17, 20, 20)  # the cap, best earlier
    _ended(tmp_path / "cmp" / "soft", 32, 27, 32, 60)  # early stop
    _ended(tmp_path / "cmp" / "sparse", 7, None, None, 60)  # still training, or cut
    _ended(tmp_path / "cmp" / "mmoe", 3, 3, 3, None)  # no config: the cap unknown
    # an added task: its results hold the tasks' scores, add_task.json its best epoch
    added = tmp_path / "cmp" / "added"
    _ended(added, 9, None, None, 12)
    (added / "results.json").write_text(json.dumps({"tasks": {}}))
    (added / "add_task.json").write_text(json.dumps({"best_epoch": 4}))
    # every epoch trained, the last kept: its best_epoch is the last, selected by nothing
    _ended(tmp_path / "cmp" / "kept_last", 8, 8, 8, 8)
    config = tmp_path / "cmp" / "kept_last" / "config.toml"
    config.write_text(config.read_text() + 'keep = "last"\n')
    _ended(tmp_path / "cmp" / "ple", 5, 5, 5, 5)  # results.json edited into a list
    (tmp_path / "cmp" / "ple" / "results.json").write_text("[]")
    table = curves_module.stopping_table(tmp_path / "cmp")
    assert table.splitlines() == [
        "| run | best epoch | epochs run | cap | ended by |",
        "|---|---:|---:|---:|---|",
        "| added | 4 | 9 | 12 | early stop, 5 epochs after its best |",
        "| hard | 20 | 20 | 20 | the cap, best at the last epoch |",
        '| kept_last | - | 8 | 8 | train.keep = "last": every epoch trained, the last kept |',
        "| mmoe | 3 | 3 | ? | ? |",
        "| ple | ? | ? | 5 | ? |",
        "| single/a | 17 | 20 | 20 | the cap |",
        "| soft | 27 | 32 | 60 | early stop, 5 epochs after its best |",
        "| sparse | - | - | 60 | not finished (epoch 7 in metrics.jsonl) |",
    ]
    capsys.readouterr()
    assert main(["curves", str(tmp_path / "cmp")]) == 0
    assert capsys.readouterr().out.splitlines() == [
        str(tmp_path / "cmp" / "dev_curves.png"),
        *table.splitlines(),
    ]


def test_the_stopping_table_reads_what_files_say_and_a_question_mark_where_they_cannot(tmp_path):
    """Each row a case the main stopping-table test lacks: a best epoch one before the last
    at the cap is "the cap"; results without a best epoch, a results.json that is no JSON or
    a folder, a config.toml that is no TOML or whose cap is a boolean say "?" (or "not
    finished"), never a traceback or a guess; a run with no epoch yet is at epoch 0; an added
    task's add_task.json counts only where results.json has no epochs_run."""
    cmp = tmp_path / "cmp"
    _ended(cmp / "b_cap", 20, 19, 20, 20)
    _ended(cmp / "c_nobest", 5, None, 5, 5)
    (cmp / "c_nobest" / "results.json").write_text(json.dumps({"epochs_run": 5}))
    _metrics(cmp / "d_noepoch", [{"round": 0, "task": "a", "dev_score": 0.1}])
    _ended(cmp / "e_dir", 3, None, None, 3)
    (cmp / "e_dir" / "results.json").mkdir()
    _ended(cmp / "f_both", 8, 5, 8, 10)  # an add_task.json beside full results: ignored
    (cmp / "f_both" / "add_task.json").write_text(json.dumps({"best_epoch": 2}))
    _metrics(cmp / "g_added", [{"round": 0, "task": "a", "dev_score": 0.1}])
    (cmp / "g_added" / "results.json").write_text(json.dumps({"tasks": {}}))
    (cmp / "g_added" / "add_task.json").write_text(json.dumps({"best_epoch": 1}))
    (cmp / "g_added" / "config.toml").write_text("[train]\nepochs = 4\n")
    _ended(cmp / "h_badjson", 3, 3, 3, 3)
    (cmp / "h_badjson" / "results.json").write_text('{"best_epoch": 3')
    _ended(cmp / "i_badtoml", 3, 3, 3, None)
    (cmp / "i_badtoml" / "config.toml").write_text("[train\nepochs = 3\n")
    _ended(cmp / "j_boolcap", 3, 3, 3, None)
    (cmp / "j_boolcap" / "config.toml").write_text("[train]\nepochs = true\n")
    assert curves_module.stopping_table(cmp).splitlines()[2:] == [
        "| b_cap | 19 | 20 | 20 | the cap |",
        "| c_nobest | ? | 5 | 5 | ? |",
        "| d_noepoch | - | - | ? | not finished (epoch 0 in metrics.jsonl) |",
        "| e_dir | - | - | 3 | not finished (epoch 3 in metrics.jsonl) |",
        "| f_both | 5 | 8 | 10 | early stop, 3 epochs after its best |",
        "| g_added | 1 | ? | 4 | ? |",
        "| h_badjson | ? | ? | 3 | ? |",
        "| i_badtoml | 3 | 3 | ? | ? |",
        "| j_boolcap | 3 | 3 | ? | ? |",
    ]


def test_curves_into_a_folder_another_process_writes_in_is_refused_and_out_elsewhere_is_not(
    tmp_path, capsys
):
    """One process at a time writes into a folder: `curves` on a comparison still training
    wrote its dev_curves.png there; now it says to draw it elsewhere, which works meanwhile."""
    from mtlshare.training.folder import OutputFolder

    folder = tmp_path / "cmp"
    _metrics(folder / "hard" / "seed-0", [{"epoch": 1, "dev": {"a": 0.5}}])
    with OutputFolder(folder) as training:
        training.open()  # what a running compare holds
        assert main(["curves", str(folder)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err == [
            f"mtlshare: error: {folder}: another mtlshare process is writing here; wait for it "
            "to end or choose another --out"
        ]
        assert not (folder / "dev_curves.png").exists()
        assert main(["curves", str(folder), "--out", str(tmp_path / "now.png")]) == 0
        assert (tmp_path / "now.png").is_file()
    assert main(["curves", str(folder)]) == 0  # the writer gone
    assert (folder / "dev_curves.png").is_file()


def test_curves_without_a_dev_score_draw_nothing(tmp_path):
    path = tmp_path / "c.png"
    with pytest.raises(MtlshareError, match=rf"^no dev scores to draw for {re.escape(str(path))}$"):
        plot_dev_curves({"hard/seed0": {}}, path)
    assert list(tmp_path.iterdir()) == []
