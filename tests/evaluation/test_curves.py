"""Dev curves read from metrics.jsonl files and drawn, and `mtlshare curves`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlshare.cli import main
from mtlshare.errors import MtlshareError
from mtlshare.evaluation import curves as curves_module
from mtlshare.evaluation.curves import plot_dev_curves, read_curves


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


def test_a_panel_with_runs_the_first_legend_lacks_has_a_legend_of_its_own(tmp_path, monkeypatch):
    """Runs of other task sets (a comparison beside a run of other tasks): every line is
    labelled, the first panel's legend as before, and a panel only when it draws a row that
    legend lacks."""
    curves = {
        "hard/seed-0": {"chunk": [(1, 0.5)], "ner": [(1, 0.4)], "pos": [(1, 0.9)]},
        "hard/seed-1": {"chunk": [(1, 0.6)], "ner": [(1, 0.3)], "pos": [(1, 0.8)]},
        "sparse/seed-0": {"chunk": [(1, 0.5)], "ner": [(1, 0.4)], "pos": [(1, 0.9)]},
        "hard-pn": {"ner": [(1, 0.2)], "pos": [(1, 0.7)]},
        "t1": {"t1": [(1, 0.1)], "t2": [(1, 0.2)]},
    }
    figures = []
    monkeypatch.setattr(curves_module, "save_figure", lambda fig, path, **kw: figures.append(fig))

    def legends(curves):
        plot_dev_curves(curves, tmp_path / "c.png")
        drawn = {}
        for ax in figures.pop().axes:
            legend = ax.get_legend()
            drawn[ax.get_title()] = [t.get_text() for t in legend.texts] if legend else None
        return drawn

    assert legends(curves) == {
        "chunk": ["hard", "sparse"],
        "ner": ["hard", "sparse", "hard-pn"],
        "pos": ["hard", "sparse", "hard-pn"],
        "t1": ["t1"],
        "t2": ["t1"],
    }
    same = {"hard/seed-0": curves["hard/seed-0"], "sparse/seed-0": curves["sparse/seed-0"]}
    # one task set: the first panel's legend only, as before
    assert legends(same) == {"chunk": ["hard", "sparse"], "ner": None, "pos": None}


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
    for out, message in (
        (tmp_path / "curves.pdf", "ending in .png"),
        (tmp_path / "curves.txt", "ending in .png"),
        (tmp_path / "missing" / "curves.png", "no folder"),
    ):
        assert main(["curves", str(tmp_path / "run"), "--out", str(out)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and f"--out {out}" in err[0] and message in err[0], err
        assert not out.exists() and not (tmp_path / "missing").exists()
    adir = tmp_path / "adir.png"
    adir.mkdir()
    assert main(["curves", str(tmp_path / "run"), "--out", str(adir)]) == 2
    assert "is a folder" in capsys.readouterr().err
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
