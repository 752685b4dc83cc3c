"""Reading CoNLL-U files (Universal Dependencies, https://universaldependencies.org/format.html):
one word a line in ten TAB-separated fields ``ID FORM LEMMA UPOS XPOS FEATS HEAD DEPREL DEPS
MISC``, a blank line after each sentence, ``#`` comment lines before it.

A FORM or LEMMA may hold spaces, so lines split on TABs only. Comment lines, multiword-token
ranges (ID ``3-4``: the surface token "don't" over the words 3 and 4, which have lines of their
own) and empty nodes (ID ``8.1``, enhanced dependencies) are skipped: the sentence is its word
lines, whose IDs count 1, 2, 3... Every error names the file and its real line: a line of
another field count, an ID that is none of the three kinds, a word ID out of order (often a
missing blank line), an empty field (CoNLL-U writes ``_`` for no value).
"""

from __future__ import annotations

import re
from pathlib import Path

from mtlshare.data.conll import Sentence, decode_utf8, file_bytes
from mtlshare.errors import DataError

UD_COLUMNS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")
ID, FORM, MISC = 0, 1, 9
# the kinds of line (a token line's kind is that of its ID)
BLANK, COMMENT, WORD, RANGE, EMPTY = "blank", "comment", "word", "range", "empty"
_IDS = (
    (WORD, re.compile(r"[1-9][0-9]*")),
    (RANGE, re.compile(r"[1-9][0-9]*-[1-9][0-9]*")),
    (EMPTY, re.compile(r"[0-9]+\.[1-9][0-9]*")),
)


def id_kind(value: str) -> str | None:
    """``WORD``, ``RANGE`` or ``EMPTY`` for a CoNLL-U ID, None for anything else."""
    return next((kind for kind, pattern in _IDS if pattern.fullmatch(value)), None)


def looks_like_conllu(line: str) -> bool:
    """Whether ``line`` reads as a CoNLL-U token line: ten TAB-separated fields, the first an
    ID (used to recognise a CoNLL-U file)."""
    fields = line.split("\t")
    return len(fields) == len(UD_COLUMNS) and id_kind(fields[ID]) is not None


def line_kind(line: str, path: Path, number: int) -> tuple[str, list[str]]:
    """What line ``number`` of ``path`` is, and its fields (a token line's only), or a one-line
    DataError naming it."""
    if not line.strip():
        return BLANK, []
    if line.startswith("#"):
        return COMMENT, []
    fields = line.split("\t")
    if len(fields) != len(UD_COLUMNS):
        hint = ""
        if len(line.split()) == len(UD_COLUMNS):
            hint = " (are they separated by spaces? CoNLL-U separates them by TABs)"
        raise DataError(
            f"{len(fields)} TAB-separated fields where a CoNLL-U token line has 10{hint}",
            path,
            number,
        )
    kind = id_kind(fields[ID])
    if kind is None:
        raise DataError(
            f"ID {fields[ID]!r} is not a word index (1, 2, ...), a multiword range (3-4) "
            "or an empty node (8.1)",
            path,
            number,
        )
    for name, value in zip(UD_COLUMNS, fields, strict=True):
        if not value:
            raise DataError(
                f"empty {name.upper()} field (CoNLL-U writes _ for no value)", path, number
            )
    return kind, fields


def conllu_sentences(text: str, path: str | Path = "<text>") -> list[Sentence]:
    """The sentences of a CoNLL-U text (none for a text without words): each word line's ten
    fields, and the file line of each word (``Sentence.lines``)."""
    path = Path(path)
    sentences: list[Sentence] = []
    rows: list[tuple[str, ...]] = []
    lines: list[int] = []

    def close() -> None:
        if rows:
            sentences.append(Sentence(tuple(rows), lines[0], tuple(lines)))
            rows.clear()
            lines.clear()

    # lines end at "\n" (and "\r\n") only, as in parse_conll: the numbers are the file's
    for number, line in enumerate(text.split("\n"), start=1):
        kind, fields = line_kind(line.removesuffix("\r"), path, number)
        if kind == BLANK:
            close()
        elif kind == WORD:
            if int(fields[ID]) != len(rows) + 1:
                raise DataError(
                    f"word ID {fields[ID]} where the sentence's next word is {len(rows) + 1} "
                    "(IDs count 1, 2, 3... in each sentence; a blank line ends one)",
                    path,
                    number,
                )
            rows.append(tuple(fields))
            lines.append(number)
    close()
    return sentences


def parse_conllu(text: str, path: str | Path = "<text>") -> list[Sentence]:
    """``conllu_sentences``, or a DataError for a text without words."""
    sentences = conllu_sentences(text, path)
    if not sentences:
        raise DataError("no sentences: the file has no word lines", Path(path))
    return sentences


def read_conllu(path: str | Path) -> list[Sentence]:
    """``parse_conllu`` of a file, read as UTF-8."""
    path = Path(path)
    return parse_conllu(decode_utf8(path, file_bytes(path)), path)
