"""The table of Experiment 3's plateau section (docs/results/exp3.md) is written by hand from the
kept runs in ``docs/results/exp3-paper/plateau/epochs-80`` and the 20-epoch runs in
``docs/results/exp3-paper/runs``: each cell must be what their ``results.json`` say."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from md_tables import section, table

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "docs" / "results" / "exp3-paper"
DOC = ROOT / "docs" / "results" / "exp3.md"
SECTION = "### Trained to the plateau: seed 0, then seeds 1 and 2"
TASKS = ("pos", "chunk", "ner")
ROWS = ("hard", "sparse", "cross_stitch", "hierarchical")  # the 20-epoch sharing rows


def results(run: Path) -> Any:
    return json.loads((run / "results.json").read_text(encoding="utf-8"))


def plateau_run(task: str) -> Path:
    """Seed 0's single-task run of ``task``, in whichever layout the comparison wrote it."""
    one = PAPER / "plateau" / "epochs-80" / "single"
    several = one / "seed-0" / task
    return several if several.is_dir() else one / task


def test_the_single_task_plateau_table_is_the_kept_runs() -> None:
    rows = table(section(DOC.read_text(encoding="utf-8"), SECTION), "| single task, seed 0")
    capped, plateau, epochs = [], [], []
    for task in TASKS:
        short = results(PAPER / "runs" / "single" / task)
        long = results(plateau_run(task))
        assert short["seed"] == long["seed"] == 0
        capped.append(f"{100 * short['tasks'][task]['test']:.2f}")
        plateau.append(f"{100 * long['tasks'][task]['test']:.2f}")
        epochs.append(f"{long['best_epoch']} / {long['epochs_run']}")
    assert rows["cap 20 (the table above)"] == capped
    assert rows["cap 80"] == plateau
    assert rows["best epoch / epochs run, cap 80"] == epochs
    for task in TASKS:
        config = (plateau_run(task) / "config.toml").read_text(encoding="utf-8")
        assert "\nepochs = 80\n" in config and "\nseed = 0\n" in config, task


def test_the_chunking_gain_and_the_rows_it_passes_are_the_kept_runs() -> None:
    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    short = results(PAPER / "runs" / "single" / "chunk")["tasks"]["chunk"]["test"]
    long = results(plateau_run("chunk"))["tasks"]["chunk"]["test"]
    assert f"gained {100 * (long - short):.2f} points: {100 * long:.2f}," in body
    shared = [results(PAPER / "runs" / r)["tasks"]["chunk"]["test"] for r in ROWS]
    assert f"({100 * min(shared):.2f} to {100 * max(shared):.2f})" in body
    assert max(shared) < long
    assert f"{93.71 - 100 * long:.2f} under the paper's single-task 93.71" in body


@pytest.mark.parametrize("row, name", [("hard", "hard sharing"), ("sparse", "sparse sharing")])
def test_a_sharing_rows_plateau_table_is_the_kept_runs(row: str, name: str) -> None:
    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, f"| {name}, seed 0")
    ours = results(PAPER / "plateau" / "epochs-80" / row)
    ours20 = results(PAPER / "runs" / row)
    assert ours["seed"] == ours20["seed"] == 0
    assert f"(best epoch {ours['best_epoch']} of {ours['epochs_run']}," in body
    cells, gaps = [], []
    for task in TASKS:
        single = results(plateau_run(task))["tasks"][task]["test"]
        single20 = results(PAPER / "runs" / "single" / task)["tasks"][task]["test"]
        test, test20 = ours["tasks"][task]["test"], ours20["tasks"][task]["test"]
        cells.append(f"{100 * test:.2f}")
        gaps.append(f"{100 * (test - single):+.2f} / {100 * (test20 - single20):+.2f}")
    assert rows["cap 80"] == cells
    assert rows["minus single task: at the plateau / at 20 epochs (points)"] == gaps


