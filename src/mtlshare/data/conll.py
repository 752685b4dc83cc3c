"""Reading CoNLL column files: one token per line, whitespace-separated columns, a blank line
between sentences, ``-DOCSTART-`` lines between documents (CoNLL-2000/2003 format).

Every line of a file must have the same number of columns. Errors name the file and the line:
bytes that are not UTF-8, ragged rows, an empty file or one with only document markers.
"""

from __future__ import annotations

from codecs import BOM_UTF8
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from mtlshare.errors import DataError

DOCSTART = "-DOCSTART-"


@dataclass(frozen=True)
class Sentence:
    """One sentence: ``rows[i]`` holds the columns of token i; ``line`` is the file line of
    its first token (1-based), for error messages; ``lines`` the line of every token where
    other lines may sit between them (CoNLL-U's multiword ranges and empty nodes), else empty:
    token i is then on line ``line + i``."""

    rows: tuple[tuple[str, ...], ...]
    line: int
    lines: tuple[int, ...] = ()

    def __len__(self) -> int:
        return len(self.rows)

    def line_of(self, index: int) -> int:
        """The file line of token ``index`` (1-based)."""
        return self.lines[index] if self.lines else self.line + index

    def column(self, index: int) -> list[str]:
        return [row[index] for row in self.rows]


def file_bytes(path: Path) -> bytes:
    """The bytes of the input file ``path``, or a DataError naming it: missing, a folder, or
    unreadable. A pipe is read as a file (``predict RUN <(zcat in.conll.gz)``), once."""
    if path.is_dir():
        raise DataError("a folder, not a file", path)
    if not path.exists():
        raise DataError("no such file", path)
    try:
        return path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read: {e.strerror or e}", path) from None


def decode_utf8(path: Path, data: bytes) -> str:
    """``data`` as UTF-8 text without a leading byte-order mark (which would otherwise be part of
    the first word), or a DataError naming the line of the first bad byte."""
    start = len(BOM_UTF8) if data.startswith(BOM_UTF8) else 0
    try:
        return data[start:].decode("utf-8")
    except UnicodeDecodeError as e:
        at = start + e.start
        raise _not_utf8(path, data[at], at, data.count(b"\n", 0, at) + 1) from None


def utf8_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of each line of the file ``path``, numbered as ``parse_conll``
    numbers them and decoded one at a time as ``decode_utf8`` decodes a whole file (a leading
    byte-order mark dropped; a bad byte the same DataError): for files of gigabytes of which a
    reader keeps little. No UTF-8 sequence holds a newline byte, so decoding line by line
    decodes the same text."""
    offset = 0
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            start = len(BOM_UTF8) if number == 1 and raw.startswith(BOM_UTF8) else 0
            try:
                yield number, raw[start:].decode("utf-8")
            except UnicodeDecodeError as e:
                at = start + e.start
                raise _not_utf8(path, raw[at], offset + at, number) from None
            offset += len(raw)


def _not_utf8(path: Path, byte: int, offset: int, line: int) -> DataError:
    return DataError(f"not UTF-8 text (byte {byte:#04x} at offset {offset})", path, line)


def parse_conll(
    text: str, path: str | Path = "<text>", n_columns: int = 0, limit: int = 0
) -> list[Sentence]:
    """Sentences of a CoNLL column text. ``n_columns`` (0: taken from the first token line)
    is the number of columns every token line must have. ``limit`` (0: all) stops after that
    many sentences: the lines after them are not read, nor checked."""
    path = Path(path)
    sentences: list[Sentence] = []
    rows: list[tuple[str, ...]] = []
    first = 0
    width = n_columns
    markers = 0

    def close() -> None:
        nonlocal rows
        if rows:
            sentences.append(Sentence(tuple(rows), first))
            rows = []

    # lines end at "\n" only (and "\r\n"): str.splitlines would also break at form feeds and
    # other separators, and the line numbers in errors would drift from the file's
    for number, line in enumerate(_lines(text), start=1):
        if limit and len(sentences) >= limit:
            break
        fields = tuple(line.split())
        if not fields:
            close()
            continue
        if fields[0] == DOCSTART:
            close()
            markers += 1
            continue
        if width == 0:
            width = len(fields)
        if len(fields) != width:
            raise DataError(
                f"{len(fields)} columns where every token line has {width}", path, number
            )
        if not rows:
            first = number
        rows.append(fields)
    close()  # empty after a stop at ``limit``: its last sentence was closed
    if not sentences:
        what = "only document markers" if markers else "no token lines"
        raise DataError(f"no sentences: the file has {what}", path)
    return sentences


def _lines(text: str) -> Iterator[str]:
    """``text.split("\n")``, a line at a time: a reader that stops early (``limit``) makes
    no list of every line of a large file."""
    start = 0
    while (end := text.find("\n", start)) != -1:
        yield text[start:end]
        start = end + 1
    yield text[start:]


def read_conll(path: str | Path, n_columns: int = 0, limit: int = 0) -> list[Sentence]:
    """``parse_conll`` of a file, read as UTF-8 (``limit``: its first sentences only)."""
    path = Path(path)
    return parse_conll(decode_utf8(path, file_bytes(path)), path, n_columns, limit)


def column_index(column: str | int, names: Sequence[str], path: str | Path | None = None) -> int:
    """The position of ``column``: a 0-based index, or a name among ``names``."""
    if isinstance(column, int):
        if not 0 <= column < len(names):
            raise DataError(f"column {column} out of range: the columns are {list(names)}", path)
        return column
    if column not in names:
        raise DataError(f"no column named {column!r}; columns are {list(names)}", path)
    return list(names).index(column)
