"""Known-answer tests for deltas, negative-transfer flags and the Markdown report."""

from __future__ import annotations

import json
import math

import pytest

from mtlshare.errors import MtlshareError
from mtlshare.evaluation.report import (
    compare,
    comparison_markdown,
    format_metric,
    format_percent,
    mean_change,
    merge_single,
    relative_change,
)


def _task(metric, higher_is_better, test):
    return {"metric": metric, "higher_is_better": higher_is_better, "dev": test, "test": test}


def _single(name, metric, higher_is_better, test, params, seconds):
    return {
        "mechanism": "single",
        "seed": 0,
        "tasks": {name: _task(metric, higher_is_better, test)},
        "params": {"total": params, "shared": 0, "task_specific": params, "counted": params},
        "train_seconds": seconds,
    }


def _run(mechanism, t1, t2):
    return {
        "mechanism": mechanism,
        "seed": 0,
        "tasks": {"t1": _task("mse", False, t1), "t2": _task("accuracy", True, t2)},
        "params": {"total": 150, "shared": 100, "task_specific": 50, "counted": 150},
        "train_seconds": 2.0,
    }


@pytest.fixture
def single():
    # t1: mse 0.5 (lower is better); t2: accuracy 0.8 (higher is better)
    return merge_single(
        [
            _single("t1", "mse", False, 0.5, 100, 1.0),
            _single("t2", "accuracy", True, 0.8, 120, 1.5),
        ]
    )


@pytest.fixture
def comparison(single):
    # hard: t1 better by 20%, t2 worse by 10%.  soft: t1 worse by 20%, t2 exactly equal.
    return compare(single, [_run("hard", 0.4, 0.72), _run("soft", 0.6, 0.8)])


def test_relative_change_sign_lower_is_better():
    assert relative_change(0.4, 0.5, higher_is_better=False) == pytest.approx(0.2)
    assert relative_change(0.6, 0.5, higher_is_better=False) == pytest.approx(-0.2)


def test_relative_change_sign_higher_is_better():
    assert relative_change(0.88, 0.8, higher_is_better=True) == pytest.approx(0.1)
    assert relative_change(0.72, 0.8, higher_is_better=True) == pytest.approx(-0.1)


def test_relative_change_uses_absolute_baseline():
    # a negative baseline must not flip the sign of an improvement
    assert relative_change(-1.0, -2.0, higher_is_better=True) == pytest.approx(0.5)


def test_relative_change_zero_baseline():
    assert relative_change(0.0, 0.0, higher_is_better=True) == 0.0
    assert relative_change(1.0, 0.0, higher_is_better=True) == math.inf
    assert relative_change(1.0, 0.0, higher_is_better=False) == -math.inf
    assert relative_change(-1.0, 0.0, higher_is_better=False) == math.inf


def test_merge_single_sums_params_and_seconds(single):
    assert single["mechanism"] == "single"
    assert list(single["tasks"]) == ["t1", "t2"]
    assert single["params"] == {"total": 220, "shared": 0, "task_specific": 220, "counted": 220}
    assert single["train_seconds"] == pytest.approx(2.5)
    assert single["seed"] == 0


def test_merging_or_averaging_no_result_is_refused():
    from mtlshare.evaluation.report import mean_over_seeds

    with pytest.raises(
        MtlshareError, match=r"^merge_single needs at least one single-task result$"
    ):
        merge_single([])
    with pytest.raises(MtlshareError, match=r"^mean_over_seeds needs at least one run$"):
        mean_over_seeds([])


def test_merge_single_rejects_multi_task_and_duplicates():
    two = _run("single", 0.5, 0.8)
    with pytest.raises(MtlshareError, match="exactly one task"):
        merge_single([two])
    one = _single("t1", "mse", False, 0.5, 10, 1.0)
    with pytest.raises(MtlshareError, match="t1"):
        merge_single([one, one])


def test_compare_rows_and_baseline_first(comparison):
    assert comparison["baseline"] == "single"
    assert comparison["tasks"] == ["t1", "t2"]
    assert [r["mechanism"] for r in comparison["rows"]] == ["single", "hard", "soft"]
    base = comparison["rows"][0]
    for task in base["tasks"].values():
        assert task["delta"] == 0.0
        assert task["relative_change"] == 0.0
        assert task["negative_transfer"] is False
    assert base["mean_relative_change"] == 0.0
    assert base["params"]["counted"] == 220


def test_compare_delta_is_raw_difference(comparison):
    hard = comparison["rows"][1]["tasks"]
    assert hard["t1"]["delta"] == pytest.approx(-0.1)
    assert hard["t2"]["delta"] == pytest.approx(-0.08)
    assert hard["t1"]["single"] == 0.5
    assert hard["t1"]["test"] == 0.4


def test_negative_transfer_flagged_exactly_for_worse_tasks(comparison):
    flags = {
        row["mechanism"]: {t: v["negative_transfer"] for t, v in row["tasks"].items()}
        for row in comparison["rows"]
    }
    assert flags == {
        "single": {"t1": False, "t2": False},
        "hard": {"t1": False, "t2": True},  # accuracy dropped
        "soft": {"t1": True, "t2": False},  # mse rose; accuracy tied is not negative transfer
    }