def test_sparse_sharings_plateau_is_ahead_of_hard_sharing_by_the_table_and_searched_as_at_20() -> (
    None
):
    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, "| sparse sharing, seed 0")
    sparse = results(PAPER / "plateau" / "epochs-80" / "sparse")
    hard = results(PAPER / "plateau" / "epochs-80" / "hard")
    gaps = [f"{100 * (sparse['tasks'][t]['test'] - hard['tasks'][t]['test']):+.2f}" for t in TASKS]
    assert rows["minus hard sharing, at the plateau (points)"] == gaps
    # the search is the 20-epoch run's: only the subnets' training after it ran longer
    assert sparse["sparse"] == results(PAPER / "runs" / "sparse")["sparse"]
    pos, chunk, ner = (f"{sparse['sparse']['density'][t]:.2f}" for t in TASKS)
    assert f"POS {pos}, chunking {chunk}, NER {ner} of the weights" in body
    assert f"overlap ratio {sparse['sparse']['overlap_ratio']:.3f})" in body


def single_runs(seed: int) -> dict[str, Any]:
    """Seed ``seed``'s single-task results at the plateau, by task."""
    one = PAPER / "plateau" / "epochs-80" / "single"
    if seed == 0:
        return {t: results(plateau_run(t)) for t in TASKS}
    return {t: results(one / f"seed-{seed}" / t) for t in TASKS}


def test_the_three_seed_single_task_table_is_the_kept_runs() -> None:
    import statistics

    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, "| single task at the plateau, test (%)")
    runs = {seed: single_runs(seed) for seed in (0, 1, 2)}
    scores = {s: [100 * runs[s][t]["tasks"][t]["test"] for t in TASKS] for s in runs}
    for seed in runs:
        assert all(r["seed"] == seed for r in runs[seed].values())
        assert rows[f"seed {seed}"] == [f"{v:.2f}" for v in scores[seed]]
    means = [statistics.mean(scores[s][i] for s in runs) for i in range(3)]
    sds = [statistics.stdev(scores[s][i] for s in runs) for i in range(3)]
    assert rows["mean ± sd"] == [f"{m:.2f} ± {d:.2f}" for m, d in zip(means, sds, strict=True)]
    short = [
        statistics.mean(
            100
            * results(PAPER / "runs" / "single" / (f"seed-{s}/{t}" if s else t))["tasks"][t]["test"]
            for s in runs
        )
        for t in TASKS
    ]
    assert rows["at 20 epochs, mean of seeds 0-2 (the table above)"] == [f"{v:.2f}" for v in short]
    assert rows["best epoch / epochs run, seeds 1 and 2"] == [
        ", ".join(f"{runs[s][t]['best_epoch']} / {runs[s][t]['epochs_run']}" for s in (1, 2))
        for t in TASKS
    ]
    for seed in (1, 2):
        for t in TASKS:
            config = PAPER / "plateau" / "epochs-80" / "single" / f"seed-{seed}" / t / "config.toml"
            text = config.read_text(encoding="utf-8")
            assert "\nepochs = 80\n" in text and f"\nseed = {seed}\n" in text, (seed, t)
    hard = results(PAPER / "plateau" / "epochs-80" / "hard")
    sparse = results(PAPER / "plateau" / "epochs-80" / "sparse")
    for row, name in ((hard, "hard sharing"), (sparse, "sparse sharing")):
        gaps = [100 * row["tasks"][t]["test"] - m for t, m in zip(TASKS, means, strict=True)]
        assert f"{name} {gaps[0]:+.2f}, {gaps[1]:+.2f} and {gaps[2]:+.2f}" in " ".join(body.split())


