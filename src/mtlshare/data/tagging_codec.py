"""The ``tagging`` codec: new text for a model trained on the ``conll`` data source.

Input is a CoNLL column file (only the word column is read; every line is written back as it
was, ``-DOCSTART-`` and blank lines included), a CoNLL-U file, or plain text with one
whitespace-tokenised sentence a line. Output is CoNLL columns: the input's columns (for plain
text, the word) and one predicted column per task; plain text gives a sentence per input line,
each ended by a blank line, an empty input line an empty sentence (one more blank line). Span
tags are written back in the scheme of the training file (``scheme``), whatever the model was
trained in (``encode``): a model trained in BIOES writes IOB2 tags for IOB2 data, by the same
conversion that keeps the chunks conlleval reads. Unknown words and characters take the unknown
entries of the vocabularies; a sentence longer than any training sentence is tagged like any
other (the BiLSTM reads any length; a position task predicts its last class beyond its longest
training sentence).

A CoNLL-U input (``data.conllu``) is written back as CoNLL-U: every line as it was (comments,
blank lines, multiword ranges and empty nodes too) but for the predictions in its word lines.
A task trained on a CoNLL-U corpus writes its tags into the column it was trained on (e.g.
UPOS), unless that is ID or the word column, or an earlier task took it; every other task (a
position or next-word task, one trained on CoNLL columns) appends ``Pred_TASK=TAG`` to MISC
(in place of an entry of that key, so that a file tagged twice holds one; a MISC of ``_``
becomes the entry). The words are read from FORM, or from the word column of the run's
CoNLL-U training corpus.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtlshare.data.codecs import CODECS, Codec
from mtlshare.data.conll import DOCSTART, decode_utf8, file_bytes
from mtlshare.data.conllu import FORM, ID, MISC, UD_COLUMNS, conllu_sentences, looks_like_conllu
from mtlshare.data.datasets import pad_sequences
from mtlshare.data.vocab import PAD, UNK, Vocab, word_key
from mtlshare.errors import DataError
from mtlshare.models.tagger import TaggerInputConfig, WordCharEncoder
from mtlshare.tasks.metrics import IGNORE_INDEX
from mtlshare.tasks.tags import convert
from mtlshare.tasks.task import Task

FORMATS = ("auto", "conll", "conllu", "text")


# padded inputs of one file above this many bytes warn (the size of the data, not an error)
PADDED_WARNING_BYTES = 1 << 30


def encode_tokens(
    sentences: list[list[str]],
    words: Vocab,
    chars: Vocab,
    lowercase: bool,
    max_chars: int,
    *,
    width: int | None = None,
) -> tuple[Tensor, Tensor]:
    """(L, 1 + C) int32 for the L tokens of ``sentences``, one sentence after another: the word
    id then the character ids, 0-padded; and the lengths (N,). The character width C is the
    longest word's (at most ``max_chars``), or ``width`` where these sentences are a batch of a
    larger file, encoded as the whole file would be; unknown words and characters take the
    unknown id."""
    lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)
    if width is None:
        width = char_width(sentences, max_chars)
    x = torch.zeros(int(lengths.sum()), 1 + width, dtype=torch.int32)
    start = 0
    for sentence in sentences:
        rows = []
        for word in sentence:
            ids = [words.id(word_key(word, lowercase))]
            ids += [chars.id(c) for c in word[:width]]
            rows.append(ids + [0] * (1 + width - len(ids)))
        if rows:
            x[start : start + len(rows)] = torch.tensor(rows, dtype=torch.int32)
            start += len(rows)
    return x, lengths


def encode_words(
    sentences: list[list[str]],
    words: Vocab,
    chars: Vocab,
    lowercase: bool,
    max_chars: int,
    *,
    path: Path | None = None,
    first_lines: Sequence[int] = (),
    width: int | None = None,
) -> tuple[Tensor, Tensor]:
    """``encode_tokens``' inputs padded, (N, T, 1 + C): each sentence 0-padded to the longest,
    T; and the lengths (N,). Inputs of more than ``PADDED_WARNING_BYTES`` warn, naming ``path``
    and the first line (``first_lines``, 1-based, one per sentence) of the longest sentence:
    every sentence is held padded to it."""
    tokens, lengths = encode_tokens(sentences, words, chars, lowercase, max_chars, width=width)
    _warn_if_large(lengths, tokens.shape[1], path, first_lines)
    return pad_sequences(tokens, torch.cumsum(lengths, 0) - lengths, lengths, 0), lengths


def char_width(sentences: list[list[str]], max_chars: int) -> int:
    """Characters a word is encoded with: the longest word's, at most ``max_chars``."""
    return min(max_chars, max(len(w) for s in sentences for w in s))


