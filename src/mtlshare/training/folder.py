"""Output folders: the one place that knows what a run leaves on disk and the rules for
starting afresh or resuming.

A run folder (``RunFolder``)::

    config.toml       the fully resolved config (written first)
    metrics.jsonl     one JSON line per evaluation (epoch), every epoch once, resumes included
    results.json      the run's results, written last: its presence means the run finished
    results-N-epochs.json  a finished run's results before ``--resume`` gave it more epochs
    inference.json    what using the model needs beyond its weights (vocabularies, labels...)
    checkpoint/NAME/  tensors.safetensors + meta.json: ``last`` (to resume), ``best`` (the
                      model selected on dev), ``search`` (a structure search's state)

Other outputs (a comparison, a forecasting study, the demo) are ``OutputFolder``s: the same
lock and atomic writes, with their own files.

Rules: a fresh run refuses a folder that holds an earlier run (results or checkpoints), or
another command's output (``another_commands_output``); a resumed one needs the same config
(a training run's may raise ``train.epochs``: a finished run then trains on from
``checkpoint/last``, its earlier results kept beside as ``results-N-epochs.json``); otherwise a
finished run is never trained or rewritten again; one process at a time writes into a folder
(a second gets a one-line error at once, never interleaved files), and a finished run is read
back under the same lock taken shared (``reading``); a fresh run refused before its first
checkpoint leaves nothing behind (``discard_unstarted``). Every file is written through a
temporary file and a rename.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import math
import os
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from torch import Tensor, nn

from mtlshare.errors import CheckpointError, ConfigError, MtlshareError, short_repr
from mtlshare.files import CHECKPOINTS, parse_json, parse_toml
from mtlshare.training import checkpoint as ckpt

CONFIG = "config.toml"
METRICS = "metrics.jsonl"
RESULTS = "results.json"
EARLIER_RESULTS = "results-*-epochs.json"  # a finished run's, set aside when given more epochs
INFERENCE = "inference.json"
MODEL_PREFIX = "model."


# what keeps a saved config text from being the current one, empty when nothing does
Differences = Callable[[str, str], list[str]]


def _text_differences(saved: str, current: str) -> list[str]:
    return [] if saved == current else ["its text differs"]


def _finite(obj: Any) -> Any:
    """NaN and infinities become null: JSON has no numbers for them."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def write_json(path: str | Path, obj: Any) -> None:
    """Strict JSON (non-finite numbers written as null), written atomically."""
    text = json.dumps(_finite(obj), indent=2, sort_keys=False, allow_nan=False)
    ckpt.atomic_write_text(path, text + "\n")


