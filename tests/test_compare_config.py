"""``[compare]`` (mechanisms, seeds, per-mechanism overrides), ``compare`` with
``single_subnet`` (each task alone on the mask the sparse run selected: ``sparse.masks_from``)
and the overlap-vs-gain table, on a tiny version of the demo config.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import tomli_w

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare.app.compare import compare, comparison_markdown
from mtlshare.app.run import run, train
from mtlshare.cli import main
from mtlshare.config import CompareConfig, Config, from_dict, load_config
from mtlshare.errors import ConfigError, MtlshareError
from mtlshare.evaluation import report
from mtlshare.sharing.sparse import masks_from_state
from mtlshare.sharing.sparse.report import overlap_vs_gain
from mtlshare.training.checkpoint import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "recipes" / "demo" / "demo.toml"
TINY = [
    "train.epochs=2",
    "data.n_train=40",
    "data.n_dev=40",
    "data.n_test=40",
    "data.n_tasks=3",
    "sparse.round_steps=5",
    "sparse.warmup_steps=5",
    "trunk.hidden=[16, 16]",
]
TASKS = ["t1", "t2", "t3"]
MECHANISMS = ["single", "hard", "sparse", "single_subnet", "hierarchical"]
SEED = 3  # not the config's seed (0): shows that [compare] seeds are used


def write_config(path: Path, compare: dict[str, Any]) -> Path:
    raw = tomllib.loads(DEMO.read_text(encoding="utf-8"))
    raw["compare"] = compare
    path.write_text(tomli_w.dumps(raw), encoding="utf-8")
    return path


def tiny(path: Path = DEMO, *extra: str) -> Config:
    return load_config(path, [*TINY, *extra])


def read_json(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def masks(run_dir: Path) -> dict[str, Any]:
    tensors, _ = load_checkpoint(run_dir / "checkpoint" / "best")
    return masks_from_state(tensors, prefix="model.")


@pytest.fixture(scope="module")
def compared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``mtlshare compare CONFIG --out DIR`` with neither --mechanisms nor --seeds."""
    root = tmp_path_factory.mktemp("compare")
    config = write_config(
        root / "tiny.toml",
        {
            "mechanisms": MECHANISMS,
            "seeds": [SEED],
            "title": "tiny comparison",
            "overrides": {
                "hierarchical": {"trunk.hidden": [16, 16, 16]},
                "sparse": {"sparse.alpha": 0.5},  # single_subnet takes sparse's overrides too
            },
        },
    )
    out = root / "out"
    assert main(["compare", str(config), *TINY, "--out", str(out), "--quiet"]) == 0
    return out


# -- the [compare] section -----------------------------------------------------------------------


def test_compare_section_is_parsed_and_written_back():
    cfg = tiny(
        DEMO,
        'compare.mechanisms=["hard", "sparse", "single_subnet"]',
        "compare.seeds=[1, 2]",
        'compare.overrides.hard={ "train.lr" = 0.01 }',
    )
    assert cfg.compare.mechanisms == ["hard", "sparse", "single_subnet"]
    assert cfg.compare.seeds == [1, 2]
    assert cfg.compare.overrides == {"hard": {"train.lr": 0.01}}
    raw = tomllib.loads(cfg.to_toml())
    assert raw["compare"]["overrides"] == {"hard": {"train.lr": 0.01}}
    assert from_dict(raw).to_dict() == raw
    # the demo's section sets only its joint-step rows
    assert tiny().compare == CompareConfig(variants=tiny().compare.variants)
    assert list(tiny().compare.variants) == ["hard+dwa", "hard+mgda"]


@pytest.mark.parametrize(
    "override",
    [
        'compare.mechanisms=["hard", "sparse_sharing"]',
        'compare.overrides.sparse_sharing={ "train.lr" = 0.01 }',
    ],
)
def test_unknown_mechanism_in_compare_is_a_config_error(override):
    with pytest.raises(ConfigError, match="'sparse_sharing'"):
        tiny(DEMO, override)


