"""``recipes/table/label_scarcity.py``: one comparison per share of a task's training labels on
a tiny table, its Markdown table (labels kept, scores, seeds better) and plot; resumed, it reads
every comparison back; a task the recipe lacks is one line, exit 2."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "recipes" / "table" / "label_scarcity.py"
RECIPE = """
mechanism = "hard"
[data]
source = "table"
path = "t.csv"
features = ["x"]
[data.tasks.a]
kind = "regression"
metric = "mae"
[data.tasks.b]
kind = "regression"
metric = "mae"
[trunk]
kind = "mlp"
hidden = [8]
[train]
epochs = 2
batch_size = 8
[compare]
mechanisms = ["single", "hard"]
seeds = [0, 1]
"""


def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("label_scarcity", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    rows = [f"{i},{i % 7},{2 * i + 1}" for i in range(60)]
    (tmp_path / "t.csv").write_text("x,a,b\n" + "\n".join(rows) + "\n", encoding="utf-8")
    path = tmp_path / "r.toml"
    path.write_text(RECIPE, encoding="utf-8")
    return path


def test_a_comparison_per_share_and_their_table(recipe, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--out", str(out), "--recipe", str(recipe), "--task", "a", "--quiet"]
    assert script().main([*args, "--shares", "0.25,1"]) == 0
    printed = capsys.readouterr().out
    table = (out / "label_scarcity.md").read_text(encoding="utf-8")
    assert printed == table
    lines = table.splitlines()
    assert lines[2] == "| share | a labels | a: single | a: hard | b: single | b: hard |"
    quarter, whole = lines[4].split(" | "), lines[5].split(" | ")
    assert (quarter[0], quarter[1]) == ("| 0.25", "11")  # 42 training rows: 10.5 rounds up
    assert (whole[0], whole[1]) == ("| 1", "42")
    for share, line in (("0.25", quarter), ("1", whole)):
        folder = out / f"share-{share}"
        kept = json.loads((folder / "comparison.json").read_text(encoding="utf-8"))
        rows = {r["mechanism"]: r["tasks"] for r in kept["rows"]}
        assert (
            line[2] == f"{rows['single']['a']['test']:.1f} ± {rows['single']['a']['test_std']:.1f}"
        )
        better = rows["hard"]["a"]["seeds_better"]
        assert line[3].endswith(f" ({better}/2)")
        saved = (folder / "single" / "seed-0" / "a" / "config.toml").read_text(encoding="utf-8")
        assert f"train_labels = {float(share)}" in saved
    assert (out / "label_scarcity.png").stat().st_size > 0
    # resumed: every comparison is read back, the same table written again
    assert script().main([*args, "--shares", "0.25,1", "--resume"]) == 0
    assert (out / "label_scarcity.md").read_text(encoding="utf-8") == table


def test_overrides_change_the_recipe_of_every_share(recipe, tmp_path):
    out = tmp_path / "out"
    args = ["--out", str(out), "--recipe", str(recipe), "--task", "a", "--quiet"]
    assert script().main([*args, "--shares", "0.5", "train.select_on=a", "train.epochs=1"]) == 0
    saved = (out / "share-0.5" / "hard" / "seed-0" / "config.toml").read_text(encoding="utf-8")
    assert 'select_on = "a"' in saved and "epochs = 1\n" in saved


def test_a_task_the_recipe_lacks_is_one_line(recipe, tmp_path, capsys):
    args = ["--out", str(tmp_path / "o"), "--recipe", str(recipe), "--task", "c", "--quiet"]
    assert script().main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("label_scarcity: error: ")


@pytest.mark.parametrize("kept", ["label-scarcity", "label-scarcity-select-casual"])
def test_the_kept_tables_are_the_kept_comparisons_and_the_docs_quote_them(kept):
    """Each kept ``label_scarcity.md`` is what the script writes from the kept comparisons
    (the labels counted on the shared data), and ``table_bike.md`` quotes the first."""
    results = ROOT / "docs" / "results"
    folder = results / "table-bike" / kept
    recipe = ROOT / "recipes" / "table" / "bike_sharing.toml"
    if not (recipe.parent / "../../../shared/data/bike_sharing/day.csv").is_file():
        pytest.skip("../shared/data/bike_sharing is absent")
    module = script()
    from mtlshare.config import load_config

    done = []
    for share in (0.02, 0.05, 0.1, 0.25, 0.5, 1.0):
        table = json.loads((folder / f"share-{share:g}" / "comparison.json").read_text())
        cfg = load_config(recipe, [f"data.tasks.casual.train_labels={share}"])
        done.append({"share": share, "labels": module.labels_kept(cfg, "casual"), "table": table})
    text = module.markdown(done, "casual")
    assert (folder / "label_scarcity.md").read_text(encoding="utf-8") == text
    if kept == "label-scarcity":
        doc = (results / "table_bike.md").read_text(encoding="utf-8")
        rows = [line for line in text.splitlines() if line.startswith("|")]
        assert "\n".join(rows) in doc
