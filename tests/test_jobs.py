"""``mtlshare compare --jobs N``: runs in worker processes give the tables of ``--jobs 1``; a
failing run keeps the finished ones for ``--resume``; the cores are divided, never
oversubscribed; ``compare.seeds_of`` runs costly rows on fewer seeds, each compared with
single-task training under its own seeds; ``train.threads``."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch

import mtlshare.app.compare as comparing
from mtlshare import console
from mtlshare.app import jobs
from mtlshare.app.run import run
from mtlshare.cli import main
from mtlshare.config import from_dict, load_config
from mtlshare.errors import MtlshareError
from mtlshare.training.folder import ComparisonFolder, OutputFolder, RunFolder

TRAIN = """EU NNP B-ORG
rejects VBZ O
German JJ B-MISC
call NN O

Peter NNP B-PER
Blackburn NNP I-PER

Bonn NNP B-LOC
rejects VBZ O
call NN O
"""
DEV = "Peter NNP B-PER\nBlackburn NNP I-PER\nrejects VBZ O\n\nGerman JJ B-MISC\n"
TEST = "EU NNP B-ORG\ncall NN O\n"
CONFIG = """
[data]
source = "conll"
train = "train.txt"
dev = "dev.txt"
test = "test.txt"
columns = ["word", "pos", "ner"]
word_dim = 8
char_dim = 4
char_filters = 4
[data.tasks.pos]
column = "pos"
[data.tasks.ner]
column = "ner"
scheme = "iob2"
encode = "bioes"
[trunk]
kind = "lstm"
hidden = [8]
[train]
epochs = 2
batch_size = 2
[sparse]
warmup_steps = 2
round_steps = 2
alpha = 0.5
target_density = 0.3
"""
ROWS = ["single", "hard", "sparse", "single_subnet"]
VOLATILE = {"train_seconds", "wall_seconds", "tokens_per_second", "machine"}


@pytest.fixture
def corpus(tmp_path):
    for name, text in (("train", TRAIN), ("dev", DEV), ("test", TEST)):
        (tmp_path / f"{name}.txt").write_text(text, encoding="utf-8")
    (tmp_path / "run.toml").write_text(CONFIG, encoding="utf-8")
    return tmp_path


def steady(obj: Any) -> Any:
    """``obj`` without timings, which differ between any two runs."""
    if isinstance(obj, dict):
        return {k: steady(v) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [steady(v) for v in obj]
    return obj


def compare(corpus: Path, out: Path, n_jobs: int, *overrides: str, **kw: Any) -> dict[str, Any]:
    cfg = load_config(corpus / "run.toml", list(overrides))
    return comparing.compare(
        cfg,
        kw.pop("rows", ROWS),
        out,
        seeds=[0, 1],
        base_dir=corpus,
        progress=False,
        jobs=n_jobs,
        **kw,
    )


def test_two_jobs_give_the_tables_of_one(corpus):
    one = compare(corpus, corpus / "one", 1)
    two = compare(corpus, corpus / "two", 2)
    assert steady(one) == steady(two)
    for sub in ("hard/seed-1", "sparse/seed-0", "single_subnet/seed-1/ner"):
        a = json.loads((corpus / "one" / sub / "results.json").read_text())
        b = json.loads((corpus / "two" / sub / "results.json").read_text())
        assert steady(a) == steady(b), sub
    md_one = (corpus / "one" / "comparison.md").read_text().splitlines()
    md_two = (corpus / "two" / "comparison.md").read_text().splitlines()
    assert len(md_one) == len(md_two)


def test_a_failing_run_keeps_the_finished_ones_for_resume(corpus):
    out = corpus / "out"
    # hard sharing's rate makes its loss infinite at once; every other run is sound
    bad = ['compare.overrides.hard={"train.lr" = 1e30, "train.momentum" = 0.0}']
    rows = ["single", "hard", "sparse"]
    with pytest.raises(MtlshareError, match=r"2 of 8 runs did not finish .*rerun with --resume"):
        compare(corpus, out, 2, *bad, rows=rows)
    kept = out / "sparse" / "seed-1" / "results.json"
    single = out / "single" / "seed-0" / "pos" / "results.json"
    assert kept.is_file() and single.is_file()
    assert not (out / "comparison.json").exists()
    stamp = kept.stat().st_mtime_ns
    # resumed: the finished runs are read back, not trained again; hard sharing fails again
    with pytest.raises(MtlshareError, match=r"2 of 8 runs did not finish .*6 finished"):
        compare(corpus, out, 2, *bad, rows=rows, resume=True)
    assert kept.stat().st_mtime_ns == stamp


def test_workers_divide_the_cores():
    assert jobs.threads_per_job(1, cores=2) == 2
    assert jobs.threads_per_job(2, cores=2) == 1
    assert jobs.threads_per_job(3, cores=2) == 1
    assert jobs.threads_per_job(2, cores=16) == 8


def test_bad_job_settings_are_one_line_errors(corpus, monkeypatch, capsys):
    code = main(["compare", str(corpus / "run.toml"), "--out", str(corpus / "o"), "--jobs", "0"])
    assert code == 2
    assert "--jobs: expected a number of worker processes >= 1" in capsys.readouterr().err
    monkeypatch.setattr(comparing, "available_cores", lambda: 2)
    with pytest.raises(MtlshareError, match="would run 4 threads on 2 cores"):
        compare(corpus, corpus / "p", 2, "train.threads=2")
    monkeypatch.setattr(comparing, "available_cores", lambda: 1)  # taskset -c 0
    with pytest.raises(MtlshareError, match="would run 2 threads on 1 core; leave"):
        compare(corpus, corpus / "p", 2, "train.threads=1")
    assert not (corpus / "p").exists()


def test_rows_on_fewer_seeds_are_compared_with_single_of_the_same_seeds(corpus):
    out = corpus / "out"
    comparison = compare(
        corpus, out, 1, "compare.seeds_of={hard = [1]}", rows=["single", "hard", "sparse"]
    )
    rows = {r["mechanism"]: r for r in comparison["rows"]}
    assert comparison["seeds_of"] == {"hard": [1]}
    assert (out / "hard" / "seed-1").is_dir() and not (out / "hard" / "seed-0").exists()
    for task in ("pos", "ner"):
        single_seed_1 = rows["single"]["tasks"][task]["test_seeds"][1]
        assert rows["hard"]["tasks"][task]["single"] == single_seed_1
        assert rows["sparse"]["tasks"][task]["single"] == rows["single"]["tasks"][task]["test"]
    text = (out / "comparison.md").read_text()
    assert "Rows run under fewer seeds (hard: seed 1)" in text
    assert "(seed 1) (" in text


@pytest.mark.parametrize(
    ("seeds_of", "message"),
    [
        ("{hard = [5]}", r"compare.seeds_of.hard: \[5\] must be distinct seeds among \[0, 1\]"),
        ("{single = [0]}", "single-task training runs with every seed"),
        ("{sparse = [0]}", "single_subnet seed 1 trains on the masks of sparse seed 1"),
        ("{nope = [0]}", "compare: unknown mechanism 'nope'"),
    ],
)
def test_bad_seeds_of_is_refused_before_anything_is_written(corpus, seeds_of, message):
    with pytest.raises(MtlshareError, match=message):
        compare(corpus, corpus / "out", 1, f"compare.seeds_of={seeds_of}")
    assert not (corpus / "out").exists() or not any((corpus / "out").rglob("results.json"))


def test_train_threads_hold_for_the_run_and_no_longer(corpus, monkeypatch):
    import mtlshare.app.run as running

    seen: list[int] = []
    build = running.build_model
    monkeypatch.setattr(
        running, "build_model", lambda *a: seen.append(torch.get_num_threads()) or build(*a)
    )
    before = torch.get_num_threads()
    threads = 1 if before > 1 else 2
    try:
        cfg = load_config(corpus / "run.toml", [f"train.threads={threads}", "train.epochs=1"])
        run(cfg, corpus / "out", base_dir=corpus, progress=False)
        assert seen == [threads]  # the run trained with its own count
        assert torch.get_num_threads() == before  # and left the caller's as it was
    finally:
        torch.set_num_threads(before)


def test_compare_says_which_runs_it_reads_back_continues_and_trains(corpus, capsys):
    out = corpus / "out"
    compare(corpus, out, 1, rows=["single", "hard"])
    capsys.readouterr()
    (out / "hard" / "seed-1" / "results.json").unlink()  # interrupted: it continues
    for path in sorted((out / "hard" / "seed-0").rglob("*"), reverse=True):  # gone: it trains
        path.unlink() if path.is_file() else path.rmdir()
    cfg = load_config(corpus / "run.toml")
    comparing.compare(
        cfg, ["single", "hard"], out, seeds=[0, 1], base_dir=corpus, progress=True, resume=True
    )
    err = capsys.readouterr().err.splitlines()
    lines = [x for x in err if x.startswith("compare:")]
    assert lines == [
        "compare: 6 runs: 4 read back; 1 to continue (hard seed 1); 1 to train (hard seed 0)",
        # one after another, each run that trains is named as it starts: its epoch lines
        # say not which run they are, so a log of hours said neither that nor how far it was
        "compare: 4 of 6 runs ended; running: hard seed 0: epoch 0/2",
        "compare: 5 of 6 runs ended; running: hard seed 1: epoch 2/2",
    ]
    assert err.index(lines[1]) < err.index(lines[2]) - 1  # hard seed 0's epochs between
    plan = comparing._plan(
        cfg,
        comparing.ComparisonFolder(out, several_seeds=True),
        ["single", "hard"],
        {"single": [0, 1], "hard": [0, 1]},
        ["pos", "ner"],
    )
    assert jobs.plan_summary(plan, resume=True) == "compare: 6 runs: 6 read back"
    assert jobs.plan_summary(plan, resume=False).startswith("compare: 6 runs: 6 to train (single")


def test_a_resumed_comparison_with_another_config_is_refused_before_anything_trains(corpus, capsys):
    out = corpus / "out"
    compare(corpus, out, 1, rows=["single", "hard"])
    capsys.readouterr()
    for path in sorted((out / "single" / "seed-1").rglob("*"), reverse=True):  # would train
        path.unlink() if path.is_file() else path.rmdir()
    (out / "single" / "seed-1").rmdir()
    saved = out / "hard" / "seed-1" / "config.toml"  # a run made with another config
    text = saved.read_text()
    assert "\nseed = 1\n" in text
    saved.write_text(text.replace("\nseed = 1\n", "\nseed = 5\n", 1))
    with pytest.raises(MtlshareError) as err:
        compare(corpus, out, 1, rows=["single", "hard"], resume=True)
    assert str(saved) in str(err.value)
    assert "seed: 5 in the run, 1 now" in str(err.value)
    assert not (out / "single" / "seed-1").exists()  # refused before single seed 1 trained


def test_kept_runs_copied_elsewhere_read_back_single_on_its_subnet(corpus, capsys):
    """A finished ``single_subnet`` run names its sparse run by absolute path; the kept runs
    of a comparison, copied to another folder (``recipes/keep_runs.py``, another machine),
    read every run back, that one included, instead of refusing it for the old path. An
    unfinished one there is refused, naming the path."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "recipes" / "keep_runs.py"
    spec = importlib.util.spec_from_file_location("keep_runs", path)
    assert spec is not None and spec.loader is not None
    keep = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(keep)
    out, kept = corpus / "out", corpus / "elsewhere" / "kept"
    before = compare(corpus, out, 1)
    assert keep.keep_runs(out, kept) == 12
    capsys.readouterr()
    cfg = load_config(corpus / "run.toml")
    again = comparing.compare(  # the plan line is printed with progress off (--quiet) too
        cfg, ROWS, kept, seeds=[0, 1], base_dir=corpus, progress=False, resume=True
    )
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("compare:")]
    assert lines == ["compare: 12 runs: 12 read back"]
    assert steady(again) == steady(before)
    (kept / "single_subnet" / "seed-1" / "ner" / "results.json").unlink()  # now unfinished
    with pytest.raises(MtlshareError, match=r"sparse\.masks_from: '.*/out/sparse/seed-1' in the"):
        compare(corpus, kept, 1, resume=True)


