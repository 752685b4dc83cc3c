"""The command line: ``run``, ``compare`` and ``mechanisms``, their files, and one-line errors."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import threading
import tomllib
import warnings
from pathlib import Path

import pytest

import mtlshare.sharing  # noqa: F401  (registers the mechanisms)
from mtlshare import console
from mtlshare.app.demo import DEMO_CONFIG
from mtlshare.cli import main
from mtlshare.config import from_dict
from mtlshare.errors import INTERRUPTED, INTERRUPTED_FOR_GOOD, MtlshareError
from mtlshare.registry import MECHANISMS

ROOT = Path(__file__).resolve().parents[1]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
SMALL = ["train.epochs=2", "data.n_dev=50", "data.n_test=50"]


def run(out: Path, *extra: str) -> int:
    return main(["run", DEMO, *SMALL, *extra, "--out", str(out), "--quiet"])


def one_error_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("mtlshare: error:"), err
    assert "Traceback" not in err
    return lines[0]


@pytest.fixture(scope="module")
def hard_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("cli") / "hard"
    assert run(out) == 0
    return out


def test_run_writes_the_resolved_config(hard_run):
    raw = tomllib.loads((hard_run / "config.toml").read_text())
    assert raw["mechanism"] == "hard"
    assert raw["train"]["epochs"] == 2
    assert raw["data"]["n_dev"] == 50
    # resolved: defaults written out, every component present, loadable as it is
    assert raw["train"]["batch_size"] == 32 and "grad_clip" in raw["train"]
    assert {"data", "trunk", "train", "weighting", *MECHANISMS.names()} <= set(raw)
    assert from_dict(raw).to_dict() == raw


def test_run_writes_one_metrics_line_per_epoch(hard_run):
    lines = (hard_run / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    records = [json.loads(line) for line in lines]
    assert [r["epoch"] for r in records] == [1, 2]
    for r in records:
        assert set(r["dev"]) == {"t1", "t2"}


def test_run_writes_results(hard_run):
    results = json.loads((hard_run / "results.json").read_text())
    assert results["mechanism"] == "hard"
    assert results["seed"] == 0
    assert set(results["tasks"]) == {"t1", "t2"}
    for task in results["tasks"].values():
        assert {"metric", "higher_is_better", "dev", "test"} <= set(task)
        assert task["metric"] == "mse" and task["higher_is_better"] is False
        assert isinstance(task["dev"], float) and isinstance(task["test"], float)
    # 16 inputs, hidden [64, 64], two 1-output heads:
    # layers 16*64+64 + 64*64+64 = 5248, heads 2 * 65 = 130
    assert results["params"] == {
        "total": 5378,
        "shared": 5248,
        "task_specific": 130,
        "counted": 5248,
    }
    assert isinstance(results["train_seconds"], float) and results["train_seconds"] >= 0


def test_run_writes_safetensors_checkpoints(hard_run):
    for name in ("best", "last"):
        directory = hard_run / "checkpoint" / name
        assert (directory / "tensors.safetensors").is_file()
        meta = json.loads((directory / "meta.json").read_text())
        assert "epoch" in meta
    assert not list(hard_run.rglob("*.pt")) and not list(hard_run.rglob("*.pkl"))


def test_mechanism_override_switches_the_mechanism(tmp_path):
    assert run(tmp_path / "soft", "mechanism=soft") == 0
    results = json.loads((tmp_path / "soft" / "results.json").read_text())
    assert results["mechanism"] == "soft"
    assert results["params"]["shared"] == 0
    assert results["params"]["task_specific"] == results["params"]["total"]


def test_overrides_may_follow_the_options(tmp_path):
    argv = ["run", DEMO, "--out", str(tmp_path / "o"), "--quiet", *SMALL, "seed=3"]
    assert main(argv) == 0
    assert json.loads((tmp_path / "o" / "results.json").read_text())["seed"] == 3


def test_rerun_into_the_same_out_refuses_then_resumes(tmp_path, capsys):
    out = tmp_path / "r"
    assert run(out) == 0
    first = json.loads((out / "results.json").read_text())
    capsys.readouterr()

    assert run(out) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "--resume" in line and str(out) in line

    assert run(out, "--resume") == 0
    again = json.loads((out / "results.json").read_text())
    assert again["tasks"] == first["tasks"]
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2

    capsys.readouterr()
    assert run(out, "--resume", "train.lr=0.1") == 2
    refused = one_error_line(capsys.readouterr().err)
    assert "config differs" in refused
    assert "train.lr:" in refused and "0.1 now" in refused  # names what differs


def test_resuming_a_finished_run_says_it_read_it_back_and_prints_the_same_results(tmp_path, capsys):
    out = tmp_path / "r"
    assert run(out) == 0
    trained = capsys.readouterr()
    assert "read back" not in trained.err
    assert run(out, "--resume") == 0
    again = capsys.readouterr()
    assert again.out == trained.out  # the results lines are unchanged
    lines = [line for line in again.err.splitlines() if "read back" in line]
    assert lines == [
        f"mtlshare: {out}: the run had finished; its results were read back, nothing was trained"
    ]


def test_resume_without_an_earlier_run_is_an_error(tmp_path, capsys):
    assert run(tmp_path / "empty", "--resume") == 2
    one_error_line(capsys.readouterr().err)


def test_compare_resume_into_a_folder_not_there_says_every_run_trains(tmp_path, capsys):
    """``compare --resume`` starts a comparison too (the README's paper commands pass it the
    first time), so a folder not there is not refused as ``run --resume`` refuses it; but a
    typo of the folder meant trains every run again, hours at paper scale: a line says so.
    Resumed again, nothing is said."""
    out = tmp_path / "cmp"
    argv = ["compare", DEMO, *SMALL, "--mechanisms", "hard", "--out", str(out), "--resume"]
    assert main([*argv, "--quiet"]) == 0
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"compare: --resume: {out} did not exist: no run to read back or continue, every run trains"
    )
    assert main([*argv, "--quiet"]) == 0
    assert "did not exist" not in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.mkdir()  # a folder there, even empty, is the user's: no line
    assert main([*argv[:-2], str(empty), "--resume", "--quiet"]) == 0
    assert "did not exist" not in capsys.readouterr().err
    # without --resume a new folder is the usual start: nothing said of it
    assert main([*argv[:-2], str(tmp_path / "fresh"), "--quiet"]) == 0
    assert "did not exist" not in capsys.readouterr().err


def test_compare_writes_a_row_per_mechanism(tmp_path):
    out = tmp_path / "cmp"
    argv = ["compare", DEMO, *SMALL, "--mechanisms", "single,hard,soft", "--out", str(out)]
    assert main([*argv, "--quiet"]) == 0
    comparison = json.loads((out / "comparison.json").read_text())
    assert [row["mechanism"] for row in comparison["rows"]] == ["single", "hard", "soft"]
    assert comparison["tasks"] == ["t1", "t2"]
    for row in comparison["rows"]:
        assert set(row["tasks"]) == {"t1", "t2"}
        assert "counted" in row["params"]
    single = comparison["rows"][0]
    for name, task in single["tasks"].items():
        assert task["test"] == task["single"]
        assert task["relative_change"] == 0.0
        assert not task["negative_transfer"]
        # the baseline is the single-task run's own result
        alone = json.loads((out / "single" / name / "results.json").read_text())
        assert alone["tasks"][name]["test"] == task["single"]
    markdown = (out / "comparison.md").read_text()
    for name in ("single", "hard", "soft"):
        assert f"| {name} |" in markdown


def test_compare_rejects_an_unknown_mechanism(tmp_path, capsys):
    argv = ["compare", DEMO, *SMALL, "--mechanisms", "single,hardd", "--out", str(tmp_path)]
    assert main([*argv, "--quiet"]) == 2
    assert "hardd" in one_error_line(capsys.readouterr().err)


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ("bogus=1", "bogus"),
        ("train.bogus=1", "train.bogus"),
        ('train.epochs="x"', "train.epochs"),
        ("mechanism=nope", "nope"),
        ("data=3", "data"),
        ("train.select_on=t9", "train.select_on: 't9' is neither 'mean' nor a task"),
    ],
)
def test_bad_key_is_one_line_and_exit_2(tmp_path, capsys, override, named):
    assert run(tmp_path / "bad", override) == 2
    captured = capsys.readouterr()
    assert named in one_error_line(captured.err)
    assert captured.out == ""
    assert not (tmp_path / "bad").exists()


def test_missing_config_file_is_exit_2(tmp_path, capsys):
    missing = tmp_path / "missing.toml"
    assert main(["run", str(missing), "--out", str(tmp_path / "o"), "--quiet"]) == 2
    assert str(missing) in one_error_line(capsys.readouterr().err)


def test_mechanisms_lists_the_registry_in_a_subprocess():
    proc = subprocess.run(
        [sys.executable, "-m", "mtlshare", "mechanisms"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    listed = [line.split()[0] for line in proc.stdout.splitlines() if line.strip()]
    assert listed == MECHANISMS.names()


@pytest.mark.parametrize(
    ("where", "patch", "says"),
    [
        (  # the command, once the command line's module is whole (cli.entry)
            "command",
            "import mtlshare.cli\n"
            "def _dispatch(args):\n"
            '    exec("raise KeyboardInterrupt")\n'
            "mtlshare.cli._dispatch = _dispatch\n",
            "mtlshare: interrupted; this command cannot resume: run it again",
        ),
        (  # the command line's module being imported (__main__.py)
            "import",
            "import sys\n"
            "class Finder:\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name == 'mtlshare.cli':\n"
            '            exec("raise KeyboardInterrupt")\n'
            "sys.meta_path.insert(0, Finder())\n",
            "mtlshare: interrupted; the last checkpoint is whole (resume with --resume)",
        ),
    ],
)
def test_an_interrupt_caught_out_of_an_evaluated_string_is_exit_130_under_python_m(
    tmp_path, where, patch, says
):
    """Ctrl-C while Python runs code made from a string (a dataclass's methods, being made at
    import) is caught as any interrupt, yet under ``python -m mtlshare`` the process died by
    SIGINT at exit (returncode -2, not 130): CPython notes such an interrupt for ``-m`` whether
    it is caught or not. The command, or the import, made to raise it there as the signal
    would."""
    (tmp_path / "sitecustomize.py").write_text(patch)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    proc = subprocess.run(
        [sys.executable, "-m", "mtlshare", "mechanisms"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )
    assert (proc.returncode, proc.stderr.splitlines()) == (130, [says]), where


def test_a_pipe_whose_reader_has_left_ends_the_command_quietly_in_a_subprocess():
    """``mtlshare mechanisms | head -0``: the pipe's reader is gone before a line is written.
    The command stops with exit 0 and says nothing; the output it could not write is not
    written again at the interpreter's exit (``Exception ignored ... BrokenPipeError``, exit
    120)."""
    read, write = os.pipe()
    os.close(read)  # the reader left before the command wrote anything
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "mtlshare", "mechanisms"],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(write)
    assert (proc.returncode, proc.stderr) == (0, "")


def test_more_bad_inputs_give_one_line_errors(tmp_path, capsys):
    from mtlshare.cli import main

    demo = str(Path(__file__).resolve().parents[1] / "recipes" / "demo" / "demo.toml")
    a_file = tmp_path / "file"
    a_file.write_text("x")
    cases = [
        ["run", demo, "train.epochs=1", "--out", str(a_file), "--quiet"],  # --out is a file
        ["run", demo, "trunk.kind=lstm", "--out", str(tmp_path / "l"), "--quiet"],  # flat data
        ["run", demo, "sparse.alpha=1.5", "--out", str(tmp_path / "a"), "--quiet"],  # range
        ["compare", demo, "--mechanisms", "hard,nope", "--out", str(tmp_path / "c"), "--quiet"],
    ]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and err[0].startswith("mtlshare: error:"), (argv, err)
    # a bad mechanism setting is caught before compare trains anything
    assert (
        main(["compare", demo, "hard.shared_layers=7", "--out", str(tmp_path / "c2"), "--quiet"])
        == 2
    )
    assert not (tmp_path / "c2" / "single").exists()


def test_resume_from_an_incomplete_checkpoint_is_a_one_line_error(tmp_path, capsys):
    from mtlshare.cli import main

    demo = str(Path(__file__).resolve().parents[1] / "recipes" / "demo" / "demo.toml")
    out = tmp_path / "run"
    assert main(["run", demo, "train.epochs=1", "--out", str(out), "--quiet"]) == 0
    (out / "results.json").unlink()  # as if cut before the end
    (out / "checkpoint" / "last" / "meta.json").write_text("{}")
    capsys.readouterr()
    assert main(["run", demo, "train.epochs=1", "--out", str(out), "--resume", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "does not fit this run or is incomplete" in err[0]


def test_ctrl_c_while_the_parser_is_built_is_one_line(monkeypatch, capsys):
    """A Ctrl-C early in start-up on a busy machine (seen in CI: inside argparse) is the
    one-line interrupt, not a traceback."""
    import mtlshare.cli as cli

    def interrupted():
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_parser", interrupted)
    assert cli.main(["run", "x.toml", "--out", "y"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [INTERRUPTED]


def test_held_interrupts_notes_a_signal_then_puts_the_handler_back():
    """What the command line holds back while torch imports (and compare while it stops its
    workers): a signal is noted, not handled, and afterwards handled as before; one ignored
    stays ignored (a job started with ``&``); in another thread nothing is held."""
    from mtlshare.interrupts import held_interrupts

    usr1 = signal.SIGUSR1
    handled: list[int] = []
    previous = signal.signal(usr1, lambda signum, frame: handled.append(signum))
    try:
        with held_interrupts((usr1,)) as held:
            os.kill(os.getpid(), usr1)
            assert held == [usr1] and handled == []
        os.kill(os.getpid(), usr1)
        assert handled == [usr1]
        signal.signal(usr1, signal.SIG_IGN)
        with held_interrupts((usr1,)) as held:
            os.kill(os.getpid(), usr1)
            assert held == [] and signal.getsignal(usr1) == signal.SIG_IGN
        assert signal.getsignal(usr1) == signal.SIG_IGN
    finally:
        signal.signal(usr1, previous)
    in_thread: list[object] = []

    def elsewhere() -> None:
        try:
            with held_interrupts((usr1,)) as held:
                in_thread.append(held)
        except Exception as e:  # signal.signal outside the main thread: ValueError
            in_thread.append(e)

    thread = threading.Thread(target=elsewhere)
    thread.start()
    thread.join()
    assert in_thread == [[]]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_or_sighup_stops_a_command_as_ctrl_c_does(monkeypatch, capsys, signum, code):
    """``kill PID`` (a scheduler's preemption, ``timeout``), or the terminal closed under a
    command not started with nohup (SIGHUP ended it as SIGKILL does, without stopping its
    workers or removing a temporary file): the one-line interrupt, exit 128 + the signal,
    and the signal's own handler back after."""
    import mtlshare.cli as cli

    def terminated():
        # checked first: without the command's handler the signal would end pytest itself
        assert signal.getsignal(signum) is console.terminated
        os.kill(os.getpid(), signum)
        raise AssertionError("the signal did not stop the command")

    before = signal.signal(signum, signal.SIG_DFL)  # (pytest under nohup ignores SIGHUP)
    try:
        monkeypatch.setattr(cli, "_parser", terminated)
        assert cli.main(["run", "x.toml", "--out", "y"]) == code
        assert capsys.readouterr().err.strip().splitlines() == [INTERRUPTED]
        assert signal.getsignal(signum) == signal.SIG_DFL
    finally:
        signal.signal(signum, before)


def test_a_signal_ignored_as_under_nohup_stays_ignored():
    """Under ``nohup`` SIGHUP is ignored: the command leaves it so (it would stop the run)."""
    before = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        taken = console.take_terminating()
        assert signal.SIGHUP not in taken and signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        for number, handler in taken.items():
            signal.signal(number, handler)
    finally:
        signal.signal(signal.SIGHUP, before)


@pytest.mark.parametrize(
    ("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_an_interrupt_while_torch_imports_is_held_until_the_import_is_whole(
    tmp_path, monkeypatch, capsys, signum, code
):
    """An interrupt inside torch's import can abort the process: Ctrl-C, SIGTERM and SIGHUP
    are held back, the import completes, and the command then stops with the signal's own
    exit code (a SIGHUP held there is not told as a SIGTERM, a Ctrl-C is 130)."""
    import mtlshare.interrupts
    from mtlshare.interrupts import held_interrupts

    whole: list[bool] = []

    @contextlib.contextmanager
    def signalled(signals):
        assert signum in signals  # else the signal below would end the command unheld
        with held_interrupts(signals) as held:
            os.kill(os.getpid(), signum)
            yield held
            whole.append(True)

    before = signal.signal(signum, signal.SIG_DFL)  # (pytest under nohup ignores SIGHUP)
    try:
        monkeypatch.setattr(mtlshare.interrupts, "held_interrupts", signalled)
        monkeypatch.chdir(tmp_path)
        assert main(["run", DEMO, "--out", "never-made"]) == code
    finally:
        signal.signal(signum, before)
    assert whole == [True]
    assert capsys.readouterr().err.strip().splitlines() == [
        "mtlshare: interrupted before the first checkpoint was saved; run it again"
    ]
    assert not (tmp_path / "never-made").exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_held_interrupts_holds_each_interrupt_by_default(signum):
    """``compare --jobs`` stops its workers with the interrupts held: a terminal closed
    meanwhile (SIGHUP) is noted as Ctrl-C and SIGTERM are, not raised into the shutdown."""
    from mtlshare.interrupts import held_interrupts

    held: list[int] | None = None
    before = signal.signal(signum, console.terminated)
    try:
        with held_interrupts() as held:
            os.kill(os.getpid(), signum)
    except KeyboardInterrupt:  # raised, not held: a failure here, not the end of pytest
        held = None
    finally:
        signal.signal(signum, before)
    assert held == [signum]


def test_main_runs_in_a_thread_other_than_the_main_one(capsys):
    """Signals are only the main thread's: called from another (a caller's thread pool),
    main leaves SIGTERM alone rather than fail setting its handler."""
    codes: list[object] = []

    def call() -> None:
        try:
            codes.append(main(["mechanisms"]))
        except Exception as e:  # signal.signal outside the main thread: ValueError
            codes.append(e)

    thread = threading.Thread(target=call)
    thread.start()
    thread.join()
    assert codes == [0]
    assert "hard" in capsys.readouterr().out
    assert signal.getsignal(signal.SIGTERM) == signal.SIG_DFL


def test_the_command_exits_with_mains_code_after_freezing_the_heap(monkeypatch):
    """``mtlshare`` (the console script and ``python -m``) is ``entry``: main's exit code,
    and gc.freeze first, so that exiting skips a full collection of torch's objects."""
    import mtlshare.cli as cli

    calls: list[str] = []
    monkeypatch.setattr(cli, "main", lambda: calls.append("main") or 2)
    monkeypatch.setattr(cli.gc, "freeze", lambda: calls.append("freeze"))
    with pytest.raises(SystemExit) as stop:
        cli.entry()
    assert stop.value.code == 2 and calls == ["main", "freeze"]
    script = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert script["mtlshare"] == "mtlshare.cli:entry"
    assert "entry()" in (ROOT / "src" / "mtlshare" / "__main__.py").read_text()


def test_an_os_error_is_one_line_and_exit_2(tmp_path, capsys):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"epoch": 1, "dev": {"a": 0.5}}\n')
    (tmp_path / "file").write_text("")
    assert main(["curves", str(run_dir), "--out", str(tmp_path / "file" / "c.png")]) == 2
    one_error_line(capsys.readouterr().err)


def test_a_stray_argument_without_equals_is_refused(tmp_path, capsys):
    """After the options as before them, an override without "=" is the reader's one line (it
    was argparse's usage and "unrecognized arguments" after the options)."""
    for argv in (
        ["run", DEMO, "--out", str(tmp_path / "o"), "stray", "--quiet"],
        ["run", DEMO, "stray", "--out", str(tmp_path / "o"), "--quiet"],
    ):
        assert main(argv) == 2
        assert "override 'stray': expected key=value" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["train", DEMO], "invalid choice: 'train'"),
        (["run", DEMO], "required: --out"),
        (
            ["run", "--out", "o"],
            "required: config",
        ),  # not "config, key=value": those may be left out
        (["evaluate", "r", "--split", "train"], "invalid choice: 'train'"),
        (["predict", "r", "x", "--out", "y", "--format", "xml"], "invalid choice: 'xml'"),
        (["run", DEMO, "--out", "o", "--epochs", "3"], "unrecognized arguments: --epochs"),
    ],
)
def test_a_usage_mistake_is_one_line_exit_2(tmp_path, capsys, monkeypatch, argv, says):
    """argparse printed its usage first: 2 to 6 lines where every other error is one."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    line = one_error_line(capsys.readouterr().err)
    assert says in line and "--help`)" in line, line
    assert not (tmp_path / "o").exists()


def test_a_config_that_is_a_folder_or_given_to_the_demo_says_so(tmp_path, capsys):
    assert main(["run", str(ROOT / "recipes"), "--out", str(tmp_path / "o")]) == 2
    assert "a folder, not a config file" in one_error_line(capsys.readouterr().err)
    assert main(["demo", "--out", str(tmp_path / "d"), DEMO]) == 2
    assert "`demo` takes none" in one_error_line(capsys.readouterr().err)
    assert not (tmp_path / "o").exists() and not (tmp_path / "d").exists()


def test_run_and_compare_refuse_each_others_folders(tmp_path, capsys):
    """Each wrote its files beside the other's (a comparison's rows inside a finished run, a
    run's checkpoint beside ``comparison.json``), exit 0."""
    run_dir, cmp_dir = tmp_path / "run", tmp_path / "cmp"
    assert run(run_dir) == 0
    compare = ["compare", DEMO, *SMALL, "--mechanisms", "single,hard", "--quiet"]
    before = sorted(p.name for p in run_dir.iterdir())
    for resume in ([], ["--resume"]):
        assert main([*compare, "--out", str(run_dir), *resume]) == 2
        assert "holds a run (config.toml), not a comparison" in one_error_line(
            capsys.readouterr().err
        )
    assert sorted(p.name for p in run_dir.iterdir()) == before
    assert main([*compare, "--out", str(cmp_dir)]) == 0
    capsys.readouterr()
    assert run(cmp_dir) == 2
    assert "holds a comparison (comparison.json), not a run" in one_error_line(
        capsys.readouterr().err
    )
    (cmp_dir / "comparison.json").unlink()  # a comparison cut short: its rows' runs tell
    assert run(cmp_dir) == 2
    assert "holds a comparison's runs (hard, single" in one_error_line(capsys.readouterr().err)
    assert not (cmp_dir / "config.toml").exists()