class OutputFolder:
    """A folder this process writes into: created on ``open``, locked until ``close`` (or the
    process ends), every file written atomically. The lock is ``flock`` on the folder itself,
    so it leaves no file behind and dies with the process."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock: int | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self.path)!r})"

    def file(self, name: str) -> Path:
        return self.path / name

    def open(self) -> None:
        """Create the folder and take its lock; a folder another process holds is an error."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise MtlshareError(f"{self.path}: cannot be used as an output folder ({e})") from None
        self._lock = self._locked(fcntl.LOCK_EX)

    @contextlib.contextmanager
    def reading(self) -> Iterator[None]:
        """Hold the folder's lock shared while reading an existing folder back: a process
        writing there (one given more epochs sets its results aside) is an error at once, and
        none can start writing until the reading is done, so what is read is one run's."""
        fd = self._locked(fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def check_unheld(self) -> None:
        """Refuse at once a folder another process is writing: its lock is tried shared and let
        go (nothing where the folder is not there yet, or this process holds it)."""
        if self._lock is None and self.path.is_dir():
            fd = self._locked(fcntl.LOCK_SH)
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def _locked(self, kind: int) -> int:
        """A descriptor of the folder holding ``flock`` of ``kind``, taken without waiting."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError as e:
            raise MtlshareError(f"{self.path}: cannot be used as an output folder ({e})") from None
        try:
            fcntl.flock(fd, kind | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise MtlshareError(f"{self.path}: cannot be locked ({e})") from None
            readers_only = kind == fcntl.LOCK_EX and _shared_is_free(fd)
            os.close(fd)
            if readers_only:
                raise MtlshareError(
                    f"{self.path}: another mtlshare process is reading the run here back; "
                    "run again when it is done"
                ) from None
            raise MtlshareError(
                f"{self.path}: another mtlshare process is writing here; wait for it to "
                "end or choose another --out"
            ) from None
        return fd

    def close(self) -> None:
        """Release the lock (the process's end releases it too)."""
        if self._lock is not None:
            fcntl.flock(self._lock, fcntl.LOCK_UN)
            os.close(self._lock)
            self._lock = None

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_in_place(self) -> None:
        """Before a write: the folder this process locked must still be at its path. Removed
        or moved while a run wrote it (``rm -rf OUT`` of a live run), the next checkpoint save
        made a new folder there, with checkpoints and results but no ``config.toml``, which no
        command read back and a new run refused, and the run ended as if nothing happened."""
        if not self._in_place():
            raise MtlshareError(
                f"{self.path}: the folder was removed or moved while this command wrote it; "
                "nothing more is written (run it again, or --resume it where it was moved)"
            )

    def _in_place(self) -> bool:
        """Whether the folder this process locked (if any) is still at its path."""
        if self._lock is None:
            return True
        held = os.fstat(self._lock)
        try:
            now = os.stat(self.path)
        except OSError:
            return False
        return (now.st_dev, now.st_ino) == (held.st_dev, held.st_ino)

    def write_text(self, name: str, text: str) -> Path:
        path = self.file(name)
        self._check_in_place()
        ckpt.atomic_write_text(path, text)
        return path

    def write_json(self, name: str, obj: Any) -> Path:
        path = self.file(name)
        self._check_in_place()
        write_json(path, obj)
        return path

    def read_json(self, name: str) -> Any:
        path = self.file(name)
        try:
            return parse_json(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise MtlshareError(f"{path}: unreadable ({type(e).__name__}: {e})") from None


def _shared_is_free(fd: int) -> bool:
    """Whether ``fd``'s folder can be locked shared now (its holders only read), letting go."""
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


class RunFolder(OutputFolder):
    """One training run's folder; see the module docstring for its layout and rules."""

    # what ``start(reopen=True)`` changed of a finished run, for ``undo_reopen``: where its
    # results went, its config text and its checkpoints' ``meta.json`` then
    _reopened: tuple[Path, str | None, list[bytes | None]] | None = None

    # -- reading --------------------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        return self.file(RESULTS).is_file()

    def holds_run(self) -> bool:
        """Whether an earlier run left results or checkpoints here."""
        return self.finished or self.file(CHECKPOINTS).exists()

    def config_text(self) -> str | None:
        """The saved ``config.toml`` (None when there is none); a file edited into bytes that
        are not UTF-8 is a ``ConfigError`` naming it, not a traceback."""
        path = self.file(CONFIG)
        if not path.is_file():
            return None
        try:
            return path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None

    def results(self) -> dict[str, Any]:
        """The finished run's results; an error when they are missing or not a run's."""
        if not self.finished:
            raise MtlshareError(f"{self.file(RESULTS)}: missing: the run has not finished")
        results = self.read_json(RESULTS)
        tasks = results.get("tasks") if isinstance(results, dict) else None
        needed = ("metric", "higher_is_better", "dev", "test")
        if not isinstance(tasks, dict) or not tasks:
            problem = "no tasks"
        else:
            problem = next(
                (
                    f"task {name!r} lacks {', '.join(k for k in needed if k not in entry)}"
                    if isinstance(entry, dict)
                    else f"task {name!r} is {short_repr(entry)}, not an object"
                    for name, entry in tasks.items()
                    if not isinstance(entry, dict) or any(k not in entry for k in needed)
                ),
                "",
            )
        if problem:
            raise MtlshareError(
                f"{self.file(RESULTS)}: not the results of a finished mtlshare run ({problem}); "
                "remove that file and resume, or run again in a new folder"
            )
        assert isinstance(results, dict)
        return results

    def inference(self) -> dict[str, Any]:
        """``inference.json``: what using the model needs beside its weights."""
        path = self.file(INFERENCE)
        if not path.is_file():
            raise MtlshareError(
                f"{path}: missing: the run was trained before mtlshare saved what inference "
                "needs; pass --data-dir (where its config's data paths start) to rebuild it"
            )
        spec = self.read_json(INFERENCE)
        if not isinstance(spec, dict) or spec.get("format") != "mtlshare.inference":
            raise MtlshareError(f"{path}: not an mtlshare inference spec")
        if spec.get("version") != 1:
            raise MtlshareError(
                f"{path}: inference spec version {spec.get('version')!r}; this mtlshare reads "
                "version 1 (a run of another mtlshare version)"
            )
        for key, kind in (
            ("input_dim", int),
            ("input_rank", int),
            ("tasks", list),
            ("codec", dict),
            ("base_dir", (str, type(None))),
        ):
            value = spec.get(key)
            wrong = isinstance(value, bool) or not isinstance(value, kind)
            if isinstance(value, int) and not 0 < value < 2**31:  # a width torch can build
                wrong = True
            if wrong:
                expected = kind.__name__ if isinstance(kind, type) else "a path"
                raise MtlshareError(
                    f"{path}: damaged: {key!r} is {short_repr(value)}, expected {expected} "
                    "(the file is not as the run wrote it)"
                )
        bad = next(
            (i for i, t in enumerate(spec["tasks"]) if not isinstance(t, dict) or "name" not in t),
            None,
        )
        if bad is not None:
            raise MtlshareError(
                f"{path}: damaged: task {bad} is not a task's description (an object with a "
                "name) (the file is not as the run wrote it)"
            )
        return spec

    def checkpoint_dir(self, name: str) -> Path:
        return self.path / CHECKPOINTS / name

    def has_checkpoint(self, name: str) -> bool:
        return ckpt.find_checkpoint(self.checkpoint_dir(name)) is not None

    def load_checkpoint(self, name: str) -> tuple[dict[str, Tensor], dict[str, Any]]:
        return ckpt.load_checkpoint(self.checkpoint_dir(name))

    def model_state(self, name: str = "best") -> dict[str, Tensor]:
        """The model's state in checkpoint ``name`` (the selected model by default)."""
        tensors, _ = self.load_checkpoint(name)
        state = {
            k[len(MODEL_PREFIX) :]: v for k, v in tensors.items() if k.startswith(MODEL_PREFIX)
        }
        if not state:
            raise CheckpointError(f"{self.checkpoint_dir(name)}: holds no model state")
        return state

    def load_model(
        self, model: nn.Module, name: str = "best", described_by: Path | None = None
    ) -> None:
        """Checkpoint ``name``'s model state into ``model``; a state of another network is a
        one-line ``CheckpointError`` (never torch's list of every key), which names the file
        ``described_by`` when ``model`` was built from it (a config edited since training)."""
        state = self.model_state(name)
        try:
            model.load_state_dict(state)
        except CheckpointError as e:  # a damaged part the model reads itself (sparse masks)
            raise CheckpointError(f"{self.checkpoint_dir(name)}: {e}") from None
        except (RuntimeError, KeyError, ValueError) as e:
            built = (
                f"the model {described_by} describes (was it edited since training?)"
                if described_by is not None
                else "this model"
            )
            raise CheckpointError(
                f"{self.checkpoint_dir(name)}: does not fit {built} ({ckpt.error_line(e)[:200]})"
            ) from None

    # -- the fresh/resume rules ------------------------------------------------------------------
    def check(self, config_text: str, resume: bool, differences: Differences | None = None) -> None:
        """Raise unless a run with this config may start (or resume) here; writes nothing. A
        folder another process is writing is refused at once (its lock, tried shared), not
        once the caller has read its data and ``start`` tries to take it.
        ``differences(saved, config_text)`` names what keeps the saved config from being this
        one, empty when it is (default: any change of the text;
        ``mtlshare.config.config_differences`` also accepts a config written before keys with
        defaults were added, and names the settings that differ)."""
        if self.path.exists() and not self.path.is_dir():
            raise MtlshareError(f"{self.path}: is a file, not a folder; choose another --out")
        self.check_unheld()
        if resume:
            saved = self.config_text()
            if saved is None:
                raise MtlshareError(
                    f"--resume: {self.file(CONFIG)} does not exist; nothing to resume"
                )
            differ = (differences or _text_differences)(saved, config_text)
            if differ:
                earlier = sorted(p.name for p in self.path.glob(EARLIER_RESULTS))
                since = (
                    f"; the run was given more epochs after it finished ({', '.join(earlier)} "
                    "holds its results before)"
                    if earlier and any(d.startswith("train.epochs:") for d in differ)
                    else ""  # said only where the cap differs: it explains nothing else
                )
                raise MtlshareError(
                    f"--resume: the config differs from {self.file(CONFIG)} "
                    f"({'; '.join(differ)}); resume with the same config and overrides{since}"
                )
            if not self.finished and self.checkpoint_dir("last").exists():
                self.load_checkpoint("last")  # a refused or broken checkpoint fails here, first
        else:
            self.check_fresh()

    def check_fresh(self) -> None:
        """Raise unless a fresh run may start here: no earlier run, no other command's output."""
        if self.holds_run():
            if self.config_text() is None:  # --resume could not continue it either
                raise MtlshareError(
                    f"{self.path}: holds an earlier run's files but no {CONFIG} to resume it "
                    "by; remove them or choose another --out"
                )
            raise MtlshareError(
                f"{self.path}: holds an earlier run; choose another --out or pass --resume"
            )
        other = another_commands_output(self.path, "run")
        if other is not None:
            raise MtlshareError(f"{self.path}: holds {other}, not a run; choose another --out")

    def start(
        self,
        config_text: str,
        resume: bool,
        differences: Differences | None = None,
        reopen: bool = False,
    ) -> None:
        """Lock the folder, check the rules again (another process may have written since the
        first check) and write the config. With ``reopen``, a finished run trains on (given
        more epochs): its results are first set aside as ``results-N-epochs.json`` (N: its
        config's ``train.epochs``), so that until it finishes again the folder holds an
        unfinished run of the new config, never the old results under it."""
        self.open()
        try:
            self.check(config_text, resume, differences)
        except MtlshareError:
            self.close()
            raise
        if reopen and self.finished:
            aside = self.file(self.earlier_results_name())
            self._reopened = (aside, self.config_text(), self._saved())
            self.file(RESULTS).replace(aside)
        self.write_text(CONFIG, config_text)

    def undo_reopen(self) -> None:
        """Undo ``start(reopen=True)`` for a finished run refused before it saved an epoch (a
        ``checkpoint/last`` that does not fit the model, a non-finite loss at its first step):
        its config and then its results are put back, so it reads back as it did, at its own
        cap. A run that saved a checkpoint since is left to resume, as one cut training on."""
        if self._reopened is None or not self._in_place():
            return
        aside, config, saved = self._reopened
        self._reopened = None
        if config is None or self._saved() != saved or self.finished or not aside.is_file():
            return
        self.write_text(CONFIG, config)  # first: a finished run never pairs with the new config
        aside.replace(self.file(RESULTS))

    def _saved(self) -> list[bytes | None]:
        """``meta.json`` of ``checkpoint/last`` and ``best`` as they are now (a save rewrites
        it); None for one that is not there."""
        found: list[bytes | None] = []
        for name in ("last", "best"):
            try:
                found.append((self.checkpoint_dir(name) / ckpt.META).read_bytes())
            except OSError:
                found.append(None)
        return found

    def discard_unstarted(self, created: bool) -> None:
        """Undo ``start`` of a fresh run refused before its first checkpoint (input that fails
        only once training begins: masks of another network in ``sparse.masks_from``, a model
        whose output has the wrong shape): the files it wrote go, and the folder too when
        ``start`` made it (``created``) and nothing else is in it, so a refusal leaves nothing
        half-written. A run that wrote a checkpoint is kept, to resume; and nothing is undone
        where the folder was removed or moved under the run (what is at its path now, another
        run's files say, is not this run's)."""
        if self.holds_run() or not self._in_place():
            return
        for name in (CONFIG, INFERENCE, METRICS):
            self.file(name).unlink(missing_ok=True)
        if created:
            with contextlib.suppress(OSError):  # not empty: the user's files stay, and it
                self.path.rmdir()

    def earlier_results_name(self) -> str:
        """Where ``start(reopen=True)`` sets a finished run's results aside."""
        try:
            epochs = parse_toml(self.config_text() or "").get("train", {}).get("epochs")
        except tomllib.TOMLDecodeError:
            epochs = None
        return EARLIER_RESULTS.replace("*", str(epochs) if isinstance(epochs, int) else "earlier")

    def had_finished(self) -> bool:
        """Whether the run finished once: now, or before ``--resume`` gave it more epochs."""
        return self.finished or any(self.path.glob(EARLIER_RESULTS))

    # -- writing --------------------------------------------------------------------------------
    def save_checkpoint(self, name: str, tensors: dict[str, Tensor], meta: dict[str, Any]) -> None:
        self._check_in_place()
        ckpt.save_checkpoint(self.checkpoint_dir(name), tensors, meta)

    def write_metrics(self, history: list[dict[str, Any]]) -> None:
        """``metrics.jsonl``: the whole history, one JSON line per evaluation."""
        lines = "".join(json.dumps(r, sort_keys=True) + "\n" for r in history)
        self.write_text(METRICS, lines)

    def write_results(self, results: dict[str, Any]) -> None:
        self.write_json(RESULTS, results)


class ComparisonFolder(OutputFolder):
    """A comparison's folder (``mtlshare compare``): one run folder per row and seed,
    ``ROW/`` with one seed or ``ROW/seed-N/`` with several, and ``TASK/`` below that for the
    rows that train each task alone; ``ROW/results.json`` folds such a row's tasks together;
    ``comparison.json`` and ``comparison.md`` hold the table, ``gates.png`` the gate weights of
    the rows that mix experts through gates."""

    JSON = "comparison.json"
    MARKDOWN = "comparison.md"
    GATES = "gates.png"  # the gate weights of the rows that mix experts, every seed

    def __init__(self, path: str | Path, several_seeds: bool) -> None:
        super().__init__(path)
        self.several_seeds = several_seeds

    def run_path(self, row: str, seed: int, task: str | None = None) -> Path:
        """Where the run of ``row`` (and ``task``) with ``seed`` lives: in this folder's layout,
        unless the other layout already holds that run (its config has this seed). So a
        several-seed comparison resumed in the folder of a one-seed pass (``--seeds 0``) reads
        that pass's ``ROW/`` runs back and trains only the other seeds, and the reverse."""
        mine = self._layout(row, seed, task, self.several_seeds)
        other = self._layout(row, seed, task, not self.several_seeds)
        if RunFolder(mine).config_text() is None and _saved_seed(RunFolder(other)) == seed:
            return other
        return mine

    def _layout(self, row: str, seed: int, task: str | None, several: bool) -> Path:
        where = self.path / row / f"seed-{seed}" if several else self.path / row
        return where / task if task is not None else where

    def write_row_results(self, row: str, results: dict[str, Any]) -> None:
        write_json(self.path / row / RESULTS, results)

    def write_comparison(self, comparison: dict[str, Any], markdown: str) -> None:
        self.write_json(self.JSON, comparison)
        self.write_text(self.MARKDOWN, markdown)


DEMO_PLOT = "demo.png"  # the demo's own file at the top of its folder


def another_commands_output(path: str | Path, wanted: str) -> str | None:
    """What another command left in ``path``, when a command that writes a ``wanted`` folder
    ("run", "comparison" or "demo") would write beside it; None for a new or empty folder, or
    one of ``wanted``'s own. A run holds ``config.toml`` at its top; a comparison has
    ``comparison.json``, or (cut short) runs in its row folders, one or two levels down; the
    demo has ``demo.png`` and its comparisons."""
    path = Path(path)
    if not path.is_dir():
        return None
    if wanted != "run" and (path / CONFIG).exists():
        return f"a run ({CONFIG})"
    if wanted != "comparison":
        if (path / ComparisonFolder.JSON).exists():
            return f"a comparison ({ComparisonFolder.JSON})"
        if (path / DEMO_PLOT).exists():
            return f"the demo's output ({DEMO_PLOT})"
        runs = runs_below(path, 2)
        if runs:
            return f"a comparison's runs ({_first_few(runs)})"
    return None


def runs_below(path: Path, levels: int) -> list[str]:
    """The folders up to ``levels`` below ``path`` that hold a run (results or checkpoints),
    as paths relative to it: a level's in name order, then the next level's."""
    runs: list[str] = []
    level = [path]
    for _ in range(levels):
        level = [c for f in level for c in sorted(f.iterdir()) if c.is_dir()]
        runs += [str(c.relative_to(path)) for c in level if RunFolder(c).holds_run()]
    return runs


def _first_few(names: list[str]) -> str:
    return f"{', '.join(names[:3])}{', ...' if len(names) > 3 else ''}"


def not_a_run(path: str | Path, lacks: str = CONFIG) -> str:
    """Why ``path`` is no run folder, for a one-line error: it is not there, or not a folder,
    or it lacks ``lacks``; with the runs below it (a comparison's ``ROW/``, ``ROW/seed-N/``
    and a single-task row's ``TASK/`` below those; the demo's a level deeper) named, as the
    folder a command reading one run wants."""
    path = Path(path)
    if not path.exists():
        return f"{path}: not an mtlshare run folder: it does not exist"
    if not path.is_dir():
        return f"{path}: not an mtlshare run folder: a file, not a folder"
    why = f"{path}: not an mtlshare run folder (no {lacks})"
    # a run to read holds its config: not a single-task row's folded results.json
    runs = [r for r in runs_below(path, 3) if (path / r / CONFIG).is_file()]
    return f"{why}; the runs below it: {_first_few(runs)}" if runs else why


def _saved_seed(run: RunFolder) -> int | None:
    """The ``seed`` of the run's saved config; None when there is none or it is unreadable."""
    try:
        text = run.config_text()
        seed = parse_toml(text).get("seed") if text is not None else None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError, ConfigError):
        return None
    return seed if isinstance(seed, int) else None
