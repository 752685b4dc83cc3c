"""The run folder and the holes found by hostile input: names that would escape ``--out``, two
processes on one folder, a resume that would overwrite results, a mask search that would empty
a mask, and inputs that used to end in a traceback. Each gets one line and exit 2 (or, for the
search, a mask that keeps its last weights), and nothing is half-written."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from mtlshare.cli import main
from mtlshare.errors import MtlshareError
from mtlshare.training.folder import OutputFolder, RunFolder

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
SMALL = ["train.epochs=2", "data.n_dev=50", "data.n_test=50", "--quiet"]
CONLL_TRAIN = "EU NNP B-ORG\nrejects VBZ O\n\nPeter NNP B-PER\nBlackburn NNP I-PER\n"
CONLL = """
[data]
source = "conll"
train = "train.txt"
dev = "train.txt"
test = "train.txt"
columns = ["word", "pos", "ner"]
[data.tasks.ner]
column = "ner"
scheme = "iob2"
[trunk]
kind = "lstm"
hidden = [8]
[train]
epochs = 1
batch_size = 2
"""


def one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: error:"), err
    return err[0]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


# -- names that cannot be file names ------------------------------------------------------------
@pytest.mark.parametrize("name", ["../escaped", "/abs/path", "a.b", "", "-x", "a/b"])
def test_a_task_name_that_is_no_plain_file_name_is_refused(tmp_path, capsys, name):
    (tmp_path / "train.txt").write_text(CONLL_TRAIN, encoding="utf-8")
    (tmp_path / "run.toml").write_text(CONLL, encoding="utf-8")
    out = tmp_path / "box" / "out"
    table = json.dumps(name)  # a TOML basic string
    args = ["compare", str(tmp_path / "run.toml"), f"data.tasks={{{table} = {{column = 'ner'}}}}"]
    assert main([*args, "--out", str(out), "--quiet"]) == 2
    assert "cannot name a task" in one_line(capsys)
    assert not (tmp_path / "box").exists() and not (tmp_path / "escaped").exists()


def test_a_series_name_from_the_data_is_checked_where_it_is_read(tmp_path, capsys):
    csv = tmp_path / "daily.csv"
    rows = ["date,series,value"]
    rows += [f"2011-01-{d:02d},{s},{d}" for d in range(1, 29) for s in ("a", "../b")]
    csv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    config = tmp_path / "run.toml"
    config.write_text(
        f'[data]\nsource = "daily_csv"\npath = "{csv}"\norigin = "2011-01-20"\nhorizon = 5\n'
        '[trunk]\nkind = "mlp"\nhidden = [4]\n[train]\nepochs = 1\n',
        encoding="utf-8",
    )
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    assert f"{csv}:3: series name: '../b' cannot name a task" in one_line(capsys)
    assert not (tmp_path / "out").exists()


# -- one process per folder ---------------------------------------------------------------------
def test_a_second_run_on_a_held_folder_fails_at_once(tmp_path, capsys):
    out = tmp_path / "run"
    holder = OutputFolder(out)
    holder.open()
    try:
        started = time.monotonic()
        assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 2
        assert "another mtlshare process is writing here" in one_line(capsys)
        assert time.monotonic() - started < 30  # at once, not after training
        assert not (out / "config.toml").exists()
    finally:
        holder.close()
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0


def _ctrl_c_as_default() -> None:
    """In the child before it starts: SIGINT neither ignored nor blocked, whatever the test
    process inherited or set (an ignored or blocked SIGINT passes to a child, which then never
    stops; the full suite under xdist hit this)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def test_a_live_run_in_another_process_keeps_its_folder(tmp_path, capsys):
    out = tmp_path / "run"
    long = ["train.epochs=5000", "train.patience=0"]
    cmd = [sys.executable, "-m", "mtlshare", "run", DEMO, *long, "--out", str(out)]
    first = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_ctrl_c_as_default
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / "last").is_dir():
            assert first.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        capsys.readouterr()
        assert main(["run", DEMO, *long, "--out", str(out), "--resume"]) == 2  # this process
        assert "another mtlshare process" in one_line(capsys)
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=120)