def test_finished_runs_without_their_last_and_search_checkpoints_read_back(corpus, capsys):
    """The README's way to free the disk of a finished comparison: each finished run's
    ``checkpoint/last`` and a sparse run's ``checkpoint/search*`` removed (two thirds of a
    tagger's run folder), the comparison resumed reads every run back, and ``single_subnet``
    still trains on the sparse run's masks (from ``checkpoint/best``)."""
    out = corpus / "out"
    before = compare(corpus, out, 1, rows=["single", "hard", "sparse"])
    for last in out.rglob("checkpoint/last"):
        shutil.rmtree(last)
    for search in out.rglob("checkpoint/search*"):
        shutil.rmtree(search)
    assert not list(out.rglob("checkpoint/search*"))
    capsys.readouterr()
    again = compare(corpus, out, 1, resume=True)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("compare:")]
    assert lines[0].startswith("compare: 12 runs: 8 read back; 4 to train (single_subnet seed 0")
    assert steady(again["rows"][:3]) == steady(before["rows"])


def test_the_plan_runs_every_row_seed_and_task_and_single_subnet_waits_for_its_sparse(corpus):
    cfg = load_config(corpus / "run.toml")
    folder = ComparisonFolder(corpus / "out", several_seeds=True)
    plan = comparing._plan(cfg, folder, ROWS, {r: [0, 1] for r in ROWS}, ["pos", "ner"])
    assert [(j.name, j.seed, j.task) for j in plan] == [
        *((row, seed, task) for row in ("single",) for seed in (0, 1) for task in ("pos", "ner")),
        ("hard", 0, None),
        ("hard", 1, None),
        ("sparse", 0, None),
        ("sparse", 1, None),
        *(("single_subnet", seed, task) for seed in (0, 1) for task in ("pos", "ner")),
    ]
    sparse = {job.seed: i for i, job in enumerate(plan) if job.name == "sparse"}
    for job in plan:
        if job.name == "single_subnet":
            assert job.after == (sparse[job.seed],)
            where = folder.run_path("sparse", job.seed).resolve()
            assert job.config["sparse"]["masks_from"] == str(where)
            assert job.config["tasks"] == [job.task] and job.config["seed"] == job.seed
        else:
            assert job.after == ()


