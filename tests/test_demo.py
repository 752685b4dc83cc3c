"""``mtlshare demo``: both relatedness settings, every registered mechanism, a PNG plot."""

from __future__ import annotations

import json

import pytest

import mtlshare.app.demo
import mtlshare.sharing  # registers the mechanisms
from mtlshare.app.jobs import available_cores
from mtlshare.cli import main
from mtlshare.registry import MECHANISMS

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_demo_writes_plot_and_both_comparisons(tmp_path, capsys):
    out = tmp_path / "demo"
    argv = ["demo", "--out", str(out), "train.epochs=2", "data.n_dev=50", "data.n_test=50"]
    argv += ["sparse.round_epochs=1", "sparse.warmup_epochs=1"]  # a short mask search
    # one seed: compare's seed layout and averaging are tested in test_jobs and test_cli
    assert main([*argv, "--quiet", "--jobs", "1", "--seeds", "0"]) == 0
    png = out / "demo.png"
    assert png.read_bytes()[:8] == PNG_MAGIC
    assert png.stat().st_size > 1000
    expected = ["single", *MECHANISMS.names(), "hard+dwa", "hard+mgda"]  # and joint steps
    for setting in ("high", "low"):
        comparison = json.loads((out / setting / "comparison.json").read_text())
        assert [row["mechanism"] for row in comparison["rows"]] == expected
        assert comparison["tasks"] == ["t1", "t2"]
        assert (out / setting / "comparison.md").is_file()
    # the overrides reached the runs, and the relatedness differs between the settings
    printed = capsys.readouterr().out
    for name in expected:
        assert f"| {name} |" in printed
    configs = {
        s: sorted((out / s / "hard").rglob("config.toml"))[0].read_text() for s in ("high", "low")
    }
    assert "epochs = 2" in configs["high"]
    assert "relatedness = 0.9" in configs["high"]
    assert "relatedness = 0.0" in configs["low"]
    # and a third task added to a trained model, its trained tasks untouched
    for mechanism in ("hard", "sparse"):
        summary = json.loads(
            (out / "add-task" / f"{mechanism}-added" / "add_task.json").read_text()
        )
        assert summary["existing_unchanged"] is True
        assert set(summary["existing_tasks"]) == {"t1", "t2"}
        assert f"| t3 added to the {mechanism}-sharing t1+t2 model |" in printed
    assert (out / "add-task" / "alone" / "results.json").is_file()


def test_demo_runs_one_worker_per_core_unless_told(tmp_path, monkeypatch):
    seen: list[int] = []
    monkeypatch.setattr(mtlshare.app.demo, "run_demo", lambda *a, **k: seen.append(k["jobs"]))
    assert main(["demo", "--out", str(tmp_path / "a"), "--quiet"]) == 0
    assert main(["demo", "--out", str(tmp_path / "b"), "--quiet", "--jobs", "1"]) == 0
    assert seen == [available_cores(), 1]


def test_demo_refuses_negative_jobs_before_making_out(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path / "d"), "--jobs", "-1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    # 0 is the default and valid (a worker per core): the message must not say ">= 1" alone
    assert "--jobs: expected 0 (one worker per available core)" in err and "got -1" in err
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize(
    ("left", "holds"),
    [("config.toml", "a run (config.toml)"), ("comparison.json", "a comparison (comparison.json)")],
)
def test_demo_refuses_a_folder_holding_another_commands_output(tmp_path, capsys, left, holds):
    out = tmp_path / "d"
    out.mkdir()
    (out / left).write_text("kept\n")
    assert main(["demo", "--out", str(out), "--quiet", "--jobs", "1"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mtlshare: error: {out}: holds {holds}, not the demo's; choose another --out"
    ]
    assert [p.name for p in out.iterdir()] == [left]
    assert (out / left).read_text() == "kept\n"


@pytest.mark.parametrize("override", ["data.n_tasks=0", "data.noise=-1"])
def test_demo_refuses_bad_data_settings_before_making_out(tmp_path, capsys, override):
    assert main(["demo", override, "--out", str(tmp_path / "d"), "--jobs", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and override.split("=")[0] in err
    assert not (tmp_path / "d").exists()


def test_add_task_demo_says_unchanged_only_when_every_model_kept_its_tasks(
    tmp_path, monkeypatch, capsys
):
    import mtlshare.app.demo as demo

    def fake_run(cfg, out, progress=True):
        return {"tasks": {"t3": {"test": 1.0}}, "params": {"total": 10}}

    def fake_add_task(trained, cfg, out, progress=True):
        kept = {"t1": {"test_before": 1.0, "test_after": 1.0}}
        return {
            "existing_tasks": kept,
            "new_tasks": {"t3": {"test": 0.5}},
            "trainable_params": 5,
            "existing_unchanged": "hard" in str(trained),  # sparse's changed
        }

    monkeypatch.setattr(demo, "run", fake_run)
    monkeypatch.setattr(demo, "add_task", fake_add_task)
    demo.add_task_demo(tmp_path, progress=False)
    assert "existing tasks unchanged: False" in capsys.readouterr().out


def test_the_demo_plot_says_its_seeds_and_one_that_fails_is_a_warning_not_a_path(
    tmp_path, monkeypatch, capsys
):
    """The plot's title says ``(seed 0)`` for one seed and ``(mean of 2 seeds)`` for two; a plot
    that cannot be drawn is one warning naming ``demo.png`` and no ``plot:`` line (it printed
    ``plot: None``)."""
    import mtlshare.app.demo as demo

    titles = []
    monkeypatch.setattr(demo, "compare", lambda *a, **kw: {"rows": []})
    monkeypatch.setattr(demo, "comparison_markdown", lambda *a: "table")
    monkeypatch.setattr(demo, "add_task_demo", lambda *a: {})
    monkeypatch.setattr(
        demo, "plot_comparisons", lambda c, path, title: titles.append(title) or path
    )
    for seeds in ([0], [0, 1]):
        demo._demo(tmp_path, False, None, seeds, 1)
    assert [t.rsplit(" (", 1)[1] for t in titles] == ["seed 0)", "mean of 2 seeds)"]
    assert f"plot: {tmp_path / 'demo.png'}" in capsys.readouterr().out

    def fails(*args, **kwargs):
        raise RuntimeError("no canvas")

    monkeypatch.setattr(demo, "plot_comparisons", fails)
    with pytest.warns(UserWarning) as warned:
        demo._demo(tmp_path, False, None, [0], 1)
    assert [str(w.message) for w in warned] == [
        f"{tmp_path / 'demo.png'}: not drawn (RuntimeError: no canvas)"
    ]
    assert "plot:" not in capsys.readouterr().out