def test_sigterm_stops_a_run_as_ctrl_c_does(tmp_path):
    """`kill PID`, a scheduler's preemption or `timeout`: the run says it was interrupted and
    exits with 143 (it died at once, without a word), its last checkpoint whole."""
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "mtlshare", "run", DEMO, "train.epochs=5000", "train.patience=0"]
    run = subprocess.Popen(
        [*cmd, "--out", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        deadline = time.monotonic() + 120
        while not (out / "checkpoint" / "last").is_dir():
            assert run.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        run.terminate()
        _, err = run.communicate(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
    assert run.returncode == 143
    assert err.decode().strip().splitlines()[-1] == (
        "mtlshare: interrupted; the last checkpoint is whole (resume with --resume)"
    )
    RunFolder(out).load_checkpoint("last")


def test_a_held_folder_is_refused_before_the_data_is_read(tmp_path, capsys, monkeypatch):
    """A run into a folder another process is writing is refused when the folder is checked,
    fresh or resumed, not once its data is read (minutes for a large corpus) and the lock is
    taken; the folder's files stay as they were."""
    import mtlshare.app.run as run_module

    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    before = tree(out)

    def no_data(*args, **kwargs):
        raise AssertionError("the data was read")

    monkeypatch.setattr(run_module, "build_problem", no_data)
    holder = OutputFolder(out)
    holder.open()
    try:
        capsys.readouterr()
        for extra in ([], ["--resume"], ["--resume", "train.epochs=9"]):
            assert main(["run", DEMO, *SMALL, *extra, "--out", str(out)]) == 2, extra
            assert "another mtlshare process is writing here" in one_line(capsys), extra
    finally:
        holder.close()
    assert tree(out) == before


def test_reading_back_and_writing_exclude_each_other_but_readers_share(tmp_path):
    out = tmp_path / "run"
    writer = OutputFolder(out)
    writer.open()
    try:
        with (
            pytest.raises(MtlshareError, match="another mtlshare process is writing here"),
            RunFolder(out).reading(),
        ):
            pass
    finally:
        writer.close()
    with (
        RunFolder(out).reading(),
        RunFolder(out).reading(),  # two readers at once
        pytest.raises(MtlshareError, match="another mtlshare process is reading the run here"),
    ):
        OutputFolder(out).open()
    with OutputFolder(out) as after:  # the readers have let go
        after.open()


def test_a_finished_run_held_by_another_process_is_not_read_back(tmp_path, capsys):
    """A process giving the run more epochs sets its results aside while it holds the folder:
    a read-back then is one line, never the old results beside the new selected model."""
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    before = tree(out)
    holder = OutputFolder(out)
    holder.open()
    try:
        capsys.readouterr()
        assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
        assert "another mtlshare process is writing here" in one_line(capsys)
    finally:
        holder.close()
    assert tree(out) == before
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 0


# -- resuming never overwrites results ------------------------------------------------------------
def test_resuming_a_finished_run_reads_it_back(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    before = tree(out)
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 0
    assert tree(out) == before  # nothing trained, nothing rewritten


def test_a_finished_run_without_its_selected_checkpoint_is_an_error_not_new_results(
    tmp_path, capsys
):
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    for name in (out / "checkpoint" / "best").iterdir():
        name.unlink()
    (out / "checkpoint" / "best").rmdir()
    results = (out / "results.json").read_bytes()
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
    assert "checkpoint/best" in one_line(capsys)
    assert (out / "results.json").read_bytes() == results


def test_a_cut_run_whose_selected_checkpoint_vanished_is_an_error(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    (out / "results.json").unlink()
    for name in (out / "checkpoint" / "best").iterdir():
        name.unlink()
    (out / "checkpoint" / "best").rmdir()
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
    assert "cannot be scored" in one_line(capsys)
    assert not (out / "results.json").exists()


def test_a_cut_run_whose_selected_checkpoint_does_not_fit_is_one_line(tmp_path, capsys):
    """A cut run resumed at its last epoch scores its selected model: a ``checkpoint/best``
    that reads but does not fit the model (a weight missing) ended the run in torch's
    ``RuntimeError``, its list of keys over several lines."""
    from mtlshare.training import checkpoint as ckpt

    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    (out / "results.json").unlink()
    best = out / "checkpoint" / "best"
    tensors, meta = ckpt.load_checkpoint(best)
    del tensors[next(k for k in sorted(tensors) if k.startswith("model."))]
    ckpt.save_checkpoint(best, tensors, meta)
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    assert f"{best}: does not fit this run or is incomplete (RuntimeError: Missing key" in line
    assert not (out / "results.json").exists()


def test_a_last_checkpoint_whose_optimizer_state_is_of_another_kind_is_one_line(tmp_path, capsys):
    """``meta.json``'s optimizer state a number, not an object: torch's ``TypeError`` from
    deep in the optimizer is one line naming the checkpoint, as a missing key is."""
    from mtlshare.training import checkpoint as ckpt

    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    (out / "results.json").unlink()
    last = out / "checkpoint" / "last"
    tensors, meta = ckpt.load_checkpoint(last)
    ckpt.save_checkpoint(last, tensors, {**meta, "optimizer": 5})
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    assert f"{last}: does not fit this run or is incomplete (TypeError: " in line, line
    assert not (out / "results.json").exists()


def test_a_cut_add_task_resumes_with_every_epoch_once_in_its_metrics(tmp_path):
    trained, added = tmp_path / "trained", tmp_path / "added"
    base = ["data.n_tasks=3", "data.n_train=1000", "data.n_dev=50", "data.n_test=50"]
    base += ["train.patience=0"]
    two = ['tasks=["t1","t2"]', "train.epochs=3"]  # the trained model need not be good
    assert main(["run", DEMO, *base, *two, "--out", str(trained), "--quiet"]) == 0
    args = [DEMO, *base, 'tasks=["t3"]', "train.epochs=30"]
    cmd = [sys.executable, "-m", "mtlshare", "add-task", str(trained), *args, "--out", str(added)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 180
    meta = added / "checkpoint" / "last" / "meta.json"
    while True:
        assert proc.poll() is None, "add-task ended before it could be cut"
        assert time.monotonic() < deadline
        try:
            if json.loads(meta.read_text())["epoch"] >= 3:
                break
        except (OSError, ValueError):
            pass
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (added / "results.json").exists()
    code = main(["add-task", str(trained), *args, "--out", str(added), "--resume", "--quiet"])
    assert code == 0
    epochs = [json.loads(line)["epoch"] for line in (added / "metrics.jsonl").open()]
    assert epochs == list(range(1, 31))


# -- a search that would empty a mask -------------------------------------------------------------
def test_a_schedule_that_would_empty_a_mask_keeps_the_last_weights(tmp_path, capsys):
    out = tmp_path / "run"
    tiny = ["mechanism=sparse", "sparse.target_density=0.001", "sparse.alpha=0.9"]
    tiny += ["sparse.round_steps=2", "trunk.hidden=[4]", *SMALL]
    assert main(["run", DEMO, *tiny, "--out", str(out)]) == 0
    assert "stopped at density" in capsys.readouterr().err
    results = json.loads((out / "results.json").read_text())
    assert all(d > 0 for d in results["sparse"]["density"].values())
    assert math.isfinite(results["sparse"]["overlap_ratio"])
    assert main(["run", DEMO, *tiny, "--out", str(out), "--resume"]) == 0


# -- inputs that used to end in a traceback -------------------------------------------------------
@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("train.momentum=-1", "train.momentum"),
        ("train.weight_decay=nan", "train.weight_decay"),
        ("train.grad_clip=nan", "train.grad_clip"),
        ("train.lr=inf", "train.lr"),
        ("seed=1180591620717411303424", "seed"),
        ("seed=-1", "seed"),
    ],
)
def test_bad_values_are_one_line_before_the_folder_exists(tmp_path, capsys, override, named):
    out = tmp_path / "out"
    assert main(["run", DEMO, override, "--out", str(out), "--quiet"]) == 2
    assert named in one_line(capsys)
    assert not out.exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_one_line(tmp_path, capsys):
    assert main(["run", DEMO, "train.device=cuda", "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert "sees no GPU" in one_line(capsys)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("epoch", ['"2"', "-100", "99"])
def test_a_damaged_meta_json_is_one_line(tmp_path, capsys, epoch):
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    (out / "results.json").unlink()
    meta = out / "checkpoint" / "last" / "meta.json"
    meta.write_text(meta.read_text().replace('"epoch": 2', f'"epoch": {epoch}'))
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
    assert "does not fit this run or is" in one_line(capsys)


@pytest.mark.parametrize("key", ["best_score", "train_seconds"])
def test_a_number_of_400_digits_in_meta_json_is_one_line(tmp_path, capsys, key):
    """Valid JSON, but no float holds it: ``float()`` of it was an ``OverflowError``
    traceback."""
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    (out / "results.json").unlink()
    meta = out / "checkpoint" / "last" / "meta.json"
    meta.write_text(json.dumps({**json.loads(meta.read_text()), key: 10**400}))
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    assert f"does not fit this run or is incomplete ('{key}' is 1000" in line and len(line) < 400


def test_resuming_from_another_mechanisms_checkpoint_is_one_short_line(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    (out / "results.json").unlink()
    config = out / "config.toml"
    config.write_text(config.read_text().replace('mechanism = "hard"', 'mechanism = "soft"', 1))
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "mechanism=soft", "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    assert "does not fit this run" in line and len(line) < 400


def test_a_stub_results_file_under_compare_resume_is_one_line(tmp_path, capsys):
    out = tmp_path / "cmp"
    args = ["compare", DEMO, "--mechanisms", "single,hard", *SMALL, "--out", str(out)]
    assert main(args) == 0
    (out / "hard" / "results.json").write_text("{}")
    capsys.readouterr()
    assert main([*args, "--resume"]) == 2
    assert "not the results of a finished mtlshare run" in one_line(capsys)


@pytest.mark.parametrize(
    ("entry", "shown"),
    [
        (None, "None"),
        (3, "3"),
        ("t1", "'t1'"),
        ("x" * 38, "'" + "x" * 38 + "'"),  # 40 characters: shown whole
        ("x" * 39, "'" + "x" * 36 + "..."),
        (10**400, "1" + "0" * 36 + "..."),
    ],
    ids=["None", "3", "t1", "40 characters", "41 characters", "400 digits"],
)
def test_a_task_of_results_json_that_is_no_object_is_one_line(tmp_path, capsys, entry, shown):
    """``results.json`` whose task entry is no object: its check named the keys the entry
    lacked with ``k not in entry``, a ``TypeError`` on ``None`` or a number (a traceback from
    ``run --resume``, which reads a finished run back). The entry is shown cut to 40
    characters."""
    out = tmp_path / "run"
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 0
    results = json.loads((out / "results.json").read_text())
    (out / "results.json").write_text(json.dumps({**results, "tasks": {"t1": entry}}))
    capsys.readouterr()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--resume"]) == 2
    line = one_line(capsys)
    assert f"not the results of a finished mtlshare run (task 't1' is {shown}, not an" in line


def test_duplicate_seeds_and_bad_weights_fail_before_the_folder(tmp_path, capsys):
    out = tmp_path / "cmp"
    assert main(["compare", DEMO, "--seeds", "0,0", *SMALL, "--out", str(out)]) == 2
    assert "lists a seed twice" in one_line(capsys)
    assert main(["compare", DEMO, "weighting.weights={nope = 1.0}", *SMALL, "--out", str(out)]) == 2
    assert "weighting.weights" in one_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_while_starting_is_one_line(tmp_path, signum):
    """SIGTERM as Ctrl-C, torch's import included; before the command line's module is whole
    (the first moments) SIGTERM ends the process as it does any, without a word."""
    code = 130 if signum == signal.SIGINT else 143
    for delay in (0.3, 0.8, 1.5):
        out = tmp_path / f"run-{delay}"
        cmd = [sys.executable, "-m", "mtlshare", "run", DEMO, "--out", str(out)]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        time.sleep(delay)
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
        if proc.returncode == 0:  # finished before the signal: nothing to check
            continue
        if signum == signal.SIGTERM and proc.returncode == -signal.SIGTERM:
            assert err == ""
            continue
        assert proc.returncode == code, err
        # stopped while starting: no checkpoint yet, so none is said to be whole; --resume
        # where the run made its folder (a plain rerun would refuse its config.toml)
        again = "run it again with --resume" if out.is_dir() else "run it again"
        assert err.strip().splitlines() == [
            f"mtlshare: interrupted before the first checkpoint was saved; {again}"
        ]


def test_run_folder_refuses_an_earlier_run_and_a_missing_one():
    folder = RunFolder("/nonexistent/mtlshare/run")
    with pytest.raises(Exception, match="nothing to resume"):
        folder.check("x", resume=True)
    folder.check("x", resume=False)  # nothing there: a fresh run may start


def test_a_checkpoint_of_another_shape_names_the_key_that_does_not_fit(tmp_path):
    """torch's load_state_dict message opens with a header that names no key; the one line
    must carry the line after it (which key, which shapes)."""
    from mtlshare.errors import CheckpointError
    from mtlshare.training.checkpoint import save_checkpoint

    folder = RunFolder(tmp_path / "run")
    small, wide = torch.nn.Linear(2, 3), torch.nn.Linear(4, 3)
    save_checkpoint(
        folder.checkpoint_dir("best"), {f"model.{k}": v for k, v in wide.state_dict().items()}, {}
    )
    with pytest.raises(CheckpointError) as err:
        folder.load_model(small, "best")
    assert "size mismatch for weight" in str(err.value)
    save_checkpoint(folder.checkpoint_dir("best"), {"model.weight": small.weight}, {})
    with pytest.raises(CheckpointError) as err:
        folder.load_model(small, "best")
    assert "Missing key(s)" in str(err.value) and '"bias"' in str(err.value)


def test_a_fresh_run_refused_before_its_first_checkpoint_leaves_only_what_was_there(tmp_path):
    """``discard_unstarted``: the files ``start`` wrote go; a folder the user made stays, with
    the user's own files; a run that wrote a checkpoint is kept to resume."""
    made = RunFolder(tmp_path / "made")
    made.start("x = 1\n", resume=False)
    made.write_json("inference.json", {})
    made.discard_unstarted(created=True)
    made.close()
    assert not made.path.exists()
    theirs = RunFolder(tmp_path / "theirs")
    theirs.path.mkdir()
    (theirs.path / "notes.txt").write_text("mine")
    theirs.start("x = 1\n", resume=False)
    theirs.discard_unstarted(created=False)
    theirs.close()
    assert sorted(p.name for p in theirs.path.iterdir()) == ["notes.txt"]
    begun = RunFolder(tmp_path / "begun")
    begun.start("x = 1\n", resume=False)
    begun.save_checkpoint("last", {"w": torch.zeros(1)}, {"epoch": 1})
    begun.discard_unstarted(created=True)
    begun.close()
    assert (begun.path / "config.toml").is_file()


def test_an_unstarted_run_leaves_no_metrics_and_an_empty_folder_of_the_users_stays(tmp_path):
    """``discard_unstarted`` removes metrics.jsonl too (a refusal at the first evaluation may
    have written it), and never a folder it did not make, even an empty one."""
    made = RunFolder(tmp_path / "made")
    made.start("x = 1\n", resume=False)
    made.write_text("metrics.jsonl", '{"epoch": 1}\n')
    made.discard_unstarted(created=True)
    made.close()
    assert not made.path.exists()
    empty = RunFolder(tmp_path / "empty")
    empty.path.mkdir()
    empty.start("x = 1\n", resume=False)
    empty.discard_unstarted(created=False)
    empty.close()
    assert empty.path.is_dir() and not any(empty.path.iterdir())


def _finished(path: Path) -> RunFolder:
    """A finished run's folder (config and results), whose checkpoint/last is damaged."""
    folder = RunFolder(path)
    folder.start("x = 1\n", resume=False)
    folder.write_json("results.json", {"best_epoch": 1})
    (folder.checkpoint_dir("last")).mkdir(parents=True)
    (folder.checkpoint_dir("last") / "meta.json").write_text("{")
    folder.close()
    return folder


def test_a_finished_run_is_read_back_without_loading_its_last_checkpoint(tmp_path):
    """Only an unfinished run resumes from checkpoint/last: a finished one's is not read, and
    only ``reopen`` (more epochs) sets its results aside, named from the cap when it has one."""
    folder = _finished(tmp_path / "run")
    folder.check("x = 1\n", resume=True)  # no checkpoint error: last is not read
    folder.start("x = 1\n", resume=True)
    folder.close()
    assert folder.finished
    folder.start("x = 1\n", resume=True, reopen=True)
    folder.close()
    assert not folder.finished
    assert (folder.path / "results-earlier-epochs.json").is_file()


def test_a_differing_cap_says_more_epochs_were_given_only_where_they_were(tmp_path):
    folder = _finished(tmp_path / "run")
    epochs = ["train.epochs: 4 here, 2 in config.toml"]
    with pytest.raises(MtlshareError, match="the config differs") as err:
        folder.check("x = 2\n", resume=True, differences=lambda saved, now: epochs)
    assert "given more epochs" not in str(err.value)
    (folder.path / "results-2-epochs.json").write_text("{}")
    with pytest.raises(MtlshareError, match=r"given more epochs .*\(results-2-epochs\.json"):
        folder.check("x = 2\n", resume=True, differences=lambda saved, now: epochs)


def test_a_lock_that_fails_for_another_reason_than_a_holder_says_so(tmp_path, monkeypatch):
    """flock failing with ENOLCK (no locks on this file system) is no other process."""
    import errno
    import fcntl

    def no_locks(fd: int, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with pytest.raises(MtlshareError, match=r"cannot be locked \(\[Errno \d+\] No locks"):
        OutputFolder(tmp_path / "out").open()


def test_a_model_output_refused_at_the_first_step_leaves_no_folder(tmp_path, capsys, monkeypatch):
    """A refusal raised by the first training step (here: every loss of the step non-finite
    is one line) removed nothing: config.toml and inference.json stayed in --out."""
    out = tmp_path / "out"
    argv = ["run", DEMO, *SMALL, "train.lr=1e30", "train.momentum=0.0", "--out", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: error:"), err
    assert not out.exists()
    assert main([*argv, "--resume"]) == 2  # resumed: nothing to resume, and nothing made
    assert "does not exist; nothing to resume" in capsys.readouterr().err


def test_a_refused_fresh_run_keeps_the_empty_folder_the_user_made(tmp_path, capsys):
    """Only a folder the run made itself goes with the refusal: ``--out`` made beforehand
    (``mkdir``) stays, empty, as it was."""
    out = tmp_path / "out"
    out.mkdir()
    argv = ["run", DEMO, *SMALL, "train.lr=1e30", "train.momentum=0.0", "--out", str(out)]
    assert main(argv) == 2
    capsys.readouterr()
    assert out.is_dir() and not any(out.iterdir())


def test_a_resumed_run_refused_before_its_first_checkpoint_keeps_its_files(
    tmp_path, capsys, monkeypatch
):
    """A run cut before its first checkpoint, then resumed and refused: the files it had stay
    (only a fresh run's refusal undoes what it wrote)."""
    import mtlshare.app.run

    out = tmp_path / "out"
    argv = ["run", DEMO, *SMALL, "train.lr=1e30", "train.momentum=0.0", "--out", str(out)]

    def cut(self, resume=False):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(mtlshare.app.run.Trainer, "fit", cut)
        assert main(argv) == 130
    before = sorted(p.name for p in out.iterdir())
    assert "config.toml" in before
    capsys.readouterr()
    assert main([*argv, "--resume"]) == 2
    assert "mtlshare: error:" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == before


@pytest.mark.parametrize("how", ["removed", "moved"])
def test_a_folder_removed_or_moved_under_a_live_run_stops_it(tmp_path, capsys, monkeypatch, how):
    """``rm -rf OUT`` (or ``mv``) while a run trains: its next checkpoint save made a new
    ``OUT`` holding checkpoints, metrics and results but no ``config.toml``, the run ended
    with exit 0, and then ``evaluate`` ("not an mtlshare run folder"), ``--resume`` ("nothing
    to resume") and a fresh run ("holds an earlier run") all refused it. The run stops at its
    next write instead, in one line, and nothing is made at ``OUT``; a moved run resumes
    where it went."""
    import shutil

    out, moved = tmp_path / "run", tmp_path / "moved"
    real = RunFolder.write_metrics

    def then_gone(self: RunFolder, history: list[dict[str, object]]) -> None:
        real(self, history)  # epoch 1's metrics, after its checkpoints
        if how == "removed":
            shutil.rmtree(self.path)
        else:
            self.path.rename(moved)

    monkeypatch.setattr(RunFolder, "write_metrics", then_gone)
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 2
    assert one_line(capsys) == (
        f"mtlshare: error: {out}: the folder was removed or moved while this command wrote "
        "it; nothing more is written (run it again, or --resume it where it was moved)"
    )
    assert not out.exists()
    monkeypatch.undo()
    if how == "moved":
        assert main(["run", DEMO, *SMALL, "--out", str(moved), "--resume"]) == 0
        assert (moved / "results.json").is_file()


@pytest.mark.parametrize("before", ["write_metrics", "write_results"])
def test_a_folder_removed_and_made_again_under_a_live_run_stops_it(
    tmp_path, capsys, monkeypatch, before
):
    """``rm -rf OUT`` while a run trains, and another run started at ``OUT`` (its
    ``config.toml`` written), just before the first writes its metrics or its results: those
    went into the other run's folder and the first ended with exit 0. Every write checks its
    folder, not only a checkpoint save: the run stops in one line. And the other run's files
    stay: the first, refused before a checkpoint of its own was at ``OUT``, removed them as
    its own half-written start (the other run's ``config.toml`` among them)."""
    import shutil

    out = tmp_path / "run"
    real = getattr(RunFolder, before)

    def made_again(self: RunFolder, *args: object) -> None:
        shutil.rmtree(self.path)
        self.path.mkdir()
        (self.path / "config.toml").write_text("another run's")
        real(self, *args)

    monkeypatch.setattr(RunFolder, before, made_again)
    assert main(["run", DEMO, *SMALL, "--out", str(out)]) == 2
    assert one_line(capsys) == (
        f"mtlshare: error: {out}: the folder was removed or moved while this command wrote "
        "it; nothing more is written (run it again, or --resume it where it was moved)"
    )
    assert [p.name for p in out.iterdir()] == ["config.toml"]
    assert (out / "config.toml").read_text() == "another run's"


def test_the_runs_below_a_folder_are_in_name_order_level_by_level(tmp_path):
    """Whatever order the file system lists them in: a level's runs by name, then the next
    level's."""
    from mtlshare.training.folder import runs_below

    for run in ("d", "b", "e", "a", "c", "b/seed-1", "b/seed-0", "x/seed-2"):
        (tmp_path / run).mkdir(parents=True, exist_ok=True)
        (tmp_path / run / "results.json").write_text("{}")
    assert runs_below(tmp_path, 2) == ["a", "b", "c", "d", "e", "b/seed-0", "b/seed-1", "x/seed-2"]
    assert runs_below(tmp_path, 1) == ["a", "b", "c", "d", "e"]


def test_a_folder_that_is_no_run_is_said_what_it_is(tmp_path, capsys):
    """``predict``, ``evaluate`` and ``masks`` given a comparison's folder said only "not an
    mtlshare run folder (no config.toml)", and the same of a folder not there: the line now
    names the runs below (down to a single-task row's ``TASK/`` under ``ROW/seed-N/``; not the
    row's folded ``results.json``, which no command reads as a run), or says the folder does
    not exist or is a file."""
    from mtlshare.cli import main
    from mtlshare.training.folder import not_a_run

    comparison = tmp_path / "cmp"
    for run in ("hard/seed-0", "hard/seed-1", "single/seed-0/t1", "single/seed-0/t2"):
        (comparison / run).mkdir(parents=True)
        (comparison / run / "results.json").write_text("{}")
        (comparison / run / "config.toml").write_text("")
    (comparison / "notes").mkdir()  # a folder without a run is not named
    # nor the single-task row's folded results (means over its tasks: no config, no model)
    (comparison / "single" / "results.json").write_text("{}")
    named = "hard/seed-0, hard/seed-1, single/seed-0/t1, ..."
    assert not_a_run(comparison) == (
        f"{comparison}: not an mtlshare run folder (no config.toml); the runs below it: {named}"
    )
    assert not_a_run(comparison / "single") == (
        f"{comparison / 'single'}: not an mtlshare run folder (no config.toml); the runs below "
        "it: seed-0/t1, seed-0/t2"
    )
    assert not_a_run(comparison / "notes") == (
        f"{comparison / 'notes'}: not an mtlshare run folder (no config.toml)"
    )
    (comparison / "single" / "seed-0" / "t3").mkdir()
    (comparison / "single" / "seed-0" / "t3" / "results.json").write_text("{}")
    (comparison / "single" / "seed-0" / "t3" / "config.toml").write_text("")
    assert not_a_run(comparison / "single").endswith(
        "the runs below it: seed-0/t1, seed-0/t2, seed-0/t3"
    )
    gone, afile = tmp_path / "gone", tmp_path / "a.csv"
    afile.write_text("x0\n1\n")
    assert not_a_run(gone) == f"{gone}: not an mtlshare run folder: it does not exist"
    assert not_a_run(afile) == f"{afile}: not an mtlshare run folder: a file, not a folder"
    commands = {
        "predict": ["predict", str(comparison), str(afile), "--out", str(tmp_path / "p.csv")],
        "evaluate": ["evaluate", str(comparison)],
        "masks": ["masks", str(comparison)],
    }
    lacks = {"masks": "config.toml, no checkpoint"}  # masks reads a checkpoint alone too
    for name, argv in commands.items():
        assert main(argv) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        why = not_a_run(comparison, lacks.get(name, "config.toml"))
        assert err == [f"mtlshare: error: {why}"], name
        assert err[0].endswith(f"the runs below it: {named}"), (name, err)
    assert main(["evaluate", str(gone)]) == 2
    assert capsys.readouterr().err.strip().endswith("it does not exist")


def test_an_epoch_of_rows_that_takes_long_prints_its_line_and_short_ones_do_not(
    tmp_path, monkeypatch, capsys
):
    """A run of rows (the table, daily and synthetic sources) printed no epoch line at all, so
    a long one's log stayed silent for hours when stderr is not a terminal; now an epoch that
    takes ``EPOCH_LINE_SECONDS`` or more prints its seconds and dev scores, and the short
    epochs of a small run print none."""
    import re

    import mtlshare.training.loop

    assert main(["run", DEMO, "train.epochs=2", "--out", str(tmp_path / "fast")]) == 0
    assert not re.search(r"^epoch \d", capsys.readouterr().err, re.MULTILINE)
    monkeypatch.setattr(mtlshare.training.loop, "EPOCH_LINE_SECONDS", 0.0)
    assert main(["run", DEMO, "train.epochs=2", "--out", str(tmp_path / "slow")]) == 0
    err = capsys.readouterr().err
    assert re.search(r"^epoch 1/2: [\d,]+ s, dev \w+ [\d.]+", err, re.MULTILINE), err
    assert re.search(r"^epoch 2/2: [\d,]+ s, dev ", err, re.MULTILINE), err
    assert "tokens/s" not in err


def test_a_long_epoch_says_where_it_is_in_a_log_and_a_short_one_does_not(
    tmp_path, monkeypatch, capsys
):
    """Where stderr is no terminal (a log: the bar is off), an epoch longer than
    ``STEP_LINE_SECONDS`` prints a line that often saying its step and seconds; a paper
    tagger's epoch of minutes to hours was silent until its own line. --quiet prints none."""
    import re

    import mtlshare.training.loop

    assert main(["run", DEMO, "train.epochs=2", "--out", str(tmp_path / "fast")]) == 0
    assert "so far" not in capsys.readouterr().err
    monkeypatch.setattr(mtlshare.training.loop, "STEP_LINE_SECONDS", 0.0)
    assert main(["run", DEMO, "train.epochs=2", "--out", str(tmp_path / "slow")]) == 0
    said = re.findall(
        r"^epoch (\d)/2: step ([\d,]+) of ([\d,]+), \d+ s so far$",
        capsys.readouterr().err,
        re.MULTILINE,
    )
    steps = int(said[0][2].replace(",", ""))
    # every step within each epoch, none at an epoch's end (its epoch line says that)
    expected = [(str(e), f"{k:,}", f"{steps:,}") for e in (1, 2) for k in range(1, steps)]
    assert said == expected
    quiet = ["run", DEMO, "train.epochs=2", "--quiet", "--out", str(tmp_path / "quiet")]
    assert main(quiet) == 0
    assert "so far" not in capsys.readouterr().err