def test_two_tasks_get_their_masks_overlap_beside_the_gain(corpus):
    cfg = load_config(corpus / "run.toml")
    rows = ["single", "hard", "sparse"]
    comparison = comparing.compare(cfg, rows, corpus / "out", base_dir=corpus, progress=False)
    [pair] = comparison["overlap_vs_gain"]
    assert sorted(pair["tasks"]) == ["ner", "pos"] and pair["gain"] is not None
    assert "mask overlap ratio" in (corpus / "out" / "comparison.md").read_text()


@pytest.mark.parametrize("row", ["single", "single_subnet"])
def test_single_task_rows_train_with_plain_steps_under_a_joint_only_weighting(corpus, row):
    cfg = load_config(corpus / "run.toml", ["train.schedule=joint", "weighting.kind=rlw"])
    one = comparing.row_config(cfg, row, tasks=["pos"])
    assert (one.weighting.kind, one.train.schedule) == ("fixed", "alternate")
    assert comparing.row_config(cfg, "sparse").weighting.kind == "rlw"


def test_a_row_s_seeds_keep_the_comparison_s_order(corpus):
    cfg = load_config(corpus / "run.toml", ["compare.seeds_of={hard = [2, 0]}"])
    assert comparing._row_seeds(cfg, "hard", [0, 1, 2]) == [0, 2]
    assert comparing._row_seeds(cfg, "sparse", [0, 1, 2]) == [0, 1, 2]


def test_a_run_whose_sparse_run_failed_is_skipped_not_started(tmp_path, capsys):
    """In workers, single_subnet waits for its sparse run; when that fails it is skipped (never
    started, never waited for): both count as not finished, the sparse run's error first."""
    plan = [
        jobs.RunJob("sparse", 0, None, {}, tmp_path / "sparse"),  # no data source: fails at once
        jobs.RunJob("single_subnet", 0, "pos", {}, tmp_path / "subnet", after=(0,)),
    ]
    outcome: dict[str, str] = {}

    def go() -> None:
        try:
            jobs.execute(plan, 2, base_dir=None, resume=False, progress=False)
        except MtlshareError as e:
            outcome["error"] = str(e)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.join(120)
    assert not thread.is_alive(), "the plan never ended: the skipped run was waited for"
    assert "2 of 2 runs did not finish (first: sparse seed 0: data.source" in outcome["error"]
    err = capsys.readouterr().err
    assert "sparse seed 0 failed" in err and "single_subnet" not in err