def _warn_if_large(
    lengths: Tensor, width: int, path: Path | None, first_lines: Sequence[int]
) -> None:
    """A warning where (N, T, ``width``) int32 inputs padded to the longest sentence pass
    ``PADDED_WARNING_BYTES``: how large, how many times the tokens, and where the longest
    sentence starts (one sentence of thousands of tokens, a file whose blank lines were lost,
    multiplies the memory of every other)."""
    if not len(lengths):
        return
    longest, n = int(lengths.max()), len(lengths)
    size = n * longest * width * 4
    if size <= PADDED_WARNING_BYTES:
        return
    tokens = int(lengths.sum())
    at = int(lengths.argmax())
    where = f"{path}:{first_lines[at]}" if path is not None and first_lines else f"{path}"
    warnings.warn(
        f"{where}: its longest sentence starts here, {longest:,} tokens, and each of the "
        f"{n:,} sentences is held padded to it: {size / 2**30:.1f} GiB of inputs for "
        f"{tokens:,} tokens ({n * longest / tokens:.0f} times their size); a file that lost "
        "the blank lines between its sentences reads as one long sentence "
        "(docs/performance.md: the memory a corpus takes)",
        stacklevel=3,
    )


@dataclass
class Tagged:
    """An input file read for tagging: its lines, and for each sentence its words and the
    line index of each word (for plain text, the sentence's line: its output is one token a
    line, and an empty line an empty sentence)."""

    path: Path
    form: str  # "conll", "conllu" or "text"
    lines: list[str]
    sentences: list[list[str]] = field(default_factory=list)
    where: list[list[int]] = field(default_factory=list)
    word: int = 0  # the column the words were read from (CoNLL, CoNLL-U)


