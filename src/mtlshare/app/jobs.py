"""Independent training runs (mechanism x seed x task) executed one after another, or in worker
processes that divide the machine's cores between them (``mtlshare compare --jobs N``).

One BiLSTM run at batch 10 keeps one core busy but not two, so two runs side by side with one
torch thread each do more work per second than one run with two threads. The trap is
oversubscription: two processes that each start torch's default number of threads slowed each
other about tenfold here. Workers therefore set ``torch.set_num_threads(cores // N)`` before
anything else, and together never use more threads than the machine has cores.

A worker is a fresh process (forked from a fork server, see ``worker_pool``): it rebuilds the
data from the config (cached per data config, so a worker builds it once), trains, and writes
only into its run's folder. A run that fails does not stop the others; runs that depend on it
(``single_subnet`` on ``sparse``) are skipped; the first failure is raised once every other run
has ended, and ``--resume`` then continues from the finished runs and the last checkpoints.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import multiprocessing
import os
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from multiprocessing.context import BaseContext
from pathlib import Path
from typing import Any

import torch
from tqdm import tqdm

from mtlshare.app.build import build_problem, configured_tasks
from mtlshare.app.run import check_folder, reads_back, run, still_finished
from mtlshare.config import Config, from_dict
from mtlshare.errors import MtlshareError
from mtlshare.files import parse_toml
from mtlshare.interrupts import held_interrupts
from mtlshare.training.folder import RunFolder


@dataclass(frozen=True)
class RunJob:
    """One training run of a comparison: its row (``name``), seed, task (single-task rows),
    resolved config (as a TOML-shaped dict), output folder, and the jobs it waits for."""

    name: str
    seed: int
    task: str | None
    config: dict[str, Any]
    folder: Path
    after: tuple[int, ...] = ()

    @property
    def label(self) -> str:
        return f"{self.name} seed {self.seed}" + (f" {self.task}" if self.task else "")


def available_cores() -> int:
    """Cores this process may run on (its CPU affinity, else the machine's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def threads_per_job(jobs: int, cores: int | None = None) -> int:
    """Torch threads for each of ``jobs`` workers: the cores divided between them, at least 1."""
    return max(1, (cores or available_cores()) // jobs)


# what a worker keeps between jobs: the problem built from each data config it has seen
_PROBLEMS: dict[str, Any] = {}
# in a worker: the data configs whose warnings the process that started it has shown already
_SHOWN: set[str] = set()


def check_jobs(jobs: int) -> None:
    """``--jobs`` must name at least one worker process."""
    if jobs < 1:
        raise MtlshareError(f"--jobs: expected a number of worker processes >= 1, got {jobs}")


def _worker_init(
    threads: int, parent: int, showwarning: Callable[..., None] | None, shown: frozenset[str]
) -> None:
    torch.set_num_threads(threads)
    _SHOWN.update(shown)
    # tqdm's default lock holds a named semaphore, which a worker ended by a signal (or by
    # ``_end_with``) leaves behind, and multiprocessing then warns of it at the caller's exit;
    # a worker draws no bars, so a thread lock does
    tqdm.set_lock(threading.RLock())
    if showwarning is not None:  # the caller's way of showing warnings (the CLI's one line)
        warnings.showwarning = showwarning
    torch.set_num_interop_threads(1)
    if os.name == "posix":  # (on Windows os.kill(pid, 0) would end the parent)
        threading.Thread(target=_end_with, args=(parent,), daemon=True).start()


def _end_with(parent: int) -> None:
    """End this worker soon after the process that started the pool is gone (killed: nothing
    else tells a worker, which would otherwise wait for jobs, or train on, for good, holding
    its run folder's lock against the ``--resume`` that follows). A run cut so resumes."""
    while True:
        time.sleep(1.0)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)


def worker_pool(
    n_jobs: int, threads: int, shown: frozenset[str] = frozenset()
) -> ProcessPoolExecutor:
    """``n_jobs`` fresh worker processes, each with ``threads`` torch threads. ``shown``: the
    keys of the data configs whose problems this process has built, so has shown their data
    warnings (a dev tag never seen in training): a worker building one again shows none of them
    (under ``compare --jobs 2`` each was printed three times, by this process and each worker).

    They are forked from a fork server, never from this process (whose torch threads a fork
    would copy in an unknown state). The server is started once per process, imports this
    module (torch, the library) and runs nothing: each worker then starts in milliseconds
    instead of importing torch again (seconds), and later pools reuse the same server. Where
    there is no fork server (Windows), each worker is spawned and imports torch itself."""
    context: BaseContext = multiprocessing.get_context("spawn")
    if "forkserver" in multiprocessing.get_all_start_methods():
        server = multiprocessing.get_context("forkserver")
        server.set_forkserver_preload([__name__])
        context = server
    show: Callable[..., None] | None = warnings.showwarning
    if not _by_name(show):  # a worker can only look a function up by its module and name
        show = None
    return ProcessPoolExecutor(
        n_jobs,
        mp_context=context,
        initializer=_worker_init,
        initargs=(threads, os.getpid(), show, shown),
    )


def cannot_start(error: OSError, setting: str) -> MtlshareError:
    """What a command says when its worker processes cannot start: the pool's locks are
    semaphores in ``/dev/shm`` (read-only, full or absent in some containers and sandboxes),
    and each worker takes a few file descriptors (``ulimit -n``). The bare ``OSError``
    (``[Errno 30] Read-only file system``) named neither, nor ``setting``."""
    one = f"{setting} 1" if setting.startswith("-") else f"{setting}=1"
    return MtlshareError(
        f"{setting}: the worker processes cannot start ({error}): they need a writable "
        f"/dev/shm and a few open files each (ulimit -n); or run one at a time with {one}"
    )


def _by_name(fn: object) -> bool:
    """Whether ``fn`` is found again by its module and qualified name (as a worker process
    receives a function): a module-level function, not a lambda or a closure, nor one of a
    ``__main__`` without a file (``python -c``, a REPL), which a worker cannot import."""
    module = sys.modules.get(getattr(fn, "__module__", None) or "")
    if (
        module is not None
        and module.__name__ == "__main__"
        and not getattr(module, "__file__", None)
    ):
        return False
    found: object = module
    for part in str(getattr(fn, "__qualname__", "<none>")).split("."):
        found = getattr(found, part, None)
    return callable(fn) and found is fn


def _problem_key(config: dict[str, Any], base_dir: str | None) -> str:
    return json.dumps({"data": config["data"], "base": base_dir}, sort_keys=True)


@contextlib.contextmanager
def remembered_problem(
    config: dict[str, Any], base_dir: str | None, problem: Any
) -> Iterator[None]:
    """Let runs in this process reuse ``problem`` (every task of ``config``'s data) inside the
    block; after it, forget the problems remembered or built in it (a row's own data too): the
    caller's process does not keep the data of every comparison it ran (a worker keeps what it
    built till its pool ends)."""
    kept = set(_PROBLEMS)
    _PROBLEMS[_problem_key(config, base_dir)] = problem
    try:
        yield
    finally:
        for key in set(_PROBLEMS) - kept:
            del _PROBLEMS[key]


def cached_problem(cfg: Config, config: dict[str, Any], base_dir: str | None) -> Any:
    """``cfg``'s tasks of the problem built from its data (``config`` is ``cfg`` as a dict),
    built once per data config in this process."""
    key = _problem_key(config, base_dir)
    if key not in _PROBLEMS:
        # data warnings the process that started this worker has shown already are not repeated
        quiet = (
            warnings.catch_warnings(action="ignore") if key in _SHOWN else contextlib.nullcontext()
        )
        with quiet:
            _PROBLEMS[key] = build_problem(cfg.replace(tasks=[]), base_dir)
    problem = _PROBLEMS[key]
    return configured_tasks(cfg, problem)


READ_BACK, CONTINUE, TRAIN = "read back", "continue", "train"


def job_state(job: RunJob, resume: bool) -> str:
    """What running ``job`` will do: read a finished run back (resuming, same config), continue
    an earlier one from its folder (resuming), or train it from the start."""
    folder = RunFolder(job.folder)
    saved = folder.config_text()
    if not resume or saved is None:
        return TRAIN
    if reads_back(folder, from_dict(job.config).to_toml(), resume):
        return READ_BACK
    return CONTINUE


def carried_masks(job: RunJob) -> RunJob:
    """``job`` with the ``sparse.masks_from`` its finished run was trained with, where that
    names the same place within the comparison as the plan's does (a finished run on the
    sparse run of its own comparison, whose folder has since been copied elsewhere, as kept
    runs are: the saved path is the old folder's). So such a run is read back, not refused for
    a path (nor, given more epochs, when cut training on); one that never finished is left as
    planned (continuing it needs the masks where they are now, and its refusal names the path)."""
    planned = job.config.get("sparse", {}).get("masks_from", "")
    folder = RunFolder(job.folder)
    saved_text = folder.config_text()
    if not planned or saved_text is None or not folder.had_finished():
        return job
    saved = str(parse_toml(saved_text).get("sparse", {}).get("masks_from", ""))
    within = Path(os.path.relpath(planned, job.folder)).parts  # ("..", "..", "sparse")
    tail = tuple(part for part in within if part != "..")
    if not saved or saved == planned or Path(saved).parts[-len(tail) :] != tail:
        return job
    config = {**job.config, "sparse": {**job.config["sparse"], "masks_from": saved}}
    return dataclasses.replace(job, config=config)


def check_resumable(jobs: list[RunJob], resume: bool) -> None:
    """Refuse at once, naming the run and the settings, a resumed comparison whose folder holds
    a run made with another config, or a fresh one whose folder holds any earlier run:
    otherwise the runs before it in the plan would train, for hours perhaps, before its
    refusal. A run to be read back must hold readable results."""
    if not resume:  # a fresh comparison in a used folder: refused before any run trains
        for job in jobs:
            RunFolder(job.folder).check_fresh()
        return
    for job in jobs:
        folder = RunFolder(job.folder)
        if folder.config_text() is not None:
            check_folder(folder, from_dict(job.config).to_toml(), True)
        if job_state(job, resume) == READ_BACK:
            folder.results()  # a stub or broken results file: refused now, not after training


def plan_summary(jobs: list[RunJob], resume: bool) -> str:
    """One line saying how many of ``jobs`` are read back, continued and trained, naming the
    ones that train, so a long comparison shows its work before it starts."""
    by_state: dict[str, list[str]] = {READ_BACK: [], CONTINUE: [], TRAIN: []}
    for job in jobs:
        by_state[job_state(job, resume)].append(job.label)
    parts = [f"{len(by_state[READ_BACK])} read back"] if by_state[READ_BACK] else []
    for state, verb in ((CONTINUE, "to continue"), (TRAIN, "to train")):
        if by_state[state]:
            parts.append(f"{len(by_state[state])} {verb} ({', '.join(by_state[state])})")
    return f"compare: {len(jobs)} runs: " + "; ".join(parts)


def run_job(job: RunJob, base_dir: str | None, resume: bool, progress: bool) -> dict[str, Any]:
    """Train (or, resuming, read back or continue) one run; returns its results."""
    state = job_state(job, resume)
    if state == READ_BACK:  # read back, not trained again
        folder = RunFolder(job.folder)
        with folder.reading():
            still_finished(folder, from_dict(job.config).to_toml())
            return folder.results()
    cfg = from_dict(job.config)
    problem = cached_problem(cfg, job.config, base_dir)
    return run(
        cfg,
        job.folder,
        problem=problem,
        base_dir=base_dir,  # recorded in inference.json: where evaluate reads the data again
        progress=progress,
        resume=state == CONTINUE,
    )


def execute(
    jobs: list[RunJob],
    n_jobs: int,
    *,
    base_dir: str | None,
    resume: bool,
    progress: bool,
    on_done: Callable[[RunJob, dict[str, Any]], None] | None = None,
) -> list[dict[str, Any]]:
    """Every job's results, in the order of ``jobs``, whatever order they ran in. One after
    another, with ``progress``, a line names each run as it starts (``compare: 2 of 10 runs
    ended; running: hard seed 1: epoch 0/20``, the lines ``compare --jobs`` writes to a log):
    its epoch and mask search lines do not say which run they are (single seed 1 pos or
    seed 2 pos), so a log of hours said neither which run trained nor how many were left."""
    if n_jobs <= 1:
        out = []
        for i, job in enumerate(jobs):
            if progress and job_state(job, resume) != READ_BACK:
                line = f"compare: {i} of {len(jobs)} runs ended; running: {running_status([job])}"
                print(line, file=sys.stderr, flush=True)
            out.append(run_job(job, base_dir, resume, progress))
            if on_done is not None:
                on_done(job, out[-1])
        return out
    return _in_workers(
        jobs, n_jobs, base_dir=base_dir, resume=resume, progress=progress, on_done=on_done
    )


POLL_SECONDS = 10.0  # how often the bar of ``compare --jobs`` reads the running runs' progress
# what a run of a broken pool says: a worker ended without a word (the OOM killer, a kill)
ABRUPT = "a worker process ended abruptly (killed by a signal, or out of memory?)"
STOP_GRACE_SECONDS = 2.0  # how long an interrupted compare waits for its runs to stop
PLAIN_SECONDS = 60.0  # the least time between two plain status lines (stderr not a terminal)


def running_status(running: list[RunJob]) -> str:
    """Where each running run is, from its folder: ``hard seed 1: epoch 3/20, ~29 min of
    training to the cap`` (epochs in its ``metrics.jsonl``, ``time_left``; a sparse run that
    searches its masks says so before its first epoch).
    The workers train without bars of their own: this is what a long ``compare --jobs`` shows
    meanwhile."""
    parts = []
    for job in running:
        metrics = job.folder / "metrics.jsonl"
        try:
            text = metrics.read_bytes()
        except OSError:  # not written yet
            text = b""
        done = text.count(b"\n")
        epochs = job.config.get("train", {}).get("epochs", "?")
        where = f"epoch {done}/{epochs}" + time_left(text, done, epochs)
        searches = job.config.get("mechanism") == "sparse" and not job.config.get("sparse", {}).get(
            "masks_from"
        )
        if not done and searches:  # its warm-up and pruning rounds come before epoch 1
            where = "mask search"
        parts.append(f"{job.label}: {where}")
    return "; ".join(parts)


def time_left(metrics: bytes, done: int, epochs: object) -> str:
    """``, ~1 h 5 min of training to the cap``: the epochs a run has left, at the mean training
    seconds of the ``done`` it has had (``train_seconds`` of the last line of its
    ``metrics.jsonl``, summed over resumes); under a minute is said so. An estimate, neither
    bound: each epoch's dev scoring and checkpoint save come on top (``train_seconds`` leaves
    them out), and early stopping may end the run sooner. Empty where that cannot be read (no
    epoch yet, no seconds or none that is a positive finite number, the cap reached).
    """
    if done == 0 or not isinstance(epochs, int) or epochs <= done:
        return ""
    try:
        seconds = json.loads(metrics.rstrip(b"\n").rsplit(b"\n", 1)[-1]).get("train_seconds")
    except (ValueError, AttributeError):  # a line that is not a JSON object
        return ""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        return ""
    left = seconds / done * (epochs - done) / 60
    if not 0 < left < math.inf:  # none, negative, or NaN or Infinity (json reads both)
        return ""
    if left < 1:  # rounded up it read "~1 min" with a second left
        return ", under a minute of training to the cap"
    minutes = math.ceil(left)
    hours, minutes = divmod(minutes, 60)
    return f", ~{f'{hours} h {minutes} min' if hours else f'{minutes} min'} of training to the cap"


def stop_workers(pool: ProcessPoolExecutor, running: list[Future[dict[str, Any]]]) -> None:
    """End ``pool``'s workers and shut it down, as the process that started them is being
    interrupted: otherwise its shutdown would wait for every running run to finish (hours),
    when the signal reached it alone (``kill -INT PID``). Runs whose workers were signalled
    with it (Ctrl-C at a terminal) end within ``STOP_GRACE_SECONDS``; the workers still alive
    then are ended (SIGTERM). A run cut so resumes from its last checkpoint: every file is
    written atomically. Further interrupts meanwhile are held back, not let cut this short."""
    with held_interrupts():
        if running:
            wait(running, timeout=STOP_GRACE_SECONDS)
        processes = getattr(pool, "_processes", None) or {}  # CPython's; {} where it has none
        for process in list(processes.values()):
            if process.is_alive():
                process.terminate()
        pool.shutdown(wait=True, cancel_futures=True)


class PlainStatus:
    """``compare --jobs``'s progress as plain lines on stderr, for a log file: ``compare: 3 of
    10 runs ended; running: hard seed 1: epoch 12/60; ...``, written when the runs have moved
    on and ``PLAIN_SECONDS`` have passed since the last line (the first at once), and when the
    last run ends, so a log of hours has a line a minute at most and one of a minute a few."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.last: tuple[int, str] | None = None
        self.at = -math.inf

    def show(self, ended: int, status: str, last: bool = False) -> None:
        """A line if something moved and a minute has passed, or (``last``) the runs ended."""
        now = time.monotonic()
        if (ended, status) == self.last or (now - self.at < PLAIN_SECONDS and not last):
            return
        self.last, self.at = (ended, status), now
        line = f"compare: {ended} of {self.total} runs ended"
        print(f"{line}; running: {status}" if status else line, file=sys.stderr, flush=True)


def _in_workers(
    jobs: list[RunJob],
    n_jobs: int,
    *,
    base_dir: str | None,
    resume: bool,
    progress: bool,
    on_done: Callable[[RunJob, dict[str, Any]], None] | None,
) -> list[dict[str, Any]]:
    """``execute`` in ``n_jobs`` worker processes. Runs to be read back (resuming) are read
    here, not in a worker, and count as ended at once. The workers train without bars; the bar
    here counts the finished runs and says where the running ones are. With stderr not a
    terminal (a log file) and ``progress``, plain lines say it instead (``PlainStatus``)."""
    results: dict[int, dict[str, Any]] = {}
    failed: dict[int, BaseException] = {}
    waiting = list(range(len(jobs)))
    running: dict[Future[dict[str, Any]], int] = {}
    try:
        pool = worker_pool(n_jobs, threads_per_job(n_jobs), frozenset(_PROBLEMS))
    except OSError as e:
        raise cannot_start(e, "--jobs") from None
    bar = tqdm(
        total=len(jobs),
        desc=f"runs ({n_jobs} jobs)",
        unit="run",
        disable=None if progress else True,  # None: off when not a terminal
    )
    plain = PlainStatus(len(jobs)) if progress and bar.disable else None
    try:
        while waiting or running:
            for i in list(waiting):
                deps = jobs[i].after
                if any(d in failed for d in deps):  # a run it needs failed: skip it
                    waiting.remove(i)
                    failed[i] = MtlshareError(f"{jobs[i].label}: skipped, a run it needs failed")
                elif all(d in results for d in deps) and job_state(jobs[i], resume) == READ_BACK:
                    waiting.remove(i)  # a finished run: read here at once, not by a worker
                    try:  # (there it read as running, at its last epoch, till read)
                        results[i] = run_job(jobs[i], base_dir, resume, False)
                    except Exception as unread:  # recorded, as a worker's would be
                        failed[i] = unread
                        tqdm.write(f"mtlshare: {jobs[i].label} failed: {unread}", file=sys.stderr)
                    else:
                        if on_done is not None:
                            on_done(jobs[i], results[i])
                    bar.update(1)
                elif all(d in results for d in deps) and len(running) < n_jobs:
                    waiting.remove(i)
                    try:
                        running[pool.submit(run_job, jobs[i], base_dir, resume, False)] = i
                    except BrokenProcessPool:  # a worker was killed: no run starts any more
                        failed[i] = MtlshareError(f"{jobs[i].label}: not started, {ABRUPT}")
                    except OSError as e:  # its worker process did not start (ulimit -n)
                        raise cannot_start(e, "--jobs") from None
            status = running_status([jobs[i] for i in running.values()])  # the runs started
            bar.set_postfix_str(status)
            if plain is not None:
                plain.show(len(results) + len(failed), status)
            if not running:
                continue
            done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                error = future.exception()
                if isinstance(error, BrokenProcessPool):  # its worker, or another, was killed
                    error = MtlshareError(ABRUPT)
                if error is not None:
                    failed[i] = error
                    tqdm.write(f"mtlshare: {jobs[i].label} failed: {error}", file=sys.stderr)
                else:
                    results[i] = future.result()
                    if on_done is not None:
                        on_done(jobs[i], results[i])
                bar.update(1)
        bar.set_postfix_str("")  # every run ended
        if plain is not None:
            plain.show(len(results) + len(failed), "", last=True)
    except BaseException:  # an interrupt (Ctrl-C, `kill -INT`, SIGTERM): the workers stop too
        stop_workers(pool, list(running))
        raise
    finally:
        bar.close()
        pool.shutdown(wait=True, cancel_futures=True)
    if failed:
        first = min(failed)
        raise MtlshareError(
            f"{len(failed)} of {len(jobs)} runs did not finish (first: {jobs[first].label}: "
            f"{failed[first]}); {len(results)} finished and are kept: rerun with --resume"
        )
    return [results[i] for i in range(len(jobs))]