def dev_chunking(run: Path) -> dict[int, float]:
    """A run's dev chunking F1 by epoch, from its ``metrics.jsonl``."""
    lines = (run / "metrics.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines if line.strip()]
    return {r["epoch"]: r["dev"]["chunk"] for r in rows if "dev" in r}


def row_run(row: str, seed: int) -> Any:
    """The results of a sharing row's (``hard``, ``sparse``) seed ``seed`` at the plateau: seed
    0 in the one-seed layout."""
    folder = PAPER / "plateau" / "epochs-80" / row
    return results(folder if seed == 0 else folder / f"seed-{seed}")


def test_the_three_seed_hard_sharing_table_is_the_kept_runs() -> None:
    import statistics

    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, "| hard sharing at the plateau, test (%)")
    runs = {seed: row_run("hard", seed) for seed in (0, 1, 2)}
    scores = {s: [100 * runs[s]["tasks"][t]["test"] for t in TASKS] for s in runs}
    single = {s: [100 * single_runs(s)[t]["tasks"][t]["test"] for t in TASKS] for s in runs}
    for seed in runs:
        assert runs[seed]["seed"] == seed and runs[seed]["mechanism"] == "hard"
        assert rows[f"seed {seed}"] == [f"{v:.2f}" for v in scores[seed]]

    def mean(values: dict[int, list[float]], i: int) -> float:
        return statistics.mean(values[s][i] for s in values)

    means = [mean(scores, i) for i in range(3)]
    sds = [statistics.stdev(scores[s][i] for s in runs) for i in range(3)]
    assert rows["mean ± sd"] == [f"{m:.2f} ± {d:.2f}" for m, d in zip(means, sds, strict=True)]
    short = {s: results(PAPER / "runs" / "hard" / (f"seed-{s}" if s else "")) for s in runs}
    short_single = {
        s: [
            100
            * results(PAPER / "runs" / "single" / (f"seed-{s}/{t}" if s else t))["tasks"][t]["test"]
            for t in TASKS
        ]
        for s in runs
    }
    short_scores = {s: [100 * short[s]["tasks"][t]["test"] for t in TASKS] for s in runs}
    assert rows["minus single task, means at the plateau / at 20 epochs (points)"] == [
        f"{mean(scores, i) - mean(single, i):+.2f} / "
        f"{mean(short_scores, i) - mean(short_single, i):+.2f}"
        for i in range(3)
    ]
    assert rows["minus single task, seed by seed at the plateau (points)"] == [
        ", ".join(f"{scores[s][i] - single[s][i]:+.2f}" for s in runs) for i in range(3)
    ]
    text = " ".join(body.split())
    epochs = [(runs[s]["best_epoch"], runs[s]["epochs_run"]) for s in runs]
    assert (
        f"best epochs {epochs[1][0]} and {epochs[2][0]} and stopped after {epochs[1][1]} and "
        f"{epochs[2][1]} (seed 0: {epochs[0][0]} of {epochs[0][1]})" in text
    )
    chunking = [single_runs(s)["chunk"]["best_epoch"] for s in runs]
    assert f"best epochs ({', '.join(str(e[0]) for e in epochs)}) come before" in text
    assert f"single-task chunking's ({', '.join(map(str, chunking))})" in text
    assert all(e[0] < c for e, c in zip(epochs, chunking, strict=True))
    # on dev: hard sharing's early lead on chunking, gone by epoch 20, and the best dev scores
    hard_dir = PAPER / "plateau" / "epochs-80" / "hard"
    curves = {
        s: [dev_chunking(hard_dir if s == 0 else hard_dir / f"seed-{s}"), dev_chunking(chunk)]
        for s, chunk in (
            (s, PAPER / "plateau" / "epochs-80" / "single" / f"seed-{s}" / "chunk") for s in runs
        )
    }
    for epoch, unit in ((5, " points"), (20, "")):
        leads = [f"{100 * (h[epoch] - c[epoch]):+.2f}" for h, c in curves.values()]
        assert f"by {leads[0]}, {leads[1]} and {leads[2]}{unit} at epoch {epoch}" in text, leads
    best = [f"{100 * (max(c.values()) - max(h.values())):.2f}" for h, c in curves.values()]
    assert f"best dev score ends {best[0]}, {best[1]} and {best[2]} points above" in text
    seconds = [f"{runs[s]['train_seconds']:,.0f}" for s in (1, 2)]
    assert f"in {seconds[0]} and {seconds[1]} s of training" in text
    for seed in (1, 2):  # trained to cap 80 on the CPU kind seed 0 was trained on
        config = PAPER / "plateau" / "epochs-80" / "hard" / f"seed-{seed}" / "config.toml"
        config_text = config.read_text(encoding="utf-8")
        assert "\nepochs = 80\n" in config_text and f"\nseed = {seed}\n" in config_text
        assert runs[seed]["machine"]["cpu"] == "AMD EPYC"
    sparse = results(PAPER / "plateau" / "epochs-80" / "sparse")
    gaps = [100 * sparse["tasks"][t]["test"] - m for t, m in zip(TASKS, means, strict=True)]
    assert f"against this mean: {gaps[0]:+.2f}, {gaps[1]:+.2f} and {gaps[2]:+.2f} points" in text
    # docs/experiments.md's account of it
    readme = " ".join((ROOT / "docs" / "experiments.md").read_text(encoding="utf-8").split())
    plateau = [f"{mean(scores, i) - mean(single, i):+.2f}" for i in range(3)]
    at20 = [f"{mean(short_scores, i) - mean(short_single, i):+.2f}" for i in range(3)]
    assert (
        f"Hard sharing's mean is {plateau[0]}, {plateau[1]} and {plateau[2]} points from it "
        f"(at 20 epochs {at20[0]}, {at20[1]} and {at20[2]})" in readme
    )
    singles = " / ".join(f"{mean(single, i):.2f}" for i in range(3))
    assert f"Single-task training's mean, {singles} (POS, chunking, NER)" in readme