@dataclass
class TaggingCodec:
    """See the module docstring. ``tasks`` maps a task to its ``kind`` and span ``scheme`` /
    ``encode``; the vocabularies are the training run's."""

    columns: list[str]
    word_column: str
    lowercase: bool
    max_word_length: int
    words: list[str]
    chars: list[str]
    encoder: dict[str, Any]
    tasks: dict[str, dict[str, Any]]
    # the column layouts of the training corpora (several when tasks read corpora of their own)
    layouts: list[dict[str, Any]] = field(default_factory=list)
    format: str = "conll"  # the shared corpus's (``data.format``)
    # each task's corpus, an index into ``layouts`` ({} in runs older than the key): a file
    # read for some tasks takes its word column from their corpus
    corpus_of: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, itos in (("words", self.words), ("chars", self.chars)):
            if itos[:2] != [PAD, UNK]:
                raise DataError(f"inference spec: the {name} vocabulary lacks its special entries")
        self._words = Vocab(self.words[2:])
        self._chars = Vocab(self.chars[2:])

    def spec(self) -> dict[str, Any]:
        spec = {
            "codec": "tagging",
            "columns": self.columns,
            "word_column": self.word_column,
            "lowercase": self.lowercase,
            "max_word_length": self.max_word_length,
            "encoder": self.encoder,
            "tasks": self.tasks,
            "words": self.words,
            "chars": self.chars,
            "layouts": self.layouts,
        }
        if self.format != "conll":  # the spec of a CoNLL run is the one written before CoNLL-U
            spec["format"] = self.format
        if self.corpus_of:
            spec["corpus_of"] = self.corpus_of
        return spec

    def build_stem(self) -> Callable[[], nn.Module] | None:
        encoder = TaggerInputConfig(**self.encoder)
        return lambda: WordCharEncoder(encoder)

    # -- reading --------------------------------------------------------------------------------
    def read(self, path: Path, fmt: str, tasks: Sequence[str] | None = None) -> Tagged:
        if fmt not in FORMATS:
            raise DataError(f"--format {fmt!r}: a tagging run reads one of {', '.join(FORMATS)}")
        text = decode_utf8(path, file_bytes(path))
        # Windows line ends: the output is written with "\n" only, blank lines included
        lines = [line.removesuffix("\r") for line in text.split("\n")]
        if lines and lines[-1] == "":
            lines.pop()  # the file's last newline ends a line, it does not start one
        form = self._form(lines) if fmt == "auto" else fmt
        doc = Tagged(path, form, lines)
        if form == "text":
            for i, line in enumerate(lines):
                if line.split():
                    doc.sentences.append(line.split())
                    doc.where.append([i])
        elif form == "conllu":
            doc.word = self._word_index(path, tasks, conllu=True)
            for sentence in conllu_sentences("\n".join(lines), path):
                doc.sentences.append(sentence.column(doc.word))
                doc.where.append([n - 1 for n in sentence.lines])
        else:
            self._read_columns(doc, tasks)
        if not doc.sentences:
            raise DataError("no sentences to tag: the file holds no words", path)
        return doc

    def _form(self, lines: list[str]) -> str:
        """CoNLL-U when the first line that is neither blank nor a ``#`` comment is a CoNLL-U
        token line (ten TAB-separated fields, the first an ID), unless a CoNLL training corpus
        of the run had ten columns (a file of its kind reads as before CoNLL-U was read).
        CoNLL when the file has a ``-DOCSTART-`` line, or when it has a blank line and
        every non-blank line (or all but a tenth, a ragged line the reader then names) has the
        same number of fields, two or more; or when it holds one token a line; text
        otherwise."""
        first = next((line for line in lines if line.strip() and line[0] != "#"), "")
        ten = any(
            len(layout["columns"]) == len(UD_COLUMNS) and layout.get("format", "conll") == "conll"
            for layout in self._layouts()
        )
        if looks_like_conllu(first) and not ten:
            return "conllu"
        rows = [line.split() for line in lines if line.split()]
        if any(fields[0] == DOCSTART for fields in rows):
            return "conll"
        widths = Counter(len(fields) for fields in rows)
        if set(widths) == {1}:
            return "conll"
        separated = any(not line.split() for line in lines)
        if separated and widths:
            width, count = widths.most_common(1)[0]
            if width >= 2 and count >= 0.9 * len(rows):
                return "conll"
        return "text"

    def _read_columns(self, doc: Tagged, tasks: Sequence[str] | None) -> None:
        width, column = 0, 0
        words: list[str] = []
        at: list[int] = []
        for i, line in enumerate([*doc.lines, ""]):
            fields = line.split()
            if fields and fields[0] != DOCSTART:
                if width == 0:
                    width = len(fields)
                    column = doc.word = self._word_index(doc.path, tasks, width=width)
                if len(fields) != width:
                    raise DataError(
                        f"{len(fields)} columns where every token line has {width}", doc.path, i + 1
                    )
                words.append(fields[column])
                at.append(i)
            elif words:
                doc.sentences.append(words)
                doc.where.append(at)
                words, at = [], []

    def _layouts(self) -> list[dict[str, Any]]:
        """The column layouts of the training corpora, the shared files' first."""
        shared = {"columns": self.columns, "word_column": self.word_column, "format": self.format}
        return [shared, *self.layouts]

    def _word_index(
        self, path: Path, tasks: Sequence[str] | None, *, width: int = 0, conllu: bool = False
    ) -> int:
        """The word column of a file of ``width`` columns (or of CoNLL-U): that of the training
        corpus of the tasks predicted (``tasks``, None: all) where it is of the file's kind;
        else that of the first training corpus of its kind (the shared files first); else the
        first column (FORM). Tasks whose corpora of the file's kind hold their words in
        different columns are an error: which one the file follows is not known. A run older
        than ``corpus_of`` takes the first corpus of the file's kind, and warns where another
        holds its words elsewhere."""

        def fits(layout: dict[str, Any]) -> bool:
            if conllu:
                return bool(layout.get("format", "conll") == "conllu")
            return len(layout["columns"]) == width

        def column(layout: dict[str, Any]) -> int:
            columns = UD_COLUMNS if conllu else layout["columns"]
            return int(list(columns).index(layout["word_column"]))

        kind = "CoNLL-U" if conllu else f"{width} columns"
        names = list(self.tasks) if tasks is None else list(tasks)
        if self.corpus_of:
            own: dict[int, list[str]] = {}
            for name in names:  # (one the run lacks was refused before; skipped here)
                if name in self.corpus_of and fits(layout := self.layouts[self.corpus_of[name]]):
                    own.setdefault(column(layout), []).append(name)
            if len(own) > 1:
                held = "; ".join(
                    f"{', '.join(ts)} in column {c + 1}" for c, ts in sorted(own.items())
                )
                raise DataError(
                    f"a file of {kind}: the corpora of the tasks to predict hold their words in "
                    f"different columns ({held}): which one this file follows is not known; "
                    "predict --tasks names tasks of one corpus",
                    path,
                )
            if own:
                return next(iter(own))
        fitting = [column(layout) for layout in self._layouts() if fits(layout)]
        if not fitting:
            return FORM if conllu else 0
        if len(set(fitting)) > 1 and not self.corpus_of:
            warnings.warn(
                f"{path}: training corpora of {kind} hold their words in columns "
                f"{', '.join(str(c + 1) for c in sorted(set(fitting)))}: the words are read "
                f"from column {fitting[0] + 1}, the first corpus's (the run predates the key "
                "that says which task read which corpus)",
                stacklevel=4,
            )
        return fitting[0]

    # -- the model's side ---------------------------------------------------------------------
    def encode(self, doc: Tagged) -> tuple[Tensor, Tensor | None]:
        return encode_words(
            doc.sentences,
            self._words,
            self._chars,
            self.lowercase,
            self.max_word_length,
            path=doc.path,
            first_lines=[at[0] + 1 if at else 0 for at in doc.where],
        )

    def encode_batches(self, doc: Tagged, size: int) -> Iterator[tuple[Tensor, Tensor, Tensor]]:
        """(rows, inputs, lengths) of ``doc`` in batches of ``size`` sentences, longest first,
        each batch's inputs what ``encode`` gives for those rows cut to their longest sentence:
        ``predict`` holds one batch padded, not the whole file padded to its longest sentence
        (a plain-text file with one 3,000-word line took 3.8 GiB encoded whole)."""
        lengths = torch.tensor([len(s) for s in doc.sentences], dtype=torch.long)
        width = char_width(doc.sentences, self.max_word_length)
        order = torch.argsort(lengths, descending=True, stable=True)
        for start in range(0, len(order), size):
            rows = order[start : start + size]
            x, batch_lengths = encode_words(
                [doc.sentences[int(i)] for i in rows],
                self._words,
                self._chars,
                self.lowercase,
                self.max_word_length,
                width=width,
            )
            yield rows, x, batch_lengths

    def labels(self, task: Task, ids: list[int]) -> list[str]:
        """One sentence's predicted class ids as tags in the training file's scheme."""
        tags = [task.labels[i] for i in ids]
        spec = self.tasks.get(task.name, {})
        scheme, encode = spec.get("scheme", ""), spec.get("encode", "")
        if scheme and encode and scheme != encode:
            tags = convert(tags, encode, scheme)
        return tags

    # -- writing --------------------------------------------------------------------------------
    def write(self, doc: Tagged, tasks: list[Task], predictions: dict[str, Tensor]) -> str:
        tags = {
            t.name: [
                self.labels(t, [int(i) for i in row[: len(words)] if i != IGNORE_INDEX])
                for row, words in zip(predictions[t.name].tolist(), doc.sentences, strict=True)
            ]
            for t in tasks
        }
        if doc.form == "conllu":
            return self._write_conllu(doc, tasks, tags)
        if doc.form == "text":
            # a sentence per input line, each ended by a blank line: an empty input line is an
            # empty sentence (one more blank line), so output sentence k is input line k
            sentence = {at[0]: n for n, at in enumerate(doc.where)}
            out = []
            for i in range(len(doc.lines)):
                if i in sentence:
                    n = sentence[i]
                    for k, word in enumerate(doc.sentences[n]):
                        out.append(" ".join([word, *(tags[t.name][n][k] for t in tasks)]))
                out.append("")
            return "\n".join(out) + "\n"
        lines = list(doc.lines)
        for n, at in enumerate(doc.where):
            for k, i in enumerate(at):
                lines[i] = " ".join([*lines[i].split(), *(tags[t.name][n][k] for t in tasks)])
        for i, line in enumerate(lines):
            if line.split()[:1] == [DOCSTART]:
                lines[i] = " ".join([*line.split(), *("O" for _ in tasks)])
        return "\n".join(lines) + "\n"

    def _write_conllu(
        self, doc: Tagged, tasks: list[Task], tags: dict[str, list[list[str]]]
    ) -> str:
        """``doc``'s lines, each word line with its predictions (see the module docstring)."""
        word = doc.word
        columns: dict[str, int] = {}  # task -> the column it writes; the others go to MISC
        for t in tasks:
            name = self.tasks.get(t.name, {}).get("column")
            if name in UD_COLUMNS:
                index = UD_COLUMNS.index(name)
                if index not in (ID, word, *columns.values()):
                    columns[t.name] = index
        lines = list(doc.lines)
        for n, at in enumerate(doc.where):
            for k, i in enumerate(at):
                fields = lines[i].split("\t")
                for t in tasks:
                    tag = tags[t.name][n][k]
                    if t.name in columns:
                        fields[columns[t.name]] = tag
                    else:
                        fields[MISC] = _with_misc(fields[MISC], f"Pred_{t.name}", tag, doc.path, i)
                lines[i] = "\t".join(fields)
        return "\n".join(lines) + "\n"

    def size(self, doc: Tagged, tasks: Sequence[str]) -> tuple[int, str]:
        return sum(len(s) for s in doc.sentences), "tokens"