def test_a_finished_run_whose_sparse_run_fails_on_resume_is_skipped_not_read_back(tmp_path, capsys):
    """Resumed in workers, a finished single_subnet run waits for its sparse run as a run to
    train does: when that fails it is skipped (not finished), not read back."""
    subnet = tmp_path / "subnet"
    subnet.mkdir()
    config = {"data": {"source": "synthetic"}}
    (subnet / "config.toml").write_text(from_dict(config).to_toml(), encoding="utf-8")
    task = {"metric": "accuracy", "higher_is_better": True, "dev": 0.5, "test": 0.5}
    (subnet / "results.json").write_text(json.dumps({"tasks": {"pos": task}}), encoding="utf-8")
    plan = [
        jobs.RunJob("sparse", 0, None, {}, tmp_path / "sparse"),  # no data source: fails
        jobs.RunJob("single_subnet", 0, "pos", config, subnet, after=(0,)),
    ]
    assert jobs.job_state(plan[1], True) == jobs.READ_BACK
    with pytest.raises(MtlshareError, match=r"^2 of 2 runs did not finish \(first: sparse seed 0"):
        jobs.execute(plan, 2, base_dir=None, resume=True, progress=False)
    assert "single_subnet" not in capsys.readouterr().err


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_on_done_hears_of_a_run_read_back_in_the_main_process_too(tmp_path, n_jobs):
    """``execute``'s ``on_done`` is called for every run that ends, whoever ran it: with
    workers, a finished run is read in the main process, and is no exception; one run after
    another, each is heard of as it ends."""
    folder = tmp_path / "done"
    folder.mkdir()
    config = {"data": {"source": "synthetic"}}
    (folder / "config.toml").write_text(from_dict(config).to_toml(), encoding="utf-8")
    task = {"metric": "accuracy", "higher_is_better": True, "dev": 0.5, "test": 0.5}
    (folder / "results.json").write_text(json.dumps({"tasks": {"t1": task}}), encoding="utf-8")
    plan = [jobs.RunJob("hard", 0, None, config, folder)]
    heard: list[tuple[str, float]] = []
    results = jobs.execute(
        plan,
        n_jobs,
        base_dir=None,
        resume=True,
        progress=False,
        on_done=lambda job, r: heard.append((job.label, r["tasks"]["t1"]["dev"])),
    )
    assert heard == [("hard seed 0", 0.5)] and results[0]["tasks"]["t1"]["dev"] == 0.5


@pytest.mark.parametrize(
    ("saved", "carried"),
    [("/old/cmp/sparse", True), ("/old/cmp/hard", False), ("/old/other/sparse/x", False)],
)
def test_a_kept_run_keeps_its_masks_path_only_where_it_names_the_same_row(tmp_path, saved, carried):
    planned = str(tmp_path / "cmp" / "sparse")
    where = tmp_path / "cmp" / "single_subnet" / "pos"
    where.mkdir(parents=True)
    (where / "config.toml").write_text(f'[sparse]\nmasks_from = "{saved}"\n', encoding="utf-8")
    (where / "results.json").write_text("{}", encoding="utf-8")
    job = jobs.RunJob("single_subnet", 0, "pos", {"sparse": {"masks_from": planned}}, where)
    expected = saved if carried else planned
    assert jobs.carried_masks(job).config["sparse"]["masks_from"] == expected


@pytest.mark.parametrize("n_jobs", [1, 2])
def test_a_compared_run_is_evaluated_from_anywhere_like_a_run(corpus, monkeypatch, capsys, n_jobs):
    """``mtlshare evaluate`` reads a run's data from where it was trained (its config's
    relative paths start at the config's folder), for the runs of a comparison too, whatever
    the folder it is called from."""
    out = corpus / "cmp"
    compare(corpus, out, n_jobs, rows=["single", "hard"])
    elsewhere = corpus / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    capsys.readouterr()
    for sub in ("hard/seed-0", "single/seed-1/pos"):
        assert main(["evaluate", str(out / sub)]) == 0, capsys.readouterr().err
        results = json.loads((out / sub / "results.json").read_text())["tasks"]
        printed = capsys.readouterr().out
        for task, scores in results.items():
            assert f"{task}: test" in printed and f"{scores['test']:.6g}" in printed


SCRIPT = """
import os, time
from mtlshare.app.jobs import worker_pool
if __name__ == "__main__":
    pool = worker_pool(1, 1)
    print(pool.submit(os.getpid).result(), flush=True)
    pool.submit(time.sleep, 120)  # a worker busy with a long job
    time.sleep(120)
"""


