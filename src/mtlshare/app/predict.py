"""Using a trained run: ``load_run`` rebuilds its model from ``config.toml``, ``inference.json``
and a safetensors checkpoint (never a pickle); ``mtlshare predict`` writes its predictions for
new inputs in the format of its data source; ``mtlshare evaluate`` scores it again on its own
data, with the numbers of ``results.json``.

Predictions are made in eval mode, without gradients, in batches of ``train.eval_batch_size``
sentences of similar length, each cut to its longest sequence (a sentence's tags do not depend
on its batch: tagging the file a run was tested on and scoring it gives the run's numbers,
``tests/app/test_predict.py``). They are made where the model is (``load_run(device=...)``, the
CPU by default, or wherever the user moves ``run.model``): each batch goes there, and the
predictions come back to the CPU.
"""

from __future__ import annotations

import contextlib
import itertools
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.app.build import build_network, build_problem
from mtlshare.app.run import encoding_differences, test_forecast_scores, usage_spec
from mtlshare.config import CUSTOM, Config, load_trained_config
from mtlshare.data.codecs import Codec, codec_from_spec, tasks_from_spec
from mtlshare.data.daily import ForecastView
from mtlshare.data.datasets import Problem, first_row
from mtlshare.data.tagging_codec import Tagged, TaggingCodec
from mtlshare.data.windows_codec import SeriesInputs
from mtlshare.errors import (
    ConfigError,
    DataError,
    MtlshareError,
    UnseenTagsWarning,
    check_list,
    check_output_file,
    one_of,
)
from mtlshare.sharing.base import SharingModel
from mtlshare.tasks.metrics import IGNORE_INDEX
from mtlshare.tasks.task import Task
from mtlshare.training.checkpoint import atomic_write_text, error_line
from mtlshare.training.distributed import resolve_device
from mtlshare.training.folder import (
    CONFIG,
    INFERENCE,
    ComparisonFolder,
    RunFolder,
    not_a_run,
)
from mtlshare.training.loop import Trainer, eval_rows
from mtlshare.training.objective import LossWeighting

CHECKPOINTS = ("best", "last")


@contextlib.contextmanager
def evaluating(model: nn.Module) -> Iterator[None]:
    """``model`` in eval mode inside the block, and each of its modules in the mode it had
    after: a caller training ``run.model`` on (dropout on) keeps it so after ``predict``."""
    modes = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in modes:
            module.training = training