def _with_misc(misc: str, key: str, value: str, path: Path, index: int) -> str:
    """A MISC field with ``key=value``: appended, or in place of an entry of that key."""
    if "|" in value:
        raise DataError(
            f"task {key.removeprefix('Pred_')!r}: tag {value!r} holds '|', which separates MISC "
            "entries: leave the task out (--tasks)",
            path,
            index + 1,
        )
    entries = [e for e in misc.split("|") if e != "_" and e.partition("=")[0] != key]
    return "|".join([*entries, f"{key}={value}"])


LEAST = {"n_words": 2, "n_chars": 2, "char_width": 1}  # padding and unknown; a width


def _whole(value: object, least: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and least <= value < 2**31


def _texts(value: object) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _damaged(spec: dict[str, Any]) -> str | None:
    """The first field of a tagging codec's ``spec`` that is not of the kind ``spec()`` writes
    (a damaged ``inference.json``: it failed later, deep in reading or in torch); None."""
    encoder, sizes = spec["encoder"], [f.name for f in fields(TaggerInputConfig)]
    checks = {
        "columns": _texts(spec["columns"]),
        "word_column": isinstance(spec["word_column"], str),
        "lowercase": isinstance(spec["lowercase"], bool),
        "max_word_length": _whole(spec["max_word_length"], 0),
        "words": _texts(spec["words"]),
        "chars": _texts(spec["chars"]),
        "tasks": isinstance(spec["tasks"], dict)
        and all(isinstance(t, dict) for t in spec["tasks"].values()),
        "layouts": isinstance(spec.get("layouts", []), list)
        and all(isinstance(layout, dict) for layout in spec.get("layouts", [])),
        "format": spec.get("format", "conll") in ("conll", "conllu"),
        "corpus_of": isinstance(spec.get("corpus_of", {}), dict)
        and all(
            name in spec["tasks"] and _whole(at, 0) and at < len(spec.get("layouts", []))
            for name, at in spec.get("corpus_of", {}).items()
        )
        and (not spec.get("corpus_of") or set(spec["corpus_of"]) == set(spec["tasks"])),
        "encoder": isinstance(encoder, dict)
        and {"n_words", "n_chars"} <= set(encoder) <= set(sizes)
        and all(_whole(encoder[k], LEAST.get(k, 0)) for k in encoder if k != "dropout")
        and _number_in(encoder.get("dropout", 0.0), 0.0, 1.0),
    }
    return next((key for key, fine in checks.items() if not fine), None)


def _number_in(value: object, low: float, high: float) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


@CODECS.register(
    "tagging", summary="CoNLL columns, CoNLL-U or plain text in; CoNLL columns or CoNLL-U out"
)
def tagging_codec(spec: dict[str, Any]) -> Codec:
    keys = ("columns", "word_column", "lowercase", "max_word_length", "words", "chars")
    try:
        damaged = _damaged(spec)
        if damaged is not None:
            raise DataError(
                f"inference spec of a tagging run: {damaged} is {str(spec.get(damaged))[:40]}, "
                "not as the run wrote it"
            )
        return TaggingCodec(
            **{k: spec[k] for k in keys},
            encoder=spec["encoder"],
            tasks=spec["tasks"],
            layouts=spec.get("layouts", []),
            format=spec.get("format", "conll"),
            corpus_of=spec.get("corpus_of", {}),
        )
    except (KeyError, TypeError) as e:
        raise DataError(f"inference spec of a tagging run is incomplete ({e})") from None