@pytest.mark.skipif(os.name != "posix", reason="signals")
def test_workers_end_soon_after_the_process_that_started_them_is_killed(tmp_path):
    """Killed, compare left its workers waiting or training for good, a worker holding its run
    folder's lock against the --resume that follows."""
    script = tmp_path / "pool.py"
    script.write_text(SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(Path(jobs.__file__).parents[2])}
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, env=env)
    assert parent.stdout is not None
    worker = int(parent.stdout.readline())
    os.kill(worker, 0)  # alive
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            os.kill(worker, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    os.kill(worker, signal.SIGKILL)
    pytest.fail("the worker outlived its parent by 15 s")


def test_warnings_in_worker_processes_are_one_line_as_in_the_cli(corpus, capfd):
    """A dev tag training never saw warns while each worker builds its data: under the CLI
    every process shows it as ``mtlshare: warning: ...``, one line (workers showed Python's
    two lines, the source line of the library's code included). It is shown once: the main
    process has shown it building the data, so the workers, building it again, do not (it was
    printed three times)."""
    (corpus / "dev.txt").write_text(DEV + "Bonn NNP B-XYZ\n", encoding="utf-8")
    args = ["compare", str(corpus / "run.toml"), "--mechanisms", "single,hard", "--seeds", "0"]
    args += ["--jobs", "2", "--out", str(corpus / "o"), "--quiet", "data.unseen_tags=map"]
    assert main(args) == 0
    err = [line for line in capfd.readouterr().err.splitlines() if line.strip()]
    about = [line for line in err if "B-XYZ" in line]
    assert len(about) == 1, about
    assert all(line.startswith("mtlshare: warning:") for line in about), about
    assert not [line for line in err if "UnseenTagsWarning" in line or "tag_ids(" in line]


def test_the_bar_of_compare_jobs_says_where_each_running_run_is(tmp_path):
    def job(name: str, folder: Path, epochs: int = 20, **config: Any) -> jobs.RunJob:
        return jobs.RunJob(name, 1, None, {"train": {"epochs": epochs}, **config}, folder)

    trained = tmp_path / "a"
    trained.mkdir()
    (trained / "metrics.jsonl").write_text('{"epoch": 1}\n{"epoch": 2}\n{"epoch": 3}\n')
    sparse = {"mechanism": "sparse", "sparse": {"masks_from": ""}}
    given = {"mechanism": "sparse", "sparse": {"masks_from": "../sparse"}}  # single_subnet
    status = jobs.running_status(
        [
            job("hard", trained),
            job("sparse", tmp_path / "b", **sparse),
            job("single_subnet", tmp_path / "c", **given),
            job("single", tmp_path / "d", 5),
        ]
    )
    assert status == (
        "hard seed 1: epoch 3/20; sparse seed 1: mask search; single_subnet seed 1: epoch 0/20; "
        "single seed 1: epoch 0/5"
    )


def test_compare_with_jobs_shows_the_running_runs_progress_while_they_train(corpus, monkeypatch):
    """Between the ends of runs: a status naming two running runs can only come from a poll
    (at a run's end the finished one has left, and the next is not yet started)."""
    shown: list[str] = []

    class Bar:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
            shown.append(text)

        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(jobs, "tqdm", Bar)
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.01)
    compare(corpus, corpus / "o", 2, rows=["hard"])
    both = [t for t in shown if t.count(": epoch") == 2]  # two runs listed, both running
    assert both, shown[:3]
    assert shown[-1] == ""  # the last run ended: none left running
    # six runs on two workers: one alone only at the end (the status was taken after a run
    # ended and before the next started, so it named one run while two were training)
    running = [t.count(": epoch") for t in shown]
    alone = running.index(1) if 1 in running else len(running)  # the last two may end at once
    assert all(n <= 1 for n in running[alone:]), running


def test_only_a_function_a_worker_can_import_is_handed_to_it(monkeypatch):
    assert jobs._by_name(jobs.available_cores)
    assert not jobs._by_name(lambda *a: None)
    assert not jobs._by_name(None)

    def show(*args: Any) -> None:
        pass

    main_module = sys.modules["__main__"]
    monkeypatch.setattr(show, "__module__", "__main__")
    monkeypatch.setattr(show, "__qualname__", "show")
    monkeypatch.setattr(main_module, "show", show, raising=False)
    monkeypatch.setattr(main_module, "__file__", "/some/script.py", raising=False)
    assert jobs._by_name(show)  # a script: its workers import it again
    monkeypatch.delattr(main_module, "__file__")
    assert not jobs._by_name(show)  # python -c or a REPL: nothing to import
    # the pool hands its workers the caller's way of showing warnings only where they can
    # import it: else none, and they show them Python's way (a closure could not reach them)
    for showing, handed in ((show, None), (console.show_warning, console.show_warning)):
        monkeypatch.setattr(warnings, "showwarning", showing)
        pool = jobs.worker_pool(1, threads=1)
        try:
            assert pool._initargs[2] is handed  # (threads, parent, showwarning, shown)
        finally:
            pool.shutdown()


def test_a_copied_comparison_cut_while_training_on_to_more_epochs_resumes(corpus, capsys):
    """single_subnet runs name their sparse run by the path it had when they trained: in a
    copy of the comparison given more epochs and cut while doing so (results set aside, new
    config written), that path is still carried, so the resume continues instead of refusing
    it."""
    import shutil

    out, copy = corpus / "out", corpus / "copy"
    compare(corpus, out, 1)
    shutil.copytree(out, copy)
    for cut in sorted(copy.glob("single_subnet/seed-*/*")):  # cut just after being reopened
        text = (cut / "config.toml").read_text()
        assert "epochs = 2\n" in text
        (cut / "config.toml").write_text(text.replace("epochs = 2\n", "epochs = 3\n", 1))
        (cut / "results.json").replace(cut / "results-2-epochs.json")
    capsys.readouterr()
    compare(corpus, copy, 1, "train.epochs=3", resume=True)
    err = capsys.readouterr().err
    assert "to continue (single seed 0 pos" in err and "single_subnet seed 1 ner)" in err, err
    runs = sorted(copy.glob("single_subnet/seed-*/*"))
    assert len(runs) == 4
    assert [json.loads((r / "results.json").read_text())["epochs_run"] for r in runs] == [3] * 4


def test_a_run_held_by_another_process_is_not_read_back_by_compare(corpus):
    out = corpus / "out"
    compare(corpus, out, 1, rows=["hard"])
    holder = OutputFolder(out / "hard" / "seed-1")  # as a process giving it more epochs would
    holder.open()
    try:
        with pytest.raises(MtlshareError, match="another mtlshare process is writing here"):
            compare(corpus, out, 1, rows=["hard"], resume=True)
    finally:
        holder.close()
    compare(corpus, out, 1, rows=["hard"], resume=True)


