"""The corpora of the ``conll`` data source: every task reads the shared files
(``data.train``/``dev``/``test``) or names its own (``data.tasks.NAME.train``/``dev``/``test``,
with its own ``columns``), as in the Sparse Sharing paper's Experiment 3 (POS from the Penn
Treebank, chunking from CoNLL-2000, NER from CoNLL-2003).

A corpus is read once, however many tasks read it. A corpus without a dev file takes
``dev_from_train = N`` sentences of its training file as dev: after ``train_sentences`` has cut
the file, N sentences drawn by a generator seeded with ``data.dev_seed`` are set aside (kept in
file order) and never trained on; the rest, in file order, is the training split.

A corpus is in ``format`` "conll" (whitespace-separated columns, named by ``columns``) or
"conllu" (CoNLL-U, ``data.conllu``). A CoNLL-U file's columns are always the ten of the format,
named ``id, form, lemma, upos, xpos, feats, head, deprel, deps, misc``: ``columns`` stays at its
default (or names those ten; anything else is an error), and ``word_column`` at its default
``"word"`` means ``form``. The defaults of ``columns`` and ``word_column`` are left as they were
(a run's config is compared on ``--resume``), which is why the CoNLL-U names are put in their
place here rather than in the config.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from mtlshare.config_lines import dotted
from mtlshare.data.conll import Sentence, column_index, read_conll
from mtlshare.data.conllu import UD_COLUMNS, read_conllu
from mtlshare.errors import ConfigError, DataError, data_file, one_of

SPLITS = ("train", "dev", "test")
FORMATS = ("conll", "conllu")
DEFAULT_COLUMNS = ("word", "pos", "chunk", "ner")  # data.columns (CoNLL-2003's)
DEFAULT_WORD_COLUMN = "word"
CORPUS_KEYS = (
    "train",
    "dev",
    "test",
    "format",
    "columns",
    "word_column",
    "train_sentences",
    "dev_sentences",
    "test_sentences",
    "dev_from_train",
)


@dataclass(frozen=True)
class CorpusSpec:
    """Where a task's sentences come from: three files (``dev`` may be "" with
    ``dev_from_train``), their columns and word column (for CoNLL-U the format's own, see the
    module docstring), how many sentences to read, and the files' ``format``."""

    train: str
    dev: str
    test: str
    columns: tuple[str, ...]
    word_column: str
    train_sentences: int = 0
    dev_sentences: int = 0
    test_sentences: int = 0
    dev_from_train: int = 0
    format: str = "conll"

    @property
    def word_index(self) -> int:
        return self.columns.index(self.word_column)


def check_format(value: object, where: str) -> str:
    """``value`` when it names a corpus format, else a one-line ``ConfigError``."""
    if not isinstance(value, str) or value not in FORMATS:
        raise ConfigError(f"{where}.format: {value!r} is not one of {one_of(FORMATS)}")
    return value


def layout(
    fmt: str, columns: list[str] | tuple[str, ...], word_column: str, where: str
) -> tuple[tuple[str, ...], str]:
    """The columns and word column of a corpus in format ``fmt``: as configured for "conll";
    for "conllu" the ten CoNLL-U columns, with ``word_column`` "word" (the default) read as
    "form"."""
    if fmt != "conllu":
        return tuple(columns), word_column
    if tuple(columns) not in (DEFAULT_COLUMNS, UD_COLUMNS):
        raise ConfigError(
            f"{where}.columns: a conllu file has the ten CoNLL-U columns {', '.join(UD_COLUMNS)}; "
            f"leave columns unset (or name those ten), got {list(columns)}"
        )
    word = "form" if word_column == DEFAULT_WORD_COLUMN else word_column
    if word not in UD_COLUMNS:
        raise ConfigError(
            f"{where}.word_column: {word!r} is not a CoNLL-U column ({', '.join(UD_COLUMNS)})"
        )
    return UD_COLUMNS, word


def shared_spec(data: Any) -> CorpusSpec:
    """The corpus of the ``[data]`` table itself (the tasks without files of their own)."""
    fmt = check_format(data.format, "data")
    columns, word = layout(fmt, data.columns, data.word_column, "data")
    return CorpusSpec(
        data.train,
        data.dev,
        data.test,
        columns,
        word,
        data.train_sentences,
        data.dev_sentences,
        data.test_sentences,
        data.dev_from_train,
        fmt,
    )