def test_the_three_seed_sparse_sharing_table_is_the_kept_runs() -> None:
    import statistics

    body = section(DOC.read_text(encoding="utf-8"), SECTION)
    rows = table(body, "| sparse sharing at the plateau, test (%)")
    seeds = (0, 1, 2)

    def scores(row: str, plateau: bool) -> dict[int, list[float]]:
        """Test scores (%) of a row's seeds, by seed: at the plateau or at 20 epochs."""
        out = {}
        for s in seeds:
            if row == "single":
                runs = (
                    single_runs(s)
                    if plateau
                    else {
                        t: results(PAPER / "runs" / "single" / (f"seed-{s}/{t}" if s else t))
                        for t in TASKS
                    }
                )
                out[s] = [100 * runs[t]["tasks"][t]["test"] for t in TASKS]
            else:
                run = (
                    row_run(row, s)
                    if plateau
                    else results(PAPER / "runs" / row / (f"seed-{s}" if s else ""))
                )
                out[s] = [100 * run["tasks"][t]["test"] for t in TASKS]
        return out

    def mean(values: dict[int, list[float]], i: int) -> float:
        return statistics.mean(values[s][i] for s in seeds)

    sparse, sparse20 = scores("sparse", True), scores("sparse", False)
    single, single20 = scores("single", True), scores("single", False)
    hard, hard20 = scores("hard", True), scores("hard", False)
    for seed in seeds:
        run = row_run("sparse", seed)
        assert run["seed"] == seed and run["mechanism"] == "sparse"
        assert rows[f"seed {seed}"] == [f"{v:.2f}" for v in sparse[seed]]
        # the search is the 20-epoch run's: only the subnets' training after it ran longer
        short = results(PAPER / "runs" / "sparse" / (f"seed-{seed}" if seed else ""))
        assert run["sparse"] == short["sparse"], seed
    sds = [statistics.stdev(sparse[s][i] for s in seeds) for i in range(3)]
    assert rows["mean ± sd"] == [f"{mean(sparse, i):.2f} ± {sds[i]:.2f}" for i in range(3)]
    for other, other20, name in ((single, single20, "single task"), (hard, hard20, "hard sharing")):
        assert rows[f"minus {name}, means at the plateau / at 20 epochs (points)"] == [
            f"{mean(sparse, i) - mean(other, i):+.2f} / {mean(sparse20, i) - mean(other20, i):+.2f}"
            for i in range(3)
        ]
        assert rows[f"minus {name}, seed by seed at the plateau (points)"] == [
            ", ".join(f"{sparse[s][i] - other[s][i]:+.2f}" for s in seeds) for i in range(3)
        ]
    text = " ".join(body.split())
    ahead = sum(sparse[s][i] > hard[s][i] for s in seeds for i in range(3))
    assert f"in {ahead} of the 9 seed-and-task pairs" in text
    assert all(mean(sparse, i) > mean(hard, i) for i in range(3))  # "on all three tasks"
    runs = {s: row_run("sparse", s) for s in seeds}
    assert (
        f"best epochs {runs[1]['best_epoch']} and {runs[2]['best_epoch']} and stopped after "
        f"{runs[1]['epochs_run']} and {runs[2]['epochs_run']} (seed 0: {runs[0]['best_epoch']} "
        f"of {runs[0]['epochs_run']})" in text
    )
    seconds = [f"{runs[s]['train_seconds']:,.0f}" for s in (1, 2)]
    assert f"in {seconds[0]} and {seconds[1]} s of training" in text

    def masks(seed: int) -> str:
        found = runs[seed]["sparse"]
        kept = [f"{found['density'][t]:.2f}" for t in TASKS]
        return f"{kept[0]}, {kept[1]} and {kept[2]}"

    overlap = {s: f"{runs[s]['sparse']['overlap_ratio']:.3f}" for s in seeds}
    assert f"POS, chunking and NER keep {masks(1)} of the weights in seed 1 (overlap ratio" in text
    assert f"ratio {overlap[1]}) and {masks(2)} in seed 2 ({overlap[2]})" in text
    assert f"against {masks(0)} in seed 0 ({overlap[0]})" in text
    for seed in (1, 2):  # trained to cap 80 on the CPU kind seed 0 was trained on
        folder = PAPER / "plateau" / "epochs-80" / "sparse" / f"seed-{seed}"
        config_text = (folder / "config.toml").read_text(encoding="utf-8")
        assert "\nepochs = 80\n" in config_text and f"\nseed = {seed}\n" in config_text
        assert runs[seed]["machine"]["cpu"] == "AMD EPYC"
    # the 20-epoch section's pointers to it, and docs/experiments.md's account of it
    readme = " ".join((ROOT / "docs" / "experiments.md").read_text(encoding="utf-8").split())
    doc = " ".join(DOC.read_text(encoding="utf-8").split())
    to_single = ", ".join(f"{mean(sparse, i) - mean(single, i):+.2f}" for i in range(3))
    to_hard = ", ".join(f"{mean(sparse, i) - mean(hard, i):+.2f}" for i in range(3))
    means = " / ".join(f"{mean(sparse, i):.2f}" for i in range(3))
    assert f"Sparse sharing's mean over seeds 0-2 at the plateau, {means}," in readme
    assert f"is {to_hard} points from hard sharing's and {to_single} from single-task" in readme
    assert f"POS gain is left ({to_single} on the means:" in doc
    assert f"ahead on all three means ({to_hard}) and in {ahead} of the 9" in doc
    gain, before, after = mean(single, 1) - mean(single20, 1), mean(single20, 1), mean(single, 1)
    assert f"(+{gain:.2f} points on the mean, {before:.2f} to {after:.2f})" in readme
    assert all(
        gain > mean(row, 1) - mean(row20, 1) for row, row20 in ((hard, hard20), (sparse, sparse20))
    )


