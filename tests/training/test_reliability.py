"""Reliability under faults (issue 7), with real processes where a kill is involved.

- a training run killed with SIGKILL at random moments resumes to bitwise the same parameters
  and results as an uninterrupted run;
- processes killed over and over while saving checkpoints or text files never leave a truncated
  or mixed latest file;
- pickles, whatever their name or place, are refused and never executed; ``src/`` never unpickles;
- a non-finite loss stops the run naming the step and the task, and the last good checkpoint
  stays byte for byte as it was;
- bad data files for ``daily_csv`` are one-line errors that leave no output behind.

The kill times come from a seeded RNG; the seed is printed (``pytest -s``) and in the kill
tests' failure messages; ``MTLSHARE_KILL_SEED=N`` replays it. Run as a script, this file is the
saver process that ``test_kills_during_*`` kill (see ``saver_main``).
"""

from __future__ import annotations

import ast
import errno
import hashlib
import io
import json
import os
import pickle
import random
import re
import shutil
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from mtlshare.cli import main
from mtlshare.errors import INTERRUPTED, CheckpointError
from mtlshare.training.checkpoint import (
    TENSORS,
    atomic_write_text,
    find_checkpoint,
    load_checkpoint,
    save_checkpoint,
)

ROOT = Path(__file__).resolve().parents[2]
DEMO = str(ROOT / "recipes" / "demo" / "demo.toml")
SMALL = ["train.patience=0", "data.n_dev=50", "data.n_test=50", "--quiet"]
POSIX = pytest.mark.skipif(not hasattr(os, "fork"), reason="kills processes with SIGKILL")


def kill_rng() -> tuple[int, random.Random]:
    seed = int(os.environ.get("MTLSHARE_KILL_SEED") or random.SystemRandom().randrange(2**32))
    print(f"kill seed {seed} (replay with MTLSHARE_KILL_SEED={seed})")
    return seed, random.Random(seed)


def mtlshare(*args: str) -> list[str]:
    return [sys.executable, "-m", "mtlshare", *args]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(mtlshare(*args), capture_output=True, text=True, timeout=300)


def error_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command prints: exit code 2, no traceback, nothing else."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("mtlshare: error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