def test_mean_relative_change(comparison):
    hard, soft = comparison["rows"][1], comparison["rows"][2]
    assert hard["mean_relative_change"] == pytest.approx((0.2 - 0.1) / 2)
    assert soft["mean_relative_change"] == pytest.approx((-0.2 + 0.0) / 2)


def test_comparison_is_json_serialisable(comparison):
    assert json.loads(json.dumps(comparison)) == comparison


def test_compare_raises_when_run_lacks_a_task(single):
    run = _run("hard", 0.4, 0.72)
    del run["tasks"]["t2"]
    with pytest.raises(MtlshareError, match="t2"):
        compare(single, [run])


def test_compare_raises_when_run_has_an_extra_task(single):
    run = _run("hard", 0.4, 0.72)
    run["tasks"]["t3"] = _task("mse", False, 1.0)
    with pytest.raises(MtlshareError, match="t3"):
        compare(single, [run])


def test_compare_raises_on_metric_mismatch(single):
    run = _run("hard", 0.4, 0.72)
    run["tasks"]["t1"] = _task("mae", False, 0.4)
    with pytest.raises(MtlshareError, match="mae"):
        compare(single, [run])


def test_formatting():
    assert format_metric(0.41234) == "0.4123"
    assert format_metric(12.3456) == "12.35"
    assert format_percent(0.031) == "+3.1%"
    assert format_percent(-0.1) == "-10.0%"
    assert format_percent(math.inf) == "+inf%"
    assert format_percent(math.nan) == "n/a"
    # a change one decimal would show as none keeps its sign and size
    assert format_percent(-0.0003) == "-0.03%"
    assert format_percent(0.00049) == "+0.05%"
    assert format_percent(0.0005) == "+0.1%"  # 0.05 rounds to 0.1: one decimal shows it
    assert format_percent(-0.00001) == "-0.00%"
    assert format_percent(0.0) == "+0.0%"


def test_markdown_rows_markers_and_legend(comparison):
    text = comparison_markdown(comparison, title="Negative transfer")
    lines = text.splitlines()
    assert lines[0] == "## Negative transfer"
    rows = {line.split("|")[1].strip(): line for line in lines if line.startswith("| ")}
    assert set(rows) == {"mechanism", "single", "hard", "soft"}

    cells = {m: [c.strip() for c in rows[m].split("|")[2:4]] for m in ("single", "hard", "soft")}
    assert cells["single"] == ["0.5", "0.8"]
    assert cells["hard"] == ["0.4 (+20.0%)", "0.72 (-10.0%) **NT**"]
    assert cells["soft"] == ["0.6 (-20.0%) **NT**", "0.8 (+0.0%)"]
    assert "+5.0%" in rows["hard"]
    assert "-10.0%" in rows["soft"]
    assert "220" in rows["single"]

    legend = lines[-1]
    assert "t1: mse, lower is better" in legend
    assert "t2: accuracy, higher is better" in legend
    assert "**NT**" in legend and "negative transfer" in legend
    # NT appears in the two flagged cells and the legend, nowhere else
    assert text.count("**NT**") == 3


def test_markdown_without_title_starts_with_table(comparison):
    assert comparison_markdown(comparison).startswith("| mechanism |")