def test_unknown_key_in_compare_is_a_config_error():
    with pytest.raises(ConfigError, match=r"compare\.mechanism\b"):
        tiny(DEMO, 'compare.mechanism=["hard"]')


@pytest.mark.parametrize(
    "names",
    [
        ["single", "single_subnet", "sparse"],
        ["single", "hard", "single_subnet"],
        ["single_subnet"],
    ],
)
def test_single_subnet_needs_sparse_before_it(names, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(MtlshareError, match="sparse before"):
        compare(tiny(), names, out, progress=False)
    assert not (out / "single").exists()  # refused before anything was trained


@pytest.mark.parametrize("names", [["single", "hard", "hard"], ["hard", "sparse", "hard"]])
def test_a_row_listed_twice_is_refused_before_training(names, tmp_path):
    # it trained the row, then failed on its own folder ("holds an earlier run"), and with
    # --resume printed the row twice
    out = tmp_path / "out"
    with pytest.raises(MtlshareError, match="hard twice"):
        compare(tiny(), names, out, progress=False)
    assert not out.exists()


def test_seeds_listed_twice_are_refused_by_the_python_api_before_training(tmp_path):
    # the command line refuses them in --seeds, compare.seeds in the config: compare() itself
    out = tmp_path / "out"
    with pytest.raises(MtlshareError, match=r"^--seeds: \[1, 2, 1\] lists a seed twice$"):
        compare(tiny(), ["hard"], out, progress=False, seeds=[1, 2, 1])
    assert not out.exists()


def test_single_subnet_overrides_that_do_not_fit_the_sparse_masks_are_refused_first(tmp_path):
    # a trunk of its own for single_subnet used to fail only once the sparse runs had trained
    config = write_config(
        tmp_path / "c.toml",
        {
            "overrides": {
                "sparse": {"trunk.hidden": [16, 16]},
                "single_subnet": {"trunk.hidden": [8, 8]},
            }
        },
    )
    out = tmp_path / "out"
    with pytest.raises(ConfigError, match=r"single_subnet.*does not fit"):
        compare(tiny(config), ["single", "sparse", "single_subnet"], out, progress=False)
    assert not out.exists()


def test_single_subnet_trains_on_the_masks_of_a_sparse_run_with_depths(tmp_path):
    # with sparse.depths a shallow task's mask also names the deeper layers (kept empty),
    # which its single-task network lacks: single_subnet was refused after the sparse run
    cfg = tiny(DEMO, "sparse.depths={t1 = 1}")
    result = compare(cfg, ["single", "sparse", "single_subnet"], tmp_path / "out", progress=False)
    sparse = masks(tmp_path / "out" / "sparse")
    alone = masks(tmp_path / "out" / "single_subnet" / "t1")
    assert not sparse["t1"]["1.linear.weight"].any()  # t1 keeps nothing below its depth
    assert set(alone["t1"]) == {"0.linear.weight"}
    assert (alone["t1"]["0.linear.weight"] == sparse["t1"]["0.linear.weight"]).all()
    assert [r["mechanism"] for r in result["rows"]][-1] == "single_subnet"
    # its config says what its network is: the one layer t1 reads, with that layer's activation
    trunk = read_toml(tmp_path / "out" / "single_subnet" / "t1" / "config.toml")["trunk"]
    assert trunk["hidden"] == [16] and trunk["last_activation"] == ""


def test_cli_refuses_single_subnet_before_sparse_from_the_config(tmp_path, capsys):
    config = write_config(
        tmp_path / "c.toml", {"mechanisms": ["single", "single_subnet", "sparse"]}
    )
    assert main(["compare", str(config), *TINY, "--out", str(tmp_path / "out"), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "single_subnet" in err[0] and "sparse" in err[0]


# -- the CLI reads [compare] ---------------------------------------------------------------------


def test_cli_runs_the_configs_mechanisms(compared):
    folders = {p.name for p in compared.iterdir() if p.is_dir()}
    assert folders == set(MECHANISMS)
    comparison = read_json(compared / "comparison.json")
    assert [row["mechanism"] for row in comparison["rows"]] == MECHANISMS
    assert comparison["tasks"] == TASKS
    assert comparison["overrides"]["hierarchical"] == {"trunk.hidden": [16, 16, 16]}
    text = (compared / "comparison.md").read_text(encoding="utf-8")
    assert text.startswith("## tiny comparison")


def test_cli_takes_the_configs_seeds(compared):
    assert read_json(compared / "comparison.json")["seeds"] == [SEED]
    # one seed: no seed-N folders, and every run trained with it
    assert not any(p.name.startswith("seed-") for p in compared.rglob("*"))
    for mechanism in ("hard", "sparse", "hierarchical"):
        assert read_json(compared / mechanism / "results.json")["seed"] == SEED
        assert read_toml(compared / mechanism / "config.toml")["seed"] == SEED
    for task in TASKS:
        assert read_json(compared / "single" / task / "results.json")["seed"] == SEED
        assert read_json(compared / "single_subnet" / task / "results.json")["seed"] == SEED


def test_overrides_apply_to_one_mechanism_only(compared):
    hidden = {
        m: read_toml(compared / m / "config.toml")["trunk"]["hidden"] for m in ("hard", "sparse")
    }
    assert hidden == {"hard": [16, 16], "sparse": [16, 16]}
    assert read_toml(compared / "hierarchical" / "config.toml")["trunk"]["hidden"] == [16, 16, 16]
    assert read_toml(compared / "single" / "t1" / "config.toml")["trunk"]["hidden"] == [16, 16]
    # the trunk really was deeper: more trunk parameters than hard sharing's
    params = {
        m: read_json(compared / m / "results.json")["params"] for m in ("hard", "hierarchical")
    }
    assert params["hierarchical"]["total"] > params["hard"]["total"]
    # sparse's overrides reach sparse and single_subnet, not the others
    alpha = {
        "sparse": read_toml(compared / "sparse" / "config.toml")["sparse"]["alpha"],
        "single_subnet": read_toml(compared / "single_subnet" / "t2" / "config.toml")["sparse"][
            "alpha"
        ],
        "hard": read_toml(compared / "hard" / "config.toml")["sparse"]["alpha"],
    }
    assert alpha == {"sparse": 0.5, "single_subnet": 0.5, "hard": 0.2}


# -- single_subnet ---------------------------------------------------------------------------------


def test_single_subnet_trains_each_task_alone_on_its_sparse_mask(compared):
    sparse_dir = compared / "sparse"
    selected = masks(sparse_dir)
    assert set(selected) == set(TASKS)
    sparse_results = read_json(sparse_dir / "results.json")
    assert sparse_results["sparse"]["rounds"]  # the sparse run did search
    # the search pruned something, so "same mask" is not "all ones" for every task
    assert min(sparse_results["sparse"]["density"].values()) < 1.0
    for task in TASKS:
        run_dir = compared / "single_subnet" / task
        config = read_toml(run_dir / "config.toml")
        assert config["mechanism"] == "sparse"
        assert config["tasks"] == [task]
        assert Path(config["sparse"]["masks_from"]) == sparse_dir.resolve()
        results = read_json(run_dir / "results.json")
        assert list(results["tasks"]) == [task]
        # it took the mask, it did not search
        assert results["sparse"]["rounds"] == [] and results["sparse"]["rounds_overlap"] == []
        assert not (run_dir / "checkpoint" / "search").exists()
        own = masks(run_dir)
        assert list(own) == [task]
        assert own[task].keys() == selected[task].keys()
        for name, mask in selected[task].items():
            assert own[task][name].equal(mask), (task, name)
        density = results["sparse"]["density"][task]
        assert density == pytest.approx(sparse_results["sparse"]["density"][task])
    merged = read_json(compared / "single_subnet" / "results.json")
    assert merged["mechanism"] == "single_subnet"
    assert set(merged["tasks"]) == set(TASKS)


def test_masks_from_a_run_without_the_task_is_a_config_error(compared, tmp_path):
    cfg = tiny(DEMO, "mechanism=sparse", 'tasks=["t2"]')
    cfg = cfg.replace(**{"sparse.masks_from": str(compared / "single_subnet" / "t1")})
    with pytest.raises(ConfigError, match="'t2'"):
        run(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # refused once training began: nothing left


def test_masks_from_a_different_trunk_is_a_config_error(compared, tmp_path):
    cfg = tiny(DEMO, "mechanism=sparse", "trunk.hidden=[8, 8]")
    cfg = cfg.replace(**{"sparse.masks_from": str(compared / "sparse")})
    with pytest.raises(ConfigError, match="do not fit"):
        run(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # refused once training began: nothing left


def test_masks_from_a_run_without_masks_is_a_config_error(compared, tmp_path):
    cfg = tiny(DEMO, "mechanism=sparse").replace(**{"sparse.masks_from": str(compared / "hard")})
    with pytest.raises(ConfigError, match="masks"):
        run(cfg, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # refused once training began: nothing left


def test_masks_from_a_folder_without_checkpoint_is_refused(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg = tiny(DEMO, "mechanism=sparse").replace(**{"sparse.masks_from": str(empty)})
    with pytest.raises(MtlshareError) as caught:
        run(cfg, tmp_path / "out", progress=False)
    assert isinstance(caught.value, ConfigError)  # the setting at fault, named
    assert str(caught.value).startswith(f"sparse.masks_from: {empty}")
    assert not (tmp_path / "out").exists()


def test_masks_from_loads_the_same_masks_as_the_sparse_run(compared, tmp_path):
    """The masks a whole-problem run takes from a finished sparse run are that run's masks."""
    cfg = tiny(DEMO, "mechanism=sparse", "train.epochs=1")
    cfg = cfg.replace(**{"sparse.masks_from": str(compared / "sparse")})
    trained = train(cfg, tmp_path / "out", progress=False)
    selected = masks(compared / "sparse")
    model_masks = trained.model.masks  # type: ignore[attr-defined]
    for task in TASKS:
        for name, mask in selected[task].items():
            assert model_masks[task][name].equal(mask), (task, name)
    sparse = read_json(compared / "sparse" / "results.json")["sparse"]
    assert trained.results["sparse"]["pairwise_overlap"] == sparse["pairwise_overlap"]
    assert trained.results["sparse"]["rounds"] == []


# -- overlap vs gain -------------------------------------------------------------------------------


def test_comparison_has_overlap_vs_gain_per_pair(compared):
    comparison = read_json(compared / "comparison.json")
    pairs = comparison["overlap_vs_gain"]
    assert [p["tasks"] for p in pairs] == [["t1", "t2"], ["t1", "t3"], ["t2", "t3"]]
    sparse = read_json(compared / "sparse" / "results.json")
    hard = read_json(compared / "hard" / "results.json")
    for pair in pairs:
        a, b = pair["tasks"]
        assert pair["overlap"] == pytest.approx(sparse["sparse"]["pairwise_overlap"][a][b])
        diffs = []
        for task in (a, b):
            sign = 1.0 if sparse["tasks"][task]["higher_is_better"] else -1.0
            diffs.append(sign * (sparse["tasks"][task]["test"] - hard["tasks"][task]["test"]))
        assert pair["gain"] == pytest.approx(sum(diffs) / 2)
    text = (compared / "comparison.md").read_text(encoding="utf-8")
    assert "| task pair | mask overlap ratio |" in text
    for pair in pairs:
        a, b = pair["tasks"]
        assert f"| {a} & {b} | {pair['overlap']:.3f} | {pair['gain']:+.4f} |" in text


def results(
    mechanism: str, tests: dict[str, float], overlap: float = 0.0, metric: str | None = None
) -> dict[str, Any]:
    """A run's results with tasks ``acc`` (accuracy) and ``err`` (MSE), or both scored by
    ``metric`` (a metric of one's own, ``err`` lower-is-better)."""
    hib = {"acc": True, "err": False}
    out: dict[str, Any] = {
        "mechanism": mechanism,
        "seed": 0,
        "tasks": {
            t: {
                "metric": metric or ("accuracy" if hib[t] else "mse"),
                "higher_is_better": hib[t],
                "dev": v,
                "test": v,
            }
            for t, v in tests.items()
        },
        "params": {"total": 10, "counted": 10, "shared": 5, "task_specific": 5},
        "train_seconds": 1.0,
    }
    if mechanism == "sparse":
        out["sparse"] = {"pairwise_overlap": {"acc": {"err": overlap}, "err": {"acc": overlap}}}
    return out


def test_overlap_vs_gain_by_hand():
    single = results("single", {"acc": 0.5, "err": 2.0}, metric="mine")
    hards = [seeded("hard", k, {"acc": 0.6, "err": 1.0}, metric="mine") for k in (0, 1)]
    seeds = [
        seeded("sparse", 0, {"acc": 0.8, "err": 0.5}, overlap=0.2, metric="mine"),
        seeded("sparse", 1, {"acc": 0.6, "err": 1.5}, overlap=0.4, metric="mine"),
    ]
    sparse = report.mean_over_seeds(seeds)  # acc 0.7, err 1.0
    names = report.compare(single, [sparse])["tasks"]
    pairs = overlap_vs_gain(names, seeds, hards)
    assert len(pairs) == 1
    assert pairs[0]["tasks"] == ["acc", "err"]
    assert pairs[0]["overlap"] == pytest.approx(0.3)  # mean over seeds
    # acc: sparse 0.7 vs hard 0.6 -> +0.1; err (lower is better): 1.0 vs 1.0 -> 0
    assert pairs[0]["gain"] == pytest.approx(0.05)
    assert "seeds" not in pairs[0]  # both ran seeds 0 and 1
    worse = [seeded("hard", k, {"acc": 0.6, "err": 0.2}, metric="mine") for k in (0, 1)]
    # err: sparse 1.0 vs hard 0.2, lower is better -> -0.8; mean with +0.1 -> -0.35
    assert overlap_vs_gain(names, seeds, worse)[0]["gain"] == pytest.approx(-0.35)
    without_hard = report.compare(single, [sparse])
    assert overlap_vs_gain(names, seeds, [])[0]["gain"] is None
    text = comparison_markdown({**without_hard, "overlap_vs_gain": pairs[:0]})
    assert "task pair" not in text
    no_gain = overlap_vs_gain(names, seeds, [])
    text = comparison_markdown({**without_hard, "overlap_vs_gain": no_gain})
    assert "| acc & err | 0.300 | - |" in text
    with pytest.raises(ValueError, match="seed twice"):
        overlap_vs_gain(names, [seeds[0], seeds[0]], hards)


def seeded(
    mechanism: str, seed: int, tests: dict[str, float], overlap: float = 0.0, **kw: Any
) -> dict[str, Any]:
    return {**results(mechanism, tests, overlap, **kw), "seed": seed}


def test_a_pair_scored_on_unlike_scales_has_no_gain():
    """MSE and accuracy differences do not average: such a pair shows '-' and says why;
    accuracy with span F1 (the paper's Table 7) do."""
    single = results("single", {"acc": 0.5, "err": 2.0})
    hards = [seeded("hard", 0, {"acc": 0.6, "err": 1.0})]
    sparse = [seeded("sparse", 0, {"acc": 0.8, "err": 0.5}, overlap=0.2)]
    names = report.compare(single, [sparse[0]])["tasks"]
    pairs = overlap_vs_gain(names, sparse, hards)
    assert pairs[0]["gain"] is None and pairs[0]["unlike_metrics"] is True
    text = comparison_markdown({**report.compare(single, [sparse[0]]), "overlap_vs_gain": pairs})
    assert "| acc & err | 0.200 | - |" in text and "metrics of different scales" in text
    for r in (*hards, *sparse):
        r["tasks"]["err"]["metric"], r["tasks"]["err"]["higher_is_better"] = "span_f1", True
    assert overlap_vs_gain(names, sparse, hards)[0]["gain"] == pytest.approx((0.2 - 0.5) / 2)


def test_overlap_gain_pairs_seeds_when_the_rows_ran_different_ones():
    # hard sharing under seeds 0-2, sparse sharing under seed 0 only (compare.seeds_of): the
    # gain compares seed 0 with seed 0, not sparse's seed 0 with hard sharing's mean
    singles = [seeded("single", k, {"acc": 0.5, "err": 2.0}, metric="mine") for k in (0, 1, 2)]
    hards = [
        seeded("hard", 0, {"acc": 0.60, "err": 1.0}, metric="mine"),
        seeded("hard", 1, {"acc": 0.90, "err": 0.1}, metric="mine"),
        seeded("hard", 2, {"acc": 0.90, "err": 0.1}, metric="mine"),
    ]
    sparse_runs = [seeded("sparse", 0, {"acc": 0.70, "err": 1.0}, overlap=0.25, metric="mine")]
    single = report.mean_over_seeds(singles)
    hard = report.mean_over_seeds(hards)
    sparse = report.mean_over_seeds(sparse_runs)
    comparison = report.compare(single, [hard])
    # as compare does for a row of fewer seeds: set beside single-task training of its seeds
    comparison["rows"] += report.compare(report.mean_over_seeds(singles[:1]), [sparse])["rows"]
    names = comparison["tasks"]
    pair = overlap_vs_gain(names, sparse_runs, hards)[0]
    # seed 0: acc 0.70 - 0.60 = +0.1, err 1.0 vs 1.0 = 0 -> +0.05 (the means would give -0.35)
    assert pair["gain"] == pytest.approx(0.05)
    assert pair["seeds"] == [0]
    text = comparison_markdown({**comparison, "overlap_vs_gain": [pair]})
    assert "| acc & err | 0.250 | +0.0500 |" in text
    assert "under the seed both ran (0)" in text
    # no seed in common: no gain rather than a comparison across seeds
    assert overlap_vs_gain(names, [{**sparse_runs[0], "seed": 7}], hards)[0]["gain"] is None
    # sparse seeds 2 and 0 against hard 0-2: each paired with its own seed, in sparse's order
    two = [{**sparse_runs[0], "seed": 2}, sparse_runs[0]]
    pair = overlap_vs_gain(names, two, hards)[0]
    # seed 2: acc 0.70 - 0.90 = -0.2, err -(1.0 - 0.1) = -0.9 -> -0.55; seed 0: +0.05
    assert pair["gain"] == pytest.approx((-0.55 + 0.05) / 2)
    assert pair["seeds"] == [2, 0]
    # the same seeds: no seeds listed
    pair = overlap_vs_gain(
        names, [seeded("sparse", k, {"acc": 0.6, "err": 1.0}) for k in (0, 1, 2)], hards
    )[0]
    assert "seeds" not in pair


def test_a_data_override_is_applied_or_refused(tmp_path):
    out = tmp_path / "out"
    try:
        cfg = tiny(DEMO, 'compare.overrides.hard={ "data.n_train" = 10 }')
        compare(cfg, ["hard"], out, progress=False)
    except ConfigError as e:  # refusing overrides that change the data is a fix too
        assert "data.n_train" in str(e)
        return
    saved = read_toml(out / "hard" / "config.toml")
    assert saved["data"]["n_train"] == 10
    first = json.loads((out / "hard" / "metrics.jsonl").read_text().splitlines()[0])
    # 3 tasks of 10 examples in batches of 32: 3 steps in an epoch (40 examples would take 6)
    assert first["step"] == 3


def test_a_variant_row_trains_its_mechanism_with_its_settings(tmp_path):
    cfg = tiny(DEMO)
    out = tmp_path / "cmp"
    comparison = compare(cfg, ["single", "hard", "hard+dwa"], out, progress=False)
    assert [r["mechanism"] for r in comparison["rows"]] == ["single", "hard", "hard+dwa"]
    saved = read_toml(out / "hard+dwa" / "config.toml")
    assert saved["mechanism"] == "hard" and saved["train"]["schedule"] == "joint"
    assert saved["weighting"]["kind"] == "dwa"
    single = read_toml(out / "single" / "t1" / "config.toml")
    assert single["train"]["schedule"] == "alternate"


def test_single_task_rows_leave_out_the_fixed_weights_of_the_tasks(tmp_path):
    """A weight per task balances the tasks of a shared run; a task trained alone takes none
    (the weights would also name tasks its run does not have, which a run refuses)."""
    cfg = tiny(DEMO, "weighting.weights={ t1 = 2.0 }")
    out = tmp_path / "cmp"
    compare(cfg, ["single", "hard"], out, progress=False)
    assert read_toml(out / "hard" / "config.toml")["weighting"]["weights"] == {"t1": 2.0}
    for task in ("t1", "t2", "t3"):
        saved = read_toml(out / "single" / task / "config.toml")
        assert saved["weighting"].get("weights", {}) == {}, task


def test_single_task_rows_select_on_their_own_task_when_the_config_names_one(tmp_path):
    out = tmp_path / "cmp"
    compare(tiny(DEMO, "train.select_on=t1"), ["single", "hard"], out, progress=False)
    assert read_toml(out / "hard" / "config.toml")["train"]["select_on"] == "t1"
    for task in ("t1", "t2", "t3"):
        assert read_toml(out / "single" / task / "config.toml")["train"]["select_on"] == "mean"


def test_a_run_whose_weights_cannot_be_built_is_refused_before_the_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"weighting\.weights: unknown task"):
        compare(tiny(DEMO, "weighting.weights={ t9 = 2.0 }"), ["hard"], tmp_path / "c")
    assert not (tmp_path / "c").exists()


def test_a_comparison_of_some_tasks_trains_those_and_refuses_an_unknown_one_first(tmp_path):
    """``tasks`` picks the comparison's tasks, in its order; a task the data has not is a
    ConfigError naming the key, before the folder is made (not a run's failure in it)."""
    with pytest.raises(
        ConfigError, match=r"^tasks: unknown task\(s\) \['t9'\]; the data's tasks are \['t1'"
    ):
        compare(tiny(DEMO, 'tasks=["t2", "t9"]'), ["hard"], tmp_path / "c", progress=False)
    assert not (tmp_path / "c").exists()
    out = tmp_path / "two"
    compare(tiny(DEMO, 'tasks=["t3", "t1"]'), ["hard"], out, progress=False)
    assert read_json(out / "comparison.json")["tasks"] == ["t3", "t1"]


def test_a_comparison_given_another_row_resumes_its_finished_runs(tmp_path):
    """A row added to [compare] (here a variant) changes every run's saved [compare] table,
    not how any of them trains: the finished runs are read back, only the new row trains."""
    out = tmp_path / "cmp"
    compare(tiny(DEMO), ["single", "hard"], out, progress=False)
    runs = [c.parent / "results.json" for c in out.rglob("config.toml")]
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    assert len(stamps) == 4  # t1, t2, t3 alone and hard sharing
    wider = tiny(
        DEMO,
        'compare.variants={ "hard+rlw" = { mechanism = "hard", "train.schedule" '
        '= "joint", "weighting.kind" = "rlw" } }',
        'compare.title="wider"',
    )
    rows = compare(wider, ["single", "hard", "hard+rlw"], out, progress=False, resume=True)
    assert [r["mechanism"] for r in rows["rows"]] == ["single", "hard", "hard+rlw"]
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing retrained
    assert (out / "hard+rlw" / "results.json").is_file()
    # a change to how a run trains is still refused
    with pytest.raises(MtlshareError, match="the config differs"):
        compare(tiny(DEMO, "train.lr=0.1"), ["single", "hard"], out, progress=False, resume=True)


def test_more_seeds_resume_the_runs_of_a_one_seed_pass_where_they_are(tmp_path):
    """A ``--seeds 0`` pass writes ``ROW/``; the comparison with seeds 0 and 1 resumed in the
    same folder reads those runs back (single_subnet's mask path included) and trains only seed
    1 in ``ROW/seed-1/``; a one-seed pass resumed afterwards reads them back too."""
    out = tmp_path / "cmp"
    rows = ["single", "sparse", "single_subnet", "hard"]
    first = compare(tiny(DEMO), rows, out, seeds=[0], progress=False)
    runs = [c.parent / "results.json" for c in out.rglob("config.toml")]
    stamps = {p: p.stat().st_mtime_ns for p in runs}
    assert len(stamps) == 3 + 1 + 3 + 1
    both = compare(tiny(DEMO), rows, out, seeds=[0, 1], progress=False, resume=True)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # seed 0: read back
    assert not (out / "hard" / "seed-0").exists() and (out / "hard" / "seed-1").is_dir()
    assert read_toml(out / "single_subnet" / "seed-1" / "t1" / "config.toml")["sparse"][
        "masks_from"
    ] == str((out / "sparse" / "seed-1").resolve())
    for one, two in zip(first["rows"], both["rows"], strict=True):
        assert one["mechanism"] == two["mechanism"]
        for task, got in two["tasks"].items():
            assert got["test_seeds"][0] == one["tasks"][task]["test"]
    stamps = {c.parent: c.stat().st_mtime_ns for c in out.rglob("results.json")}
    again = compare(tiny(DEMO), rows, out, seeds=[0], progress=False, resume=True)
    assert again["rows"] == first["rows"]
    changed = {p for p, t in stamps.items() if (p / "results.json").stat().st_mtime_ns != t}
    assert changed <= {out / "single", out / "single_subnet"}  # the rows' merges, not runs


def test_kept_runs_are_read_back_by_a_resumed_comparison(tmp_path, monkeypatch):
    """recipes/keep_runs.py copies finished runs without checkpoints; a comparison resumed in
    a copy of them trains nothing and writes the same table (how long runs cross machines)."""
    import importlib.util

    import mtlshare.app.jobs as jobs

    spec = importlib.util.spec_from_file_location("keep_runs", ROOT / "recipes" / "keep_runs.py")
    assert spec is not None and spec.loader is not None
    keep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(keep)
    out = tmp_path / "cmp"
    first = compare(tiny(DEMO), ["single", "hard"], out, progress=False)
    (out / "hard" / "results.json").rename(tmp_path / "unfinished.json")  # not kept
    kept = tmp_path / "kept"
    assert keep.keep_runs(out, kept) == 3
    assert not list(kept.rglob("checkpoint")) and not (kept / "hard").exists()
    assert (kept / "comparison.md").read_text() == (out / "comparison.md").read_text()
    (tmp_path / "unfinished.json").rename(out / "hard" / "results.json")
    assert keep.keep_runs(out, kept) == 4
    (kept / "comparison.md").unlink()

    def no_training(*args, **kwargs):
        raise AssertionError("a kept run was trained again")

    monkeypatch.setattr(jobs, "run", no_training)
    again = compare(tiny(DEMO), ["single", "hard"], kept, progress=False, resume=True)
    assert again["rows"] == first["rows"]
    assert (kept / "comparison.md").read_text() == (out / "comparison.md").read_text()


@pytest.mark.parametrize(
    ("variant", "message"),
    [
        ('{ hard = { mechanism = "hard" } }', "a name of its own"),
        ('{ "x/y" = { mechanism = "hard" } }', "a name of its own"),
        ('{ "hard+x" = { mechanism = "nope" } }', "name a registered mechanism"),
        ('{ "hard+x" = { mechanism = "hard", "data.n_train" = 5 } }', "would change the data"),
    ],
)
def test_bad_variants_are_refused(variant, message):
    with pytest.raises(ConfigError, match=message):
        tiny(DEMO, f"compare.variants={variant}")


def test_a_comparison_that_names_no_rows_has_the_demos_rows():
    """``mtlshare compare recipes/demo/demo.toml`` runs the rows ``mtlshare demo`` runs: single,
    every mechanism and every variant (it left the variants, the joint-step rows, out)."""
    cfg = load_config(DEMO)
    rows = cfg.compare.default_rows()
    assert rows[0] == "single" and rows[-2:] == ["hard+dwa", "hard+mgda"]
    assert set(rows) == set(cfg.compare.rows()) - {"single_subnet"}
    named = cfg.replace(**{"compare.mechanisms": ["single", "hard"]}).compare.default_rows()
    assert named == ["single", "hard"]