@dataclass
class LoadedRun:
    """A trained run ready to predict: its config, tasks (by name), model (eval mode), codec
    and folder."""

    folder: RunFolder
    config: Config
    tasks: dict[str, Task]
    model: SharingModel
    codec: Codec
    spec: dict[str, Any]

    @property
    def mechanism(self) -> str:
        return self.config.mechanism

    @property
    def device(self) -> torch.device:
        """Where the model is, so where it predicts (its first parameter's device)."""
        for tensor in itertools.chain(self.model.parameters(), self.model.buffers()):
            return tensor.device
        return torch.device("cpu")

    @torch.no_grad()
    def predict(self, task: str, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        """``task``'s predictions for inputs ``x`` (rows of a batch of any size): values for
        regression, class ids otherwise; positions beyond a sequence's length are -100.
        Made in eval mode, each module's mode put back after. Sparse sharing predicts through
        the task's mask, like training. Sequences are batched
        by length (longest first, ``train.eval_batch_size`` a batch), so that a batch holds
        little padding; each row's predictions do not depend on its batch. Each batch is
        moved to the model's device; the predictions are returned on the CPU."""
        if task not in self.tasks:
            raise MtlshareError(f"no task {task!r}; this run has {list(self.tasks)}")
        self._check_inputs(x, lengths)
        with evaluating(self.model):
            if lengths is None:
                return torch.cat([self._batch(task, b, None) for b in self._chunks(x)])
            lengths = lengths.cpu()  # bookkeeping on the CPU, where the predictions are gathered
            order = torch.argsort(lengths, descending=True, stable=True)
            out = torch.full((len(x), int(lengths.max())), IGNORE_INDEX, dtype=torch.long)
            size = self._rows([task], int(lengths.max()))
            for start in range(0, len(x), size):
                rows = order[start : start + size]
                pred = self._batch(task, x[rows], lengths[rows])
                out[rows, : pred.shape[1]] = pred
            return out

    @torch.no_grad()
    def _predict_tagged(
        self, codec: TaggingCodec, doc: Tagged, tasks: list[str]
    ) -> dict[str, Tensor]:
        """``predict`` of every task for a file's sentences, encoded a batch at a time by
        ``codec`` (the batches ``predict`` makes of the whole file encoded, so the same
        predictions), so that only the predictions are held for the whole file."""
        longest = max((len(s) for s in doc.sentences), default=0)
        out = {
            t: torch.full((len(doc.sentences), longest), IGNORE_INDEX, dtype=torch.long)
            for t in tasks
        }
        batches = codec.encode_batches(doc, self._rows(tasks, longest))
        with evaluating(self.model):
            for rows, x, lengths in batches:
                self._check_inputs(x, lengths)
                for task in tasks:
                    pred = self._batch(task, x, lengths)
                    out[task][rows, : pred.shape[1]] = pred
        return out

    def _check_inputs(self, x: Tensor, lengths: Tensor | None) -> None:
        """One line saying what is wrong with ``x`` (and ``lengths``), before torch would say
        it from deep inside the model: not a tensor, no rows, the wrong rank, width or dtype,
        values that are not finite, negative ids."""
        rank, width = self.spec.get("input_rank"), self.spec.get("input_dim")
        # a codec whose inputs are features of its own count (a table's categories' ids among
        # its numbers) says what is wrong with them; else an input encoder reads integer ids
        own = getattr(self.codec, "input_error", None)
        stem = self.codec.build_stem() is not None
        encoded = stem and own is None
        if not isinstance(x, Tensor):
            raise MtlshareError(f"x: a {type(x).__name__}; predict takes a torch.Tensor")
        if x.dim() != rank or x.numel() == 0:
            raise MtlshareError(
                f"x: shape {tuple(x.shape)}; this run reads {rank}-d inputs with at least one row"
                + (" and one position" if rank is not None and rank > 2 else "")
            )
        if encoded and x.dtype not in (torch.int64, torch.int32):  # what an embedding reads
            raise MtlshareError(f"x: {x.dtype}; this run reads integer ids (codec.encode)")
        dtype = next((p.dtype for p in self.model.parameters()), torch.float32)
        # an encoder of features casts them to the network's dtype; without one they must be it
        if not encoded and (x.dtype != dtype if not stem else not x.dtype.is_floating_point):
            raise MtlshareError(f"x: {x.dtype}; this run reads {dtype} features")
        if own is None and not encoded and x.shape[-1] != width:
            raise MtlshareError(f"x: shape {tuple(x.shape)}; this run reads {width} features")
        if own is not None and (problem := own(x)) is not None:
            raise MtlshareError(f"x: {problem}")
        if not encoded and not bool(torch.isfinite(x).all()):
            raise MtlshareError(f"x: NaN or infinite values in row {first_row(~torch.isfinite(x))}")
        if encoded and int(x.min()) < 0:
            raise MtlshareError(
                f"x: negative ids (min {int(x.min())}); run.codec.encode makes them"
            )
        if lengths is not None and rank == 2 and not encoded:  # else x is cut to lengths.max()
            raise MtlshareError(
                "lengths: this run reads rows of features, not sequences; predict without lengths"
            )
        if lengths is None:
            return
        if not isinstance(lengths, Tensor):
            raise MtlshareError(
                f"lengths: a {type(lengths).__name__}; predict takes a torch.Tensor of integers"
            )
        if lengths.dtype.is_floating_point or lengths.dtype.is_complex:
            raise MtlshareError(f"lengths: {lengths.dtype}; predict takes integer lengths")
        most = x.shape[1] if x.dim() > 1 else 1
        expected = f"lengths: expected one length in 1..{most} per row of x ({len(x)}), got"
        if lengths.shape != (len(x),):
            raise MtlshareError(f"{expected} shape {tuple(lengths.shape)}")
        if int(lengths.min()) < 1 or (x.dim() > 1 and int(lengths.max()) > most):
            raise MtlshareError(f"{expected} {int(lengths.min())}..{int(lengths.max())}")

    def _chunks(self, x: Tensor) -> list[Tensor]:
        size = self.config.train.eval_batch_size
        return [x[start : start + size] for start in range(0, len(x), size)]

    def _rows(self, tasks: list[str], positions: int) -> int:
        """Sentences a batch: ``train.eval_batch_size``, fewer where the outputs of a task of
        many classes (``next_word``) would be too large, as when training scored dev."""
        size = self.config.train.eval_batch_size
        return min(eval_rows(size, positions, self.tasks[t].out_dim) for t in tasks)

    def _batch(self, task: str, x: Tensor, lengths: Tensor | None) -> Tensor:
        """One batch's predictions, cut to its longest sequence as training did, made on the
        model's device and returned on the CPU."""
        spec, head, device = self.tasks[task], self.model.head(task), self.device
        target = None
        if lengths is not None:
            longest = int(lengths.max())
            x = x[:, :longest]
            seen = torch.arange(longest, device=device)[None, :] < lengths.to(device)[:, None]
            target = torch.where(seen, 0, IGNORE_INDEX)
        try:
            out = self.model(x.to(device), task)
        except IndexError as e:  # an embedding's lookup: only ids can be out of range here
            raise MtlshareError(
                f"x: an id outside the run's vocabularies ({error_line(e)}); run.codec.encode "
                "makes the ids"
            ) from None
        if target is None:
            target = torch.zeros(out.shape[:-1], dtype=torch.long, device=out.device)
        pred = spec.predict(out, target, head if spec.head != "linear" else None)
        if lengths is not None:
            pred = torch.where(target == IGNORE_INDEX, IGNORE_INDEX, pred)
        return pred.cpu()

    def predict_file(
        self, source: str | Path, out: str | Path, tasks: list[str] | None = None, fmt: str = "auto"
    ) -> dict[str, Any]:
        """Read ``source``, predict every task (or ``tasks``), write ``out`` atomically (no
        partial file on an error); returns what was done and how fast: ``tasks``, ``unit``
        (what was counted: ``tokens``, ``rows``, or a forecast's ``values``, one per series
        and day), the count under that name, ``seconds``, ``{unit}_per_second`` and ``out``;
        a forecast also ``forecast days`` (the days forecast, each for every series),
        ``first_day`` and ``last_day``; a tagger's also ``sentences`` and the ``format`` it
        read (``conll``, ``conllu`` or ``text``). A ``daily_windows`` run's file needs only the
        series of ``tasks``."""
        check_list(tasks, "predict_file: tasks")
        chosen = tasks or list(self.tasks)
        unknown = [t for t in chosen if t not in self.tasks]
        if unknown:
            raise MtlshareError(f"--tasks: unknown {unknown}; this run has {list(self.tasks)}")
        twice = list(dict.fromkeys(t for t in chosen if chosen.count(t) > 1))
        if twice:  # a second column of the same name, which readers by name take either of
            raise MtlshareError(f"--tasks: {twice} named more than once")
        check_output_file(out)
        _check_not_overwritten(Path(source), Path(out))
        doc = self.codec.read(Path(source), fmt, chosen)
        started = time.perf_counter()
        if isinstance(doc, Tagged) and isinstance(self.codec, TaggingCodec):
            predictions = self._predict_tagged(self.codec, doc, chosen)
        else:
            x, lengths = self.codec.encode(doc)
            predictions = {t: self.predict(t, x, lengths) for t in chosen}
        seconds = time.perf_counter() - started
        text = self.codec.write(doc, [self.tasks[t] for t in chosen], predictions)
        # the folder is the user's: NAME.tmp may be a file of theirs
        atomic_write_text(out, text, beside_others=True)
        count, unit = self.codec.size(doc, chosen)
        span: dict[str, Any] = {}
        if isinstance(doc, SeriesInputs):
            # the days, not days x series; the first moves earlier when the file's last days
            # have no values, so it is said
            span = {
                "forecast days": len(doc.dates),
                "first_day": str(doc.dates[0]),
                "last_day": str(doc.dates[-1]),
            }
        elif isinstance(doc, Tagged):  # the format found from the file, said: a guess can miss
            span = {"sentences": len(doc.sentences), "format": doc.form}
        return {
            "tasks": chosen,
            "unit": unit,
            unit: count,
            "seconds": seconds,
            f"{unit}_per_second": count / max(seconds, 1e-9),
            "out": str(out),
            **span,
        }


def _check_not_overwritten(source: Path, out: Path) -> None:
    """Refuse an ``--out`` that is the input file (replaced by its predictions) or lies in an
    mtlshare output folder, a run's or a comparison's, at any depth (its ``results.json`` made
    a text of tags: the run no longer reads back)."""
    target = out.resolve()
    if source.is_file() and target == source.resolve():
        raise MtlshareError(f"--out {out}: the input file; its predictions would replace it")
    for folder in target.parents:
        if RunFolder(folder).holds_run() or (folder / ComparisonFolder.JSON).is_file():
            raise MtlshareError(
                f"--out {out}: inside {folder}, an mtlshare output folder whose files are "
                "its own; write the predictions elsewhere"
            )


def load_run(
    run_dir: str | Path,
    checkpoint: str = "best",
    data_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> LoadedRun:
    """The run in ``run_dir`` with the weights of ``checkpoint`` ("best": the model selected on
    dev; "last": the latest epoch), ready to predict on ``device`` ("cpu", the default; "cuda",
    "cuda:1", "auto" for a GPU when torch sees one, or a ``torch.device``), wherever the run
    was trained. Everything is read from the run folder: config, ``inference.json`` and
    safetensors; nothing is unpickled, no data file is read. A run trained before
    ``inference.json`` existed needs ``data_dir`` (where its config's relative data paths
    start): its vocabularies are then rebuilt from its training data."""
    if checkpoint not in CHECKPOINTS:
        raise MtlshareError(f"--checkpoint: {checkpoint!r} is not one of {one_of(CHECKPOINTS)}")
    where = _device(device)
    folder = RunFolder(run_dir)
    if folder.config_text() is None:
        raise MtlshareError(not_a_run(folder.path))
    # before the checkpoint: a study keeps none, and saying so would send the user astray
    cfg = load_trained_config(folder.file(CONFIG))
    if cfg.experiment != "train":
        raise MtlshareError(
            f"{folder.path}: a {cfg.experiment!r} study, not a training run; its forecasts are "
            "in forecasts.csv beside its plots"
        )
    if not folder.has_checkpoint(checkpoint):
        other = next(c for c in CHECKPOINTS if c != checkpoint)
        if folder.finished and folder.has_checkpoint(other):  # ``last`` removed to free space
            raise MtlshareError(
                f"{folder.checkpoint_dir(checkpoint)}: missing; the run finished and kept only "
                f"its {other!r} checkpoint: use --checkpoint {other}"
            )
        if folder.finished:
            raise MtlshareError(
                f"{folder.checkpoint_dir(checkpoint)}: missing; the run finished, but its "
                "checkpoints were not kept (a copy made by recipes/keep_runs.py keeps the scores "
                "only): train it again to use it"
            )
        raise MtlshareError(
            f"{folder.checkpoint_dir(checkpoint)}: missing; the run has no {checkpoint!r} "
            "checkpoint yet (is it still training, or was it cut before its first epoch?)"
        )
    if not folder.finished:
        warnings.warn(
            f"{folder.path}: the run has not finished (still training, or cut): this is its "
            f"{checkpoint!r} model so far, not the one its results.json will report",
            stacklevel=2,
        )
    spec = _spec(folder, cfg, data_dir)
    try:
        tasks = tasks_from_spec(spec)
        codec = codec_from_spec(spec["codec"])
    except DataError as e:  # "inference spec: ...": say which file, when it was read from one
        if not folder.file(INFERENCE).is_file():
            raise
        raise DataError(f"{folder.file(INFERENCE)}: {e}") from None
    reads = getattr(codec, "input_dim", spec["input_dim"])  # a codec that knows the trunk's width
    if reads != spec["input_dim"]:
        raise DataError(
            f"{folder.file(INFERENCE)}: its codec gives the network {reads} inputs, but its "
            f"input_dim is {spec['input_dim']} (the file is not as the run wrote it)"
        )
    # the checkpoint replaces the initial weights: they are drawn aside, from the run's seed, so
    # that loading a model leaves the caller's random stream (CPU and GPU) as it was
    with torch.random.fork_rng(devices=[]):
        torch.default_generator.manual_seed(cfg.seed)
        try:
            stem = codec.build_stem()
            model = build_network(cfg, tasks, spec["input_dim"], stem, spec["input_rank"])
        except ConfigError as e:  # of the run's files, not of a config the user gave
            raise ConfigError(
                f"{folder.path}: its {CONFIG} and {INFERENCE} do not make a network: {e}"
            ) from None
    folder.load_model(model, checkpoint, described_by=folder.file(CONFIG))
    model.eval()
    if where.type != "cpu":  # built and loaded on the CPU
        try:
            model.to(where)
        except (RuntimeError, AssertionError) as e:  # torch without that device's support
            raise MtlshareError(
                f"--device: torch cannot put the model on {str(where)!r} ({error_line(e)})"
            ) from None
    return LoadedRun(folder, cfg, {t.name: t for t in tasks}, model, codec, spec)


def _device(device: str | torch.device) -> torch.device:
    """``device`` as a device of this machine; anything else is a one-line error."""
    if isinstance(device, torch.device):
        where = device
    elif isinstance(device, str):
        try:
            where = resolve_device(device)
        except RuntimeError:
            raise MtlshareError(
                f"--device: {device!r} is not a device; use cpu, cuda, cuda:N or auto"
            ) from None
    else:
        raise MtlshareError(f"--device: {device!r} is neither a str nor a torch.device")
    if where.type == "meta":
        raise MtlshareError("--device: 'meta' holds no values to predict with; use cpu or cuda")
    if where.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise MtlshareError(
                f"--device: {str(where)!r} but torch sees no GPU here (this torch build or "
                "machine has none); use 'cpu', or 'auto' to take a GPU when there is one"
            )
        if where.index is not None and where.index >= count:
            raise MtlshareError(
                f"--device: {str(where)!r} but torch sees {count} GPU(s): cuda:0 to "
                f"cuda:{count - 1}"
            )
    return where


def _spec(folder: RunFolder, cfg: Config, data_dir: str | Path | None) -> dict[str, Any]:
    if not folder.file(INFERENCE).is_file() and cfg.data_source == CUSTOM:
        raise MtlshareError(
            f"{folder.file(INFERENCE)}: missing; the run's data was a Problem passed from "
            f"Python (data.source = {CUSTOM!r}), which nothing can rebuild: train it again"
        )
    if folder.file(INFERENCE).is_file() or data_dir is None:
        return folder.inference()
    with warnings.catch_warnings():  # the data's warnings were shown when it trained
        warnings.simplefilter("ignore")
        problem = build_problem(cfg, data_dir)
    return usage_spec(cfg, problem, data_dir)


def evaluate(
    run_dir: str | Path,
    split: str = "test",
    checkpoint: str = "best",
    data_dir: str | Path | None = None,
    device: str | torch.device = "cpu",
) -> dict[str, dict[str, Any]]:
    """Score the run's tasks on its own ``split`` (read again from its data files, relative
    paths from ``data_dir``, as for ``load_run`` and ``--data-dir``, or from where the run was
    trained): the numbers of its ``results.json`` for the best checkpoint. A forecasting run's
    test split also gets its ``forecast`` scores in the data's units (as ``results.json``'s
    ``forecast`` block). The model is scored on ``device`` (as for ``load_run``), not on the
    run's ``train.device``. Of the data's warnings only one is repeated: gold tags of ``split``
    that training never saw (``data.unseen_tags = "map"``), which the scores count as errors."""
    if split not in ("dev", "test"):
        raise MtlshareError(f"--split: {split!r} is not one of dev, test")
    run = load_run(run_dir, checkpoint, data_dir, device)
    where = data_dir if data_dir is not None else run.spec.get("base_dir")
    # the data's warnings were shown when it trained, but for the gold tags of the scored split
    # that training never saw: they count as errors in the scores printed now
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        problem = build_problem(run.config, where)
    names = [t for t in run.tasks if t in {td.task.name for td in problem.tasks}]
    problem = problem.select(names)
    _check_same_encoding(run, problem, where)  # else "never seen" may name a tag it did see
    for w in shown:
        if (
            isinstance(w.message, UnseenTagsWarning)
            and w.message.split == split
            and w.message.task in names
        ):
            warnings.warn(w.message, stacklevel=2)
    scorer = Trainer(
        run.model,
        problem,
        run.config.train,
        LossWeighting(names, run.config.weighting),
        progress=False,
        device=run.device,
    )
    scores = {t: {"metric": run.tasks[t].metric, split: scorer.score(t, split)} for t in names}
    view = problem.meta.get("forecast")
    if split == "test" and isinstance(view, ForecastView):
        for name, forecast in test_forecast_scores(problem, run.model, view).items():
            scores[name]["forecast"] = forecast
    return scores


def _check_same_encoding(run: LoadedRun, problem: Problem, where: str | Path | None) -> None:
    """Refuse to score ``run`` on data read again that is encoded otherwise than it was trained
    on: the vocabularies, features and scales of ``inference.json`` come from the training data,
    and data files changed since (or another corpus under ``--data-dir``) would give words other
    ids, or tags other classes, so the scores would be wrong without a word said."""
    if not run.folder.file(INFERENCE).is_file():
        return  # a run older than inference.json: its spec was just rebuilt from this data
    differ = encoding_differences(run.spec, usage_spec(run.config, problem, where))
    if differ:
        read = f" from {where}" if where is not None else ""  # None: the config's own paths
        raise DataError(
            f"the data read again{read} is not what the run was trained on: "
            f"{run.folder.file(INFERENCE)} differs in {', '.join(differ)} (were the data files "
            f"or the [data] table of {run.folder.file(CONFIG)} changed, or is --data-dir another "
            "copy?); evaluate scores a run on its own data, `mtlshare predict` tags new data"
        )