def test_seed_by_seed_values_and_paired_wins():
    from mtlshare.evaluation.report import mean_over_seeds

    def seeded(mechanism, seed, t1, t2):
        return {**_run(mechanism, t1, t2), "seed": seed}

    def single_seeds(seed, t1, t2):
        return merge_single(
            [
                {**_single("t1", "mse", False, t1, 100, 1.0), "seed": seed},
                {**_single("t2", "accuracy", True, t2, 120, 1.0), "seed": seed},
            ]
        )

    base = mean_over_seeds([single_seeds(0, 0.5, 0.8), single_seeds(1, 0.3, 0.6)])
    # t1 (mse): seed 0 0.4 < 0.5 better, seed 1 0.4 > 0.3 worse; t2 (acc): 0.9 > 0.8, 0.6 ties
    hard = mean_over_seeds([seeded("hard", 0, 0.4, 0.9), seeded("hard", 1, 0.4, 0.6)])
    assert hard["tasks"]["t1"]["test_seeds"] == [0.4, 0.4]
    assert hard["tasks"]["t2"]["dev_seeds"] == [0.9, 0.6]
    got = compare(base, [hard])
    got["seeds"] = [0, 1]
    row = got["rows"][1]["tasks"]
    assert (row["t1"]["seeds_better"], row["t2"]["seeds_better"]) == (1, 1)
    # the means alone hide it: hard's mean mse equals single's (0.4), so no negative transfer
    assert row["t1"]["test"] == pytest.approx(0.4) and not row["t1"]["negative_transfer"]
    text = comparison_markdown(got)
    assert "Seed by seed (seeds 0, 1)" in text
    assert "| single | 0.5 / 0.3 | 0.8 / 0.6 | 220 |" in text
    assert "| hard | 0.4 / 0.4 (1/2 better) | 0.9 / 0.6 (1/2 better) | 150 |" in text
    assert "are means over seeds" not in text  # hard has one count
    # sparse masks: each seed its own count; the table shows their mean and each seed's
    a, b = seeded("sparse", 0, 0.4, 0.9), seeded("sparse", 1, 0.4, 0.6)
    b["params"] = {**b["params"], "counted": 91, "total": 140}
    sparse = mean_over_seeds([a, b])
    assert sparse["params"]["counted"] == 120 and sparse["params"]["total"] == 145
    assert [p["counted"] for p in sparse["params_seeds"]] == [150, 91]
    text = comparison_markdown({**compare(base, [hard, sparse]), "seeds": [0, 1]})
    assert "Parameter counts of sparse are means over seeds." in text
    assert "(1/2 better) | 150 / 91 |" in text
    assert "| 120 | 145 |" in text  # counted and total in the main table
    # one seed: no seed-by-seed table
    one = compare(mean_over_seeds([single_seeds(0, 0.5, 0.8)]), [seeded("hard", 0, 0.4, 0.9)])
    assert "Seed by seed" not in comparison_markdown({**one, "seeds": [0]})
    # a run with another number of seeds than the baseline cannot be paired
    three = mean_over_seeds([seeded("hard", s, 0.4, 0.9) for s in range(3)])
    with pytest.raises(MtlshareError, match="3 seeds"):
        compare(base, [three])


def test_mean_over_seeds_gives_sample_deviations_and_mean_seconds():
    from mtlshare.evaluation.report import mean_over_seeds

    runs = [
        {**_run("hard", 0.4, 0.7), "seed": 0, "train_seconds": 1.0},
        {**_run("hard", 0.6, 0.9), "seed": 1, "train_seconds": 3.0},
        {**_run("hard", 0.8, 0.8), "seed": 2, "train_seconds": 5.0},
    ]
    merged = mean_over_seeds(runs)
    t1 = merged["tasks"]["t1"]
    assert t1["test"] == pytest.approx(0.6)
    # sample standard deviation (n - 1): sqrt((0.04 + 0 + 0.04) / 2) = 0.2, not sqrt(0.08 / 3)
    assert t1["test_std"] == pytest.approx(0.2)
    assert merged["tasks"]["t2"]["dev_std"] == pytest.approx(0.1)
    assert merged["train_seconds"] == pytest.approx(3.0)
    assert merged["seed"] == merged["seeds"] == [0, 1, 2]


def test_a_row_on_fewer_seeds_is_compared_with_its_own_baseline(single):
    """``baselines`` maps a mechanism to single-task results under its own seeds; the other
    rows keep the baseline over every seed."""
    own = merge_single(
        [
            _single("t1", "mse", False, 0.25, 100, 1.0),
            _single("t2", "accuracy", True, 0.9, 120, 1.5),
        ]
    )
    got = compare(single, [_run("hard", 0.4, 0.72), _run("soft", 0.4, 0.72)], {"hard": own})
    hard, soft = got["rows"][1]["tasks"], got["rows"][2]["tasks"]
    assert (hard["t1"]["single"], hard["t2"]["single"]) == (0.25, 0.9)
    assert hard["t1"]["negative_transfer"] and hard["t2"]["negative_transfer"]
    assert hard["t1"]["relative_change"] == pytest.approx((0.25 - 0.4) / 0.25)
    assert (soft["t1"]["single"], soft["t2"]["single"]) == (0.5, 0.8)
    assert got["rows"][0]["tasks"]["t1"]["single"] == 0.5  # the baseline row: every seed


def test_a_task_whose_baseline_scores_0_is_left_out_of_the_mean_and_the_notes_say_so():
    """A new user's trial: single-task deprel scored F1 0, so every row's mean change read
    +inf% whatever the other tasks did."""
    assert mean_change([0.06, 0.12, math.inf]) == pytest.approx(0.09)
    assert mean_change([math.inf, math.inf]) == math.inf
    assert mean_change([]) == 0.0
    base = merge_single(
        [
            _single("t1", "mse", False, 0.5, 100, 1.0),
            _single("t2", "accuracy", True, 0.0, 120, 1.5),
        ]
    )
    comparison = compare(base, [_run("hard", 0.4, 0.1)])
    hard = next(r for r in comparison["rows"] if r["mechanism"] == "hard")
    assert hard["tasks"]["t2"]["relative_change"] == math.inf
    assert hard["mean_relative_change"] == pytest.approx(0.2)
    text = comparison_markdown(comparison)
    assert "| +20.0% |" in text and "is left out of the mean" in text
    assert "left out of the mean" not in comparison_markdown(
        compare(merge_single([_single("t1", "mse", False, 0.5, 100, 1.0)]), [])
    )
