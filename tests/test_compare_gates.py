"""The mixture-of-experts mechanisms through the commands: ``run`` writes each task's mean gate
weight per expert on dev (``results.json``, ``gates.png``), ``compare`` tabulates and plots the
gates of every seed and reads them back on ``--resume``, bad settings are one-line errors before
any folder is made."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mtlshare.cli import main

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
TINY = ["train.epochs=2", "data.n_train=40", "data.n_dev=30", "data.n_test=30", "--quiet"]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def read(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("mechanism", ["mmoe", "ple"])
def test_run_reports_each_tasks_gate_weights_on_dev(mechanism, tmp_path):
    out = tmp_path / mechanism
    assert main(["run", DEMO, f"mechanism={mechanism}", *TINY, "--out", str(out)]) == 0
    gates = read(out / "results.json")["gates"]
    assert gates["split"] == "dev" and gates["positions"] == {"t1": 30, "t2": 30}
    levels = gates["levels"]
    assert len(levels) == (2 if mechanism == "ple" else 1)  # demo.toml: ple.levels = 2
    for level in levels:
        for task, weights in level["tasks"].items():
            mixed = [w for w in weights if w is not None]
            assert len(weights) == len(level["experts"])
            assert sum(mixed) == pytest.approx(1.0), task
    if mechanism == "ple":
        assert levels[0]["experts"] == ["shared-1", "t1-1", "t2-1"]
        assert levels[0]["tasks"]["t1"][2] is None and levels[0]["tasks"]["t2"][1] is None
        assert sum(levels[0]["shared"]) == pytest.approx(1.0)
    assert (out / "gates.png").read_bytes()[:8] == PNG_MAGIC


def test_compare_tabulates_and_plots_the_gates_and_resumes(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", DEMO, "--mechanisms", "single,hard,mmoe,ple", "--seeds", "0,1", *TINY]
    assert main([*args, "--out", str(out)]) == 0
    comparison = read(out / "comparison.json")
    assert list(comparison["gates"]) == ["mmoe", "ple"]  # hard has no gates
    for name, summary in comparison["gates"].items():
        assert summary["seeds"] == [0, 1] and len(summary["runs"]) == 2
        for s, run in zip(summary["seeds"], summary["runs"], strict=True):
            assert run == read(out / name / f"seed-{s}" / "results.json")["gates"]
        pair = summary["levels"][0]["pairs"][0]
        assert pair["tasks"] == ["t1", "t2"] and 0.0 <= pair["overlap"] <= 1.0
        assert pair["overlap"] == pytest.approx(sum(pair["seeds"]) / 2)
    on_shared = comparison["gates"]["mmoe"]["levels"][0]["on_shared"]
    assert on_shared["t1"]["weight"] == pytest.approx(1.0)  # every MMoE expert is shared
    text = (out / "comparison.md").read_text(encoding="utf-8")
    assert "| mechanism | level | overlap t1 & t2 | t1 on shared | t2 on shared |" in text
    assert "| mmoe | 1 |" in text and "| ple | 2 |" in text
    assert (out / "gates.png").read_bytes()[:8] == PNG_MAGIC
    capsys.readouterr()
    # --resume reads every run back: the same gates, nothing trained again
    stamp = (out / "mmoe" / "seed-0" / "results.json").stat().st_mtime_ns
    assert main([*args, "--out", str(out), "--resume"]) == 0
    assert read(out / "comparison.json")["gates"] == comparison["gates"]
    assert (out / "mmoe" / "seed-0" / "results.json").stat().st_mtime_ns == stamp


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ("mmoe.experts=0", "mmoe.experts"),
        ("ple.shared_experts=0", "ple.shared_experts"),
        ("ple.task_experts=0", "ple.task_experts"),
        ("ple.levels=0", "ple.levels"),
        ("ple.levels=3", "ple.levels"),  # the demo trunk has 2 layers
    ],
)
def test_bad_expert_settings_are_one_line_errors_before_any_output(override, key, tmp_path, capsys):
    out = tmp_path / "never"
    argv = ["run", DEMO, "mechanism=ple", override, *TINY, "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("mtlshare: error: ") and key in err and "\n" not in err
    assert not out.exists()
    cmp = ["compare", DEMO, "--mechanisms", "mmoe,ple", override, *TINY, "--out", str(out)]
    assert main(cmp) == 2
    assert key in capsys.readouterr().err and not out.exists()