def test_the_plateau_dev_gaps_are_the_kept_runs_and_the_prose_reads_them() -> None:
    from mtlshare.evaluation.gaps import gap_table

    plateau = PAPER / "plateau"
    kept = (plateau / "dev_gaps-epochs-80.md").read_text(encoding="utf-8")
    assert gap_table(plateau / "epochs-80", [1, 5, 10, 20, 30]) == kept.rstrip("\n")
    rows = table(kept, "| row, task (seeds 0 / 1 / 2)")

    def mean(row: str, column: int) -> str:
        return rows[row][column].split(" ")[0].lstrip("+")

    sparse, hard = "sparse (after mask search), ", "hard, "
    text = " ".join(section(DOC.read_text(encoding="utf-8"), SECTION).split())
    assert (
        f"chunking leads by {mean(sparse + 'chunk', 1)} points at epoch 5 and by "
        f"{mean(sparse + 'chunk', 3)} at epoch 20, and its best dev score ends "
        f"{mean(sparse + 'chunk', 5).lstrip('-')} points under single-task training's, as hard "
        f"sharing's ends {mean(hard + 'chunk', 5).lstrip('-')} under" in text
    )
    assert f"(+{mean(sparse + 'pos', 5)} and +{mean(hard + 'pos', 5)} between the best" in text
    ner = rows[sparse + "ner"][5]
    assert f"ahead of single-task training's by {mean(sparse + 'ner', 5)} on the mean" in text
    assert f"only seed 0 is ahead ({ner.split('(')[1].split(' / ')[0]})" in text
    assert [v.startswith("+") for v in ner.split("(")[1].rstrip(")").split(" / ")] == [
        True,
        False,
        False,
    ]