def refused(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    """The one line ``mtlshare ARGS`` prints when it refuses, run in this process (the
    subprocess form, ``error_line(run_cli(...))``, is kept where a process is killed or must
    start clean): the same checks as ``error_line``."""
    capsys.readouterr()
    code = main(list(args))
    return error_line(subprocess.CompletedProcess(args, code, "", capsys.readouterr().err))


def untimed(obj: Any) -> Any:
    """``obj`` without wall-clock fields (``train_seconds``, ``wall_seconds``), recursively."""
    if isinstance(obj, dict):
        return {k: untimed(v) for k, v in obj.items() if not k.endswith("_seconds")}
    if isinstance(obj, list):
        return [untimed(v) for v in obj]
    return obj


def assert_same_checkpoint(a: Path, b: Path, why: str = "") -> None:
    """Every tensor equal bitwise (model, optimizer, RNG), metadata equal but for timings."""
    ta, ma = load_checkpoint(a)
    tb, mb = load_checkpoint(b)
    assert ta.keys() == tb.keys(), why
    for key in ta:
        assert ta[key].dtype == tb[key].dtype and torch.equal(ta[key], tb[key]), (key, why)
    assert untimed(ma) == untimed(mb), why


def last_epoch(out: Path) -> int:
    """The epoch of ``out``'s latest complete ``last`` checkpoint, 0 if none (read while a
    process may be swapping it, hence both names and no error)."""
    for name in ("last", "last.old"):
        try:
            return int(json.loads((out / "checkpoint" / name / "meta.json").read_text())["epoch"])
        except (OSError, ValueError, KeyError):
            continue
    return 0


def wait_until(
    done: Callable[[], bool], proc: subprocess.Popen[Any], why: str, timeout: float = 120
) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert proc.poll() is None, f"the process ended before {why}"
        assert time.monotonic() < deadline, f"timed out waiting for {why}"
        time.sleep(0.005)


def tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


# -- 1. SIGKILL at random moments, then --resume ------------------------------------------------

# dropout, so that the saved random state matters; 30 short epochs, a checkpoint after each
KILLED_RUN = [DEMO, "train.epochs=30", "trunk.dropout=0.2", *SMALL]


@POSIX
def test_sigkill_at_random_steps_then_resume_is_bitwise_an_uninterrupted_run(tmp_path):
    seed, rng = kill_rng()
    full, cut = tmp_path / "full", tmp_path / "cut"

    proc = subprocess.Popen(
        mtlshare("run", *KILLED_RUN, "--out", str(full)), stderr=subprocess.PIPE, text=True
    )
    wait_until(lambda: last_epoch(full) >= 1, proc, "the first checkpoint")
    first = time.monotonic()
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err[-2000:]
    window = time.monotonic() - first  # how long the run trains once a checkpoint exists

    killed_at = []
    for kill, cap in enumerate((15, 27)):  # kill the run, then kill the resumed run too
        resume = ["--resume"] if kill else []
        before = last_epoch(cut)
        proc = subprocess.Popen(
            mtlshare("run", *KILLED_RUN, "--out", str(cut), *resume),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_until(lambda b=before: last_epoch(cut) > b, proc, "a new checkpoint")
        # a random moment, cut short at epoch ``cap`` should the machine run faster than it did
        deadline = time.monotonic() + rng.uniform(0.0, 0.3 * window)
        while time.monotonic() < deadline and last_epoch(cut) < cap:
            time.sleep(0.002)
        assert proc.poll() is None, f"finished before the kill; seed {seed}"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        killed_at.append(last_epoch(cut))
        assert not (cut / "results.json").exists()
    print(f"killed after epochs {killed_at} of 30")
    assert 1 <= killed_at[0] < killed_at[1] < 30, (killed_at, seed)

    finish = run_cli("run", *KILLED_RUN, "--out", str(cut), "--resume")
    assert finish.returncode == 0, finish.stderr[-2000:]
    for name in ("best", "last"):
        assert_same_checkpoint(full / "checkpoint" / name, cut / "checkpoint" / name, f"{seed}")
    a, b = (json.loads((d / "results.json").read_text()) for d in (full, cut))
    assert untimed(a) == untimed(b), seed  # test metrics, best epoch, parameter counts
    lines = [(d / "metrics.jsonl").read_text().splitlines() for d in (full, cut)]
    assert [untimed(json.loads(x)) for x in lines[0]] == [untimed(json.loads(x)) for x in lines[1]]


# -- 2. kills during saves ----------------------------------------------------------------------


def version_tensors(v: int) -> dict[str, torch.Tensor]:
    """Version ``v`` of a checkpoint: ~1 MB, every tensor tells its version."""
    return {
        "big": torch.full((512, 512), float(v)),
        "ramp": torch.arange(8192, dtype=torch.int64) + v,
        "small": torch.tensor([v], dtype=torch.int64),
    }


FILLER = "".join(json.dumps({"line": i, "dev": {"t1": 0.5}}) + "\n" for i in range(20000))


def version_text(v: int) -> str:
    """Version ``v`` of a ~700 kB text file (like a long metrics.jsonl), first and last lines
    telling its version; cheap to make, so that a victim spends its time writing."""
    return json.dumps({"version": v}) + "\n" + FILLER + json.dumps({"end": v}) + "\n"


def saver_main(target: str, kind: str) -> None:
    """For each start version read from stdin: fork a child that saves versions from it on in a
    tight loop until the test kills it; print the child's pid, then reap it. torch is imported
    once here, so every kill costs a fork, not a Python start."""
    for line in sys.stdin:
        start = int(line)
        pid = os.fork()
        if pid == 0:
            try:
                v = start
                while True:
                    if kind == "checkpoint":
                        save_checkpoint(target, version_tensors(v), {"version": v})
                    else:
                        atomic_write_text(target, version_text(v))
                    v += 1
            finally:  # never back into the loop over stdin
                os._exit(1)
        print(pid, flush=True)
        os.waitpid(pid, 0)
        print("reaped", flush=True)


KILLS = 30
SPAN = 1_000_000  # the n-th victim writes versions n * SPAN, n * SPAN + 1, ...


def kill_saves(target: Path, kind: str, peek: Callable[[Path], int], read: Any) -> int:
    """Kill ``KILLS`` savers, each at a random moment after its own first complete save; after
    each kill ``read(target)`` must give a whole version written by that victim (a kill never
    takes the latest file back to an earlier victim's). Returns how many kills left a save
    half done (a ``.tmp`` behind)."""
    seed, rng = kill_rng()
    saver = subprocess.Popen(
        [sys.executable, __file__, str(target), kind],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert saver.stdin is not None and saver.stdout is not None
    seen: list[int] = []
    interrupted = 0
    try:
        for n in range(KILLS):
            saver.stdin.write(f"{n * SPAN}\n")
            saver.stdin.flush()
            victim = int(saver.stdout.readline())
            wait_until(lambda n=n: peek(target) >= n * SPAN, saver, f"victim {n}'s first save")
            time.sleep(rng.uniform(0.0, 0.03))
            os.kill(victim, signal.SIGKILL)
            assert saver.stdout.readline().strip() == "reaped"
            interrupted += target.with_name(target.name + ".tmp").exists()
            v = read(target)
            assert v // SPAN == n and (not seen or v > seen[-1]), (seen[-1:], v, n, seed)
            seen.append(v)
    finally:
        saver.stdin.close()
        if saver.wait(timeout=60) != 0:
            saver.kill()
    print(f"{KILLS} kills, {interrupted} mid-save, versions {seen}")
    return interrupted


def peek_checkpoint(target: Path) -> int:
    """The version saved so far, -1 if none (read while the victim saves: no checks)."""
    for folder in (target, target.with_name(target.name + ".old")):
        try:
            return int(json.loads((folder / "meta.json").read_text())["version"])
        except (OSError, ValueError, KeyError):
            continue
    return -1


def read_checkpoint_version(target: Path) -> int:
    found = find_checkpoint(target)
    assert found is not None
    tensors, meta = load_checkpoint(target)
    v = int(meta["version"])
    expected = version_tensors(v)
    assert tensors.keys() == expected.keys()
    for key, value in expected.items():
        assert torch.equal(tensors[key], value), (key, v)  # never a mix of two versions
    return v


def peek_text(target: Path) -> int:
    try:
        with open(target, encoding="utf-8") as f:
            return int(json.loads(f.readline())["version"])
    except (OSError, ValueError, KeyError):
        return -1


def read_text_version(target: Path) -> int:
    text = target.read_text(encoding="utf-8")
    v = int(json.loads(text[: text.index("\n")])["version"])
    assert text == version_text(v), f"truncated or mixed text file (version {v})"
    return v


@POSIX
def test_kills_during_checkpoint_saves_leave_a_whole_latest_checkpoint(tmp_path):
    target = tmp_path / "checkpoint" / "last"
    interrupted = kill_saves(target, "checkpoint", peek_checkpoint, read_checkpoint_version)
    assert interrupted >= 5  # the kills did land inside saves


@POSIX
def test_kills_during_atomic_text_writes_never_truncate(tmp_path):
    """results.json, metrics.jsonl, config.toml and forecast.md go through atomic_write_text."""
    interrupted = kill_saves(tmp_path / "metrics.jsonl", "text", peek_text, read_text_version)
    assert interrupted >= 5


@pytest.mark.parametrize("beside_others", [False, True])
@pytest.mark.parametrize("error", [ValueError("bad"), KeyboardInterrupt()], ids=["error", "ctrl-c"])
def test_a_write_cut_by_an_error_or_ctrl_c_leaves_the_file_as_it_was_and_no_temporary_file(
    tmp_path, beside_others, error
):
    from mtlshare.files import write_atomically

    target = tmp_path / "results.json"
    target.write_text("before")

    def fill(tmp: Path) -> None:
        tmp.write_text("half")
        raise error

    with pytest.raises(type(error)):
        write_atomically(target, fill, beside_others=beside_others)
    assert [p.name for p in tmp_path.iterdir()] == ["results.json"]
    assert target.read_text() == "before"


def test_a_write_beside_the_users_files_leaves_their_name_tmp_alone(tmp_path):
    """In a folder of the user's (``predict --out``, ``curves --out``) ``NAME.tmp`` may be a file
    of theirs: the temporary file gets a name no file has."""
    from mtlshare.files import write_atomically

    theirs = tmp_path / "preds.csv.tmp"
    theirs.write_text("mine")
    write_atomically(tmp_path / "preds.csv", lambda tmp: tmp.write_text("x"), beside_others=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["preds.csv", "preds.csv.tmp"]
    assert theirs.read_text() == "mine" and (tmp_path / "preds.csv").read_text() == "x"


class Killed(BaseException):
    """Stands for SIGKILL at one exact point of a save."""


@pytest.mark.parametrize(("stage", "left"), [("write", 1), ("swap", 1), ("cleanup", 2)])
def test_a_save_cut_at_each_stage_leaves_a_whole_checkpoint(tmp_path, monkeypatch, stage, left):
    """The instants random kills rarely hit, one by one: while the new files are written, between
    the two renames (only ``last.old`` is whole), and while the old copy is deleted."""
    from mtlshare.training import checkpoint

    target = tmp_path / "last"
    save_checkpoint(target, version_tensors(1), {"version": 1})
    real_replace, real_rmtree = os.replace, shutil.rmtree

    def save_file(*args: Any, **kwargs: Any) -> None:
        raise Killed

    def replace(src: Any, dst: Any) -> None:
        if Path(src).name == "last.tmp":
            raise Killed
        real_replace(src, dst)

    def rmtree(path: Any, **kwargs: Any) -> None:
        if Path(path).name == "last.old" and Path(path).exists():
            raise Killed
        real_rmtree(path, **kwargs)

    cut = {"write": (checkpoint, "save_file", save_file), "swap": (os, "replace", replace)}
    monkeypatch.setattr(*cut.get(stage, (checkpoint.shutil, "rmtree", rmtree)))
    with pytest.raises(Killed):
        save_checkpoint(target, version_tensors(2), {"version": 2})
    monkeypatch.undo()
    assert read_checkpoint_version(target) == left
    save_checkpoint(target, version_tensors(3), {"version": 3})  # the next save tidies up
    assert read_checkpoint_version(target) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


FULL = "Error while serializing: I/O error: No space left on device (os error 28)"


@pytest.mark.parametrize("where", ["tensors", "meta", "folder"])
def test_a_full_disk_during_a_save_is_an_oserror_and_leaves_the_last_checkpoint_alone(
    tmp_path, monkeypatch, where
):
    """safetensors reports a failed write as its own ``SafetensorError``, which the command
    line printed as a traceback (exit 1) and which left ``last.tmp`` behind: it is an
    ``OSError`` with its errno and the file, and the half-made checkpoint goes."""
    from safetensors import SafetensorError

    from mtlshare.training import checkpoint

    target = tmp_path / "last"
    save_checkpoint(target, version_tensors(1), {"version": 1})
    before = tree_digest(tmp_path)

    def save_file(*args: Any, **kwargs: Any) -> None:
        raise SafetensorError(FULL)

    def write_text(*args: Any, **kwargs: Any) -> None:
        raise OSError(28, os.strerror(28), str(tmp_path / "last.tmp" / "meta.json"))

    real_fsync = checkpoint.fsync_path

    def fsync_path(path: Path) -> None:  # the folder's flush, last: fsync's ENOSPC (NFS)
        if path.is_dir():
            raise OSError(28, os.strerror(28), str(path))
        real_fsync(path)

    if where == "tensors":
        monkeypatch.setattr(checkpoint, "save_file", save_file)
    elif where == "meta":
        monkeypatch.setattr(checkpoint, "atomic_write_text", write_text)
    else:
        monkeypatch.setattr(checkpoint, "fsync_path", fsync_path)
    with pytest.raises(OSError) as caught:
        save_checkpoint(target, version_tensors(2), {"version": 2})
    assert caught.value.errno == 28
    name = {"tensors": "tensors.safetensors", "meta": "meta.json", "folder": ""}[where]
    assert caught.value.filename == str(tmp_path / "last.tmp" / name)
    assert tree_digest(tmp_path) == before  # nothing half-written, nothing left over
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last"]


def test_a_safetensors_failure_without_an_os_error_names_the_file():
    from safetensors import SafetensorError

    from mtlshare.training.checkpoint import write_error

    error = write_error(SafetensorError("Error while serializing: bad dtype"), Path("x/t.st"))
    assert error.errno is None and str(error) == "x/t.st: cannot be written: " + (
        "Error while serializing: bad dtype"
    )
    assert write_error(SafetensorError(FULL), Path("x/t.st")).errno == 28


CPU_OUT_OF_MEMORY = (
    "[enforce fail at alloc_cpu.cpp:127] err == 0. DefaultCPUAllocator: can't allocate memory: "
    "you tried to allocate 13093200 bytes. Error code 12 (Cannot allocate memory)"
)


def _fault(kind: str) -> Exception:
    from safetensors import SafetensorError

    return SafetensorError(FULL) if kind == "full disk" else RuntimeError(CPU_OUT_OF_MEMORY)


SAID = {
    "full disk": "[Errno 28] No space left on device: '{file}'; the last checkpoint is whole: "
    "free some space and resume with --resume",
    "out of memory": f"out of memory: {CPU_OUT_OF_MEMORY}; the last checkpoint is whole: "
    "resume with --resume where more memory is free",
}


@pytest.mark.parametrize("kind", SAID)
def test_a_disk_or_memory_running_out_mid_run_is_one_line_then_resume_is_an_uninterrupted_run(
    tmp_path, monkeypatch, capsys, kind
):
    """The disk fills (safetensors' ``SafetensorError``), or torch's allocator finds no memory
    (``ulimit -v``: it was found while scoring the test split), at the third checkpoint save:
    one line saying so and what to do, exit 2, not safetensors' or torch's traceback (exit 1);
    no half-made checkpoint; resumed once there is room, the run ends as one that never
    stopped."""
    from mtlshare.training import checkpoint

    args = [DEMO, "train.epochs=3", *SMALL]
    assert main(["run", *args, "--out", str(tmp_path / "whole")]) == 0
    real, saves = checkpoint.save_file, []

    def save_file(*a: Any, **kw: Any) -> None:
        saves.append(a[1])
        if len(saves) == 3:
            raise _fault(kind)
        real(*a, **kw)

    monkeypatch.setattr(checkpoint, "save_file", save_file)
    out = tmp_path / "cut"
    line = refused(capsys, "run", *args, "--out", str(out))
    # the file named is the tensors' (safetensors writes a temporary file beside it)
    assert line == "mtlshare: error: " + SAID[kind].format(file=saves[-1].removesuffix(".tmp"))
    assert not list(out.rglob("*.tmp")) and not (out / "results.json").exists()
    monkeypatch.undo()
    assert main(["run", *args, "--out", str(out), "--resume"]) == 0
    assert untimed(json.loads((out / "results.json").read_text())) == untimed(
        json.loads((tmp_path / "whole" / "results.json").read_text())
    )
    for name in ("last", "best"):
        assert_same_checkpoint(
            out / "checkpoint" / name, tmp_path / "whole" / "checkpoint" / name, name
        )


def test_another_runtime_error_during_a_save_stays_a_traceback(tmp_path, monkeypatch):
    """Only the allocator's message is told as out of memory: another is a bug."""
    from mtlshare.training import checkpoint

    def a_bug(*a: Any, **kw: Any) -> None:
        raise RuntimeError("expected a Tensor of dtype Float")

    monkeypatch.setattr(checkpoint, "save_file", a_bug)
    with pytest.raises(RuntimeError, match="expected a Tensor"):
        main(["run", DEMO, "train.epochs=3", *SMALL, "--out", str(tmp_path / "bug")])


def test_out_of_memory_is_told_from_other_runtime_errors():
    from mtlshare import cli, console

    assert console.out_of_memory(RuntimeError(CPU_OUT_OF_MEMORY)) == CPU_OUT_OF_MEMORY
    cuda = "CUDA out of memory. Tried to allocate 20.00 MiB (GPU 0; 79.15 GiB total capacity)"
    assert console.out_of_memory(RuntimeError(cuda)) == cuda
    assert console.out_of_memory(MemoryError()) == "MemoryError"
    assert console.out_of_memory(RuntimeError("mat1 and mat2 shapes cannot be multiplied")) == ""
    predict = cli._arguments(["predict", "r", "x", "--out", "o"])
    assert console.when_out(predict) == ""  # keeps no checkpoint


def test_a_full_disk_is_told_to_resume_only_by_commands_that_resume(tmp_path, monkeypatch):
    """``predict`` keeps no checkpoint and another error is not a full disk: no hint."""
    from mtlshare import cli, console

    monkeypatch.chdir(tmp_path)
    (tmp_path / "o" / "checkpoint" / "last").mkdir(parents=True)  # a checkpoint saved in o
    (tmp_path / "o" / "checkpoint" / "last" / "meta.json").write_text("{}")
    full = OSError(28, os.strerror(28), "p")
    predict = cli._arguments(["predict", "r", "x", "--out", "o"])
    assert console.when_full(full, predict) == ""
    assert console.when_full(full, cli._arguments(["run", DEMO, "--out", "o"])).endswith(
        "resume with --resume"
    )
    assert (
        console.when_full(OSError(2, "gone", "p"), cli._arguments(["run", DEMO, "--out", "o"]))
        == ""
    )
    # a quota filled (EDQUOT, a cluster's home folder) as a disk does; add-task resumes too
    quota = OSError(errno.EDQUOT, os.strerror(errno.EDQUOT), "p")
    assert console.when_full(quota, cli._arguments(["compare", DEMO, "--out", "o"])).endswith(
        "resume with --resume"
    )
    add_task = cli._arguments(["add-task", "r", DEMO, "--out", "o"])
    assert console.when_full(full, add_task).endswith("resume with --resume")
    assert console.interrupted(add_task) == INTERRUPTED
    # before the first checkpoint none is said to be whole; --resume where the folder was made
    # (a plain rerun refuses its config.toml), a plain rerun where it was not
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / "config.toml").write_text("")
    made, never = (cli._arguments(["run", DEMO, "--out", o]) for o in ("made", "never"))
    assert console.when_full(full, made) == (
        "; no checkpoint had been saved yet: free some space and run it again with --resume"
    )
    assert console.when_full(full, never).endswith("free some space and run it again")
    assert console.interrupted(made) == (
        "mtlshare: interrupted before the first checkpoint was saved; run it again with --resume"
    )


def test_python_s_memory_error_is_one_line_as_torch_s_is(tmp_path, monkeypatch, capsys):
    """Python's own ``MemoryError`` (a list or array too large for ``ulimit -v``) is told as
    torch's allocator's ``RuntimeError`` is: one line and the resume hint, not a traceback."""
    from mtlshare import cli

    def no_memory(args: Any) -> int:
        raise MemoryError

    monkeypatch.setattr(cli, "_dispatch", no_memory)
    monkeypatch.chdir(tmp_path)
    # before any checkpoint (memory ran out while the data were read): none is said to be whole
    assert refused(capsys, "run", DEMO, "--out", "o") == (
        "mtlshare: error: out of memory: MemoryError; no checkpoint had been saved yet (while "
        "the data were read or the first epoch trained): run it again where more memory is "
        "free, or with less data (docs/performance.md: the memory a corpus takes)"
    )
    (tmp_path / "o" / "checkpoint" / "last").mkdir(parents=True)
    (tmp_path / "o" / "checkpoint" / "last" / "meta.json").write_text("{}")
    assert refused(capsys, "run", DEMO, "--out", "o") == (
        "mtlshare: error: out of memory: MemoryError; the last checkpoint is whole: "
        "resume with --resume where more memory is free"
    )


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="reads /proc/self/fd")
def test_checkpoint_files_reach_the_disk_before_the_rename(tmp_path, monkeypatch):
    """A kill cannot lose written data, a power cut can: every file of the new checkpoint is
    fsynced, and so is its folder, before it replaces the old one."""
    tmp_path = tmp_path.resolve()
    synced: list[str] = []
    real = os.fsync

    def spy(fd: int) -> None:
        synced.append(os.readlink(f"/proc/self/fd/{fd}"))
        real(fd)

    monkeypatch.setattr(os, "fsync", spy)
    target = tmp_path / "last"
    save_checkpoint(target, version_tensors(1), {"version": 1})
    tmp = str(target.with_name("last.tmp"))
    assert {f"{tmp}/tensors.safetensors.tmp", f"{tmp}/meta.json.tmp", tmp} <= set(synced)
    assert synced.index(tmp) < synced.index(str(tmp_path))  # files, folder, then the parent


# -- 3. no unpickling ---------------------------------------------------------------------------


class Trap:
    """Unpickling this creates the file ``path``: proof that something unpickled it."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self) -> tuple[Any, tuple[str, str]]:
        return (open, (self.path, "w"))


def plant(dest: Path, kind: str, marker: Path) -> Path:
    """Put at ``dest``, where a checkpoint is expected, a pickle that would create ``marker``."""
    raw = pickle.dumps({"model.weight": Trap(marker)})
    buffer = io.BytesIO()
    torch.save({"model.weight": Trap(marker)}, buffer)  # what torch.load would unpickle
    dest.parent.mkdir(parents=True, exist_ok=True)
    if kind == "torch_save":
        dest.write_bytes(buffer.getvalue())
    elif kind == "pickle_file":
        dest.write_bytes(raw)
    elif kind == "folder_with_pkl":  # a checkpoint folder holding only a pickle
        dest.mkdir()
        (dest / "something.pkl").write_bytes(raw)
    else:  # a pickle under the safetensors name, beside a meta.json
        dest.mkdir()
        disguised = {"disguised_pickle": raw, "disguised_torch_save": buffer.getvalue()}[kind]
        (dest / "tensors.safetensors").write_bytes(disguised)
        (dest / "meta.json").write_text("{}")
    return dest


FOLDERS = ("pickle_file", "folder_with_pkl", "disguised_pickle", "disguised_torch_save")


def test_the_trap_is_live(tmp_path):
    """The control: loading these pickles the ordinary way does create the marker."""
    marker = tmp_path / "control"
    pickle.loads(plant(tmp_path / "m.pkl", "pickle_file", marker).read_bytes())
    assert marker.exists()
    marker.unlink()
    torch.load(plant(tmp_path / "m.pt", "torch_save", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize(
    ("name", "kind"),
    [("model.pt", "torch_save"), ("model.pkl", "pickle_file")] + [("last", k) for k in FOLDERS],
)
def test_load_checkpoint_refuses_a_planted_pickle(tmp_path, name, kind):
    marker = tmp_path / "MARKER"
    path = plant(tmp_path / name, kind, marker)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    assert not marker.exists()


def test_a_read_error_while_checking_the_tensors_digest_is_a_checkpoint_error(
    tmp_path, monkeypatch
):
    """The tensors read (they are mapped), then the disk fails as their SHA-256 is computed:
    a ``CheckpointError`` naming the file, as for any checkpoint that cannot be read."""
    save_checkpoint(tmp_path / "ckpt", {"w": torch.ones(3)}, {})

    def failing(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(hashlib, "file_digest", failing)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path / "ckpt")
    said = str(info.value)
    assert said.startswith(f"{tmp_path / 'ckpt' / 'tensors.safetensors'}: unreadable: ")
    assert "Input/output error" in said


def test_commands_refuse_planted_pickles_with_one_line(tmp_path):
    """``mtlshare masks RUN`` (reads RUN/checkpoint/best) and ``mtlshare run --resume`` (reads
    OUT/checkpoint/last), as real processes, run in parallel; the other planted forms are
    refused by the same ``load_checkpoint`` (above)."""
    from mtlshare.config import load_config

    marker = tmp_path / "MARKER"
    commands = {}
    for kind in ("pickle_file", "folder_with_pkl", "disguised_torch_save"):
        plant(tmp_path / f"masks-{kind}" / "checkpoint" / "best", kind, marker)
        commands[f"masks {kind}"] = mtlshare("masks", str(tmp_path / f"masks-{kind}"))
    overrides = ["train.epochs=1", "train.patience=0", "data.n_dev=50", "data.n_test=50"]
    resumed = {}
    for kind in ("folder_with_pkl", "disguised_torch_save"):
        out = tmp_path / f"resume-{kind}"
        plant(out / "checkpoint" / "last", kind, marker)
        atomic_write_text(out / "config.toml", load_config(DEMO, overrides).to_toml())
        resumed[out] = tree_digest(out)
        commands[f"resume {kind}"] = mtlshare(
            "run", DEMO, *overrides, "--out", str(out), "--resume", "--quiet"
        )
    procs = {
        name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for name, cmd in commands.items()
    }
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=300)
        line = error_line(subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr))
        assert "checkpoint" in line, (name, line)
        assert not marker.exists(), name
    for out, digest in resumed.items():  # refused, not trained over
        assert tree_digest(out) == digest, out


# the calls that unpickle; torch.load only with weights_only=True
UNPICKLERS = {
    ("pickle", "load"),
    ("pickle", "loads"),
    ("pickle", "Unpickler"),
    ("dill", "load"),
    ("dill", "loads"),
    ("cloudpickle", "load"),
    ("cloudpickle", "loads"),
    ("joblib", "load"),
    ("marshal", "load"),
    ("marshal", "loads"),
    ("shelve", "open"),
}


def test_source_never_unpickles():
    """A guard on ``src/``: no pickle-family load, ``torch.load`` only with
    ``weights_only=True``, ``numpy.load`` never with ``allow_pickle=True``."""
    found = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            owner = node.func.value
            name = owner.id if isinstance(owner, ast.Name) else ""
            call = (name, node.func.attr)
            kwargs = {k.arg: k.value for k in node.keywords}
            where = f"{path.relative_to(ROOT)}:{node.lineno}"
            if call in UNPICKLERS:
                found.append(f"{where}: {name}.{node.func.attr}")
            weights_only = kwargs.get("weights_only")
            if call == ("torch", "load") and not (
                isinstance(weights_only, ast.Constant) and weights_only.value is True
            ):
                found.append(f"{where}: torch.load without weights_only=True")
            allow = kwargs.get("allow_pickle")
            if call in {("np", "load"), ("numpy", "load")} and not (
                allow is None or (isinstance(allow, ast.Constant) and allow.value is False)
            ):
                found.append(f"{where}: numpy.load with allow_pickle")
    assert not found, found


# -- 5. numerical faults ------------------------------------------------------------------------

# SGD at lr 0.5 on a tanh network diverges deterministically a few epochs in
DIVERGING = [
    DEMO,
    "train.epochs=10",
    "train.optimizer=sgd",
    "train.momentum=0",
    "train.lr=0.5",
    "trunk.activation=tanh",
    *SMALL,
]
FAULT = re.compile(r"loss is (-?inf|nan) at step (\d+) on task '(t\d)'")


def test_a_non_finite_loss_stops_the_run_and_keeps_the_last_good_checkpoint(tmp_path, capsys):
    bad, good = tmp_path / "bad", tmp_path / "good"
    line = refused(capsys, "run", *DIVERGING, "--out", str(bad))
    fault = FAULT.search(line)
    assert fault is not None, line
    step = int(fault.group(2))
    _, meta = load_checkpoint(bad / "checkpoint" / "last")
    epoch, per_epoch = meta["epoch"], meta["global_step"] // meta["epoch"]
    assert epoch >= 1 and step // per_epoch == epoch, (step, meta["global_step"])  # next epoch
    assert not (bad / "results.json").exists()
    before = tree_digest(bad)

    # resuming replays the same steps to the same fault and writes nothing
    assert refused(capsys, "run", *DIVERGING, "--out", str(bad), "--resume") == line
    assert tree_digest(bad) == before

    # the kept checkpoint is the one a run stopping just before the fault ends with
    assert main(["run", *DIVERGING, f"train.epochs={epoch}", "--out", str(good)]) == 0
    for name in ("last", "best"):
        assert_same_checkpoint(bad / "checkpoint" / name, good / "checkpoint" / name, name)
    assert (bad / "checkpoint" / "last" / "tensors.safetensors").read_bytes() == (
        good / "checkpoint" / "last" / "tensors.safetensors"
    ).read_bytes()


# -- bad daily_csv input: one line, exit 2, nothing written -------------------------------------

DAILY = """\
mechanism = "hard"

[data]
source = "daily_csv"
path = "{path}"
holiday_column = "holiday"
exogenous = {exogenous}
origin = "2024-02-01"
horizon = 7
dev_days = 7

[trunk]
hidden = [8]
"""


def daily_rows(days: int = 40) -> list[str]:
    """Two series a and b, 2024-01-01 to 2024-02-09; line 2 + 2 d is series a on day d."""
    rows = ["date,series,value,holiday,temp"]
    for d in range(days):
        day = f"2024-{1 + d // 31:02d}-{1 + d % 31:02d}"
        rows += [f"{day},a,{d % 7 + 1},0,0.{d}", f"{day},b,{d % 5 + 2},0,0.{d}"]
    return rows


# (case, how the good file is changed, what the one error line must say)
DAILY_CASES = [
    ("missing file", None, r"absent\.csv"),
    ("duplicate date", lambda r: [*r, "2024-01-03,a,4,0,0.5"], r"series\.csv:82: .*line 6"),
    ("NaN feature", lambda r: [*r[:9], "2024-01-05,a,1,NaN,0.4", *r[10:]], r"\.csv:10: "),
    ("NaN exogenous", lambda r: [*r[:9], "2024-01-05,a,1,0,nan", *r[10:]], r"\.csv:10: "),
    ("day missing", lambda r: [*r[:9], *r[11:]], r"series\.csv: .*'temp'.*2024-01-05"),
    ("inf value", lambda r: [*r[:9], "2024-01-05,a,inf,0,0.4", *r[10:]], r"\.csv:10: "),
    ("ragged row", lambda r: [*r[:9], "2024-01-05,a,1,0", *r[10:]], r"series\.csv:10: "),
    ("empty file", lambda r: [], r"series\.csv"),
]


@pytest.mark.parametrize(
    ("case", "edit", "expected"), DAILY_CASES, ids=[c[0].replace(" ", "-") for c in DAILY_CASES]
)
def test_bad_daily_csv_is_one_line_and_leaves_no_output(tmp_path, capsys, case, edit, expected):
    csv = tmp_path / "series.csv"
    if edit is not None:
        csv.write_text("\n".join(edit(daily_rows())) + "\n", encoding="utf-8")
    config = tmp_path / "daily.toml"
    path = "series.csv" if edit else "absent.csv"
    config.write_text(DAILY.format(path=path, exogenous='["temp"]'))
    out = tmp_path / "out"
    assert main(["run", str(config), "--out", str(out), "--quiet"]) == 2, case
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mtlshare: error: "), (case, err)
    assert re.search(expected, err[0]), (case, err[0])
    assert not out.exists(), case


def test_non_utf8_daily_csv_names_the_line(tmp_path, capsys):
    csv = tmp_path / "series.csv"
    rows = "\n".join(daily_rows()).encode() + b"\n2024-02-10,caf\xe9,1,0,0.5\n"
    csv.write_bytes(rows)
    config = tmp_path / "daily.toml"
    config.write_text(DAILY.format(path="series.csv", exogenous="[]"))
    assert main(["run", str(config), "--out", str(tmp_path / "out"), "--quiet"]) == 2
    (line,) = capsys.readouterr().err.strip().splitlines()
    assert re.search(r"series\.csv:82: .*UTF-8", line), line
    assert not (tmp_path / "out").exists()


if __name__ == "__main__":  # the saver process of test_kills_during_*
    saver_main(sys.argv[1], sys.argv[2])


# -- 1b. a comparison killed mid-way, then --resume ------------------------------------------


@POSIX
def test_a_killed_comparison_resumes_to_the_same_table(tmp_path, capsys):
    args = [
        DEMO,
        "train.epochs=6",
        "trunk.dropout=0.2",
        "sparse.round_epochs=2",
        "sparse.warmup_epochs=1",
        *SMALL,
        "train.threads=1",  # the two comparisons side by side, a core each
        "--mechanisms",
        "single,hard,sparse,single_subnet",
    ]
    full, cut = tmp_path / "full", tmp_path / "cut"
    uncut = subprocess.Popen(
        mtlshare("compare", *args, "--out", str(full), "--quiet"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    proc = subprocess.Popen(
        mtlshare("compare", *args, "--out", str(cut), "--quiet"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    # killed inside the sparse run, after the single and hard runs have finished
    wait_until(lambda: last_epoch(cut / "sparse") >= 2, proc, "a sparse checkpoint")
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _, err = uncut.communicate(timeout=300)
    assert uncut.returncode == 0, err[-2000:]
    assert (cut / "hard" / "results.json").is_file()
    assert not (cut / "comparison.json").exists()
    hard_before = (cut / "hard" / "results.json").stat().st_mtime_ns

    # resumed in this process: train.threads=1 gives its runs the uncut ones' single thread
    assert main(["compare", *args, "--out", str(cut), "--quiet", "--resume"]) == 0
    # the finished hard run was read back, not trained again
    assert (cut / "hard" / "results.json").stat().st_mtime_ns == hard_before
    a, b = (json.loads((d / "comparison.json").read_text()) for d in (full, cut))
    assert untimed(a) == untimed(b)
    assert_same_checkpoint(
        full / "sparse" / "checkpoint" / "last", cut / "sparse" / "checkpoint" / "last"
    )

    # a changed config is refused rather than mixed into the table
    changed = refused(capsys, "compare", *args, "train.lr=0.5", "--out", str(cut), "--resume")
    assert "the config differs" in changed


def test_a_dev_split_without_any_label_stops_training_with_a_data_error(tmp_path):
    from mtlshare.app.build import build_problem
    from mtlshare.app.run import run
    from mtlshare.config import load_config
    from mtlshare.data.datasets import Split
    from mtlshare.errors import DataError

    cfg = load_config(DEMO, ["train.epochs=2", "data.n_dev=10", "data.n_test=10"])
    problem = build_problem(cfg)
    dev = problem.tasks[1].dev
    problem.tasks[1].dev = Split(dev.x, torch.full_like(dev.y, float("nan")))
    with pytest.raises(DataError, match=r"task\(s\) \['t2'\] have no observed label in their dev"):
        run(cfg, tmp_path / "out", problem=problem, progress=False)
    assert not (tmp_path / "out" / "results.json").exists()


def test_an_optimizer_state_of_numbers_beside_tensors_round_trips():
    """A number in an optimizer's state (Adam's ``step`` was an int before torch 1.12; an
    optimizer may keep counters) goes to the JSON half, a tensor to the safetensors half, and
    both come back as they were."""
    from mtlshare.training.checkpoint import optimizer_from_flat, optimizer_to_flat

    avg = torch.tensor([0.5, -1.0])
    state = {
        "state": {0: {"step": 3, "exp_avg": avg}, 1: {"step": 4.0}},
        "param_groups": [{"lr": 0.1, "params": [0, 1]}],
    }
    tensors, plain = optimizer_to_flat(state)
    assert list(tensors) == ["optim.0.exp_avg"] and tensors["optim.0.exp_avg"] is avg
    assert plain == {
        "state": {"0": {"step": 3}, "1": {"step": 4.0}},
        "param_groups": [{"lr": 0.1, "params": [0, 1]}],
    }
    back = optimizer_from_flat(tensors, json.loads(json.dumps(plain)))
    assert back == {
        "state": {0: {"step": 3, "exp_avg": avg}, 1: {"step": 4.0}},
        "param_groups": [{"lr": 0.1, "params": [0, 1]}],
    }


def test_a_checkpoints_tensors_have_the_mode_of_its_other_files(tmp_path):
    """safetensors writes its file 0600: a checkpoint's tensors were the one file of a run that
    a user sharing the folder (mode 0644 everywhere else) could not read, so could not
    ``predict`` or ``evaluate`` from. They are 0666 less the umask, as ``meta.json``."""
    old = os.umask(0o022)
    try:
        save_checkpoint(tmp_path / "best", {"w": torch.ones(2)}, {"epoch": 1})
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "best").iterdir()}
    assert modes == {TENSORS: 0o644, "meta.json": 0o644}
    tensors, meta = load_checkpoint(tmp_path / "best")
    assert torch.equal(tensors["w"], torch.ones(2)) and meta["epoch"] == 1