def corpus_spec(name: str, raw: dict[str, Any], shared: CorpusSpec) -> CorpusSpec:
    """Task ``name``'s corpus: the shared one, or the files its table names (its own ``train``
    needs its own ``test``, and a dev file or ``dev_from_train``). Its ``format`` defaults to
    the shared one's, and so do its ``columns`` and ``word_column`` when the formats agree
    (else they default as ``[data]``'s do)."""
    where = f"data.tasks.{name}"
    if "train" not in raw:
        stray = [k for k in CORPUS_KEYS if k in raw]
        if stray:
            raise ConfigError(
                f"{where}.{stray[0]}: a task's own corpus starts with its own train file "
                f"({where}.train); without one it reads the shared files"
            )
        return shared
    for key in ("train", "dev", "test", "word_column"):
        if key in raw and not isinstance(raw[key], str):
            raise ConfigError(f"{where}.{key}: expected a string, got {raw[key]!r}")
    if not raw["train"] or not raw.get("test"):
        raise ConfigError(f"{where}: a task with its own train file needs its own test file")
    counts = {}
    for key in ("train_sentences", "dev_sentences", "test_sentences", "dev_from_train"):
        value = raw.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{where}.{key}: expected an integer >= 0, got {value!r}")
        counts[key] = value
    if bool(raw.get("dev")) == bool(counts["dev_from_train"]):
        raise ConfigError(
            f"{where}: give its own dev file or dev_from_train = N (sentences of its training "
            "file set aside as dev), one of the two"
        )
    fmt = check_format(raw.get("format", shared.format), where)
    inherited = fmt == shared.format
    default_columns = shared.columns if inherited else DEFAULT_COLUMNS
    columns = raw.get("columns", list(default_columns))
    if not isinstance(columns, list) or not columns or not all(isinstance(c, str) for c in columns):
        raise ConfigError(f"{where}.columns: expected a list of column names, got {columns!r}")
    word = raw.get("word_column", shared.word_column if inherited else DEFAULT_WORD_COLUMN)
    names, word = layout(fmt, columns, word, where)
    if word not in names:
        raise ConfigError(f"{where}.word_column: {word!r} is not one of columns {columns}")
    return CorpusSpec(
        raw["train"], raw.get("dev", ""), raw["test"], names, word, **counts, format=fmt
    )


def check_shared(spec: CorpusSpec) -> None:
    """The shared corpus, when some task reads it: three files (or dev from train)."""
    for key in ("train", "test"):
        if not getattr(spec, key):
            raise ConfigError(f"data.{key}: the path of a CoNLL file is required")
    if not spec.dev and not spec.dev_from_train:
        raise ConfigError("data.dev: the path of a CoNLL file is required (or dev_from_train = N)")
    if spec.dev and spec.dev_from_train:
        raise ConfigError("data: give a dev file or dev_from_train = N, not both")
    if spec.word_column not in spec.columns:
        raise ConfigError(
            f"data.word_column: {spec.word_column!r} is not one of columns {list(spec.columns)}"
        )


def index_in(column: str | int, spec: CorpusSpec, where: str) -> int:
    """The position of a task's tag ``column`` among its corpus's columns."""
    try:
        return column_index(column, list(spec.columns))
    except DataError as e:
        ud = spec.format == "conll" and isinstance(column, str) and column.lower() in UD_COLUMNS
        hint = '; a CoNLL-U file? set format = "conllu" (data.format)' if ud else ""
        raise ConfigError(f"{where}.column: {e}{hint}") from None


@dataclass
class Corpus:
    """A corpus read: its sentences per split and the file each split came from."""

    spec: CorpusSpec
    sentences: dict[str, list[Sentence]]
    paths: dict[str, Path]


def read_corpus(spec: CorpusSpec, base_dir: str | None, dev_seed: int, task: str | None) -> Corpus:
    """Read a corpus's files (``task`` names the task in errors when the corpus is its own)."""
    key = f"data.tasks.{dotted((task,))}" if task is not None else "data"
    named = [s for s in SPLITS if getattr(spec, s)]
    paths = {s: data_file(getattr(spec, s), base_dir, f"{key}.{s}") for s in named}
    sentences: dict[str, list[Sentence]] = {}
    for split, path in paths.items():
        limit = getattr(spec, f"{split}_sentences")
        try:
            if spec.format == "conllu":
                read = read_conllu(path)
            else:  # the lines after the first ``limit`` sentences are not read
                read = read_conll(path, len(spec.columns), limit)
        except DataError as e:
            if task is None:
                raise
            raise DataError(f"task {task!r}: {e}") from None
        sentences[split] = read[:limit] if limit else read
    if spec.dev_from_train:
        train = sentences["train"]
        if spec.dev_from_train >= len(train):
            raise DataError(
                f"{'task ' + repr(task) + ': ' if task else ''}dev_from_train = "
                f"{spec.dev_from_train} leaves no training sentence of {len(train)}",
                paths["train"],
            )
        g = torch.Generator().manual_seed(dev_seed)
        held = set(torch.randperm(len(train), generator=g)[: spec.dev_from_train].tolist())
        sentences["dev"] = [s for i, s in enumerate(train) if i in held]
        sentences["train"] = [s for i, s in enumerate(train) if i not in held]
        paths["dev"] = paths["train"]
    return Corpus(spec, sentences, paths)