def test_compare_jobs_writes_plain_status_lines_to_a_log(corpus, monkeypatch, capsys):
    """stderr not a terminal (pytest's capture, a log file): the bar is off, and lines say how
    many runs ended and where the running ones are; none with --quiet (progress off)."""
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(jobs, "PLAIN_SECONDS", 0.0)
    cfg = load_config(corpus / "run.toml")
    kw: dict[str, Any] = {"seeds": [0, 1], "base_dir": corpus, "jobs": 2}
    comparing.compare(cfg, ["hard"], corpus / "log", progress=True, **kw)
    lines = [x for x in capsys.readouterr().err.splitlines() if " runs ended" in x]
    assert lines[0].startswith("compare: 0 of 6 runs ended; running: single seed 0 pos: ")
    assert lines[-1] == "compare: 6 of 6 runs ended"
    assert len(lines) == len(set(lines))  # a line only when something moved
    comparing.compare(cfg, ["hard"], corpus / "quiet", progress=False, **kw)
    assert " runs ended" not in capsys.readouterr().err


def test_compare_one_run_after_another_names_no_run_when_quiet(corpus, capsys):
    """``--quiet`` (``progress=False``), one run after another: the plan's line alone, no run
    named as it starts (a line each, as with progress, is what a log of hours wants, not a
    quiet command's stderr)."""
    cfg = load_config(corpus / "run.toml")
    comparing.compare(cfg, ["hard"], corpus / "quiet", seeds=[0], base_dir=corpus, progress=False)
    lines = [x for x in capsys.readouterr().err.splitlines() if x.startswith("compare:")]
    assert lines == [
        "compare: 3 runs: 3 to train (single seed 0 pos, single seed 0 ner, hard seed 0)"
    ]


def test_compare_forgets_its_data_when_it_returns(corpus, monkeypatch):
    """The runs of a comparison in this process share its data; once ``compare`` returns, or
    fails, the caller's process no longer holds it (a module-level cache kept every
    comparison's data for good: 162 MB for one of the CoNLL quick profile). Meanwhile each run
    reads the comparison's data, none builds its own (minutes each for the CoNLL profile)."""
    cfg = load_config(corpus / "run.toml")
    kw: dict[str, Any] = {"seeds": [0], "base_dir": corpus, "progress": False}
    before = dict(jobs._PROBLEMS)
    built: list[Any] = []
    build = jobs.build_problem
    monkeypatch.setattr(jobs, "build_problem", lambda *a: built.append(a) or build(*a))
    comparing.compare(cfg, ["hard"], corpus / "out", **kw)
    assert before == jobs._PROBLEMS
    assert built == []

    def fails(*args: Any, **kwargs: Any) -> dict[str, Any]:
        raise MtlshareError("no room")

    monkeypatch.setattr(jobs, "run", fails)
    with pytest.raises(MtlshareError, match="no room"):
        comparing.compare(cfg, ["hard"], corpus / "again", **kw)
    assert before == jobs._PROBLEMS


def test_compare_jobs_quiet_draws_no_bar_at_a_terminal_either(corpus, monkeypatch, capsys):
    """Progress off (``--quiet``, ``progress=False``) turns the runs' bar off where stderr is
    a terminal too (it was drawn there: tqdm's ``disable=None`` asks only whether stderr is a
    terminal)."""
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    cfg = load_config(corpus / "run.toml")
    kw: dict[str, Any] = {"seeds": [0], "base_dir": corpus, "jobs": 2}
    comparing.compare(cfg, ["hard"], corpus / "quiet", progress=False, **kw)
    assert "runs (2 jobs)" not in capsys.readouterr().err
    comparing.compare(cfg, ["hard"], corpus / "shown", progress=True, **kw)
    assert "runs (2 jobs)" in capsys.readouterr().err


def test_compare_jobs_at_a_terminal_shows_its_bar_and_no_plain_lines(corpus, monkeypatch, capsys):
    """The plain lines stand in for the bar where it is off (stderr not a terminal): a bar
    drawn (``disable`` false) gets no lines besides it."""
    postfixes: list[str] = []

    class Shown:
        disable = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            pass

        def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
            postfixes.append(text)

        def update(self, n: int = 1) -> None:
            pass

        def close(self) -> None:
            pass

    monkeypatch.setattr(jobs, "tqdm", Shown)
    monkeypatch.setattr(jobs, "PLAIN_SECONDS", 0.0)
    cfg = load_config(corpus / "run.toml")
    comparing.compare(cfg, ["hard"], corpus / "o", seeds=[0], base_dir=corpus, jobs=2)
    assert postfixes and postfixes[-1] == ""  # the bar said where the runs were
    assert " runs ended" not in capsys.readouterr().err


