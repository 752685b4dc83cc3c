"""The tasks of the ``conll`` data source: each ``data.tasks`` table checked into a ``TaskSpec``,
and a sentence's tags read (and converted between span schemes) into class ids."""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtlshare.data.conll import Sentence
from mtlshare.data.corpora import CORPUS_KEYS, CorpusSpec, corpus_spec, index_in
from mtlshare.data.vocab import Vocab
from mtlshare.errors import ConfigError, DataError, UnseenTagsWarning, one_of
from mtlshare.tasks.tags import SCHEMES, check_tag, convert
from mtlshare.tasks.task import task_table

TASK_KINDS = ("tags", "position", "next_word")
TAG_HEADS = ("linear", "crf")  # the heads a token classifier takes (Task.HEADS less affine)
TASK_KEYS = (
    "kind",
    "column",
    "scheme",
    "encode",
    "metric",
    "head",
    "max_position",
    "tie_embedding",
    *CORPUS_KEYS,
)


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str
    column: int
    scheme: str
    encode: str
    metric: str
    head: str
    max_position: int
    tie_embedding: bool
    corpus: CorpusSpec  # the files it reads: the shared ones or its own


def task_spec(name: str, raw: dict[str, Any], shared: CorpusSpec) -> TaskSpec:
    """A checked task table of ``data.tasks``; ``shared`` is the corpus of ``[data]``."""
    where = f"data.tasks.{name}"
    raw = task_table(name, raw, TASK_KEYS)
    corpus = corpus_spec(name, raw, shared)
    kind = raw.get("kind", "tags")
    if kind not in TASK_KINDS:
        raise ConfigError(f"{where}.kind: {kind!r} is not one of {one_of(TASK_KINDS)}")
    scheme = str(raw.get("scheme", ""))
    encode = str(raw.get("encode", scheme))
    for key, value in (("scheme", scheme), ("encode", encode)):
        if value and value not in SCHEMES:
            raise ConfigError(f"{where}.{key}: {value!r} is not one of {one_of(SCHEMES)}")
    if encode and not scheme:
        raise ConfigError(f"{where}.encode: set scheme (the file's span scheme) to convert tags")
    head = str(raw.get("head", "linear"))
    if head not in TAG_HEADS:  # every kind here classifies tokens: no affine head
        why = " (an affine head is for regression tasks)" if head == "affine" else ""
        raise ConfigError(f"{where}.head: {head!r} is not one of {one_of(TAG_HEADS)}{why}")
    metric = str(raw.get("metric", "span_f1" if scheme else "accuracy"))
    if metric == "span_f1" and not scheme:
        raise ConfigError(f"{where}.metric: span_f1 needs a span scheme (set {where}.scheme)")
    column = -1
    if kind == "tags":
        if "column" not in raw:
            raise ConfigError(f"{where}.column: which column holds this task's tags?")
        value = raw["column"]
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ConfigError(f"{where}.column: expected a name or an index, got {value!r}")
        column = index_in(value, corpus, where)
    elif "column" in raw or scheme:
        raise ConfigError(f"{where}: a {kind} task reads no column and has no scheme")
    tie = raw.get("tie_embedding", False)
    if not isinstance(tie, bool):
        raise ConfigError(f"{where}.tie_embedding: expected true or false, got {tie!r}")
    if tie and kind != "next_word":
        raise ConfigError(f"{where}.tie_embedding: only a next_word task predicts input words")
    max_position = raw.get("max_position", 0)
    if isinstance(max_position, bool) or not isinstance(max_position, int) or max_position < 0:
        raise ConfigError(f"{where}.max_position: expected an integer >= 0, got {max_position!r}")
    return TaskSpec(name, kind, column, scheme, encode, metric, head, max_position, tie, corpus)


def tags_of(spec: TaskSpec, sentence: Sentence, path: Path) -> list[str]:
    tags = sentence.column(spec.column)
    if spec.scheme:
        for i, tag in enumerate(tags):
            try:
                check_tag(tag)
            except DataError as e:
                raise DataError(f"task {spec.name!r}: {e}", path, sentence.line_of(i)) from None
        if spec.encode != spec.scheme:
            tags = convert(tags, spec.scheme, spec.encode)
    return tags


def tag_ids(
    spec: TaskSpec,
    sentences: list[Sentence],
    path: Path,
    vocab: Vocab,
    unseen: str,
    gold_only: list[str],
    split: str,
) -> list[list[int]]:
    """Class ids of ``sentences``' tags. A tag ``vocab`` lacks (never seen in training) is an
    error, or with ``unseen = "map"`` a gold-only class: id ``len(vocab) + k`` for the k-th
    such tag of ``gold_only`` (extended here, shared by a task's splits), which no prediction
    matches, so that the gold stays the file's. The error and the warning name the file's own
    tags (the warning, an ``UnseenTagsWarning`` of ``split``, counts those whose ``encode``
    form was never seen)."""
    out: list[list[int]] = []
    mapped: Counter[str] = Counter()  # the file's tags, as written in it
    first_line = 0
    recoded = bool(spec.scheme) and spec.encode != spec.scheme
    for sentence in sentences:
        ids = []
        written = sentence.column(spec.column)
        for i, tag in enumerate(tags_of(spec, sentence, path)):
            if tag not in vocab:
                if unseen == "error":
                    named = (
                        f"{written[i]!r} is {tag!r} in {spec.encode}, the training encoding, which"
                        if recoded
                        else repr(tag)
                    )
                    raise DataError(
                        f"task {spec.name!r}: tag {named} never occurs in the training file "
                        "(set data.unseen_tags = 'map' to map it)",
                        path,
                        sentence.line_of(i),
                    )
                if not mapped:
                    first_line = sentence.line_of(i)
                mapped[written[i]] += 1
                if tag not in gold_only:
                    gold_only.append(tag)
                ids.append(len(vocab) + gold_only.index(tag))
                continue
            ids.append(vocab.id(tag))
        out.append(ids)
    if mapped:
        encoding = f" (as {spec.encode}, the training encoding)" if recoded else ""
        message = (
            f"{path}:{first_line}: task {spec.name!r}: tags never seen in training{encoding}, "
            "kept in the gold as classes the model cannot predict (scored as errors): "
            f"{dict(mapped)}"
        )
        warnings.warn(UnseenTagsWarning(message, spec.name, split), stacklevel=2)
    return out