def test_a_fresh_comparison_in_a_used_folder_is_refused_before_any_run_trains(tmp_path, capsys):
    """Without --resume, the runs before the first used one trained (``--seeds 0,1`` in a
    ``--seeds 0`` folder: seed 0's single-task runs, then the refusal)."""
    out = tmp_path / "cmp"
    compare = ["compare", DEMO, *SMALL, "--mechanisms", "single,hard", "--out", str(out), "--quiet"]
    assert main(compare) == 0
    before = sorted(str(p.relative_to(out)) for p in out.rglob("*"))
    capsys.readouterr()
    assert main([*compare, "--seeds", "1,0"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "holds an earlier run; choose another --out or pass --resume" in line, line
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*")) == before


def test_the_demo_refuses_an_earlier_demos_folder_before_training(tmp_path, capsys):
    """It cannot resume; its comparisons refused their used folders run by run (11 lines, and
    a last line that said to rerun with --resume, which the demo does not take)."""
    out = tmp_path / "d"
    (out / "high" / "single" / "t1").mkdir(parents=True)
    assert main(["demo", "--out", str(out), "--quiet", "--jobs", "1"]) == 2
    line = one_error_line(capsys.readouterr().err)
    assert "holds an earlier demo (high); the demo cannot resume" in line, line
    assert sorted(p.name for p in out.iterdir()) == ["high"]


@pytest.mark.parametrize(
    "item", ["data.relatedness=0.5", "data.n_tasks=4", 'tasks=["t1"]', " mechanism = hard"]
)
def test_the_demo_refuses_an_override_of_a_setting_it_sets_itself(tmp_path, capsys, item):
    """``demo data.relatedness=0.5`` printed the default demo's tables under p = 0.9 and 0.0:
    the demo's own setting came after the user's and won, without a word."""
    out = tmp_path / "d"
    assert main(["demo", "--out", str(out), "--quiet", item]) == 2
    line = one_error_line(capsys.readouterr().err)
    key = item.partition("=")[0].strip()
    assert f"override {item!r}: the demo sets {key} itself" in line, line
    # the installed file, not recipes/demo/demo.toml: an installed package has no recipes/
    assert f"mtlshare compare {DEMO_CONFIG}`" in line
    assert not out.exists()


def test_the_demo_names_the_config_file_it_reads_where_it_is_installed(capsys):
    """The demo's help named recipes/demo/demo.toml, a file of a clone only: from the wheel
    that path does not exist. It names the file installed with the package, the one the demo
    reads, which the recipe links to."""
    import mtlshare.arguments

    assert mtlshare.arguments.DEMO_CONFIG == DEMO_CONFIG and DEMO_CONFIG.is_file()
    assert Path(DEMO).resolve() == DEMO_CONFIG.resolve()
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert str(DEMO_CONFIG) in "".join(out.split())  # (argparse wraps it, at hyphens too)
    assert "recipes/" not in out


def test_the_demo_refuses_its_own_setting_after_an_override_it_takes(tmp_path, capsys):
    """Every override is checked, not only the first."""
    out = tmp_path / "d"
    assert main(["demo", "--out", str(out), "--quiet", "train.epochs=1", "mechanism=hard"]) == 2
    assert "override 'mechanism=hard': the demo sets mechanism itself" in one_error_line(
        capsys.readouterr().err
    )
    assert not out.exists()


def test_an_interrupted_demo_names_the_folder_to_remove(tmp_path, monkeypatch, capsys):
    """It said 'run it again', and the same command was then refused for the earlier demo."""
    import mtlshare.app.demo

    def interrupted(*args, **kwargs):
        (tmp_path / "d" / "high").mkdir(parents=True)
        raise KeyboardInterrupt

    monkeypatch.setattr(mtlshare.app.demo, "_demo", interrupted)
    out = str(tmp_path / "d")
    assert main(["demo", "--out", out, "--quiet", "--jobs", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [
        f"mtlshare: interrupted; the demo cannot resume: remove {out} (or choose another "
        "--out) and run it again"
    ]
    assert main(["demo", "--out", out, "--quiet", "--jobs", "1"]) == 2
    assert "holds an earlier demo (high)" in capsys.readouterr().err


def test_an_interrupted_demo_that_left_its_folder_empty_says_to_run_it_again(
    tmp_path, monkeypatch, capsys
):
    """The demo makes --out before it trains: stopped then, the folder is empty, a rerun in
    it is accepted, and the message does not ask to remove it."""
    import mtlshare.app.demo

    reached: list[Path] = []

    def interrupted(out, *args, **kwargs):
        reached.append(out)
        raise KeyboardInterrupt

    monkeypatch.setattr(mtlshare.app.demo, "_demo", interrupted)
    out = tmp_path / "d"
    assert main(["demo", "--out", str(out), "--quiet", "--jobs", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [INTERRUPTED_FOR_GOOD]
    assert out.is_dir() and not any(out.iterdir())
    assert main(["demo", "--out", str(out), "--quiet", "--jobs", "1"]) == 130  # not refused
    assert len(reached) == 2


def test_an_interrupted_demo_that_made_no_folder_says_to_run_it_again(
    tmp_path, monkeypatch, capsys
):
    """Only a demo that left its folder behind names it to remove: one stopped before making it
    (here: while its settings are checked) is simply run again."""
    import mtlshare.app.demo

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(mtlshare.app.demo, "check_jobs", interrupted)
    out = tmp_path / "d"
    assert main(["demo", "--out", str(out), "--quiet", "--jobs", "1"]) == 130
    assert capsys.readouterr().err.strip().splitlines() == [INTERRUPTED_FOR_GOOD]
    assert not out.exists()


def test_seeds_on_the_command_line_replace_the_configs_and_may_not_repeat(
    tmp_path, capsys, monkeypatch
):
    import mtlshare.app.compare as compare_module

    seen = {}
    monkeypatch.setattr(compare_module, "compare", lambda cfg, names, out, **kw: seen.update(kw))
    monkeypatch.setattr(compare_module, "comparison_markdown", lambda *a: "table")
    argv = ["compare", DEMO, "--mechanisms", "hard", "--out", str(tmp_path / "c"), "--quiet"]
    assert main([*argv, "--seeds", "4, 5", "compare.seeds=[1, 2]"]) == 0
    assert seen["seeds"] == [4, 5] and seen["progress"] is False
    assert main([*argv, "compare.seeds=[1, 2]"]) == 0
    assert seen["seeds"] == [1, 2]
    capsys.readouterr()
    assert main([*argv, "--seeds", "0,1,0"]) == 2
    assert "lists a seed twice" in one_error_line(capsys.readouterr().err)


def test_compare_refuses_a_negative_seed_and_a_config_that_is_no_training_experiment(
    tmp_path, capsys
):
    out = tmp_path / "c"
    argv = ["compare", DEMO, *SMALL, "--mechanisms", "hard", "--out", str(out), "--quiet"]
    assert main([*argv, "--seeds=1,-1"]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        "mtlshare: error: --seeds: -1 is not a seed in [0, 2**63 - 1]"
    )
    assert main([*argv, "experiment=forecast"]) == 2
    assert one_error_line(capsys.readouterr().err) == (
        "mtlshare: error: compare runs training experiments; this config has "
        "experiment = 'forecast'"
    )
    assert not out.exists()


@pytest.mark.parametrize("seeds", ["", ",", "0,,1", "0,1,"])
def test_an_empty_seed_list_or_item_is_refused_not_read_as_the_default(
    seeds, tmp_path, capsys, monkeypatch
):
    """``--seeds ''`` ran the recipe's (or the demo's) default seeds and ``0,,1`` ran 0 and 1,
    both with exit 0: a list that lost a seed to a typo or an unset shell variable trained
    other runs than the user asked for."""
    import mtlshare.app.compare as compare_module
    import mtlshare.app.demo as demo_module

    trained = []
    monkeypatch.setattr(compare_module, "compare", lambda *a, **kw: trained.append(kw))
    monkeypatch.setattr(demo_module, "run_demo", lambda *a, **kw: trained.append(kw))
    compare = ["compare", DEMO, "--mechanisms", "hard", "--out", str(tmp_path / "c"), "--quiet"]
    demo = ["demo", "--out", str(tmp_path / "d"), "--quiet"]
    for argv in (compare, demo):
        assert main([*argv, "--seeds", seeds]) == 2
        line = one_error_line(capsys.readouterr().err)
        assert line == f"mtlshare: error: --seeds: expected integers like 0,1,2, got {seeds!r}"
    assert trained == []


def test_warnings_print_one_line_and_the_callers_way_is_put_back(monkeypatch, capsys):
    """A command's warnings are one line each; once ``main`` returns, its caller (a script, a
    test) shows its warnings its own way again (main left its one-line way behind)."""
    import mtlshare.cli as cli

    def warns(args):
        warnings.warn("data.csv:3: odd row", UserWarning, stacklevel=1)
        return 0

    def fails(args):
        raise MtlshareError("no room")

    monkeypatch.setattr(cli, "_dispatch", warns)
    with warnings.catch_warnings():  # (which puts back the way found, whatever main does)
        warnings.simplefilter("always")
        before = warnings.showwarning
        assert main(["mechanisms"]) == 0
        assert warnings.showwarning is before
        monkeypatch.setattr(cli, "_dispatch", fails)
        assert main(["mechanisms"]) == 2  # and after an error
        assert warnings.showwarning is before
    assert capsys.readouterr().err.startswith("mtlshare: warning: data.csv:3: odd row\n")


@pytest.mark.parametrize("rank", [0, 1])
@pytest.mark.parametrize("quiet", [True, False])
def test_quiet_and_ranks_other_than_0_train_without_progress_and_print_nothing(
    tmp_path, capsys, monkeypatch, rank, quiet
):
    import mtlshare.app.experiments as experiments
    from mtlshare.training import distributed

    seen = {}

    def fake_runner(cfg, out, **kw):
        seen.update(kw)
        return {"tasks": {"t1": {"metric": "mse", "dev": 1.0, "test": 2.0}}}

    monkeypatch.setattr(experiments, "runner", lambda name: fake_runner)
    monkeypatch.setattr(distributed, "from_environment", lambda device: distributed.Dist(rank, 2))
    monkeypatch.setattr(distributed, "barrier", lambda where: None)
    argv = ["run", DEMO, "--out", str(tmp_path / "o"), *(["--quiet"] if quiet else [])]
    assert main(argv) == 0
    assert seen["progress"] is (not quiet and rank == 0)
    assert seen["dist"].rank == rank
    assert ("t1: dev mse 1" in capsys.readouterr().out) is (rank == 0)


def test_an_experiment_kind_registered_outside_the_library_is_one_line_not_a_keyerror(
    tmp_path, monkeypatch, capsys
):
    from mtlshare.registry import EXPERIMENTS, Entry

    EXPERIMENTS.names()
    monkeypatch.setitem(EXPERIMENTS._entries, "mine", Entry("mine", None, None, "", ""))
    assert main(["run", DEMO, "--out", str(tmp_path / "o"), "experiment=mine"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "experiment 'mine' is registered but nothing runs it" in err[0]
    assert not (tmp_path / "o").exists()


def test_version_prints_the_installed_version_and_exits_0(capsys):
    """``mtlshare --version`` names the version the package was installed as (pyproject's),
    so the one in ``mtlshare/__init__.py`` cannot drift from it unnoticed."""
    from importlib.metadata import version

    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0
    assert capsys.readouterr().out == f"mtlshare {version('mtlshare')}\n"


def test_a_command_line_refused_before_the_library_loads_ends_without_loading_it(
    monkeypatch, capsys
):
    """``mtlshare --version`` (or a usage error) ends before torch and the library are
    imported: leaving a torchrun process group at the end must not import them either (nor
    fail on what is not there)."""
    monkeypatch.delitem(sys.modules, "mtlshare.training.distributed")
    with pytest.raises(SystemExit) as stop:
        main(["--version"])
    assert stop.value.code == 0 and capsys.readouterr().out.startswith("mtlshare ")
    assert "mtlshare.training.distributed" not in sys.modules


class FullDisk(io.StringIO):
    """A standard stream redirected to a file on a full disk: every write fails."""

    def write(self, text: str) -> int:
        raise OSError(28, os.strerror(28))


def test_a_stderr_that_cannot_be_written_loses_its_lines_not_the_command(
    tmp_path, monkeypatch, capsys
):
    """stderr on a full disk (``2> log``, or ``2>/dev/full``): a warning, or any line the
    command says on the way, ended it in an error it could not print either, exit 1 and not a
    word (a CoNLL run with unseen tags never started). The line is lost, as Python's own
    warnings lose theirs; the command goes on, and an error still exits 2."""
    out = tmp_path / "run"
    assert run(out) == 0
    (out / "results.json").unlink()  # a run still training: evaluate warns
    monkeypatch.setattr(sys, "stderr", FullDisk())
    assert main(["evaluate", str(out)]) == 0
    assert main(["run", DEMO, *SMALL, "--out", str(tmp_path / "again"), "--quiet"]) == 0
    assert (tmp_path / "again" / "results.json").is_file()
    assert main(["run", DEMO, *SMALL, "--out", str(out), "--quiet"]) == 2  # a used --out
    assert "t1: test mse" in capsys.readouterr().out
    # a worker process of compare --jobs shows warnings so, its stderr not wrapped by main:
    # each of its runs failed with "[Errno 28] No space left on device"
    with warnings.catch_warnings():
        warnings.showwarning = console.show_warning
        warnings.warn("unseen tags", UserWarning, stacklevel=1)


def test_a_stdout_that_cannot_be_written_is_one_line_naming_it(tmp_path, monkeypatch, capsys):
    """``> /dev/full``: ``[Errno 28] No space left on device``, naming no file, and after a
    finished run the hint that its last checkpoint was whole: the run's files were written,
    its output is what failed."""
    out = tmp_path / "run"
    assert run(out) == 0
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdout", FullDisk())
    for args in (["mechanisms"], ["run", DEMO, *SMALL, "--out", str(out), "--resume"]):
        assert main(args) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert err[-1] == "mtlshare: error: [Errno 28] No space left on device: '<stdout>'"
    assert sys.stdout.__class__ is FullDisk  # put back as it was


class NoErrno(io.StringIO):
    """A stdout of the caller's whose writes fail with an ``OSError`` that has no errno."""

    def write(self, text: str) -> int:
        raise OSError("the stream was detached")


def test_a_stdout_error_without_an_errno_is_said_as_it_is(monkeypatch, capsys):
    """Only an error with an errno is said again as stdout's (``[Errno 28] ...: '<stdout>'``):
    one without is its own message, not ``[Errno None] None: '<stdout>'``."""
    monkeypatch.setattr(sys, "stdout", NoErrno())
    assert main(["mechanisms"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mtlshare: error: the stream was detached"]


class FullDiskBuffered(io.StringIO):
    """stdout as ``> /dev/full`` leaves it: block-buffered, so each write is taken and the
    flush, where the bytes reach the disk, fails."""

    def flush(self) -> None:
        raise OSError(28, os.strerror(28))


def test_a_stdout_that_fails_only_when_flushed_is_one_line_naming_it(monkeypatch, capsys):
    """``mtlshare mechanisms > /dev/full``: the buffered output failed at Python's exit, after
    main had returned 0 (``Exception ignored ... BrokenPipeError``-like lines, exit 120): main
    flushes it itself, and the error names stdout as a failed write does."""
    monkeypatch.setattr(sys, "stdout", FullDiskBuffered())
    assert main(["mechanisms"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["mtlshare: error: [Errno 28] No space left on device: '<stdout>'"]


def test_a_closed_stdout_is_not_flushed(monkeypatch, capsys):
    """stdout closed when Python started (``mtlshare mechanisms >&-``): ``sys.stdout`` is None
    and print writes nothing; the command ends as usual, not in an ``AttributeError``."""
    monkeypatch.setattr(sys, "stdout", None)
    assert main(["mechanisms"]) == 0
    assert sys.stdout is None


def test_a_character_stdout_cannot_encode_is_escaped_not_a_traceback(tmp_path, monkeypatch):
    """``PYTHONIOENCODING=ascii`` and an output path with an accent: ``predict`` wrote its file,
    then its last line ended the command in a ``UnicodeEncodeError`` traceback, exit 1. The
    character is written as Python writes it on stderr, ``\\xe9``, and the command exits 0."""
    out = tmp_path / "run"
    assert run(out) == 0
    inputs = tmp_path / "in.csv"
    inputs.write_text(",".join(f"x{i}" for i in range(16)) + "\n" + ",".join(["0.5"] * 16) + "\n")
    (tmp_path / "dé").mkdir()
    ascii_stdout = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    monkeypatch.setattr(sys, "stdout", ascii_stdout)
    assert main(["predict", str(out), str(inputs), "--out", str(tmp_path / "dé" / "p.csv")]) == 0
    assert (tmp_path / "dé" / "p.csv").is_file()
    ascii_stdout.flush()
    printed = ascii_stdout.buffer.getvalue().decode("ascii")  # type: ignore[attr-defined]
    assert printed.rstrip().endswith("d\\xe9/p.csv")


def test_a_stream_escapes_only_the_characters_its_encoding_cannot_take():
    """A latin-1 stdout takes ``é`` as it is and gets ``\\u2192`` for an arrow (an ASCII escape
    of every character but ASCII's would mangle what the encoding could write); ``write`` says
    it wrote the text it was given, as a text stream's ``write`` does."""
    raw = io.TextIOWrapper(io.BytesIO(), encoding="latin-1")
    stream = console.Stream(raw, "<stdout>")
    assert stream.write("dé → x\n") == 7
    raw.flush()
    assert raw.buffer.getvalue().decode("latin-1") == "dé \\u2192 x\n"  # type: ignore[attr-defined]