def test_runs_read_back_count_as_ended_at_once_never_as_running(corpus, monkeypatch, capsys):
    """Resumed with --jobs, a finished run is read in the main process at once: it counts as
    ended from the first status line and is never shown running at its last epoch (a kept
    single-task run showed 'epoch 39/80' while a worker started to read it)."""
    monkeypatch.setattr(jobs, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(jobs, "PLAIN_SECONDS", 0.0)
    cfg = load_config(corpus / "run.toml")
    kw: dict[str, Any] = {"seeds": [0, 1], "base_dir": corpus, "jobs": 2}
    before = comparing.compare(cfg, ["hard"], corpus / "out", progress=False, **kw)
    (corpus / "out" / "hard" / "seed-1" / "results.json").unlink()  # it trains again
    capsys.readouterr()
    again = comparing.compare(cfg, ["hard"], corpus / "out", progress=True, resume=True, **kw)
    err = capsys.readouterr().err.splitlines()
    assert "compare: 6 runs: 5 read back; 1 to continue (hard seed 1)" in err
    lines = [x for x in err if " runs ended" in x]
    assert lines[0].startswith("compare: 5 of 6 runs ended; running: hard seed 1: epoch ")
    assert all("single" not in x and "seed 0" not in x for x in lines)
    assert lines[-1] == "compare: 6 of 6 runs ended"
    assert steady(again) == steady(before)


def test_plain_status_lines_come_a_minute_apart_at_most(monkeypatch, capsys):
    status = jobs.PlainStatus(4)
    status.show(0, "hard seed 0: epoch 1/20")  # the first at once
    status.show(1, "hard seed 0: epoch 2/20")  # within the minute: held back
    assert capsys.readouterr().err.splitlines() == [
        "compare: 0 of 4 runs ended; running: hard seed 0: epoch 1/20"
    ]
    status.show(4, "", last=True)  # the runs' end: at once, within the minute too
    assert capsys.readouterr().err.splitlines() == ["compare: 4 of 4 runs ended"]
    monkeypatch.setattr(jobs, "PLAIN_SECONDS", 0.0)
    status.show(4, "", last=True)  # nothing moved: no line
    status.show(3, "hard seed 0: epoch 2/20")
    assert capsys.readouterr().err.splitlines() == [
        "compare: 3 of 4 runs ended; running: hard seed 0: epoch 2/20",
    ]


def test_stopping_the_workers_gives_the_runs_their_grace_then_ends_the_rest(monkeypatch):
    """A run that stops by itself within ``STOP_GRACE_SECONDS`` (its worker had the Ctrl-C
    too) is let end; a worker still running after is ended (SIGTERM)."""
    from concurrent.futures import Future

    monkeypatch.setattr(jobs, "STOP_GRACE_SECONDS", 1.0)
    stopping, stuck = Future(), Future()

    class Worker:
        def __init__(self, run: Future) -> None:
            self.run, self.ended = run, False

        def is_alive(self) -> bool:
            return not (self.run.done() or self.ended)

        def terminate(self) -> None:
            self.ended = True
            self.run.set_result({})

    class Pool:
        def __init__(self) -> None:
            self._processes = {1: Worker(stopping), 2: Worker(stuck)}

        def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
            pass

    pool = Pool()
    threading.Timer(0.2, stopping.set_result, [{}]).start()
    jobs.stop_workers(pool, [stopping, stuck])  # type: ignore[arg-type]
    assert not pool._processes[1].ended and pool._processes[2].ended


def _until(condition: Any, process: subprocess.Popen[bytes], seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)


def _signals_by_default() -> None:
    """In the child: SIGINT and SIGHUP as a terminal would leave them (a test run in the
    background, or under nohup, ignores them)."""
    for number in (signal.SIGINT, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)


@pytest.mark.parametrize(
    ("signum", "times"),
    [(signal.SIGINT, 1), (signal.SIGTERM, 1), (signal.SIGINT, 2), (signal.SIGHUP, 1)],
)
def test_compare_jobs_signalled_alone_stops_its_workers_leaving_runs_to_resume(
    tmp_path, signum, times
):
    """`kill -INT PID` (or `kill PID`) reaches compare alone, not its workers as Ctrl-C at a
    terminal does: it waited for the running runs to finish, hours perhaps; now it stops them
    and says so at once, with nothing leaked (no semaphore of a worker's), leaving each run's
    last checkpoint whole and its folder free for the --resume that follows. A second signal
    while it stops them does not cut the stopping short (it then waited for the runs again)."""
    out = tmp_path / "out"
    demo = str(Path(__file__).resolve().parents[1] / "recipes" / "demo" / "demo.toml")
    args = ["compare", demo, "--mechanisms", "hard", "--seeds", "0", "--jobs", "2"]
    args += ["--out", str(out), "data.n_dev=50", "data.n_test=50", "train.patience=0"]
    cmd = [sys.executable, "-m", "mtlshare", *args, "train.epochs=5000"]
    process = subprocess.Popen(
        cmd,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,  # signalled alone: not as a terminal's process group
        preexec_fn=_signals_by_default,
    )
    try:
        lasts = [out / "single" / t / "checkpoint" / "last" for t in ("t1", "t2")]
        _until(lambda: all(last.is_dir() for last in lasts), process)
        process.send_signal(signum)
        if times == 2:
            time.sleep(0.5)  # inside the 2 s it gives the runs to stop
            process.send_signal(signum)
        _, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == (130 if signum == signal.SIGINT else 128 + signum)
    lines = err.decode().strip().splitlines()
    assert lines[-1] == "mtlshare: interrupted; the last checkpoint is whole (resume with --resume)"
    assert not any("leaked" in line or "Traceback" in line for line in lines), lines
    for task in ("t1", "t2"):  # whole, and free: no worker outlived the command
        folder = RunFolder(out / "single" / task)
        folder.load_checkpoint("last")
        folder.open()
        folder.close()


def _grandchildren(pid: int) -> list[int]:
    """The children of ``pid``'s children: a compare's workers (its fork server's children)."""

    def children(of: int) -> list[int]:
        found = subprocess.run(["pgrep", "-P", str(of)], capture_output=True, text=True)
        return [int(x) for x in found.stdout.split()]

    return [g for c in children(pid) for g in children(c)]


def test_a_worker_killed_outright_fails_its_runs_in_one_line_each(tmp_path):
    """The OOM killer (SIGKILL) ending a worker broke the pool, and compare ended in a
    traceback (BrokenProcessPool at the next submit); now every run it cannot finish says why
    in one line, and the command's error says to resume."""
    out = tmp_path / "out"
    demo = str(Path(__file__).resolve().parents[1] / "recipes" / "demo" / "demo.toml")
    cmd = [sys.executable, "-m", "mtlshare", "compare", demo, "--mechanisms", "hard"]
    cmd += ["--seeds", "0", "--jobs", "2", "--out", str(out), "data.n_dev=50", "data.n_test=50"]
    cmd += ["train.patience=0", "train.epochs=5000"]
    process = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        lasts = [out / "single" / t / "checkpoint" / "last" for t in ("t1", "t2")]
        _until(lambda: all(last.is_dir() for last in lasts), process)
        workers = _grandchildren(process.pid)
        assert len(workers) == 2, workers
        os.kill(workers[0], signal.SIGKILL)
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    lines = err.decode().strip().splitlines()
    assert process.returncode == 2, lines
    assert not any("Traceback" in line for line in lines), lines
    abrupt = "a worker process ended abruptly (killed by a signal, or out of memory?)"
    assert f"mtlshare: single seed 0 t1 failed: {abrupt}" in lines
    assert lines[-1].startswith("mtlshare: error: 3 of 3 runs did not finish (first: ")
    assert lines[-1].endswith("0 finished and are kept: rerun with --resume")


class NoWorkers:
    """A pool whose worker processes cannot start: its first process found too few file
    descriptors (``ulimit -n``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def submit(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(24, os.strerror(24))

    def shutdown(self, wait: bool = True, cancel_futures: bool = False) -> None:
        pass


def no_shm(*args: Any, **kwargs: Any) -> Any:
    """``ProcessPoolExecutor`` where ``/dev/shm`` is read-only: its first lock fails."""
    raise OSError(30, os.strerror(30))


@pytest.mark.parametrize(
    ("pool", "error"), [(no_shm, "[Errno 30] Read-only file system"), (NoWorkers, "[Errno 24]")]
)
def test_worker_processes_that_cannot_start_are_one_line_naming_jobs(
    corpus, monkeypatch, capsys, pool, error
):
    """No writable ``/dev/shm`` (a container's, a sandbox's) or too few file descriptors:
    ``compare --jobs 2`` said only ``mtlshare: error: [Errno 30] Read-only file system``."""
    monkeypatch.setattr(jobs, "ProcessPoolExecutor", pool)
    out = corpus / "out"
    args = ["compare", str(corpus / "run.toml"), "--mechanisms", "single,hard", "--seeds", "0"]
    assert main([*args, "--jobs", "2", "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[0].startswith("compare: 3 runs: 3 to train") and len(err) == 2, err
    assert err[1].startswith(f"mtlshare: error: --jobs: the worker processes cannot start ({error}")
    assert err[1].endswith(
        "a writable /dev/shm and a few open files each (ulimit -n); or run one "
        "at a time with --jobs 1"
    )
    assert not [p for p in out.rglob("*") if p.is_file()]  # nothing trained, nothing written
    monkeypatch.undo()
    assert main([*args, "--jobs", "1", "--out", str(out), "--quiet"]) == 0


def test_a_running_runs_status_estimates_its_training_left_to_the_cap(tmp_path):
    """At the mean seconds of the epochs so far (``train_seconds`` is summed over resumes), the
    epochs left to the cap: "at most", as early stopping may end the run sooner."""

    def status(lines: str, epochs: Any = 20) -> str:
        folder = tmp_path / "run"
        folder.mkdir(exist_ok=True)
        (folder / "metrics.jsonl").write_text(lines)
        config = {"train": {"epochs": epochs}}
        return jobs.running_status([jobs.RunJob("hard", 1, None, config, folder)])

    three = "".join(f'{{"epoch": {k}, "train_seconds": {100.0 * k}}}\n' for k in (1, 2, 3))
    assert status(three) == "hard seed 1: epoch 3/20, ~29 min of training to the cap"  # 17 x 100 s
    two = '{"epoch": 1, "train_seconds": 190}\n{"epoch": 2, "train_seconds": 400}\n'
    assert (
        status(two, 80) == "hard seed 1: epoch 2/80, ~4 h 20 min of training to the cap"
    )  # 78 x 200 s
    assert status(two, 2) == "hard seed 1: epoch 2/2"  # the cap reached
    # under a minute left is said so: rounded up to "~1 min", 1 s left read as a minute
    quick = "".join(f'{{"epoch": {k}, "train_seconds": {0.06 * k}}}\n' for k in range(1, 45))
    assert status(quick, 60) == "hard seed 1: epoch 44/60, under a minute of training to the cap"
    almost = '{"epoch": 1, "train_seconds": 59.5}\n'  # 59.5 s left: still under a minute
    assert status(almost, 2) == "hard seed 1: epoch 1/2, under a minute of training to the cap"
    exact = '{"epoch": 1, "train_seconds": 60}\n'  # a minute left to the second: a minute
    assert status(exact, 2) == "hard seed 1: epoch 1/2, ~1 min of training to the cap"
    minute = '{"epoch": 1, "train_seconds": 60.5}\n'
    assert status(minute, 2) == "hard seed 1: epoch 1/2, ~2 min of training to the cap"
    assert status('{"epoch": 1}\n') == "hard seed 1: epoch 1/20"  # no seconds written
    assert status('{"epoch": 1, "train_seconds": true}\n') == "hard seed 1: epoch 1/20"
    assert status("[1, 2]\n") == "hard seed 1: epoch 1/20"
    assert status("not json\n") == "hard seed 1: epoch 1/20"
    assert status('{"epoch": 1, "train_seconds": 5}\n', "?") == "hard seed 1: epoch 1/?"
    # a first line not yet ended is no epoch; seconds that are none, text, NaN or infinite
    # say nothing (json reads NaN and Infinity: they made math.ceil raise, ending the poll)
    assert status('{"epoch": 1, "train_seconds": 5}') == "hard seed 1: epoch 0/20"
    for seconds in ("0", '"5"', "NaN", "Infinity", "-5"):
        line = f'{{"epoch": 1, "train_seconds": {seconds}}}\n'
        assert status(line) == "hard seed 1: epoch 1/20", seconds
